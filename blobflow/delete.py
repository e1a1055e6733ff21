"""`delete EXPR`: the rows of a restricted table and every row that depends on them, in one transaction.

Which rows go is settled before anything is deleted: the keys of each affected table are collected
into temporary tables (parents first, following foreign keys; a part row pulls in its master, which
pulls in all its parts), then rows are deleted children first. Nothing is left orphaned.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.errors import DataError, UsageError
from blobflow.model import Table
from blobflow.query import compile_query


@dataclass(frozen=True)
class DeletePlan:
    table: str  # the restricted table
    counts: dict[str, int]  # every affected table (parents first) -> rows that go


def plan_delete(database: Database, expression: str) -> DeletePlan:
    """What `delete` would remove, counted in a transaction that is rolled back."""
    with database.engine.connect() as connection, connection.begin() as transaction:
        plan = _collect(connection, database, expression)
        transaction.rollback()
    return plan


def execute_delete(database: Database, expression: str) -> DeletePlan:
    """Delete the rows and everything depending on them; returns what was deleted."""
    try:
        with database.engine.begin() as connection:
            plan = _collect(connection, database, expression, delete=True)
    except sa.exc.IntegrityError as exc:
        # Every foreign key blobflow declared is followed above, so this is one it does not know of (a
        # table created outside the manifest) or a row inserted meanwhile. The transaction rolled back.
        detail = " ".join(str(exc.orig).split())
        raise DataError(
            f"the database refused the delete, so nothing was deleted: {detail} (a row that blobflow "
            "does not know of, in a table outside the pipeline or inserted meanwhile, refers to these rows)"
        ) from None
    return plan


def _collect(
    connection: sa.Connection, database: Database, expression: str, delete: bool = False
) -> DeletePlan:
    relation = compile_query(database, expression)
    if relation.base_table is None:
        raise UsageError(
            "delete needs a table restricted by conditions or other tables, such as "
            '"Detection & num_blobs < 300"; joins, proj, aggr, top and unions have no single '
            "table to delete from"
        )
    target = database.pipeline.table(relation.base_table)
    if target.is_part:
        master = database.pipeline.table(target.master)
        raise UsageError(
            f"part rows go with their master: delete from {master.name} instead (its "
            f"{target.name} rows go with it)"
        )
    pending = _Marks(connection, database)
    base = relation.subquery()
    pending.mark(target, sa.select(*[base.c[k] for k in target.primary_key]))
    pending.cascade()
    counts = {name: n for name, n in pending.counts().items() if n}
    if delete:
        pending.delete()
        pending.forget_jobs()
    pending.drop()
    return DeletePlan(database.pipeline.display_name(target), counts)


class _Marks:
    """Per affected table, a temporary table of the keys to delete."""

    def __init__(self, connection: sa.Connection, database: Database):
        self.connection = connection
        self.database = database
        self.metadata = sa.MetaData()
        self.temporary: dict[str, sa.Table] = {}

    def _temporary(self, table: Table) -> sa.Table:
        if table.qualified_name not in self.temporary:
            source = self.database.sql[table.qualified_name]
            temporary = sa.Table(
                f"{db.TEMPORARY_TABLE_PREFIX}{len(self.temporary)}",
                self.metadata,
                # No autoincrement: a single integer key would become SERIAL on PostgreSQL, creating
                # a sequence for every delete.
                *[
                    sa.Column(k, source.c[k].type, primary_key=True, autoincrement=False)
                    for k in table.primary_key
                ],
                prefixes=["TEMPORARY"],
            )
            temporary.create(self.connection)
            self.temporary[table.qualified_name] = temporary
        return self.temporary[table.qualified_name]

    def mark(self, table: Table, keys: sa.Select) -> int:
        """Add keys (a SELECT of the table's primary key) not marked yet; returns how many were new."""
        temporary = self._temporary(table)
        fresh = keys.subquery()
        known = sa.select(sa.literal(1)).where(*[temporary.c[k] == fresh.c[k] for k in table.primary_key])
        new = sa.select(*[fresh.c[k] for k in table.primary_key]).where(~known.exists()).distinct()
        # Counted, not taken from the INSERT's rowcount: SQLAlchemy does not promise a rowcount for
        # INSERT ... SELECT (psycopg reported -1), and the cascade stops when nothing new is marked.
        before = self._count(temporary)
        self.connection.execute(sa.insert(temporary).from_select(list(table.primary_key), new))
        return self._count(temporary) - before

    def _count(self, temporary: sa.Table) -> int:
        return self.connection.execute(sa.select(sa.func.count()).select_from(temporary)).scalar_one()

    def cascade(self) -> None:
        """Mark children of marked rows, and masters of marked part rows, until nothing new is marked."""
        changed = True
        while changed:
            changed = False
            for table in self.database.pipeline:
                for fk in table.foreign_keys:
                    if fk.parent in self.temporary:
                        parent_keys = self.temporary[fk.parent]
                        child = self.database.sql[table.qualified_name]
                        referencing = sa.select(*[child.c[k] for k in table.primary_key]).where(
                            sa.exists(
                                sa.select(sa.literal(1)).where(
                                    *[parent_keys.c[p] == child.c[c] for p, c in fk.columns]
                                )
                            )
                        )
                        changed |= self.mark(table, referencing) > 0
                if table.is_part and table.qualified_name in self.temporary:
                    master = self.database.pipeline.table(table.master)
                    part_keys = self.temporary[table.qualified_name]
                    changed |= self.mark(master, sa.select(*[part_keys.c[k] for k in master.primary_key])) > 0

    def counts(self) -> dict[str, int]:
        return {
            self.database.pipeline.display_name(table): self._count(self.temporary[table.qualified_name])
            for table in self.database.pipeline
            if table.qualified_name in self.temporary
        }

    def delete(self) -> None:
        for table in reversed(list(self.database.pipeline)):
            if table.qualified_name in self.temporary:
                keys = self.temporary[table.qualified_name]
                target = self.database.sql[table.qualified_name]
                self.connection.execute(
                    sa.delete(target).where(
                        sa.exists(
                            sa.select(sa.literal(1)).where(
                                *[keys.c[k] == target.c[k] for k in table.primary_key]
                            )
                        )
                    )
                )

    def forget_jobs(self) -> None:
        """Delete the job records (claims, recorded errors) of keys whose upstream rows go. A key
        computed again later, say after its image is inserted anew, must not be skipped as failed."""
        for table in self.database.pipeline:
            jobs = self.database.sql.jobs.get(table.qualified_name)
            if jobs is None:
                continue
            # The keys' own rows, and every parent in the key (a job row holds the key only).
            sources = [(table.qualified_name, [(k, k) for k in table.primary_key])]
            sources += [(fk.parent, list(fk.columns)) for fk in table.foreign_keys if fk.in_key]
            for parent, columns in sources:
                if parent not in self.temporary:
                    continue
                keys = self.temporary[parent]
                self.connection.execute(
                    sa.delete(jobs).where(
                        sa.exists(
                            sa.select(sa.literal(1)).where(*[keys.c[p] == jobs.c[c] for p, c in columns])
                        )
                    )
                )

    def drop(self) -> None:
        for temporary in self.temporary.values():
            temporary.drop(self.connection)
