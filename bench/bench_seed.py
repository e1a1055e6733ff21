"""The seed pipeline (pipelines/blobs): blob_doh over 2 images x 3 parameter sets, populated with
`jobs=1` and `jobs=2`, against a bare Python loop making the same blob_doh calls.

Run as `.venv/bin/python bench/bench_seed.py [--backend postgres|sqlite|both]`; prints JSON lines.

The bare loop fetches nothing and writes nothing: the images are already in memory and the results
are dropped. populate does everything: plans, fetches each key's image and parameters, calls the
make, checks the 4,500-odd blob rows and writes them. Both run in this (warmed-up) process; with
`jobs=2` the worker processes are spawned inside the timing, as `blobflow populate --jobs 2` does.
Runs are interleaved (bare, jobs=1, jobs=2, bare, ...) so drifts in machine load hit all alike.

To explain the jobs=2 figure it also reports each key's make time, how long a spawned worker takes
to be ready and warm (imports, and the modules skimage loads lazily on the first call), and the best
speedup two processes could reach with a scheduler that knew every key's duration in advance, with
and without that start-up.

`seed_longer` runs the same pipeline with each image inserted four times (24 keys, about 11 s of
blob_doh), jobs=1 against jobs=2: how the pool scales once the run is long against a worker's
start-up and the last key.
"""

from __future__ import annotations

import itertools
import os
import socket
import statistics
import subprocess
import sys
import time

import sqlalchemy as sa
from common import BLOBS, Backend, parse_args, run_on_backends, summary, timed
from skimage.feature import blob_doh

from blobflow.manifest import load_pipeline
from blobflow.populate.executor import PopulateOptions, populate

sys.path.insert(0, str(BLOBS))
from images import coins, hubble  # pipelines/blobs/images.py

REPEATS = 5
LONGER_REPEATS = 2
COPIES = 4
IMAGES = {1: ("Hubble Deep Field", hubble), 2: ("Coins", coins)}


def parameter_sets() -> list[dict]:
    """DetectionParams' contents as the manifest declares them."""
    model = load_pipeline(BLOBS)
    return [dict(row) for row in model.table("tutorial_blobs.DetectionParams").contents]


def bare_loop(images: list, params: list[dict]) -> int:
    found = 0
    for image in images:
        for p in params:
            found += len(
                blob_doh(image, min_sigma=p["min_sigma"], max_sigma=p["max_sigma"], threshold=p["threshold"])
            )
    return found


def empty(pipe) -> None:
    database = pipe.database
    detection = database.resolve("Detection")
    with database.engine.begin() as connection:
        connection.execute(sa.delete(database.sql[f"{detection.qualified_name}.Blob"]))
        connection.execute(sa.delete(database.sql[detection.qualified_name]))
        connection.execute(sa.delete(database.sql.jobs[detection.qualified_name]))


def make_seconds_by_key(pipe) -> list[float]:
    """How long each key's make call took, in key order (as populate hands keys out)."""
    database = pipe.database
    detection = database.sql[database.resolve("Detection").qualified_name]
    select = sa.select(detection.c._compute_seconds).order_by(detection.c.image_id, detection.c.params_id)
    with database.engine.connect() as connection:
        return list(connection.execute(select).scalars())


_WORKER_PROBE = """
import sys, time
started = float(sys.argv[1])
import blobflow.populate.executor  # what a worker process imports
from blobflow import db
engine = db.create_engine(sys.argv[2], [])
with engine.connect() as connection:
    connection.exec_driver_sql("SELECT 1")
sys.path.insert(0, sys.argv[3])
import detect  # the make's module
from images import coins
ready = time.time() - started
image, p = coins(), {"min_sigma": 4.0, "max_sigma": 20.0, "threshold": 0.01}
t = time.perf_counter(); detect.detect_blobs(image, p); first = time.perf_counter() - t
t = time.perf_counter(); detect.detect_blobs(image, p); again = time.perf_counter() - t
print(ready, max(0.0, first - again))
"""


