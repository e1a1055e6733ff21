"""Before/after figures for docs/performance.md: each optimisation measured against the code path it
replaced, restored by monkeypatching, interleaved in one process (best of N each).

Run as `.venv/bin/python bench/before_after.py [--backend ...]`. Not part of `make bench`: it reaches
into blobflow's internals, so it follows them only as long as they keep these names.

- part_rows: one make returning 100,000 part rows. Before: one dict per row, each value converted by
  convert_value, a label string per row, and (SQLite) SQLAlchemy's executemany with one dict per row.
- insert_columns: `insert` of 100,000 Detection rows given as numpy columns (same paths).
- query_dicts: `pipe.query(...).fetch()` of ~15,000 rows. Before: `dict(RowMapping)` per row.
- fetch_hubble_image (PostgreSQL): a make's inputs for one key whose image is the 7 MB Hubble image.
  Before: bytea sent as hex text.
- seed_overhead: populate's own time on the seed pipeline (wall minus the make calls), with all the
  old paths above and with the new ones.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from bench_planning import fill_inputs
from bench_populate import empty
from bench_query import QUERY, fill_detections
from common import BENCH_PIPELINE, BLOBS, Backend, parse_args, run_on_backends

import blobflow.insert
import blobflow.populate.make
import blobflow.query
from blobflow import db
from blobflow.populate.executor import PopulateOptions, populate
from blobflow.populate.make import MakeCaller
from blobflow.populate.reservations import WorkerId
from blobflow.rows import as_row_dicts, prepare_rows

sys.path.insert(0, str(BLOBS))
from images import coins, hubble  # pipelines/blobs/images.py

REPEATS = 5


@contextlib.contextmanager
def old_rows() -> Iterator[None]:
    """Rows converted one dict and one value at a time; SQLite rows sent as dicts through SQLAlchemy."""

    def prepare_any(table, rows, *, ignore_extra_fields=False, given=None, label="row"):
        return prepare_rows(
            table, as_row_dicts(rows), ignore_extra_fields=ignore_extra_fields, given=given, label=label
        )

    def execute_dicts(connection, table, columns, rows, on_duplicate):
        statement = db._insert_statement(connection.dialect, table, on_duplicate, table.schema)
        connection.execute(statement, [dict(zip(columns, row)) for row in rows])

    saved = (blobflow.populate.make.prepare_any, blobflow.insert.prepare_any, db._execute_positional)
    blobflow.populate.make.prepare_any = prepare_any
    blobflow.insert.prepare_any = prepare_any
    db._execute_positional = execute_dicts
    try:
        yield
    finally:
        blobflow.populate.make.prepare_any, blobflow.insert.prepare_any, db._execute_positional = saved


@contextlib.contextmanager
def old_iter_rows() -> Iterator[None]:
    def iter_rows(database, select, batch=2000):
        with database.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=batch).execute(select)
            for row in result.mappings():
                yield dict(row)

    saved = blobflow.query.iter_rows
    blobflow.query.iter_rows = iter_rows
    try:
        yield
    finally:
        blobflow.query.iter_rows = saved


@contextlib.contextmanager
def text_results() -> Iterator[None]:
    saved = blobflow.populate.make.db
    blobflow.populate.make.db = type("NoBinary", (), {"BINARY_RESULTS": "blobflow_bench_nothing"})
    try:
        yield
    finally:
        blobflow.populate.make.db = saved


def compare(
    run: Callable[[], object],
    before: Callable[[], contextlib.AbstractContextManager],
    repeats: int,
    setup: Callable[[], object] = lambda: None,
):
    """Best time of `run` (after an untimed `setup`) with the old code path and with the new one."""
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(repeats):
        for name in ("before", "after"):
            setup()
            with before() if name == "before" else contextlib.nullcontext():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
    best = {name: min(seconds) for name, seconds in times.items()}
    return {
        "before_s": round(best["before"], 4),
        "after_s": round(best["after"], 4),
        "speedup": round(best["before"] / best["after"], 2),
    }


def before_after(opened: Backend, repeats: int) -> dict:
    figures: dict = {}
    pipe = opened.open(BENCH_PIPELINE)
    pipe.table("Source").insert([{"source_id": 1}])
    big = pipe.database.resolve("Big")

    def part_rows() -> None:
        populate(pipe.database, [big], PopulateOptions(reserve=False))

    figures["part_rows"] = compare(part_rows, old_rows, repeats, lambda: empty(pipe, "Big.Row", "Big"))

    blobs = opened.open(BLOBS)
    fill_inputs(blobs)
    detection = blobs.database.resolve("Detection")

    def empty_detection() -> None:
        with blobs.database.engine.begin() as connection:
            connection.execute(sa.delete(blobs.database.sql[detection.qualified_name]))

    figures["insert_columns"] = compare(lambda: fill_detections(blobs), old_rows, repeats, empty_detection)
    figures["query_dicts"] = compare(lambda: blobs.query(QUERY).fetch(), old_iter_rows, repeats * 2)

    seed = opened.open(BLOBS)
    seed.table("Image").insert(
        [
            {"image_id": 1, "image_name": "Hubble Deep Field", "image": hubble()},
            {"image_id": 2, "image_name": "Coins", "image": coins()},
        ]
    )
    if opened.name == "postgres":
        caller = MakeCaller(seed.database, seed.database.resolve("Detection"), WorkerId())
        figures["fetch_hubble_image"] = compare(lambda: caller.fetch_inputs([(1, 1)]), text_results, repeats)
    figures["seed_overhead"] = seed_overhead(seed, max(2, repeats // 2))
    return figures


def seed_overhead(seed, repeats: int) -> dict:
    """populate's own time on the seed pipeline (wall minus the make calls), old paths and new."""
    from bench_seed import empty as empty_seed
    from bench_seed import make_seconds_by_key

    detection = seed.database.resolve("Detection")
    overheads: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(repeats):
        for name in ("before", "after"):
            empty_seed(seed)
            with contextlib.ExitStack() as stack:
                if name == "before":
                    stack.enter_context(old_rows())
                    stack.enter_context(text_results())
                started = time.perf_counter()
                populate(seed.database, [detection], PopulateOptions(jobs=1))
                elapsed = time.perf_counter() - started
            overheads[name].append(elapsed - sum(make_seconds_by_key(seed)))
    return {"before_s": round(min(overheads["before"]), 3), "after_s": round(min(overheads["after"]), 3)}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run_on_backends("before_after", args.backend, lambda b: before_after(b, args.repeats or REPEATS))


if __name__ == "__main__":
    main()
