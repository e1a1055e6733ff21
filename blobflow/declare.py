"""Creating and dropping a pipeline's schemas and tables (`blobflow init`, `blobflow drop`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from blobflow import db, part_integrity
from blobflow.callables import check_callables
from blobflow.catalogue import definition_differences, definition_hash, table_definition
from blobflow.database import Database
from blobflow.errors import SchemaMismatch
from blobflow.populate.planner import key_source
from blobflow.rows import prepare_rows


@dataclass(frozen=True)
class InitResult:
    created: tuple[str, ...]  # table names created now
    existing: tuple[str, ...]  # already there, definition unchanged
    contents_inserted: dict[str, int] = field(default_factory=dict)  # lookup table -> new rows


def init_database(database: Database, *, check_code: bool = True) -> InitResult:
    """Create what is missing: schemas, tables, lookup contents. Idempotent.

    Refuses, changing nothing, when a table in the database was created from a different definition.
    """
    name = database.pipeline.display_name
    if check_code:
        check_callables(database.pipeline)
    for table in database.pipeline:
        if table.key_source is not None:
            key_source(database, table)  # compiles the expression: errors now, not at populate
    db.prepare_sqlite_directory(database.url)
    db.check_connection(database.engine)
    if db.is_postgres(database.engine):
        with database.engine.begin() as connection:
            for schema in database.pipeline.schemas:
                connection.execute(sa.schema.CreateSchema(database.sql_schema(schema), if_not_exists=True))
    with database.engine.begin() as connection:
        for catalogue in database.sql.catalogues.values():
            catalogue.create(connection, checkfirst=True)
        stored = _read_catalogue(connection, database)
        created, existing, problems = [], [], []
        for table in database.pipeline:
            definition = table_definition(table)
            if table.sql_name not in stored.get(table.schema, {}):
                created.append(table)
                continue
            old = stored[table.schema][table.sql_name]
            if old["definition_hash"] != definition_hash(definition):
                differences = definition_differences(json.loads(old["definition"]), definition)
                problems += [f"{name(table)}: {d}" for d in differences or ["definition differs"]]
            existing.append(name(table))
        if problems:
            raise SchemaMismatch(
                "the database disagrees with the manifest (migrations are not supported yet; drop the table "
                "or restore its definition):\n  " + "\n  ".join(problems)
            )
        _create_tables(connection, database, created)
        for jobs in database.sql.jobs.values():
            jobs.create(connection, checkfirst=True)
        inserted = {
            name(table): _insert_contents(connection, database, table)
            for table in database.pipeline
            if table.contents
        }
    return InitResult(tuple(name(t) for t in created), tuple(existing), inserted)


def _read_catalogue(connection: sa.Connection, database: Database) -> dict[str, dict[str, dict]]:
    return {
        schema: {row.table_name: row._asdict() for row in connection.execute(sa.select(catalogue))}
        for schema, catalogue in database.sql.catalogues.items()
    }


def _create_tables(connection: sa.Connection, database: Database, tables: list) -> None:
    inspector = sa.inspect(connection)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for table in tables:
        sql_table = database.sql[table.qualified_name]
        schema = database.sql_schema(table.schema)
        if inspector.has_table(sql_table.name, schema=schema):
            raise SchemaMismatch(
                f"table {schema}.{sql_table.name} exists but was not created by blobflow; "
                f"rename {table.name} or drop that table"
            )
        sql_table.create(connection)
        if table.is_part and db.is_postgres(connection):
            for statement in part_integrity.create_statements(
                database.pipeline, table, database.sql_schema, connection.dialect
            ):
                connection.exec_driver_sql(statement)
        definition = table_definition(table)
        connection.execute(
            sa.insert(database.sql.catalogues[table.schema]).values(
                table_name=table.sql_name,
                tier=table.tier,
                definition_hash=definition_hash(definition),
                definition=json.dumps(definition),
                created_at=now,
            )
        )


def _insert_contents(connection: sa.Connection, database: Database, table) -> int:
    sql_table = database.sql[table.qualified_name]
    before = connection.execute(sa.select(sa.func.count()).select_from(sql_table)).scalar_one()
    prepared = prepare_rows(table, table.contents, label="contents row")
    db.bulk_insert(connection, sql_table, prepared, on_duplicate="skip")
    after = connection.execute(sa.select(sa.func.count()).select_from(sql_table)).scalar_one()
    return after - before


@dataclass(frozen=True)
class DropPlan:
    """What `drop` would remove: each existing table and its row count, children first."""

    schemas: tuple[str, ...]
    row_counts: dict[str, int]  # table name -> rows


def plan_drop(database: Database) -> DropPlan:
    from blobflow.inspection import row_counts

    counts = row_counts(database)
    return DropPlan(
        tuple(database.sql_schema(s) for s in database.pipeline.schemas),
        {name: n for name, n in counts.items() if n is not None},
    )


def drop_database(database: Database) -> None:
    """Drop every schema of the pipeline with all it holds."""
    schemas = [database.sql_schema(s) for s in database.pipeline.schemas]
    if db.is_postgres(database.engine):
        db.check_connection(database.engine)
        with database.engine.begin() as connection:
            for schema in schemas:
                connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        return
    with database.engine.begin() as connection:
        for table in reversed(list(database.pipeline)):
            database.sql[table.qualified_name].drop(connection, checkfirst=True)
        for infrastructure in (*database.sql.jobs.values(), *database.sql.catalogues.values()):
            infrastructure.drop(connection, checkfirst=True)
    database.dispose()
    url = db.normalise_url(database.url)
    for schema in schemas:
        path = db.schema_file(url, schema)
        if path != ":memory:":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(path + suffix).unlink(missing_ok=True)
