"""Populate throughput: per-key overhead (a trivial make over 2,000 keys, with and without
reservations) and bulk part rows (one make returning 100,000 rows as numpy columns).

Run as `.venv/bin/python bench/bench_populate.py [--backend postgres|sqlite|both]`; prints JSON lines.
Each run starts from an empty computed table; the figure is keys (or rows) over the whole
`populate()` call: planning, make calls, checks and writes.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import psycopg
import sqlalchemy as sa
from common import BENCH_PIPELINE, Backend, parse_args, run_on_backends, summary, timed

from blobflow import db
from blobflow.populate.executor import PopulateOptions, populate
from blobflow.populate.make import Computed, MakeCaller
from blobflow.populate.reservations import WorkerId

KEYS = 2_000
PART_ROWS = int(os.environ.get("BENCH_PART_ROWS", "100000"))
REPEATS = 5


def empty(pipe, *names: str) -> None:
    """Delete every row of these tables (parts first) and their jobs tables."""
    database = pipe.database
    with database.engine.begin() as connection:
        for name in names:
            table = database.resolve(name)
            connection.execute(sa.delete(database.sql[table.qualified_name]))
            if table.qualified_name in database.sql.jobs:
                connection.execute(sa.delete(database.sql.jobs[table.qualified_name]))


def trivial(opened: Backend, repeats: int) -> dict:
    pipe = opened.open(BENCH_PIPELINE)
    pipe.table("Item").insert([{"item_id": i} for i in range(1, KEYS + 1)])
    table = pipe.database.resolve("Trivial")
    figures: dict = {"keys": KEYS}
    for reserve in (False, True):
        seconds = []
        for _ in range(repeats):
            empty(pipe, "Trivial")
            elapsed, result = timed(
                lambda reserve=reserve: populate(pipe.database, [table], PopulateOptions(reserve=reserve))
            )
            assert result["Trivial"].computed == KEYS and not result["Trivial"].failed, result
            seconds.append(elapsed)
        assert pipe.table("Trivial").count() == KEYS
        label = "reserve" if reserve else "no_reserve"
        figures[label] = {**summary(seconds), "keys_per_s": round(KEYS / min(seconds))}
    return figures


def part_rows(opened: Backend, repeats: int) -> dict:
    pipe = opened.open(BENCH_PIPELINE)
    pipe.table("Source").insert([{"source_id": 1}])
    table = pipe.database.resolve("Big")
    seconds, make_seconds, driver_seconds = [], [], []
    computed = MakeCaller(pipe.database, table, WorkerId()).compute((1,), {})
    driver = DriverWriter(opened, pipe, computed)
    for _ in range(repeats):
        empty(pipe, "Big.Row", "Big")
        elapsed, result = timed(lambda: populate(pipe.database, [table], PopulateOptions(reserve=False)))
        assert result["Big"].computed == 1 and not result["Big"].failed, result
        seconds.append(elapsed)
        with pipe.database.engine.connect() as connection:
            big = pipe.database.sql[table.qualified_name]
            make_seconds.append(connection.execute(sa.select(big.c._compute_seconds)).scalar_one())
        empty(pipe, "Big.Row", "Big")
        driver_seconds.append(timed(driver.write)[0])
    driver.close()
    assert pipe.table("Big.Row").count() == PART_ROWS
    return {
        "rows": PART_ROWS,
        **summary(seconds),
        "rows_per_s": round(PART_ROWS / min(seconds)),
        "make_itself_s": round(min(make_seconds), 4),
        "driver_write": {**summary(driver_seconds), "rows_per_s": round(PART_ROWS / min(driver_seconds))},
    }


class DriverWriter:
    """The floor: the same rows, already made and converted to tuples, written by the bare driver in
    one transaction (binary COPY on PostgreSQL, executemany on SQLite), constraints checked as ever.
    The connection is opened beforehand, as blobflow's pool keeps its own."""

    def __init__(self, opened: Backend, pipe, computed: Computed):
        database = pipe.database
        url = sa.make_url(opened.url)
        self.postgres = opened.name == "postgres"
        self.statements = []  # (SQL, COPY types or None, rows)
        for batch in computed.batches:
            sql_table = database.sql[batch.table.qualified_name]
            name = f'"{database.sql_schema(sql_table.schema)}"."{sql_table.name}"'
            columns = ", ".join(f'"{c}"' for c in batch.columns)
            if self.postgres:
                types = [db._copy_type(sql_table.c[c].type) for c in batch.columns]
                sql = f"COPY {name} ({columns}) FROM STDIN (FORMAT BINARY)"
                self.statements.append((sql, types, batch.values))
            else:
                marks = ", ".join("?" for _ in batch.columns)
                rows = [
                    tuple(v.isoformat(" ") if isinstance(v, dt.datetime) else v for v in row)
                    for row in batch.values
                ]
                self.statements.append((f"INSERT INTO {name} ({columns}) VALUES ({marks})", None, rows))
        if self.postgres:
            self.connection = psycopg.connect(
                host=url.host, port=url.port, user=url.username, dbname=url.database, password=url.password
            )
            return
        self.connection = sqlite3.connect(url.database, isolation_level=None)
        self.connection.execute("PRAGMA foreign_keys = ON")
        for schema in database.pipeline.schemas:
            name = database.sql_schema(schema)
            self.connection.execute(f'ATTACH DATABASE ? AS "{name}"', (db.schema_file(url, name),))

    def write(self) -> None:
        if self.postgres:
            with self.connection.cursor() as cursor:
                for sql, types, rows in self.statements:
                    with cursor.copy(sql) as copy:
                        copy.set_types(types)
                        for row in rows:
                            copy.write_row(row)
            self.connection.commit()
            return
        self.connection.execute("BEGIN")
        for sql, _, rows in self.statements:
            self.connection.executemany(sql, rows)
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    repeats = args.repeats or REPEATS
    run_on_backends("populate_trivial", args.backend, lambda b: trivial(b, repeats))
    run_on_backends("populate_part_rows", args.backend, lambda b: part_rows(b, repeats))


if __name__ == "__main__":
    main()
