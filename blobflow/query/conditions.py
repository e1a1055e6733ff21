"""Value expressions and conditions inside a query -> typed SQLAlchemy expressions.

Names are attributes of the relation being restricted or projected; literals become bound
parameters; kinds are checked so that `num_blobs < 'abc'` is an error, not a database surprise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lark
import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from blobflow.db import CHECKED_INT64
from blobflow.errors import QueryError
from blobflow.query.parser import position
from blobflow.query.relation import BLOB, BOOL, DATE, DATETIME, JSON, NULL, NUMBER, STRING, UUID, Column


@dataclass(frozen=True)
class Value:
    """A compiled value: the SQL expression, its kind, and whether it is a float32 attribute (whose
    literals are rounded to float32 so that `threshold = 0.001` finds the stored float32 0.001)."""

    sql: sa.ColumnElement
    kind: str
    float32: bool = False
    literal: Any = None
    is_literal: bool = False


class ValueCompiler:
    """Compiles the condition grammar's nodes against a set of named columns."""

    def __init__(
        self,
        text: str,
        columns: Mapping[str, sa.ColumnElement],
        kinds: Mapping[str, Column],
        relation_name: str,
        on_relation: Callable[[lark.Tree], sa.ColumnElement] | None = None,
    ):
        self.text = text
        self.columns = columns
        self.kinds = kinds
        self.relation_name = relation_name
        # A restriction may be a relation (a semijoin); the query compiler handles those.
        self.on_relation = on_relation

    def error(self, message: str, node: lark.Tree | lark.Token) -> QueryError:
        return QueryError(message, self.text, position(node))

    def condition(self, node: lark.Tree) -> sa.ColumnElement:
        value = self.value(node)
        if value.kind != BOOL:
            raise self.error(f"expected a condition (true or false), got a {value.kind}", node)
        return value.sql

    def value(self, node: lark.Tree | lark.Token) -> Value:
        handler = getattr(self, f"_{node.data}", None) if isinstance(node, lark.Tree) else None
        if handler is None:
            raise self.error("not allowed inside a condition", node)
        return handler(node)

    # names and literals
    def _name(self, node: lark.Tree) -> Value:
        token = node.children[0]
        name = str(token)
        if name not in self.columns:
            if self.on_relation is not None:
                return Value(self.on_relation(node), BOOL)
            known = ", ".join(self.columns)
            raise self.error(f"unknown attribute '{name}' in {self.relation_name} (it has {known})", token)
        column = self.kinds[name]
        return Value(
            self.columns[name], column.kind, column.type is not None and column.type.kind == "float32"
        )

    def _number(self, node: lark.Tree) -> Value:
        text = str(node.children[0])
        number: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        if (isinstance(number, int) and abs(number) >= 2**63) or number in (float("inf"), float("-inf")):
            raise self.error(f"number {text} is too large", node)
        return Value(sa.literal(number), NUMBER, literal=number, is_literal=True)

    def _string(self, node: lark.Tree) -> Value:
        text = _unquote(str(node.children[0]))
        return Value(sa.literal(text, sa.String), STRING, literal=text, is_literal=True)

    def _true(self, node: lark.Tree) -> Value:
        return Value(sa.true(), BOOL, literal=True, is_literal=True)

    def _false(self, node: lark.Tree) -> Value:
        return Value(sa.false(), BOOL, literal=False, is_literal=True)

    def _null(self, node: lark.Tree) -> Value:
        return Value(sa.null(), NULL, literal=None, is_literal=True)

    # logic
    def _or_(self, node: lark.Tree) -> Value:
        return Value(sa.or_(self.condition(node.children[0]), self.condition(node.children[2])), BOOL)

    def _and_(self, node: lark.Tree) -> Value:
        return Value(sa.and_(self.condition(node.children[0]), self.condition(node.children[2])), BOOL)

    def _not_(self, node: lark.Tree) -> Value:
        return Value(sa.not_(self.condition(node.children[1])), BOOL)

    # comparisons
    def _compare(self, node: lark.Tree) -> Value:
        left, operator, right = node.children
        return self._comparison(left, str(operator), right)

    def _equals(self, node: lark.Tree) -> Value:
        left, _, right = node.children
        return self._comparison(left, "=", right)

    def _comparison(self, left_node: lark.Tree, operator: str, right_node: lark.Tree) -> Value:
        left, right = self.value(left_node), self.value(right_node)
        left, right = self._agree(left, right, left_node, operator)
        operations = {
            "=": "__eq__",
            "==": "__eq__",
            "!=": "__ne__",
            "<>": "__ne__",
            "<": "__lt__",
            "<=": "__le__",
            ">": "__gt__",
            ">=": "__ge__",
        }
        return Value(getattr(left.sql, operations[operator])(right.sql), BOOL)

    def _agree(self, left: Value, right: Value, node: lark.Tree, operator: str) -> tuple[Value, Value]:
        """Check two values can be compared; make literals match the other side (float32, dates)."""
        for value in (left, right):
            if value.kind in (BLOB, JSON):
                raise self.error(f"a {value.kind} attribute cannot be compared", node)
        if NULL in (left.kind, right.kind):
            raise self.error(f"use 'is null' rather than '{operator} null'", node)
        left, right = _adapt(left, right), _adapt(right, left)
        if left.kind != right.kind:
            raise self.error(f"cannot compare a {left.kind} with a {right.kind}", node)
        return left, right

    def _in_(self, node: lark.Tree, negate: bool = False) -> Value:
        subject = self.value(node.children[0])
        items_node = node.children[-1]
        items = [self._agree(subject, self.value(item), item, "in")[1] for item in items_node.children]
        clause = subject.sql.in_([item.sql for item in items])
        return Value(sa.not_(clause) if negate else clause, BOOL)

    def _not_in(self, node: lark.Tree) -> Value:
        return self._in_(node, negate=True)

    def _between(self, node: lark.Tree, negate: bool = False) -> Value:
        subject, low, high = (self.value(node.children[i]) for i in (0, -3, -1))
        low = self._agree(subject, low, node, "between")[1]
        high = self._agree(subject, high, node, "between")[1]
        clause = subject.sql.between(low.sql, high.sql)
        return Value(sa.not_(clause) if negate else clause, BOOL)

    def _not_between(self, node: lark.Tree) -> Value:
        return self._between(node, negate=True)

    def _like(self, node: lark.Tree, negate: bool = False) -> Value:
        subject, pattern = self.value(node.children[0]), self.value(node.children[-1])
        if subject.kind != STRING or pattern.kind != STRING:
            raise self.error("'like' compares strings", node)
        if pattern.is_literal and (len(pattern.literal) - len(pattern.literal.rstrip("\\"))) % 2:
            raise self.error("a 'like' pattern cannot end with a lone backslash (its escape character)", node)
        # Backslash escapes % and _ on both databases (PostgreSQL's default; SQLite has none unless told).
        clause = subject.sql.like(pattern.sql, escape="\\")
        return Value(sa.not_(clause) if negate else clause, BOOL)

    def _not_like(self, node: lark.Tree) -> Value:
        return self._like(node, negate=True)

    def _is_null(self, node: lark.Tree) -> Value:
        return Value(self.value(node.children[0]).sql.is_(None), BOOL)

    def _is_not_null(self, node: lark.Tree) -> Value:
        return Value(self.value(node.children[0]).sql.is_not(None), BOOL)

    # arithmetic
    def _arithmetic(self, node: lark.Tree, operation: Callable[[Any, Any], Any]) -> Value:
        left, right = self.value(node.children[0]), self.value(node.children[2])
        for value, child in ((left, node.children[0]), (right, node.children[2])):
            if value.kind != NUMBER:
                raise self.error(f"arithmetic needs numbers, got a {value.kind}", child)
        return Value(_checked(operation, _widened(left), _widened(right)), NUMBER)

    def _add(self, node: lark.Tree) -> Value:
        return self._arithmetic(node, lambda a, b: a + b)

    def _sub(self, node: lark.Tree) -> Value:
        return self._arithmetic(node, lambda a, b: a - b)

    def _mul(self, node: lark.Tree) -> Value:
        return self._arithmetic(node, lambda a, b: a * b)

    def _div(self, node: lark.Tree) -> Value:
        # Always true division, the same on both databases (SQL's integer division differs from Python's).
        # Division by zero is NULL on both (SQLite's and MySQL's answer; PostgreSQL would raise).
        return self._arithmetic(
            node, lambda a, b: sa.cast(a, sa.Double) / sa.func.nullif(sa.cast(b, sa.Double), 0.0)
        )

    def _neg(self, node: lark.Tree) -> Value:
        value = self.value(node.children[1])
        if value.kind != NUMBER:
            raise self.error(f"'-' needs a number, got a {value.kind}", node)
        if value.is_literal:
            return Value(sa.literal(-value.literal), NUMBER, literal=-value.literal, is_literal=True)
        return Value(_checked(lambda a: -a, _widened(value)), NUMBER)


