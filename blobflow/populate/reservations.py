"""Claims on keys, so several processes (on several machines, with PostgreSQL) compute each key once.

A claim is a row in the table's jobs table with a lease; the claiming process renews its leases while
it works. A process that dies stops renewing, its leases run out, and another process claims the keys.
Claiming is one INSERT ... SELECT ... ON CONFLICT statement: atomic, and set-based.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from blobflow import db
from blobflow.database import Database
from blobflow.model import Table
from blobflow.populate.planner import Restriction, pending_select


@dataclass(frozen=True)
class WorkerId:
    """Who holds a claim: a host, a process, and a random id that survives pid reuse."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


@dataclass(frozen=True)
class KeyFailure:
    """A failed key: what to record in the jobs table."""

    key: tuple
    error_type: str
    message: str
    traceback: str


def _insert(connection: sa.Connection, table: sa.Table):
    return (postgresql.insert if db.is_postgres(connection) else sqlite.insert)(table)


def _lease_end(connection: sa.Connection, now: sa.ColumnElement, lease_seconds: float) -> sa.ColumnElement:
    """`now` plus the lease, as SQL. SQLite has no datetime arithmetic (`+` would add the two strings
    as numbers, giving a lease that has always run out), so there it is computed here: on SQLite
    `now` is a literal of this machine's clock."""
    if db.is_postgres(connection):
        return now + dt.timedelta(seconds=lease_seconds)
    return sa.literal(now.value + dt.timedelta(seconds=lease_seconds), sa.DateTime)


def claim_keys(
    connection: sa.Connection,
    database: Database,
    table: Table,
    worker: WorkerId,
    *,
    limit: int,
    lease_seconds: float,
    retry_errors: dt.datetime | None = None,
    restriction: Restriction | None = None,
    random_order: bool = False,
) -> list[tuple]:
    """Claim up to `limit` pending keys for `worker`; returns the keys claimed (others may win some)."""
    jobs = database.sql.jobs[table.qualified_name]
    now = db.utc_now(connection)
    until = _lease_end(connection, now, lease_seconds)
    pending = pending_select(database, table, now=now, retry_errors=retry_errors, restriction=restriction)
    pending = pending.order_by(sa.func.random()) if random_order else pending
    pending = pending.limit(limit).subquery()
    key = list(table.primary_key)
    values = sa.select(
        *[pending.c[k] for k in key],
        sa.literal("reserved"),
        sa.literal(worker.host),
        sa.literal(worker.pid),
        sa.literal(worker.id),
        now,
        until,
    ).where(sa.true())  # SQLite needs a WHERE before ON CONFLICT to parse INSERT ... SELECT
    columns = [*key, "status", "host", "pid", "worker", "reserved_at", "lease_until"]
    statement = _insert(connection, jobs).from_select(columns, values)
    takeable = sa.and_(jobs.c.status == "reserved", jobs.c.lease_until < now)
    if retry_errors is not None:
        takeable = sa.or_(takeable, sa.and_(jobs.c.status == "error", jobs.c.reserved_at < retry_errors))
    statement = statement.on_conflict_do_update(
        index_elements=key,
        set_={
            "status": "reserved",
            "host": worker.host,
            "pid": worker.pid,
            "worker": worker.id,
            "reserved_at": now,
            "lease_until": until,
            "error_type": None,
            "error_message": None,
            "error_traceback": None,
        },
        where=takeable,
    ).returning(*[jobs.c[k] for k in key])
    return [tuple(row) for row in connection.execute(statement)]


def renew_leases(
    connection: sa.Connection, database: Database, worker: WorkerId, lease_seconds: float
) -> None:
    """Push back the end of every lease `worker` holds, in every table: one UPDATE per table."""
    now = db.utc_now(connection)
    for jobs in database.sql.jobs.values():
        connection.execute(
            sa.update(jobs)
            .where(jobs.c.worker == worker.id, jobs.c.status == "reserved")
            .values(lease_until=_lease_end(connection, now, lease_seconds))
        )


def release_claims(connection: sa.Connection, database: Database, worker: WorkerId) -> None:
    """Give back every key `worker` still holds (on a clean stop or Ctrl-C)."""
    for jobs in database.sql.jobs.values():
        connection.execute(sa.delete(jobs).where(jobs.c.worker == worker.id, jobs.c.status == "reserved"))


def clear_jobs(connection: sa.Connection, database: Database, table: Table, keys: Sequence[tuple]) -> None:
    """Forget claims and old errors of keys that are now computed (in the transaction writing them)."""
    if not keys:
        return
    jobs = database.sql.jobs[table.qualified_name]
    columns = [jobs.c[k] for k in table.primary_key]
    for start in range(0, len(keys), 500):
        connection.execute(sa.delete(jobs).where(sa.tuple_(*columns).in_(keys[start : start + 500])))


def record_errors(
    connection: sa.Connection,
    database: Database,
    table: Table,
    worker: WorkerId,
    errors: Sequence[KeyFailure],
) -> None:
    """Mark keys as failed, with what went wrong; they are skipped until `--retry-errors`."""
    if not errors:
        return
    jobs = database.sql.jobs[table.qualified_name]
    now = db.utc_now(connection)
    key = list(table.primary_key)
    rows = [
        {
            **dict(zip(key, error.key)),
            "status": "error",
            "host": worker.host,
            "pid": worker.pid,
            "worker": worker.id,
            "error_type": error.error_type[:255],
            "error_message": error.message,
            "error_traceback": error.traceback,
        }
        for error in errors
    ]
    statement = _insert(connection, jobs).values(reserved_at=now, lease_until=None)
    statement = statement.on_conflict_do_update(
        index_elements=key,
        set_={
            name: statement.excluded[name]
            for name in ("status", "host", "pid", "worker", "error_type", "error_message", "error_traceback")
        }
        | {"reserved_at": now, "lease_until": None},
    )
    connection.execute(statement, rows)
