"""Reading what is stored: row counts, rows as dicts or arrays, and definitions as text."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.errors import UsageError
from blobflow.model import Table
from blobflow.types import numpy_dtype


def row_counts(database: Database) -> dict[str, int | None]:
    """Rows per table name; None for tables not created yet. One query for all existing tables."""
    if db.sqlite_file_missing(database.url):
        return {t.name: None for t in database.pipeline}  # reading must not create the file
    db.check_connection(database.engine)
    with database.engine.connect() as connection:
        inspector = sa.inspect(connection)
        existing = {
            (t.schema, t.sql_name)
            for t in database.pipeline
            if inspector.has_table(t.sql_name, schema=database.sql_schema(t.schema))
        }
        counts: dict[str, int | None] = {t.name: None for t in database.pipeline}
        present = [t for t in database.pipeline if (t.schema, t.sql_name) in existing]
        if present:
            values = connection.execute(
                sa.select(
                    *[
                        sa.select(sa.func.count())
                        .select_from(database.sql[t.qualified_name])
                        .scalar_subquery()
                        for t in present
                    ]
                )
            ).one()
            counts.update(zip([t.name for t in present], values))
    return counts


def _restrict(select: sa.Select, sql_table: sa.Table, table: Table, restriction: Mapping[str, Any] | None):
    for name, value in (restriction or {}).items():
        if not table.has_attribute(name):
            continue  # DataJoint semantics: a key restricts on the attributes the table shares with it
        select = select.where(sql_table.c[name] == value)
    return select


def select_rows(
    database: Database,
    table: Table,
    restriction: Mapping[str, Any] | None = None,
    attributes: Sequence[str] | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
) -> sa.Select:
    sql_table = database.sql[table.qualified_name]
    names = list(attributes or [a.name for a in table.attributes])
    for name in names:
        if not table.has_attribute(name):
            raise UsageError(
                f"{table.name} has no attribute '{name}' (it has {', '.join(c.name for c in sql_table.c)})"
            )
    select = sa.select(*[sql_table.c[n] for n in names])
    select = _restrict(select, sql_table, table, restriction)
    select = select.order_by(*[sql_table.c[n] for n in (order_by or table.primary_key)])
    return select.limit(limit) if limit is not None else select


def iter_rows(database: Database, select: sa.Select, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Stream rows as dicts without loading the whole result."""
    with database.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch).execute(select)
        for row in result.mappings():
            yield dict(row)


def to_arrays(database: Database, table: Table, select: sa.Select) -> tuple[np.ndarray, ...]:
    """One numpy array per selected column, typed as declared (float32 stays float32); object arrays
    for blobs, strings and columns holding nulls."""
    with database.engine.connect() as connection:
        rows = connection.execute(select).all()
    columns = list(zip(*rows)) if rows else [() for _ in select.selected_columns]
    return tuple(
        _as_array(values, table.attribute(column.name).type if table.has_attribute(column.name) else None)
        for values, column in zip(columns, select.selected_columns)
    )


def _as_array(values: Sequence[Any], attribute_type) -> np.ndarray:
    dtype = numpy_dtype(attribute_type) if attribute_type is not None else None
    if dtype is not None and None not in values:
        return np.asarray(values, dtype=dtype)
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def count_rows(database: Database, table: Table, restriction: Mapping[str, Any] | None = None) -> int:
    sql_table = database.sql[table.qualified_name]
    select = _restrict(sa.select(sa.func.count()).select_from(sql_table), sql_table, table, restriction)
    with database.engine.connect() as connection:
        return connection.execute(select).scalar_one()
