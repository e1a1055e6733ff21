"""A compiled query: a SELECT whose columns are named after attributes, plus what is known of them."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from blobflow.model import AttributeType

# What a value is, for type checks and output: attribute types collapse into these.
NUMBER, STRING, BOOL, DATE, DATETIME, UUID, JSON, BLOB, NULL = (
    "number", "string", "bool", "date", "datetime", "uuid", "json", "blob", "null",
)  # fmt: skip

_KINDS = {
    "float32": NUMBER, "float64": NUMBER, "decimal": NUMBER, "bool": BOOL, "varchar": STRING,
    "char": STRING, "text": STRING, "enum": STRING, "date": DATE, "datetime": DATETIME, "uuid": UUID,
    "json": JSON, "blob": BLOB,
}  # fmt: skip


def kind_of(attribute_type: AttributeType) -> str:
    return _KINDS.get(attribute_type.kind, NUMBER)  # every other kind is an integer


@dataclass(frozen=True)
class Column:
    """One attribute of a relation: its kind, and its declared type when it is a stored attribute."""

    kind: str
    type: AttributeType | None = None


@dataclass(frozen=True)
class Relation:
    """A query expression compiled to SQLAlchemy: `select` yields one column per heading name."""

    select: sa.Select
    heading: tuple[str, ...]  # attribute names, primary key first
    primary_key: tuple[str, ...]
    columns: dict[str, Column]
    description: str  # the expression, for messages
    # The table whose rows these are, while the expression only restricts one table (what `delete` needs).
    base_table: str | None = None
    # Whether `select` is a plain SELECT ... FROM ... [WHERE ...] (no ORDER BY, LIMIT, GROUP BY, DISTINCT
    # or set operation at its top), so that a restriction may add to its WHERE and a union or the final
    # select may reuse it instead of wrapping it in another subquery: SQLite's parser gives up on
    # subqueries nested about twenty deep, and every operator used to add one.
    plain: bool = False

    @property
    def secondary(self) -> tuple[str, ...]:
        return tuple(n for n in self.heading if n not in self.primary_key)

    def subquery(self) -> sa.Subquery:
        return self.select.subquery()

    def expressions(self) -> dict[str, sa.ColumnElement]:
        """The SQL expression of each attribute inside `select` (a plain one), without its label: what a
        WHERE clause added to `select` refers to."""
        expressions = {}
        for name in self.heading:
            column = self.select.selected_columns[name]
            expressions[name] = column.element if isinstance(column, sa.Label) else column
        return expressions
