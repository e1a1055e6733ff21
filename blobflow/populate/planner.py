"""Pending keys, computed by the database: the key source minus what is done, failed or reserved."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from blobflow.database import Database
from blobflow.errors import UsageError
from blobflow.model import Table


def key_source(database: Database, table: Table) -> sa.Subquery:
    """The keys `table` should hold: the natural join of its `depends` parents' primary keys.

    Columns are named as in `table` (renames applied).
    """
    dependencies = [fk for fk in table.foreign_keys if fk.in_key]
    if not dependencies:
        raise UsageError(f"{table.name} has no 'depends': nothing to compute its keys from")
    covered = {child for fk in dependencies for child in fk.attributes}
    own = [name for name in table.primary_key if name not in covered]
    if own:
        raise UsageError(
            f"{table.name}'s key attributes {', '.join(own)} come from no dependency, so "
            f"populate cannot know their values; rows with several values per key go in a part"
        )
    subqueries = []
    for fk in dependencies:
        parent = database.sql[fk.parent]
        subqueries.append(sa.select(*[parent.c[p].label(c) for p, c in fk.columns]).subquery())
    joined: sa.FromClause = subqueries[0]
    seen = {c.name: c for c in subqueries[0].c}
    for subquery in subqueries[1:]:
        shared = [seen[c.name] == c for c in subquery.c if c.name in seen]
        joined = joined.join(subquery, sa.and_(*shared) if shared else sa.true(), full=False)
        for column in subquery.c:
            seen.setdefault(column.name, column)
    select = sa.select(*[seen[name] for name in table.primary_key]).select_from(joined)
    return select.subquery("key_source")


Restriction = Callable[[sa.Subquery], sa.ColumnElement]


def pending_select(
    database: Database,
    table: Table,
    *,
    now: sa.ColumnElement,
    retry_errors: bool = False,
    restriction: Restriction | None = None,
) -> sa.Select:
    """Keys in the key source that the table lacks, that did not fail (unless retrying), and that no
    worker holds a live lease on. One SELECT; nothing is diffed in Python."""
    source = key_source(database, table)
    target = database.sql[table.qualified_name]
    jobs = database.sql.jobs[table.qualified_name]
    done = sa.select(sa.literal(1)).where(*[target.c[k] == source.c[k] for k in table.primary_key])
    blocked_statuses = sa.or_(
        sa.and_(jobs.c.status == "reserved", jobs.c.lease_until > now),
        sa.false() if retry_errors else jobs.c.status == "error",
    )
    held = sa.select(sa.literal(1)).where(
        *[jobs.c[k] == source.c[k] for k in table.primary_key], blocked_statuses
    )
    select = sa.select(*[source.c[k] for k in table.primary_key]).where(~done.exists(), ~held.exists())
    if restriction is not None:
        select = select.where(restriction(source))
    return select


def count_select(select: sa.Select) -> sa.Select:
    return sa.select(sa.func.count()).select_from(select.subquery())


def pending_keys_now(database: Database, targets: list[Table] | None, sample: int = 5):
    """For `populate --dry-run`: per table to populate, upstream first, the keys pending now and a few
    of them. Keys that upstream work will add are not counted: they do not exist yet."""
    from blobflow import db
    from blobflow.graph import populate_order

    plan = []
    with database.engine.connect() as connection:
        now = db.utc_now(connection)
        for table in populate_order(
            database.pipeline, [t.qualified_name for t in targets] if targets else None
        ):
            select = pending_select(database, table, now=now)
            count = connection.execute(count_select(select)).scalar_one()
            columns = [select.selected_columns[k] for k in table.primary_key]
            rows = connection.execute(select.order_by(*columns).limit(sample)).mappings().all()
            plan.append((table, count, [dict(row) for row in rows]))
    return plan
