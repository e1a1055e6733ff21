"""`delete EXPR`: the rows of a restricted table and every row that depends on them, in one transaction.

Which rows go is settled before anything is deleted: the keys of each affected table are collected
into temporary tables (parents first, following foreign keys; a part row pulls in its master, which
pulls in all its parts), then rows are deleted children first. Nothing is left orphaned.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from blobflow.database import Database
from blobflow.errors import UsageError
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
    with database.engine.begin() as connection:
        plan = _collect(connection, database, expression, delete=True)
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
    pending.drop()
    return DeletePlan(target.name, counts)


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
                f"blobflow_delete_{len(self.temporary)}",
                self.metadata,
                *[sa.Column(k, source.c[k].type, primary_key=True) for k in table.primary_key],
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
        return self.connection.execute(
            sa.insert(temporary).from_select(list(table.primary_key), new)
        ).rowcount

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
            table.name: self.connection.execute(
                sa.select(sa.func.count()).select_from(self.temporary[table.qualified_name])
            ).scalar_one()
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

    def drop(self) -> None:
        for temporary in self.temporary.values():
            temporary.drop(self.connection)
