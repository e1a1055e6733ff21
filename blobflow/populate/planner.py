"""Pending keys, computed by the database: the key source minus what is done, failed or reserved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from blobflow.database import Database
from blobflow.errors import ManifestError, QueryError, UsageError
from blobflow.model import Table


def key_source(database: Database, table: Table) -> sa.Subquery:
    """The keys `table` should hold: its `key_source:` expression, or by default the natural join of
    its `depends` parents' primary keys. Columns are named as in `table` (renames applied)."""
    if table.key_source is not None:
        return _declared_key_source(database, table)
    dependencies = [fk for fk in table.foreign_keys if fk.in_key]
    if not dependencies:
        raise UsageError(
            f"{table.name} has no 'depends' and no 'key_source': nothing to compute its keys from"
        )
    covered = {child for fk in dependencies for child in fk.attributes}
    own = [name for name in table.primary_key if name not in covered]
    if own:
        raise UsageError(
            f"{table.name}'s key attributes {', '.join(own)} come from no dependency, so populate cannot "
            "know their values; declare a key_source, or put rows with several values per key in a part"
        )
    subqueries = []
    for fk in dependencies:
        parent = database.sql[fk.parent]
        subqueries.append(sa.select(*[parent.c[p].label(c) for p, c in fk.columns]).subquery())
    joined: sa.FromClause = subqueries[0]
    seen = {c.name: c for c in subqueries[0].c}
    for subquery in subqueries[1:]:
        shared = [seen[c.name] == c for c in subquery.c if c.name in seen]
        joined = joined.join(subquery, sa.and_(*shared) if shared else sa.true())
        for column in subquery.c:
            seen.setdefault(column.name, column)
    select = sa.select(*[seen[name] for name in table.primary_key]).select_from(joined)
    return select.subquery("key_source")


def _declared_key_source(database: Database, table: Table) -> sa.Subquery:
    from blobflow.query import compile_query

    try:
        relation = compile_query(database, table.key_source or "")
    except QueryError as exc:
        raise ManifestError(f"key_source of '{table.name}': {exc}", table.location) from None
    missing = [k for k in table.primary_key if k not in relation.heading]
    if missing:
        raise ManifestError(
            f"key_source of '{table.name}' lacks its key attributes {', '.join(missing)}", table.location
        )
    rows = relation.subquery()
    return sa.select(*[rows.c[k] for k in table.primary_key]).distinct().subquery("key_source")


def where_restriction(database: Database, table: Table, text: str) -> Restriction:
    """`populate --where TEXT` as a restriction of the key source: a condition on key attributes, or a
    query expression to semijoin with (`Image & image_name = 'Coins'`). Checked now, not mid-run."""
    from blobflow.query import restriction_clause
    from blobflow.query.relation import Column, Relation, kind_of

    def restrict(source: sa.Subquery) -> sa.ColumnElement:
        columns = {k: source.c[k] for k in table.primary_key}
        kinds = {a.name: Column(kind_of(a.type), a.type) for a in table.attributes if a.in_key}
        keys = Relation(
            sa.select(*columns.values()), table.primary_key, table.primary_key, kinds, f"{table.name}'s keys"
        )
        return restriction_clause(database, text, keys, columns)

    restrict(key_source(database, table))
    return restrict


Restriction = Callable[[sa.Subquery], sa.ColumnElement]


def pending_select(
    database: Database,
    table: Table,
    *,
    now: sa.ColumnElement,
    retry_errors: dt.datetime | None = None,
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
        # Retrying means errors recorded before this run started; a key failing again now stays failed,
        # so a run cannot chase its own fresh errors forever.
        sa.and_(jobs.c.status == "error", jobs.c.reserved_at >= retry_errors)
        if retry_errors is not None
        else jobs.c.status == "error",
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


def where_restrictions(
    database: Database, order: Sequence[Table], targets: Sequence[Table] | None, where: str | None
) -> dict[str, Restriction]:
    """`--where` for each table it applies to. It must apply to every named target; upstream tables it
    does not apply to are not populated (computing less than asked, never more)."""
    if where is None:
        return {}
    restrictions: dict[str, Restriction] = {}
    named = {t.qualified_name for t in targets or order}
    for table in order:
        try:
            restrictions[table.qualified_name] = where_restriction(database, table, where)
        except QueryError:
            if table.qualified_name in named:
                raise
    if not restrictions:
        where_restriction(database, order[-1], where)  # raises the error for the last table
    return restrictions


@dataclass
class PlannedTable:
    """One line of `populate --dry-run`."""

    table: Table
    pending: int  # keys a run would take now
    sample: list[dict]  # the first few of them
    failed: int  # keys left out because they failed before (0 with --retry-errors)
    waits_upstream: bool  # an upstream table in the plan has keys pending, which may add keys here


def pending_keys_now(
    database: Database,
    targets: list[Table] | None,
    where: str | None = None,
    *,
    retry_errors: bool = False,
    limit: int | None = None,
    sample: int = 5,
) -> list[PlannedTable]:
    """For `populate --dry-run`: per table to populate, upstream first, the keys a run would take now
    (after --where, --retry-errors and --limit) and a few of them. Keys that upstream work will add
    are not counted: they do not exist yet (`waits_upstream` says when there may be some)."""
    from blobflow import db
    from blobflow.graph import ancestors, populate_order

    order = populate_order(database.pipeline, [t.qualified_name for t in targets] if targets else None)
    restrictions = where_restrictions(database, order, targets, where)
    plan: list[PlannedTable] = []
    with database.engine.connect() as connection:
        now = db.utc_now(connection)
        cutoff = connection.execute(sa.select(now)).scalar_one()

        def pending(table: Table, retrying: bool) -> sa.Select:
            return pending_select(
                database,
                table,
                now=now,
                retry_errors=cutoff if retrying else None,
                restriction=restrictions.get(table.qualified_name),
            )

        for table in order:
            if where is not None and table.qualified_name not in restrictions:
                continue
            select = pending(table, retry_errors)
            count = connection.execute(count_select(select)).scalar_one()
            failed = 0
            if not retry_errors:
                with_failed = connection.execute(count_select(pending(table, True))).scalar_one()
                failed = with_failed - count
            count = count if limit is None else min(count, limit)
            columns = [select.selected_columns[k] for k in table.primary_key]
            rows = connection.execute(select.order_by(*columns).limit(min(sample, count))).mappings().all()
            upstream = ancestors(database.pipeline, [table.qualified_name])
            waits = any(p.pending and p.table.qualified_name in upstream for p in plan)
            plan.append(PlannedTable(table, count, [dict(row) for row in rows], failed, waits))
    return plan
