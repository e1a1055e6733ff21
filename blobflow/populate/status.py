"""What populate has done and has left: per-table counts, and the reserved and failed keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.inspection import row_counts
from blobflow.populate.planner import count_select, pending_select


@dataclass(frozen=True)
class TableStatus:
    table: str
    tier: str
    rows: int | None  # None: not created yet
    pending: int | None  # None for tables that are not computed
    reserved: int | None
    errors: int | None


@dataclass(frozen=True)
class Job:
    table: str
    key: dict[str, Any]
    status: str  # reserved | error
    host: str
    pid: int
    reserved_at: dt.datetime
    lease_until: dt.datetime | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None


def pipeline_status(database: Database) -> list[TableStatus]:
    """Rows of every table; for computed tables also pending, reserved and failed keys."""
    counts = row_counts(database)
    name = database.pipeline.display_name
    if all(count is None for count in counts.values()):  # nothing created yet: do not connect
        return [TableStatus(name(t), t.tier, None, None, None, None) for t in database.pipeline]
    statuses = []
    with database.engine.connect() as connection:
        now = db.utc_now(connection)
        for table in database.pipeline:
            if not table.is_derived or counts[name(table)] is None:
                statuses.append(TableStatus(name(table), table.tier, counts[name(table)], None, None, None))
                continue
            jobs = database.sql.jobs[table.qualified_name]
            pending = connection.execute(count_select(pending_select(database, table, now=now))).scalar_one()
            # Expired claims (their worker died) are pending again, not in progress.
            live = sa.or_(jobs.c.status == "error", jobs.c.lease_until > now)
            by_status = dict(
                connection.execute(
                    sa.select(jobs.c.status, sa.func.count()).where(live).group_by(jobs.c.status)
                ).all()
            )
            statuses.append(
                TableStatus(
                    name(table),
                    table.tier,
                    counts[name(table)],
                    pending,
                    by_status.get("reserved", 0),
                    by_status.get("error", 0),
                )
            )
    return statuses


def list_jobs(database: Database, *, errors_only: bool = False) -> list[Job]:
    """Reserved and failed keys of every computed table, oldest first."""
    jobs_found: list[Job] = []
    db.check_connection(database.engine)
    with database.engine.connect() as connection:
        inspector = sa.inspect(connection)
        for name, jobs in database.sql.jobs.items():
            table = database.pipeline.table(name)
            if not inspector.has_table(jobs.name, schema=database.sql_schema(table.schema)):
                continue
            select = sa.select(jobs).order_by(jobs.c.reserved_at)
            if errors_only:
                select = select.where(jobs.c.status == "error")
            for row in connection.execute(select).mappings():
                jobs_found.append(
                    Job(
                        database.pipeline.display_name(table),
                        {k: row[k] for k in table.primary_key},
                        row["status"],
                        row["host"],
                        row["pid"],
                        row["reserved_at"],
                        row["lease_until"],
                        row["error_type"],
                        row["error_message"],
                        row["error_traceback"],
                    )
                )
    return jobs_found