def _widened(value: Value) -> sa.ColumnElement:
    """Integers as 64-bit before arithmetic: PostgreSQL computes int16 * int16 in int16 and raises on
    overflow, where SQLite computes in 64 bits."""
    if isinstance(value.sql.type, sa.Integer) and not isinstance(value.sql.type, sa.BigInteger):
        return sa.cast(value.sql, sa.BigInteger)
    return value.sql


def _checked(operation: Callable[..., Any], *operands: sa.ColumnElement) -> sa.ColumnElement:
    """The operation, its integer result refused beyond 64 bits on both databases (CheckedInteger).
    Integer operands are checked once, at the top of the expression: on SQLite an overflow inside
    stays a float through +, - and *, and the check there finds it. A float or a division takes its
    operands checked, as their values are final there."""
    result = operation(*(o.inner if isinstance(o, CheckedInteger) else o for o in operands))
    if isinstance(result.type, sa.Integer):
        return CheckedInteger(result)
    return operation(*operands)


class CheckedInteger(sa.sql.expression.ColumnElement):
    """An integer expression that fails rather than overflow: PostgreSQL raises "bigint out of range"
    by itself; SQLite would go on in floating point, so there it passes through a function of
    blobflow's that refuses floats (db.CHECKED_INT64)."""

    inherit_cache = True

    @property
    def _from_objects(self) -> list:  # the tables it reads, for a SELECT of it alone
        return self.inner._from_objects

    def __init__(self, expression: sa.ColumnElement):
        self.inner = expression
        self.type = expression.type

    _traverse_internals = [("inner", sa.sql.visitors.InternalTraversal.dp_clauseelement)]


