"""The Pipeline model -> SQLAlchemy MetaData. Pure: builds Table objects, touches no database.

SQL names are readable: a schema per manifest `schema:` (an attached file on SQLite), tables in
snake_case (`detection_params`), parts joined to their master by `__` (`detection__blob`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from blobflow.model import Pipeline, Table
from blobflow.types import column_type

CATALOGUE = "_blobflow_catalogue"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


@dataclass(frozen=True)
class SqlTables:
    """The MetaData of a pipeline and the way from model names to its SQLAlchemy tables."""

    metadata: sa.MetaData
    tables: dict[str, sa.Table]  # qualified model name -> table
    catalogues: dict[str, sa.Table]  # schema -> that schema's catalogue table
    jobs: dict[str, sa.Table]  # qualified name of a computed/imported table -> its jobs table

    def __getitem__(self, qualified_name: str) -> sa.Table:
        return self.tables[qualified_name]


def build_tables(pipeline: Pipeline) -> SqlTables:
    """Every table of the pipeline, in dependency order, plus one catalogue table per schema."""
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    catalogues = {schema: _catalogue_table(metadata, schema) for schema in pipeline.schemas}
    tables: dict[str, sa.Table] = {}
    jobs: dict[str, sa.Table] = {}
    for table in pipeline:
        tables[table.qualified_name] = _sql_table(metadata, table, pipeline)
        if table.is_derived:
            jobs[table.qualified_name] = _jobs_table(metadata, table)
    return SqlTables(metadata, tables, catalogues, jobs)


def _sql_table(metadata: sa.MetaData, table: Table, pipeline: Pipeline) -> sa.Table:
    columns = [
        sa.Column(
            attribute.name,
            column_type(attribute.type, constraint_name=f"{attribute.name}_enum"),
            primary_key=attribute.in_key,
            nullable=attribute.nullable,
            autoincrement=False,
            comment=attribute.comment or None,
        )
        for attribute in table.attributes
    ]
    if table.is_derived:
        columns += provenance_columns()
    constraints: list[sa.SchemaItem] = []
    for fk in table.foreign_keys:
        parent = pipeline.table(fk.parent)
        # RESTRICT, never CASCADE: deletes cascade through blobflow, which shows what goes first.
        constraint = sa.ForeignKeyConstraint(
            [child for _, child in fk.columns],
            [f"{parent.schema}.{parent.sql_name}.{name}" for name, _ in fk.columns],
            ondelete="RESTRICT",
        )
        if fk is table.master_reference:
            # PostgreSQL checks a part's master with statement-level triggers (part_integrity.py).
            constraint.ddl_if(dialect="sqlite")
        constraints.append(constraint)
        if fk.unique:
            constraints.append(sa.UniqueConstraint(*fk.attributes))
    for index in table.indexes:
        constraints.append(sa.Index(None, *index))
    return sa.Table(
        table.sql_name,
        metadata,
        *columns,
        *constraints,
        schema=table.schema,
        comment=table.description or None,
    )


# Hidden columns of computed and imported tables: when, where, how long and by which code each row
# was made. Attribute names cannot start with "_", so these never collide with declared ones.
PROVENANCE = ("_computed_at", "_computed_on", "_compute_seconds", "_code_version")


def provenance_columns() -> list[sa.Column]:
    return [
        sa.Column("_computed_at", sa.DateTime, nullable=True),
        sa.Column("_computed_on", sa.String(255), nullable=True, comment="host:pid"),
        sa.Column("_compute_seconds", sa.Double, nullable=True),
        sa.Column("_code_version", sa.String(16), nullable=True, comment="hash of the make module's source"),
    ]


def _jobs_table(metadata: sa.MetaData, table: Table) -> sa.Table:
    """Keys of one computed table that are reserved by a worker or failed: `_jobs__detection`.

    It has the table's own key columns, so planning can subtract it from the key source in SQL.
    """
    keys = [
        sa.Column(a.name, column_type(a.type), primary_key=True, autoincrement=False)
        for a in table.attributes
        if a.in_key
    ]
    return sa.Table(
        f"_jobs__{table.sql_name}",
        metadata,
        *keys,
        sa.Column("status", sa.String(16), nullable=False),  # "reserved" or "error"
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(64), nullable=False),  # the claiming process's id
        sa.Column("reserved_at", sa.DateTime, nullable=False),
        sa.Column("lease_until", sa.DateTime, nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("error_traceback", sa.Text, nullable=True),
        sa.Index(None, "worker"),
        schema=table.schema,
    )


def _catalogue_table(metadata: sa.MetaData, schema: str) -> sa.Table:
    """What blobflow knows of each table it created: tier and definition, to detect drift on init."""
    return sa.Table(
        CATALOGUE,
        metadata,
        sa.Column("table_name", sa.String(200), primary_key=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        schema=schema,
    )
