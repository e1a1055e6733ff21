"""Query expressions -> SQLAlchemy SELECTs, with DataJoint's semantics.

`&` restricts by a condition or, given a relation, is a semijoin on the shared attribute names; `-`
is the antijoin; `*` the natural join; `+` the union of relations with the same primary key;
`.proj` keeps, renames and computes attributes (the primary key always stays); `.aggr` adds
aggregates of another relation per row of this one (rows without matches drop out); `.top` keeps
the first n rows in an order. User text reaches SQL only as bound parameters and checked names.
"""

from __future__ import annotations

import lark
import sqlalchemy as sa

from blobflow.database import Database
from blobflow.errors import QueryError, UsageError
from blobflow.model import Table
from blobflow.query.conditions import ValueCompiler
from blobflow.query.parser import parse, position
from blobflow.query.relation import BOOL, NUMBER, STRING, Column, Relation, kind_of

RELATION_NODES = ("method", "restrict")
# What a condition parses as (grammar.lark): a condition where an expression is wanted is a common slip.
CONDITION_NODES = (
    "compare", "equals", "in_", "not_in", "between", "not_between", "like", "not_like", "is_null",
    "is_not_null", "and_", "or_", "not_",
)  # fmt: skip
AGGREGATES = ("count", "sum", "avg", "min", "max")


