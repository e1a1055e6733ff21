"""A query over the seed pipeline: 1,000 images (4x4 blobs) x 100 parameter sets, 100,000 Detection
rows; `(Image * Detection & num_blobs < 150).proj(image_name, num_blobs)` returns about 15,000.

Run as `.venv/bin/python bench/bench_query.py [--backend postgres|sqlite|both]`; prints JSON lines.

- `fetch_dicts`: `pipe.query(text).fetch()`, everything a user waits for: parse, compile, run, and one
  dict per row.
- `fetch_dicts_compiled`: the same with the query already compiled (`Query.fetch()` on an existing Query).
- `to_arrays`: `pipe.query(text).to_arrays()`, one numpy array per attribute.
- `driver_dicts`: the same SQL (as blobflow compiles it, parameters bound) run through the bare driver
  (psycopg 3 / sqlite3): execute, fetchall, one dict per row. The ratios are blobflow / driver.
- `driver_dicts_server_cursor` (PostgreSQL): the same through a server-side cursor, 2,000 rows per
  fetch, which is how blobflow streams results there.
- `arithmetic_count`: `pipe.query(ARITHMETIC).count()` over the 100,000 Detection rows, against the same
  SQL through the bare driver with the integer arithmetic unchecked (`arithmetic_count_unchecked`): on
  SQLite blobflow passes integer arithmetic through a function that refuses overflow.
"""

from __future__ import annotations

import sqlite3
import statistics

import numpy as np
import psycopg
import sqlalchemy as sa
from bench_planning import IMAGES, PARAMS, fill_inputs
from common import BLOBS, Backend, parse_args, run_on_backends, summary, timed

from blobflow.insert import insert_rows

QUERY = "(Image * Detection & num_blobs < 150).proj(image_name, num_blobs)"
ARITHMETIC = "Detection & num_blobs * 3 + params_id > 1500"
REPEATS = 15
DATAJOINT_MS = 139


