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

    def __getitem__(self, qualified_name: str) -> sa.Table:
        return self.tables[qualified_name]


def build_tables(pipeline: Pipeline) -> SqlTables:
    """Every table of the pipeline, in dependency order, plus one catalogue table per schema."""
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    catalogues = {schema: _catalogue_table(metadata, schema) for schema in pipeline.schemas}
    tables: dict[str, sa.Table] = {}
    for table in pipeline:
        tables[table.qualified_name] = _sql_table(metadata, table, pipeline)
    return SqlTables(metadata, tables, catalogues)


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
    constraints: list[sa.SchemaItem] = []
    for fk in table.foreign_keys:
        parent = pipeline.table(fk.parent)
        # RESTRICT, never CASCADE: deletes cascade through blobflow, which shows what goes first.
        constraints.append(
            sa.ForeignKeyConstraint(
                [child for _, child in fk.columns],
                [f"{parent.schema}.{parent.sql_name}.{name}" for name, _ in fk.columns],
                ondelete="RESTRICT",
            )
        )
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
