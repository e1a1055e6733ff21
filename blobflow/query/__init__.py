"""The query language: text -> parse tree (parser) -> SQLAlchemy SELECT (compiler) -> rows (here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.query.compiler import QueryCompiler
from blobflow.query.methods import order_by_clauses
from blobflow.query.parser import parse
from blobflow.query.relation import BLOB, Relation
from blobflow.types import Float32, numpy_dtype

__all__ = [
    "Relation",
    "compile_query",
    "fetch_rows",
    "final_select",
    "iter_rows",
    "restrict_by_key",
    "restriction_clause",
    "to_arrays",
]


COMPILED_QUERY_CACHE = 256


def compile_query(database: Database, text: str) -> Relation:
    """Compile a query such as "Detection & num_blobs < 300"; errors are QueryErrors with a caret."""
    cache = database.compiled_queries
    relation = cache.get(text)
    if relation is None:
        relation = QueryCompiler(database, text).compile()
        if len(cache) >= COMPILED_QUERY_CACHE:
            cache.pop(next(iter(cache)))
        cache[text] = relation
    return relation


def final_select(
    relation: Relation,
    *,
    order_by: str | None = None,
    limit: int | None = None,
    attributes: tuple[str, ...] | None = None,
    raw_blobs: bool = False,
) -> sa.Select:
    """The SELECT to run: ordered (primary key by default, so output is stable), limited, and with
    blobs left encoded when only their description is shown."""
    names = attributes or relation.heading
    for name in names:
        if name not in relation.heading:
            from blobflow.errors import QueryError

            raise QueryError(
                f"'{name}' is not an attribute of the result ({', '.join(relation.heading)})", name, 1
            )
    if relation.plain:  # order and limit the relation's own SELECT rather than nest it
        available = {n: relation.select.selected_columns[n] for n in relation.heading}
        order_columns = relation.expressions()
    else:
        base = relation.subquery()
        available = order_columns = {n: base.c[n] for n in relation.heading}
    columns = []
    for name in names:
        column = available[name]
        if raw_blobs and relation.columns[name].kind == BLOB:
            column = sa.type_coerce(order_columns[name], sa.LargeBinary).label(name)
        columns.append(column)
    order = (
        order_by_clauses(None, relation, order_columns, order_by)
        if order_by
        else [order_columns[n] for n in relation.primary_key]
    )
    if relation.plain:
        select = relation.select.with_only_columns(*columns, maintain_column_froms=True)
    else:
        select = sa.select(*columns)
    select = select.order_by(*order)
    return select.limit(limit) if limit is not None else select


@contextlib.contextmanager
def refused_values() -> Iterator[None]:
    """A value a query computes that the database refuses (integer arithmetic beyond 64 bits) is
    the query's fault, reported as a DataError, not a failure of blobflow's."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        refused = db.refused_value(exc)
        if refused is None:
            raise
        raise refused from exc


def iter_rows(database: Database, select: sa.Select, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Stream rows as dicts: a server-side cursor on PostgreSQL, so big results are not all in memory."""
    with refused_values(), database.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch).execute(select)
        names = tuple(result.keys())
        # dict(zip()) over plain rows: half the time of dict(RowMapping) per row.
        for rows in result.partitions():
            for row in rows:
                yield dict(zip(names, row))


def fetch_rows(database: Database, select: sa.Select) -> list[dict[str, Any]]:
    """All rows as dicts at once: a plain cursor, cheaper than streaming when the list is wanted anyway."""
    with refused_values(), database.engine.connect() as connection:
        result = connection.execute(select)
        names = tuple(result.keys())
        return [dict(zip(names, row)) for row in result.all()]


def to_arrays(database: Database, relation: Relation, select: sa.Select) -> tuple[np.ndarray, ...]:
    """One numpy array per selected column, typed as declared where the column is a stored attribute."""
    with refused_values(), database.engine.connect() as connection:
        rows = connection.execute(_float32_unprocessed(select)).all()
    arrays = []
    for index, column in enumerate(select.selected_columns):
        values = [row[index] for row in rows]
        declared = relation.columns[column.name].type
        dtype = numpy_dtype(declared) if declared is not None else None
        if dtype is not None and None not in values:
            arrays.append(np.asarray(values, dtype=dtype))
            continue
        if isinstance(column.type, Float32):  # read unprocessed, but not going into a float32 array
            values = [column.type.process_result_value(v, database.engine.dialect) for v in values]
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            arrays.append(np.asarray(values))
        else:
            array = np.empty(len(values), dtype=object)
            array[:] = values
            arrays.append(array)
    return tuple(arrays)


def _float32_unprocessed(select: sa.Select) -> sa.Select:
    """The select with float32 columns read as the database sends them. Float32's result processor
    turns each value into the shortest decimal of the same float32 (0.001, not 0.0010000000474974513),
    for rows as dicts, at 1.5 µs a value; an array of dtype float32 holds the same values either way."""
    columns = [
        sa.type_coerce(column, column.type.impl).label(column.name)
        if isinstance(column.type, Float32)
        else column
        for column in select.selected_columns
    ]
    return select.with_only_columns(*columns, maintain_column_froms=True)


def restriction_clause(database: Database, text: str, relation: Relation, columns: dict) -> sa.ColumnElement:
    """`text` (a condition or a query expression) as a WHERE clause restricting `relation`, whose
    attributes are the given `columns`. Used by `populate --where` on the key source."""
    compiler = QueryCompiler(database, text)
    return compiler.restriction(relation, parse(text), columns)


def restrict_by_key(relation: Relation, key: dict[str, Any]) -> Relation:
    """The relation's rows that agree with `key` on the attributes they share (DataJoint's `expr & key`)."""
    base = relation.subquery()
    select = sa.select(*[base.c[n] for n in relation.heading]).where(
        *[base.c[name] == value for name, value in key.items() if name in relation.heading]
    )
    return Relation(
        select,
        relation.heading,
        relation.primary_key,
        relation.columns,
        relation.description,
        relation.base_table,
    )