def worker_start_seconds(opened: Backend) -> float:
    """How long a fresh worker process takes before its makes run as fast as in a warm process: start
    the interpreter, import blobflow and the make's module, connect (ready), plus what the first
    blob_doh call costs extra in a fresh process (skimage and scipy load modules lazily)."""
    started = time.time()
    output = subprocess.run(
        [sys.executable, "-c", _WORKER_PROBE, str(started), opened.url, str(BLOBS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ready, first_call = (float(x) for x in output.split())
    return ready + first_call


def best_two_process_makespan(durations: list[float], starts: tuple[float, float]) -> float:
    """The shortest time two processes, ready at `starts`, can compute keys of these durations in,
    had a scheduler known every duration in advance."""
    best = float("inf")
    for assignment in itertools.product((0, 1), repeat=len(durations)):
        loads = [0.0, 0.0]
        for duration, process in zip(durations, assignment):
            loads[process] += duration
        best = min(best, max(start + load for start, load in zip(starts, loads) if load))
    return best


def key_order_makespan(durations: list[float], starts: tuple[float, float]) -> float:
    """The time two processes, ready at `starts`, take when each, once free, takes the next key in
    key order (what populate does when every key takes longer than a chunk's target time)."""
    free = list(starts)
    for duration in durations:
        process = free.index(min(free))
        free[process] += duration
    return max(free)


def computed_on(pipe) -> set[str]:
    """The host:pid of every process that computed a Detection row."""
    database = pipe.database
    detection = database.sql[database.resolve("Detection").qualified_name]
    with database.engine.connect() as connection:
        return set(connection.execute(sa.select(detection.c._computed_on).distinct()).scalars())


def seed(opened: Backend, repeats: int) -> dict:
    images = [load() for _, load in IMAGES.values()]
    params = parameter_sets()
    pipe = opened.open(BLOBS)
    pipe.table("Image").insert(
        [{"image_id": i, "image_name": name, "image": images[i - 1]} for i, (name, _) in IMAGES.items()]
    )
    detection = pipe.database.resolve("Detection")
    expected_blobs = bare_loop(images, params)  # also warms up skimage in this process

    times: dict[str, list[float]] = {"bare_loop": [], "jobs1": [], "jobs2": []}
    overheads: list[float] = []
    for _ in range(repeats):
        elapsed, found = timed(lambda: bare_loop(images, params))
        assert found == expected_blobs
        times["bare_loop"].append(elapsed)
        for jobs in (1, 2):
            empty(pipe)
            elapsed, result = timed(
                lambda jobs=jobs: populate(pipe.database, [detection], PopulateOptions(jobs=jobs))
            )
            assert result["Detection"].computed == len(images) * len(params), result
            assert pipe.table("Detection.Blob").count() == expected_blobs
            times[f"jobs{jobs}"].append(elapsed)
            if jobs == 1:
                durations = make_seconds_by_key(pipe)
                overheads.append(elapsed - sum(durations))
            else:
                parent_computes = f"{socket.gethostname()}:{os.getpid()}" in computed_on(pipe)
    bare, jobs1, jobs2 = (min(times[name]) for name in ("bare_loop", "jobs1", "jobs2"))
    start = worker_start_seconds(opened)
    # jobs=2 as populate runs it: this process computing too (from the start), or two workers only.
    starts = (0.0, start) if parent_computes else (start, start)
    paired = [j / b for j, b in zip(times["jobs1"], times["bare_loop"])]
    return {
        "keys": len(images) * len(params),
        "blob_rows": expected_blobs,
        **{name: summary(seconds) for name, seconds in times.items()},
        "jobs1_over_bare": round(jobs1 / bare, 3),
        "jobs1_over_bare_paired_median": round(statistics.median(paired), 3),
        "jobs1_overhead_s": round(min(overheads), 3),
        # populate's own time (wall minus the make calls), over the bare loop: the ratio above without
        # the noise of comparing separate runs of four seconds of blob_doh.
        "jobs1_overhead_fraction": round(min(overheads) / bare, 3),
        "jobs2_speedup": round(jobs1 / jobs2, 2),
        "make_seconds_in_key_order": [round(d, 3) for d in durations],
        "worker_start_s": round(start, 3),
        "jobs2_parent_computes": parent_computes,
        # The best jobs=2 could do with a scheduler knowing every key's duration and no database work:
        # with processes ready at once, and with the worker start-up measured here.
        "jobs2_speedup_bound_instant_workers": round(
            sum(durations) / best_two_process_makespan(durations, (0.0, 0.0)), 2
        ),
        "jobs2_speedup_bound_with_start": round(
            sum(durations) / best_two_process_makespan(durations, starts), 2
        ),
        # The same, handing keys out in key order as populate does, still without database work.
        "jobs2_speedup_key_order_with_start": round(
            sum(durations) / key_order_makespan(durations, starts), 2
        ),
        # Keys in key order to workers ready at once: what no start-up work could improve on.
        "jobs2_speedup_key_order_instant_workers": round(
            sum(durations) / key_order_makespan(durations, (0.0, 0.0)), 2
        ),
        "reserve": opened.name == "postgres",
    }


def longer_run(opened: Backend, repeats: int, copies: int = COPIES) -> dict:
    """The same pipeline with each image inserted `copies` times (24 keys, about 11 s of blob_doh):
    how jobs=2 scales once the run is long against a worker's start-up."""
    images = [load() for _, load in IMAGES.values()] * copies
    pipe = opened.open(BLOBS)
    pipe.table("Image").insert(
        [{"image_id": i, "image_name": f"copy {i}", "image": image} for i, image in enumerate(images, 1)]
    )
    detection = pipe.database.resolve("Detection")
    keys = len(images) * len(parameter_sets())
    times: dict[str, list[float]] = {"jobs1": [], "jobs2": []}
    for _ in range(repeats):
        for jobs in (1, 2):
            empty(pipe)
            elapsed, result = timed(
                lambda jobs=jobs: populate(pipe.database, [detection], PopulateOptions(jobs=jobs))
            )
            assert result["Detection"].computed == keys, result
            times[f"jobs{jobs}"].append(elapsed)
    durations = make_seconds_by_key(pipe)
    return {
        "keys": keys,
        **{name: summary(seconds) for name, seconds in times.items()},
        "jobs2_speedup": round(min(times["jobs1"]) / min(times["jobs2"]), 2),
        "jobs2_speedup_bound_instant_workers": round(
            sum(durations) / key_order_makespan(durations, (0.0, 0.0)), 2
        ),
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run_on_backends("seed", args.backend, lambda b: seed(b, args.repeats or REPEATS))
    run_on_backends("seed_longer", args.backend, lambda b: longer_run(b, args.repeats or LONGER_REPEATS))


if __name__ == "__main__":
    main()
