"""The `.proj(...)`, `.aggr(...)` and `.top(...)` methods of query expressions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lark
import sqlalchemy as sa

from blobflow.query.conditions import ValueCompiler
from blobflow.query.relation import BOOL, NUMBER, Column, Relation

if TYPE_CHECKING:
    from blobflow.query.compiler import QueryCompiler

AGGREGATES = ("count", "sum", "avg", "min", "max")


def _named(argument: lark.Tree) -> tuple[str, lark.Tree, lark.Tree] | None:
    """`name = expression` arguments parse as equality; return (name, name node, expression)."""
    if argument.data == "equals" and argument.children[0].data == "name":
        return str(argument.children[0].children[0]), argument.children[0], argument.children[2]
    return None


def project(compiler: QueryCompiler, relation: Relation, arguments: list, node: lark.Tree) -> Relation:
    """Keep the primary key and the named attributes; `new = old` renames; `new = expr` computes."""
    base = relation.subquery()
    columns = {name: base.c[name] for name in relation.heading}
    values = ValueCompiler(compiler.text, columns, relation.columns, relation.description)
    renamed_from: dict[str, str] = {}  # source attribute -> new name, for `new = old`
    for argument in arguments:
        named = _named(argument)
        if named is not None and named[2].data == "name" and str(named[2].children[0]) in columns:
            renamed_from[str(named[2].children[0])] = named[0]
    # Key attributes renamed away free their names (so `proj(a = b, b = a)` swaps two key attributes).
    renamed_keys = {s for s, new in renamed_from.items() if s in relation.primary_key and new != s}
    chosen: dict[str, tuple[sa.ColumnElement, Column]] = {
        n: (columns[n], relation.columns[n]) for n in relation.primary_key if n not in renamed_keys
    }
    for argument in arguments:
        named = _named(argument)
        if named is None:
            if argument.data != "name" or str(argument.children[0]) not in columns:
                raise compiler.error(
                    f"proj takes attribute names and 'new = expression'; "
                    f"{relation.description} has {', '.join(relation.heading)}",
                    argument,
                )
            name = str(argument.children[0])
            chosen[name] = (columns[name], relation.columns[name])
            continue
        name, name_node, expression = named
        if name in relation.primary_key and name not in renamed_keys:
            if expression.data == "name" and str(expression.children[0]) == name:
                continue  # `key = key` keeps it as it is
            # Overwriting a key attribute would change which row is which (and could make it NULL).
            raise compiler.error(f"'{name}' is a primary-key attribute and cannot be assigned", name_node)
        if name in chosen:
            raise compiler.error(f"'{name}' is named twice", name_node)
        if expression.data == "name" and str(expression.children[0]) in columns:
            source = str(expression.children[0])
            chosen[name] = (columns[source], relation.columns[source])
            continue
        value = values.value(expression)
        sql = sa.type_coerce(value.sql, sa.Boolean) if value.kind == BOOL else value.sql
        chosen[name] = (sql, Column(value.kind))
    primary_key = tuple(renamed_from[n] if n in renamed_keys else n for n in relation.primary_key)
    if len(set(primary_key)) != len(primary_key):
        raise compiler.error("a renamed attribute collides with a primary-key attribute", node)
    heading = primary_key + tuple(n for n in chosen if n not in primary_key)
    select = sa.select(*[chosen[n][0].label(n) for n in heading]).select_from(base)
    return Relation(
        select,
        heading,
        primary_key,
        {n: chosen[n][1] for n in heading},
        f"{relation.description}.proj()",
        plain=True,
    )


def aggregate(compiler: QueryCompiler, relation: Relation, arguments: list, node: lark.Tree) -> Relation:
    """Add aggregates of another relation's rows matching each row (on this relation's primary key)."""
    if not arguments or _named(arguments[0]) is not None:
        raise compiler.error("aggr needs a query expression first: Image.aggr(Detection, n = count(*))", node)
    other = compiler.relation(arguments[0])
    missing = [n for n in relation.primary_key if n not in other.heading]
    if missing:
        raise compiler.error(
            f"{other.description} lacks {', '.join(missing)} of {relation.description}'s primary "
            "key, so its rows cannot be grouped by it",
            arguments[0],
        )
    for name in relation.primary_key:
        if relation.columns[name].kind != other.columns[name].kind:
            raise compiler.error(
                f"cannot group on '{name}': a {relation.columns[name].kind} in {relation.description}, "
                f"a {other.columns[name].kind} in {other.description}",
                arguments[0],
            )
    grouped_from = other.subquery()
    group_by = [grouped_from.c[n] for n in relation.primary_key]
    aggregates: dict[str, tuple[sa.ColumnElement, Column]] = {}
    for argument in arguments[1:]:
        named = _named(argument)
        if named is None:
            raise compiler.error("aggr takes 'name = count(*)', sum(x), avg(x), min(x) or max(x)", argument)
        name, name_node, expression = named
        if name in relation.heading or name in aggregates:
            raise compiler.error(f"'{name}' is already an attribute", name_node)
        aggregates[name] = _aggregate(compiler, other, grouped_from, expression)
    grouped = sa.select(*group_by, *[sql.label(n) for n, (sql, _) in aggregates.items()]).group_by(*group_by)
    grouped_sub = grouped.subquery()
    base = relation.subquery()
    condition = sa.and_(*[base.c[n] == grouped_sub.c[n] for n in relation.primary_key])
    heading = relation.heading + tuple(aggregates)
    select = sa.select(*[base.c[n] for n in relation.heading], *[grouped_sub.c[n] for n in aggregates])
    select = select.select_from(base.join(grouped_sub, condition))
    columns = dict(relation.columns) | {n: column for n, (_, column) in aggregates.items()}
    return Relation(
        select, heading, relation.primary_key, columns, f"{relation.description}.aggr()", plain=True
    )


def _aggregate(
    compiler: QueryCompiler, other: Relation, source: sa.Subquery, expression: lark.Tree
) -> tuple[sa.ColumnElement, Column]:
    if expression.data == "call_star" and str(expression.children[0]).lower() == "count":
        return sa.cast(sa.func.count(), sa.BigInteger), Column(NUMBER)
    if expression.data != "call" or str(expression.children[0]).lower() not in AGGREGATES:
        raise compiler.error("expected count(*), count(x), sum(x), avg(x), min(x) or max(x)", expression)
    function = str(expression.children[0]).lower()
    columns = {n: source.c[n] for n in other.heading}
    value = ValueCompiler(compiler.text, columns, other.columns, other.description).value(
        expression.children[1]
    )
    if function == "count":
        return sa.cast(sa.func.count(value.sql), sa.BigInteger), Column(NUMBER)
    if function in ("sum", "avg") and value.kind != NUMBER:
        raise compiler.error(f"{function} needs numbers, got a {value.kind}", expression)
    if value.kind in ("blob", "json", BOOL):
        raise compiler.error(f"{function} cannot take a {value.kind}", expression)
    if function == "avg":
        return sa.func.avg(sa.cast(value.sql, sa.Double)), Column(NUMBER)
    if function == "sum":
        # Integers sum to integers and floats to floats on both databases (PostgreSQL would say numeric).
        declared = (
            other.columns[str(expression.children[1].children[0])].type
            if expression.children[1].data == "name"
            else None
        )
        integral = declared is not None and declared.kind.startswith(("int", "uint"))
        if integral:
            return sa.cast(sa.func.sum(value.sql), sa.BigInteger), Column(NUMBER)
        # Summed in double precision on both (PostgreSQL would sum a float32 column in float32).
        return sa.func.sum(sa.cast(value.sql, sa.Double)), Column(NUMBER)
    sql = getattr(sa.func, function)(value.sql)
    column = Column(value.kind)
    if expression.children[1].data == "name":
        column = other.columns[str(expression.children[1].children[0])]
        sql = sa.type_coerce(sql, value.sql.type)
    return sql, column


def top(compiler: QueryCompiler, relation: Relation, arguments: list, node: lark.Tree) -> Relation:
    """The first n rows in `order_by` order (default: the primary key)."""
    count_node = arguments[0] if arguments else None
    if count_node is None or count_node.data != "number" or not str(count_node.children[0]).isdigit():
        raise compiler.error(
            'top needs a whole number first: top(10, order_by = "num_blobs desc")', count_node or node
        )
    limit = int(str(count_node.children[0]))
    if limit >= 2**63:  # LIMIT is a 64-bit integer on both databases
        raise compiler.error(f"top({limit}) is too large", count_node)
    order_text = None
    for argument in arguments[1:]:
        named = _named(argument)
        if named is None or named[0] != "order_by" or named[2].data != "string":
            raise compiler.error('top takes order_by = "attribute [asc|desc], ..."', argument)
        order_text = named[2]
    base = relation.subquery()
    order = [base.c[n] for n in relation.primary_key]
    if order_text is not None:
        from blobflow.query.conditions import _unquote

        columns = {n: base.c[n] for n in relation.heading}
        text = _unquote(str(order_text.children[0]))
        order = order_by_clauses(compiler, relation, columns, text, order_text)
    select = sa.select(*[base.c[n] for n in relation.heading]).order_by(*order).limit(limit)
    return Relation(
        select, relation.heading, relation.primary_key, relation.columns, f"{relation.description}.top()"
    )


def order_by_clauses(
    compiler: QueryCompiler | None,
    relation: Relation,
    columns: dict[str, sa.ColumnElement],
    text: str,
    node: lark.Tree | None = None,
) -> list[sa.ColumnElement]:
    """'num_blobs desc, image_id' -> ORDER BY clauses; the primary key breaks ties."""
    clauses, named = [], []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise _order_error(
                compiler, f"cannot read order {item.strip()!r}; expected 'attribute [asc|desc]'", node, text
            )
        if words[0] not in relation.heading:
            raise _order_error(
                compiler,
                f"cannot order by '{words[0]}': not an attribute of "
                f"{relation.description} ({', '.join(relation.heading)})",
                node,
                text,
            )
        column = columns[words[0]]
        # NULLs first going up and last going down, as on SQLite (and MySQL): PostgreSQL's default is
        # the opposite, and `top` must keep the same rows on both.
        if len(words) == 2 and words[1].lower() == "desc":
            clauses.append(column.desc().nulls_last())
        else:
            clauses.append(column.asc().nulls_first())
        named.append(words[0])
    return clauses + [columns[n] for n in relation.primary_key if n not in named]


def _order_error(compiler, message: str, node, text: str):
    from blobflow.errors import QueryError

    if compiler is not None and node is not None:
        return compiler.error(message, node)
    return QueryError(message, text, 1)