def fill_detections(pipe) -> float:
    """100,000 Detection rows written directly (as populate would), num_blobs uniform in 0..999;
    returns the insert's rows/s (a by-product worth reporting)."""
    rng = np.random.default_rng(0)
    ids = np.arange(IMAGES * PARAMS)
    rows = {
        "image_id": (ids // PARAMS + 1).astype(np.int16),
        "params_id": (ids % PARAMS + 1).astype(np.int16),
        "num_blobs": rng.integers(0, 1000, len(ids)).astype(np.int32),
    }
    table = pipe.database.resolve("Detection")
    seconds, _ = timed(lambda: insert_rows(pipe.database, table, rows, allow_direct=True))
    return round(len(ids) / seconds)


def sent_sql(pipe, run) -> tuple[str, object]:
    """The SQL text and parameters blobflow sends to the driver while `run` runs (its last statement)."""
    sent = []

    def capture(_connection, _cursor, statement, parameters, _context, _executemany):
        sent.append((statement, parameters))

    sa.event.listen(pipe.database.engine.engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        sa.event.remove(pipe.database.engine.engine, "before_cursor_execute", capture)
    return sent[-1]


class Driver:
    """A bare driver connection, opened once (as blobflow's pool keeps its connection)."""

    def __init__(self, pipe, opened: Backend):
        url = sa.make_url(opened.url)
        if opened.name == "postgres":
            self.connection = psycopg.connect(
                host=url.host, port=url.port, user=url.username, dbname=url.database, password=url.password
            )
            return
        from blobflow.db import schema_file

        self.connection = sqlite3.connect(url.database)
        # blobflow attaches each schema's file under the schema's name; so must the bare driver.
        for schema in pipe.database.pipeline.schemas:
            name = pipe.database.sql_schema(schema)
            self.connection.execute(f'ATTACH DATABASE ? AS "{name}"', (schema_file(url, name),))

    def fetch_dicts(self, sql: str, params) -> list[dict]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            cursor.close()
            if isinstance(self.connection, psycopg.Connection):
                self.connection.rollback()  # end the transaction, as blobflow's connection does

    def stream_dicts(self, sql: str, params, batch: int = 2000) -> list[dict]:
        """Like fetch_dicts, through a server-side cursor read `batch` rows at a time, as blobflow
        streams query results on PostgreSQL (so big results need not fit in memory)."""
        with self.connection.cursor(name="blobflow_bench") as cursor:
            cursor.execute(sql, params)
            names = [d[0] for d in cursor.description]
            rows = []
            while batch_rows := cursor.fetchmany(batch):
                rows.extend(dict(zip(names, row)) for row in batch_rows)
        self.connection.rollback()
        return rows

    def close(self) -> None:
        self.connection.close()


def query(opened: Backend, repeats: int) -> dict:
    pipe = opened.open(BLOBS)
    fill_inputs(pipe)
    insert_rate = fill_detections(pipe)
    if opened.name == "postgres":
        with pipe.database.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    driver = Driver(pipe, opened)

    compiled = pipe.query(QUERY)
    expected = len(compiled.fetch())
    sql, params = sent_sql(pipe, compiled.fetch)

    def check(rows) -> None:
        assert len(rows) == expected, (len(rows), expected)

    # The arithmetic count's SQL with the check taken out: blobflow_int64(x) -> (x), on SQLite.
    checked_sql, checked_params = sent_sql(pipe, pipe.query(ARITHMETIC).count)
    unchecked_sql = checked_sql.replace("blobflow_int64(", "(")
    arithmetic_count = pipe.query(ARITHMETIC).count()

    runs = {
        "fetch_dicts": lambda: pipe.query(QUERY).fetch(),
        "fetch_dicts_compiled": compiled.fetch,
        "to_arrays": lambda: pipe.query(QUERY).to_arrays(),
        "driver_dicts": lambda: driver.fetch_dicts(sql, params),
        "arithmetic_count": lambda: pipe.query(ARITHMETIC).count(),
        "arithmetic_count_unchecked": lambda: driver.fetch_dicts(unchecked_sql, checked_params),
    }
    if opened.name == "postgres":
        runs["driver_dicts_server_cursor"] = lambda: driver.stream_dicts(sql, params)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():  # interleaved, so drifts in the machine hit all alike
            elapsed, rows = timed(run)
            if name == "arithmetic_count":
                assert rows == arithmetic_count
            elif name == "arithmetic_count_unchecked":
                assert list(rows[0].values()) == [arithmetic_count]
            else:
                check(rows if name != "to_arrays" else rows[0])
            times[name].append(elapsed)
    driver.close()
    driver_best = min(times["driver_dicts"])
    driver_median = statistics.median(times["driver_dicts"])
    figures: dict = {"query": QUERY, "rows": expected, "detection_insert_rows_per_s": insert_rate}
    for name, seconds in times.items():
        figures[name] = {**summary(seconds), "best_ms": round(min(seconds) * 1e3, 1)}
        if name.startswith("arithmetic"):
            continue
        if not name.startswith("driver"):
            figures[name]["vs_driver"] = round(min(seconds) / driver_best, 2)
            figures[name]["vs_driver_medians"] = round(statistics.median(seconds) / driver_median, 2)
            figures[name]["faster_than_datajoint"] = round(DATAJOINT_MS / (min(seconds) * 1e3), 1)
    if "driver_dicts_server_cursor" in times:
        streamed = min(times["driver_dicts_server_cursor"])
        figures["fetch_dicts"]["vs_driver_server_cursor"] = round(min(times["fetch_dicts"]) / streamed, 2)
    figures["arithmetic_count"]["vs_unchecked"] = round(
        min(times["arithmetic_count"]) / min(times["arithmetic_count_unchecked"]), 2
    )
    return figures


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run_on_backends("query", args.backend, lambda b: query(b, args.repeats or REPEATS))


if __name__ == "__main__":
    main()
