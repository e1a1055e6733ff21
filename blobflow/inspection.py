"""How many rows each table holds (fetching rows goes through the query layer)."""

from __future__ import annotations

import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database


def row_counts(database: Database) -> dict[str, int | None]:
    """Rows per table (by display name); None for tables not created yet. One query for all tables."""
    name = database.pipeline.display_name
    if db.sqlite_file_missing(database.url):
        return {name(t): None for t in database.pipeline}  # reading must not create the file
    db.check_connection(database.engine)
    with database.engine.connect() as connection:
        inspector = sa.inspect(connection)
        existing = {
            (t.schema, t.sql_name)
            for t in database.pipeline
            if inspector.has_table(t.sql_name, schema=database.sql_schema(t.schema))
        }
        counts: dict[str, int | None] = {name(t): None for t in database.pipeline}
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
            counts.update(zip([name(t) for t in present], values))
    return counts
