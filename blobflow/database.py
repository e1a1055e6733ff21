"""A pipeline bound to a database: the model, its SQL tables and an engine, and name lookup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from blobflow import db
from blobflow.errors import UsageError
from blobflow.model import Pipeline, Table
from blobflow.tables import SqlTables, build_tables

DEFAULT_DATABASE = "sqlite:///blobflow.db"


@dataclass
class Database:
    """Everything a command needs: the validated pipeline, its SQLAlchemy tables, and an engine.

    `schema_map` renames schemas in the database only (tests run each in a schema of its own):
    `{"tutorial_blobs": "test_1234"}` keeps the manifest's names everywhere else.
    """

    pipeline: Pipeline
    url: str
    schema_map: Mapping[str, str] = field(default_factory=dict)
    engine: sa.Engine = field(init=False)
    sql: SqlTables = field(init=False)
    # Compiled queries by text: a Relation is immutable and depends only on the pipeline, so a query
    # run again (in a loop, in a view) skips parsing and compiling.
    compiled_queries: dict[str, object] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.sql = build_tables(self.pipeline)
        schemas = [self.schema_map.get(s, s) for s in self.pipeline.schemas]
        engine = db.create_engine(self.url, schemas)
        if self.schema_map:
            engine = engine.execution_options(schema_translate_map=dict(self.schema_map))
        self.engine = engine

    def sql_schema(self, schema: str) -> str:
        return self.schema_map.get(schema, schema)

    def resolve(self, name: str) -> Table:
        """A table by name, as users type it: any case, qualified or not, model or SQL name.

        >>> database.resolve("detection.blob").name  # doctest: +SKIP
        'Detection.Blob'
        """
        wanted = name.strip().lower()
        matches = [
            table for table in self.pipeline
            if wanted in (table.name.lower(), table.qualified_name.lower(), table.sql_name,
                          f"{table.schema}.{table.sql_name}")
        ]  # fmt: skip
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(t.name for t in self.pipeline)
            raise UsageError(f"unknown table '{name}'; the pipeline has: {known}")
        raise UsageError(f"'{name}' is ambiguous: " + ", ".join(t.qualified_name for t in matches))

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(
    pipeline: str | Path | Pipeline, database: str | None = None, schema_map: Mapping[str, str] | None = None
) -> Database:
    """Bind a pipeline (a path or a loaded model) to a database URL (default: the manifest's, else
    sqlite:///blobflow.db)."""
    if isinstance(pipeline, Pipeline):
        model = pipeline
    else:
        from blobflow.manifest import load_pipeline  # here: worker processes never read manifests

        model = load_pipeline(pipeline)
    url = database or model.database or DEFAULT_DATABASE
    return Database(model, url, dict(schema_map or {}))