@compiles(CheckedInteger)
def _compile_checked(element: CheckedInteger, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"


@compiles(CheckedInteger, "sqlite")
def _compile_checked_sqlite(element: CheckedInteger, compiler: Any, **kw: Any) -> str:
    return f"{CHECKED_INT64}({compiler.process(element.inner, **kw)})"


def _adapt(value: Value, other: Value) -> Value:
    """A literal takes the form of what it is compared with: float32 rounding, dates from strings."""
    if not value.is_literal:
        return value
    if other.float32 and value.kind == NUMBER:
        rounded = float(np.float32(value.literal))
        return Value(sa.literal(rounded, sa.Double), NUMBER, literal=rounded, is_literal=True)
    if other.kind in (DATE, DATETIME) and value.kind == STRING:
        try:
            parsed = (dt.date.fromisoformat if other.kind == DATE else dt.datetime.fromisoformat)(
                value.literal
            )
        except ValueError:
            return value  # reported as a kind mismatch
        return Value(
            sa.literal(parsed, sa.Date if other.kind == DATE else sa.DateTime),
            other.kind,
            literal=parsed,
            is_literal=True,
        )
    if other.kind == UUID and value.kind == STRING:
        import uuid

        try:
            return Value(
                sa.literal(uuid.UUID(value.literal), sa.Uuid), UUID, literal=value.literal, is_literal=True
            )
        except ValueError:
            return value
    if other.kind == BOOL and value.kind == NUMBER and value.literal in (0, 1):
        return Value(
            sa.true() if value.literal else sa.false(), BOOL, literal=bool(value.literal), is_literal=True
        )
    return value


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _unquote(text: str) -> str:
    """A quoted string's value; backslash escapes \\n \\t \\r \\\\ \\' \\" (others kept as written)."""
    body, out, index = text[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)
