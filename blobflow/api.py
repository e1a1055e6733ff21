"""The Python API: what scripts, make functions and the CLI use.

import blobflow
pipe = blobflow.open_pipeline("pipelines/blobs", "sqlite:///blobs.db")
pipe.init()
pipe.table("Image").insert([{"image_id": 1, "image_name": "coins", "image": array}])
x, y = pipe.table("Detection.Blob").to_arrays("x", "y", key={"image_id": 1})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blobflow.database import Database, open_database
from blobflow.declare import DropPlan, InitResult, drop_database, init_database, plan_drop
from blobflow.describe import describe_table
from blobflow.errors import DataError
from blobflow.insert import InsertResult, insert_rows
from blobflow.inspection import row_counts
from blobflow.model import Pipeline, Table
from blobflow.query.relation import Relation


class TableHandle:
    """One table of an open pipeline: insert into it and fetch from it."""

    def __init__(self, database: Database, table: Table):
        self.database = database
        self.model = table

    def __repr__(self) -> str:
        return f"<TableHandle {self.model.qualified_name}>"

    @property
    def name(self) -> str:
        return self.model.name

    def insert(
        self,
        rows: Any,
        *,
        skip_duplicates: bool = False,
        replace: bool = False,
        ignore_extra_fields: bool = False,
    ) -> InsertResult:
        """Insert a list of dicts, a dict of columns or a structured array, all or nothing."""
        return insert_rows(
            self.database,
            self.model,
            rows,
            skip_duplicates=skip_duplicates,
            replace=replace,
            ignore_extra_fields=ignore_extra_fields,
        )

    def insert1(self, row: Mapping[str, Any], **options: bool) -> InsertResult:
        return self.insert([row], **options)

    def rows(self, key: Mapping[str, Any] | None = None) -> Query:
        """This table's rows as a query, restricted by the attributes of `key` it has (DataJoint's
        `Table & key`); everything below goes through it."""
        from blobflow.query import restrict_by_key
        from blobflow.query.compiler import table_relation

        relation = table_relation(self.database, self.model)
        return Query(
            self.database, self.model.name, restrict_by_key(relation, dict(key)) if key else relation
        )

    def iter(
        self,
        key: Mapping[str, Any] | None = None,
        attributes: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream rows as dicts, in primary-key order unless `order_by` names attributes ("x desc")."""
        return self.rows(key).iter(*(attributes or ()), order_by=_order(order_by), limit=limit)

    def fetch(
        self,
        key: Mapping[str, Any] | None = None,
        attributes: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(self.iter(key, attributes, order_by, limit))

    def fetch1(
        self, key: Mapping[str, Any] | None = None, attributes: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """The one row matching `key`; an error when there are none or several."""
        rows = list(self.iter(key, attributes, limit=2))
        if len(rows) != 1:
            found = "no row" if not rows else "more than one row"
            raise DataError(f"fetch1 on {self.name} with {dict(key or {})}: expected one row, found {found}")
        return rows[0]

    def to_arrays(
        self, *attributes: str, key: Mapping[str, Any] | None = None, order_by: Sequence[str] | None = None
    ) -> tuple[np.ndarray, ...]:
        """One numpy array per attribute (all attributes when none are named), in key order."""
        return self.rows(key).to_arrays(*attributes, order_by=_order(order_by))

    def count(self, key: Mapping[str, Any] | None = None) -> int:
        return self.rows(key).count()

    def __len__(self) -> int:
        return self.count()

    def describe(self) -> str:
        return describe_table(self.database.pipeline, self.model)


class Query:
    """The rows of a query expression, fetched lazily: `pipe.query("Detection & num_blobs < 300")`."""

    def __init__(self, database: Database, text: str, relation: Relation | None = None):
        from blobflow.query import compile_query

        self.database = database
        self.text = text
        self.relation = relation if relation is not None else compile_query(database, text)

    def __repr__(self) -> str:
        return f"<Query {self.text!r}>"

    @property
    def heading(self) -> tuple[str, ...]:
        return self.relation.heading

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.relation.primary_key

    def iter(self, *attributes: str, order_by: str | None = None, limit: int | None = None) -> Iterator[dict]:
        """Stream rows as dicts (all attributes, or the named ones), in primary-key order by default."""
        from blobflow.query import final_select, iter_rows

        select = final_select(self.relation, order_by=order_by, limit=limit, attributes=attributes or None)
        return iter_rows(self.database, select)

    def fetch(self, *attributes: str, order_by: str | None = None, limit: int | None = None) -> list[dict]:
        """All rows as dicts; `iter` streams instead, for results too big to hold."""
        from blobflow.query import fetch_rows, final_select

        select = final_select(self.relation, order_by=order_by, limit=limit, attributes=attributes or None)
        return fetch_rows(self.database, select)

    def fetch1(self, *attributes: str) -> dict[str, Any]:
        rows = list(self.iter(*attributes, limit=2))
        if len(rows) != 1:
            raise DataError(
                f"fetch1 on {self.text!r}: expected one row, found {len(rows) or 'none'}"
                + (" or more" if len(rows) == 2 else "")
            )
        return rows[0]

    def keys(self) -> list[dict[str, Any]]:
        return self.fetch(*self.relation.primary_key)

    def to_arrays(self, *attributes: str, order_by: str | None = None) -> tuple[np.ndarray, ...]:
        """One numpy array per attribute, as in the seed: `x, y, r = query.to_arrays("x", "y", "radius")`."""
        from blobflow.query import final_select, to_arrays

        select = final_select(self.relation, order_by=order_by, attributes=attributes or None)
        return to_arrays(self.database, self.relation, select)

    def count(self) -> int:
        import sqlalchemy as sa

        from blobflow.query import refused_values

        with refused_values(), self.database.engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(self.relation.subquery())
            ).scalar_one()

    def __len__(self) -> int:
        return self.count()


def _order(order_by: Sequence[str] | str | None) -> str | None:
    if order_by is None or isinstance(order_by, str):
        return order_by
    return ", ".join(order_by)


class PipelineHandle:
    """A pipeline bound to a database."""

    def __init__(self, database: Database):
        self.database = database

    @property
    def model(self) -> Pipeline:
        return self.database.pipeline

    def table(self, name: str) -> TableHandle:
        return TableHandle(self.database, self.database.resolve(name))

    def query(self, text: str) -> Query:
        """A query expression: `pipe.query("(Image * Detection).proj(image_name, num_blobs)")`."""
        return Query(self.database, text)

    def init(self) -> InitResult:
        return init_database(self.database)

    def plan_drop(self) -> DropPlan:
        return plan_drop(self.database)

    def drop(self) -> None:
        drop_database(self.database)

    def row_counts(self) -> dict[str, int | None]:
        return row_counts(self.database)

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> PipelineHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_pipeline(
    pipeline: str | Path | Pipeline, database: str | None = None, schema_map: Mapping[str, str] | None = None
) -> PipelineHandle:
    """Open a pipeline (manifest file, directory or loaded model) on a database URL."""
    return PipelineHandle(open_database(pipeline, database, schema_map))
