"""Inserting rows into a table, with its part rows, as one all-or-nothing transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.errors import DataError, UsageError
from blobflow.model import Table
from blobflow.rows import PreparedRows, as_row_dicts, prepare_any, prepare_rows, table_part_names

DIAGNOSIS_CHUNK = 500


@dataclass(frozen=True)
class InsertResult:
    table: str
    rows: int  # rows given for the table itself
    part_rows: dict[str, int] = field(default_factory=dict)


def insert_rows(
    database: Database,
    table: Table,
    rows: Any,
    *,
    skip_duplicates: bool = False,
    replace: bool = False,
    ignore_extra_fields: bool = False,
    allow_direct: bool = False,
) -> InsertResult:
    """Check every row, then insert all of them with their part rows in one transaction.

    Rows may carry part rows under the part's name (`{"session_id": 1, "Trial": [...]}`).
    Nothing is written unless everything is.
    """
    if skip_duplicates and replace:
        raise UsageError("choose one of --skip-duplicates and --replace")
    if table.is_part:
        master = table.master.split(".", 1)[1]
        raise UsageError(
            f"{table.name} is a part table: write its rows together with their {master} row, "
            f"nested under '{table.name.rsplit('.', 1)[1]}'"
        )
    if table.is_derived and not allow_direct:
        raise UsageError(f"{table.name} is {table.tier}: its rows come from `blobflow populate`, not insert")
    if _columns_without_parts(table, rows):
        # A dict of columns or a structured array: checked a column at a time, no dict per row.
        prepared = prepare_any(table, rows, ignore_extra_fields=ignore_extra_fields)
        parts: dict[str, PreparedRows] = {}
    else:
        master_rows, part_rows = _split_parts(table, as_row_dicts(rows))
        prepared = prepare_rows(table, master_rows, ignore_extra_fields=ignore_extra_fields)
        parts = _prepare_parts(database, table, prepared, part_rows, ignore_extra_fields)
    mode = "skip" if skip_duplicates else "replace" if replace else "error"
    write_prepared(database, [prepared, *parts.values()], mode)
    return InsertResult(
        table.name, len(prepared.values), {p.table.name: len(p.values) for p in parts.values()}
    )


def write_prepared(database: Database, batches: list[PreparedRows], mode: str = "error") -> None:
    """Write a master's rows and its parts' rows in one transaction, or explain the failure."""
    _check_unenforced_parents(database, batches)
    try:
        with database.engine.begin() as connection:
            master, parts = batches[0], batches[1:]
            if parts and mode != "error":
                parts = _settle_existing_parts(connection, database, master, parts, mode)
            for prepared in [master, *parts]:
                db.bulk_insert(connection, database.sql[prepared.table.qualified_name], prepared, mode)
    except sa.exc.IntegrityError as exc:
        raise diagnose_failure(database, batches, exc) from None


def _settle_existing_parts(
    connection: sa.Connection, database: Database, master: PreparedRows, parts: list[PreparedRows], mode: str
) -> list[PreparedRows]:
    """Part rows belong to their master row as a whole. Skipping a master that exists skips its part
    rows; replacing it replaces its part rows (old ones not in the new set go)."""
    table = master.table
    existing = set(_existing_keys(connection, database, table, master.keys()))
    if not existing:
        return parts
    settled = []
    for part in parts:
        positions = [part.columns.index(k) for k in table.primary_key]
        owner = [tuple(row[i] for i in positions) for row in part.values]
        if mode == "replace":
            sql_part = database.sql[part.table.qualified_name]
            columns = [sql_part.c[k] for k in table.primary_key]
            for _, chunk in _chunks(sorted(existing, key=repr)):
                connection.execute(sa.delete(sql_part).where(sa.tuple_(*columns).in_(chunk)))
            settled.append(part)
            continue
        keep = [i for i, key in enumerate(owner) if key not in existing]
        settled.append(
            PreparedRows(
                part.table, part.columns, [part.values[i] for i in keep], [part.labels[i] for i in keep]
            )
        )
    return settled


def _existing_keys(
    connection: sa.Connection, database: Database, table: Table, keys: list[tuple]
) -> list[tuple]:
    sql_table = database.sql[table.qualified_name]
    columns = [sql_table.c[k] for k in table.primary_key]
    found: list[tuple] = []
    for _, chunk in _chunks(keys):
        found += [
            tuple(r) for r in connection.execute(sa.select(*columns).where(sa.tuple_(*columns).in_(chunk)))
        ]
    return found


def _check_unenforced_parents(database: Database, batches: list[PreparedRows]) -> None:
    """SQLite cannot enforce foreign keys across schemas (attached files): check those parents here."""
    if db.is_postgres(database.engine):
        return
    written = {b.table.qualified_name for b in batches}
    for prepared in batches:
        crossing = [
            fk
            for fk in prepared.table.foreign_keys
            if database.pipeline.table(fk.parent).schema != prepared.table.schema
        ]
        if crossing:
            with database.engine.connect() as connection:
                message = _missing_parent(connection, database, prepared, written, crossing)
            if message:
                raise DataError(message)


def _columns_without_parts(table: Table, rows: Any) -> bool:
    """Whether rows come as columns (a dict of them, or a structured array) none of which is a part."""
    if isinstance(rows, np.ndarray):
        names = rows.dtype.names or ()
    elif isinstance(rows, Mapping):
        names = tuple(rows)
    else:
        return False
    return not set(names) & set(table_part_names(table))


def _split_parts(table: Table, rows: Iterable[Mapping[str, Any]]):
    names = table_part_names(table)
    master_rows, part_rows = [], []
    for row in rows:
        if isinstance(row, Mapping) and any(name in row for name in names):
            part_rows.append({name: row[name] for name in names if name in row})
            row = {k: v for k, v in row.items() if k not in names}
        else:
            part_rows.append({})
        master_rows.append(row)
    return master_rows, part_rows


def _prepare_parts(
    database: Database,
    table: Table,
    prepared: PreparedRows,
    part_rows: list[dict[str, Any]],
    ignore_extra_fields: bool,
) -> dict[str, PreparedRows]:
    parts: dict[str, PreparedRows] = {}
    keys = prepared.keys()
    for number, (key, nested) in enumerate(zip(keys, part_rows), start=1):
        for short_name, rows in nested.items():
            part = database.pipeline.table(f"{table.qualified_name}.{short_name}")
            given = dict(zip(table.primary_key, key))
            batch = prepare_rows(
                part,
                as_row_dicts(rows),
                ignore_extra_fields=ignore_extra_fields,
                given=given,
                label=f"{prepared.labels[number - 1]}, {short_name} row",
            )
            if short_name in parts:
                parts[short_name].extend(batch)
            else:
                parts[short_name] = batch
    return parts


def diagnose_failure(
    database: Database, batches: list[PreparedRows], error: sa.exc.IntegrityError
) -> DataError:
    """Find the row that broke the insert: its key already taken, or a parent missing.

    Runs only after a failure, so the common path pays nothing for precise messages.
    """
    written = {b.table.qualified_name for b in batches}
    with database.engine.connect() as connection:
        for prepared in batches:
            message = _taken_key(connection, database, prepared) or _missing_parent(
                connection, database, prepared, written
            )
            if message:
                return DataError(message)
    detail = " ".join(str(error.orig).split())
    return DataError(f"insert into {batches[0].table.name} failed: {detail}")


def _chunks(items: list, size: int = DIAGNOSIS_CHUNK):
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def _taken_key(connection: sa.Connection, database: Database, prepared: PreparedRows) -> str | None:
    table = prepared.table
    sql_table = database.sql[table.qualified_name]
    columns = [sql_table.c[name] for name in table.primary_key]
    keys = prepared.keys()
    for start, chunk in _chunks(keys):
        found = {
            tuple(row)
            for row in connection.execute(sa.select(*columns).where(sa.tuple_(*columns).in_(chunk)))
        }
        for offset, key in enumerate(chunk):
            if key in found:
                described = ", ".join(f"{n}={v!r}" for n, v in zip(table.primary_key, key))
                where = prepared.labels[start + offset]
                return (
                    f"{where}: {table.name} already has a row with key ({described}); "
                    "use --skip-duplicates or --replace"
                )
    return None


def _missing_parent(
    connection: sa.Connection,
    database: Database,
    prepared: PreparedRows,
    written: set[str],
    foreign_keys: list | None = None,
) -> str | None:
    table = prepared.table
    for fk in table.foreign_keys if foreign_keys is None else foreign_keys:
        if fk.parent in written:
            continue  # written in the same transaction, rolled back now: cannot be checked here
        parent = database.sql[fk.parent]
        positions = [prepared.columns.index(child) for _, child in fk.columns]
        values = [tuple(row[i] for i in positions) for row in prepared.values]
        wanted = [v for v in values if None not in v]
        parent_columns = [parent.c[name] for name, _ in fk.columns]
        for _, chunk in _chunks(sorted(set(wanted), key=repr)):
            found = {
                tuple(r)
                for r in connection.execute(
                    sa.select(*parent_columns).where(sa.tuple_(*parent_columns).in_(chunk))
                )
            }
            missing = set(chunk) - found
            if missing:
                number = next(i for i, v in enumerate(values) if v in missing)
                described = ", ".join(f"{c}={v!r}" for (_, c), v in zip(fk.columns, values[number]))
                parent_name = fk.parent.split(".", 1)[1]
                return f"{prepared.labels[number]}: no {parent_name} row has ({described})"
    return None
