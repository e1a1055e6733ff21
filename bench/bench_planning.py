"""Planning 100,000 pending keys (1,000 images x 100 parameter sets of the seed pipeline, nothing
computed yet): how long until keys are ready to compute.

Run as `.venv/bin/python bench/bench_planning.py [--backend postgres|sqlite|both]`; prints JSON lines.

- `plan_all`: KeyDispenser without reservations: one query planning every pending key, into memory.
- `count_and_first_claim`: with reservations (the many-machines mode): counting the pending keys,
  then claiming the first chunk of 1,000 (the INSERT ... SELECT ... ON CONFLICT that workers run).
- `pending_select`: executing the pending-keys SELECT alone and fetching its rows.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from common import BLOBS, Backend, parse_args, run_on_backends, summary, timed

from blobflow import db
from blobflow.populate.dispenser import DispenseOptions, KeyDispenser
from blobflow.populate.planner import pending_select
from blobflow.populate.reservations import WorkerId

IMAGES = 1_000
PARAMS = 100
REPEATS = 5


def fill_inputs(pipe) -> None:
    """1,000 small images and 100 parameter sets (3 come with the pipeline's lookup contents)."""
    tiny = np.zeros((4, 4))
    pipe.table("Image").insert(
        [{"image_id": i, "image_name": f"image {i}", "image": tiny} for i in range(1, IMAGES + 1)]
    )
    pipe.table("DetectionParams").insert(
        [
            {"params_id": p, "min_sigma": 2.0, "max_sigma": 6.0, "threshold": 0.001}
            for p in range(4, PARAMS + 1)
        ]
    )


def planning(opened: Backend, repeats: int) -> dict:
    pipe = opened.open(BLOBS)
    fill_inputs(pipe)
    database = pipe.database
    table = database.resolve("Detection")
    jobs = database.sql.jobs[table.qualified_name]
    expected = IMAGES * PARAMS

    def plan_all() -> int:
        return KeyDispenser(database, table, WorkerId(), DispenseOptions(reserve=False)).total

    def count_and_first_claim() -> int:
        dispenser = KeyDispenser(database, table, WorkerId(), DispenseOptions(reserve=True))
        keys = dispenser.take(1000)
        assert dispenser.total == expected and len(keys) == 1000
        return len(keys)

    def select_only() -> int:
        with database.engine.connect() as connection:
            select = pending_select(database, table, now=db.utc_now(connection))
            return len(connection.execute(select).all())

    figures: dict = {"pending_keys": expected}
    for name, run in (
        ("plan_all", plan_all),
        ("count_and_first_claim", count_and_first_claim),
        ("pending_select", select_only),
    ):
        seconds = []
        for _ in range(repeats):
            with database.engine.begin() as connection:
                connection.execute(sa.delete(jobs))
            elapsed, result = timed(run)
            assert result in (expected, 1000), result
            seconds.append(elapsed)
        figures[name] = summary(seconds)
    return figures


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    run_on_backends("planning", args.backend, lambda b: planning(b, args.repeats or REPEATS))


if __name__ == "__main__":
    main()