class QueryCompiler:
    def __init__(self, database: Database, text: str):
        self.database = database
        self.text = text

    def error(self, message: str, node: lark.Tree | lark.Token) -> QueryError:
        return QueryError(message, self.text, position(node))

    def compile(self) -> Relation:
        tree = parse(self.text)
        try:
            return self.relation(tree)
        except RecursionError:  # parse() limits the depth; this is a last line of defence
            raise QueryError("query nested too deeply", self.text, 1) from None

    # relations
    def relation(self, node: lark.Tree) -> Relation:
        if node.data in ("name", "member"):
            return self.table(node)
        if node.data == "restrict":
            return self.restrict(self.relation(node.children[0]), node.children[1])
        if node.data == "sub":
            return self.restrict(self.relation(node.children[0]), node.children[2], negate=True)
        if node.data == "mul":
            # Errors of a join or a union point at its operator.
            return self.join(
                self.relation(node.children[0]), self.relation(node.children[2]), node.children[1]
            )
        if node.data == "add":
            return self.union(
                self.relation(node.children[0]), self.relation(node.children[2]), node.children[1]
            )
        if node.data == "method":
            return self.method(node)
        if node.data in CONDITION_NODES:
            raise self.error(
                "expected a table or a query expression here, not a condition: `&` restricts an "
                "expression (`Image & image_id = 1`); conditions join with `and`, `or`",
                node,
            )
        raise self.error("expected a table or a query expression here", node)

    def dotted(self, node: lark.Tree) -> str | None:
        """'Detection.Blob' for member(name(Detection), Blob); None for anything else."""
        if node.data == "name":
            return str(node.children[0])
        if node.data == "member":
            head = self.dotted(node.children[0])
            return None if head is None else f"{head}.{node.children[1]}"
        return None

    def table(self, node: lark.Tree) -> Relation:
        name = self.dotted(node)
        try:
            table = self.database.resolve(name or "")
        except UsageError as exc:
            raise self.error(exc.message, node) from None
        return table_relation(self.database, table)

    def is_relation(self, node: lark.Tree, heading: tuple[str, ...]) -> bool:
        """Whether a restrictor denotes rows of a table (a semijoin) rather than a condition."""
        if node.data == "name":
            return str(node.children[0]) not in heading and self._is_table(str(node.children[0]))
        if node.data == "member":
            name = self.dotted(node)
            return name is not None and self._is_table(name)
        if node.data in RELATION_NODES:
            return True
        if node.data in ("mul", "add", "sub"):
            return self.is_relation(node.children[0], heading)
        return False

    def _is_table(self, name: str) -> bool:
        try:
            self.database.resolve(name)
        except UsageError:
            return False
        return True

    def restrict(self, relation: Relation, restrictor: lark.Tree, negate: bool = False) -> Relation:
        if relation.plain:  # add to its WHERE rather than nest it
            columns = relation.expressions()
            select = relation.select
        else:
            base = relation.subquery()
            columns = {name: base.c[name] for name in relation.heading}
            select = sa.select(*columns.values())
        condition = self.restriction(relation, restrictor, columns)
        return Relation(
            select.where(sa.not_(condition) if negate else condition),
            relation.heading,
            relation.primary_key,
            relation.columns,
            relation.description,
            relation.base_table,
            plain=True,
        )

    def restriction(self, relation: Relation, restrictor: lark.Tree, columns: dict) -> sa.ColumnElement:
        """The WHERE clause for `relation & restrictor`, over `columns` (the relation's, by name):
        a condition, a quoted condition, or a semijoin with another expression."""
        if restrictor.data == "string":
            token = restrictor.children[0]
            inner = parse(_string_value(token), offset=position(token), whole=self.text)
            try:
                return self._condition(relation, inner, columns)
            except QueryError as exc:
                # The inner tree's columns count from the quoted text; point into the whole query.
                raise QueryError(exc.message, self.text, exc.column + position(token)) from None
        if self.is_relation(restrictor, relation.heading):
            return self._semijoin(columns, self.relation(restrictor), restrictor, relation.columns)
        return self._condition(relation, restrictor, columns)

    def _condition(self, relation: Relation, node: lark.Tree, columns: dict) -> sa.ColumnElement:
        def semijoin_by_name(name_node: lark.Tree) -> sa.ColumnElement:
            if not self._is_table(str(name_node.children[0])):
                known = ", ".join(relation.heading)
                raise self.error(
                    f"unknown attribute or table '{name_node.children[0]}' (attributes here: {known})",
                    name_node,
                )
            return self._semijoin(columns, self.table(name_node), name_node, relation.columns)

        values = ValueCompiler(self.text, columns, relation.columns, relation.description, semijoin_by_name)
        return values.condition(node)

    def _semijoin(
        self, columns: dict, other: Relation, node: lark.Tree, kinds: dict | None = None
    ) -> sa.ColumnElement:
        shared = [name for name in other.heading if name in columns]
        for name in shared:
            # Comparing, say, an integer with a string is an error on PostgreSQL and never true on SQLite.
            if kinds is not None and kinds[name].kind != other.columns[name].kind:
                raise self.error(
                    f"cannot restrict on '{name}': a {kinds[name].kind} here, "
                    f"a {other.columns[name].kind} in {other.description}",
                    node,
                )
        right = other.subquery()
        return sa.exists(
            sa.select(sa.literal(1))
            .select_from(right)
            .where(*[columns[name] == right.c[name] for name in shared])
        )

    def join(self, left: Relation, right: Relation, node: lark.Tree | lark.Token) -> Relation:
        a, b = left.subquery(), right.subquery()
        shared = [name for name in right.heading if name in left.heading]
        for name in shared:
            if left.columns[name].kind != right.columns[name].kind:
                raise self.error(
                    f"cannot join on '{name}': a {left.columns[name].kind} in {left.description}, "
                    f"a {right.columns[name].kind} in {right.description}",
                    node,
                )
        condition = sa.and_(*[a.c[n] == b.c[n] for n in shared]) if shared else sa.true()
        primary_key = left.primary_key + tuple(n for n in right.primary_key if n not in left.primary_key)
        secondary = [n for n in left.heading + right.heading if n not in primary_key]
        heading = primary_key + tuple(dict.fromkeys(secondary))
        pick = {n: (a.c[n] if n in left.heading else b.c[n]) for n in heading}
        select = sa.select(*[pick[n] for n in heading]).select_from(a.join(b, condition))
        columns = {n: left.columns.get(n) or right.columns[n] for n in heading}
        return Relation(
            select, heading, primary_key, columns, f"{left.description} * {right.description}", plain=True
        )

    def union(self, left: Relation, right: Relation, node: lark.Tree | lark.Token) -> Relation:
        if set(left.primary_key) != set(right.primary_key):
            raise self.error(
                f"union needs the same primary key on both sides: ({', '.join(left.primary_key)}) "
                f"and ({', '.join(right.primary_key)})",
                node,
            )
        if set(left.heading) != set(right.heading):
            raise self.error(
                f"union needs the same attributes on both sides: ({', '.join(left.heading)}) and "
                f"({', '.join(right.heading)})",
                node,
            )
        for name in left.heading:
            if left.columns[name].kind != right.columns[name].kind:
                raise self.error(
                    f"union needs the same kinds of attribute on both sides: '{name}' is a "
                    f"{left.columns[name].kind} in {left.description}, a {right.columns[name].kind} "
                    f"in {right.description}",
                    node,
                )
        union = sa.union(*[_columns_in_order(side, left.heading) for side in (left, right)])
        result = union.subquery()
        select = sa.select(*[result.c[n] for n in left.heading])
        return Relation(
            select,
            left.heading,
            left.primary_key,
            left.columns,
            f"{left.description} + {right.description}",
            plain=True,
        )

    # methods
    def method(self, node: lark.Tree) -> Relation:
        target, name_token = node.children[0], node.children[1]
        arguments = node.children[2].children if len(node.children) > 2 else []
        relation = self.relation(target)
        name = str(name_token)
        if name == "proj":
            from blobflow.query.methods import project

            return project(self, relation, arguments, node)
        if name == "aggr":
            from blobflow.query.methods import aggregate

            return aggregate(self, relation, arguments, node)
        if name == "top":
            from blobflow.query.methods import top

            return top(self, relation, arguments, node)
        raise self.error(f"unknown method '{name}'; expected proj, aggr or top", name_token)


def table_relation(database: Database, table: Table) -> Relation:
    """All rows of one table (its declared attributes; provenance columns stay hidden)."""
    sql_table = database.sql[table.qualified_name]
    select = sa.select(*[sql_table.c[a.name] for a in table.attributes])
    columns = {a.name: Column(kind_of(a.type), a.type) for a in table.attributes}
    heading = tuple(a.name for a in table.attributes)
    return Relation(select, heading, table.primary_key, columns, table.name, table.qualified_name, plain=True)


def _columns_in_order(relation: Relation, names: tuple[str, ...]) -> sa.Select:
    """A SELECT of the relation's rows with its columns in the given order (one side of a union)."""
    if relation.plain:
        columns = [relation.select.selected_columns[n] for n in names]
        return relation.select.with_only_columns(*columns, maintain_column_froms=True)
    base = relation.subquery()
    return sa.select(*[base.c[n] for n in names])


def _string_value(token: lark.Token) -> str:
    from blobflow.query.conditions import _unquote

    return _unquote(str(token))


__all__ = ["BOOL", "NUMBER", "STRING", "QueryCompiler"]
