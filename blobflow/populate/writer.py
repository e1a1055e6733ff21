"""Writing computed keys: every key's master row and part rows commit together or not at all.

Many keys go in one transaction, each table's rows in one bulk statement (COPY on PostgreSQL). If
that fails, the same keys are written again one savepoint per key, so one bad key cannot take the
others down, and a key another worker wrote first is recognised as done, not as an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.model import Table
from blobflow.populate.make import Computed
from blobflow.populate.reservations import KeyFailure, WorkerId, clear_jobs, record_errors
from blobflow.rows import PreparedRows


@dataclass
class WriteOutcome:
    written: list[tuple] = field(default_factory=list)
    already_done: list[tuple] = field(default_factory=list)  # computed by another worker first
    failed: list[KeyFailure] = field(default_factory=list)


def write_results(
    database: Database,
    table: Table,
    worker: WorkerId,
    results: Sequence[Computed],
    errors: Sequence[KeyFailure] = (),
) -> WriteOutcome:
    """Write finished keys and record failed ones; returns what became of each key."""
    outcome = WriteOutcome(failed=list(errors))
    if results:
        try:
            with database.engine.begin() as connection:
                _write_together(connection, database, results)
                clear_jobs(connection, database, table, [r.key for r in results])
                record_errors(connection, database, table, worker, outcome.failed)
            outcome.written = [r.key for r in results]
            return outcome
        except sa.exc.DBAPIError:
            pass  # find out key by key, below
        with database.engine.begin() as connection:
            for result in results:
                _write_alone(connection, database, table, result, outcome)
            clear_jobs(connection, database, table, outcome.written + outcome.already_done)
            record_errors(connection, database, table, worker, outcome.failed)
        return outcome
    if outcome.failed:
        with database.engine.begin() as connection:
            record_errors(connection, database, table, worker, outcome.failed)
    return outcome


def _write_together(connection: sa.Connection, database: Database, results: Sequence[Computed]) -> None:
    """All keys' rows, one bulk insert per table (master first, then each part)."""
    merged: dict[str, PreparedRows] = {}
    for result in results:
        for batch in result.batches:
            name = batch.table.qualified_name
            if name not in merged:
                merged[name] = PreparedRows(batch.table, batch.columns, [], [])
            merged[name].values.extend(batch.values)  # labels name rows in errors; writing needs none
    for name, batch in merged.items():
        db.bulk_insert(connection, database.sql[name], batch)


def _write_alone(
    connection: sa.Connection, database: Database, table: Table, result: Computed, outcome: WriteOutcome
) -> None:
    savepoint = connection.begin_nested()
    try:
        for batch in result.batches:
            db.bulk_insert(connection, database.sql[batch.table.qualified_name], batch)
        savepoint.commit()
        outcome.written.append(result.key)
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        if _exists(connection, database, table, result.key):
            outcome.already_done.append(result.key)
        else:
            message = " ".join(str(exc.orig).split())
            outcome.failed.append(KeyFailure(result.key, type(exc.orig).__name__, message, ""))


def _exists(connection: sa.Connection, database: Database, table: Table, key: tuple) -> bool:
    sql_table = database.sql[table.qualified_name]
    condition = sa.and_(*[sql_table.c[name] == value for name, value in zip(table.primary_key, key)])
    return connection.execute(sa.select(sa.literal(1)).where(condition)).first() is not None
