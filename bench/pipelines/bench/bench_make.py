"""Make functions of the benchmark pipeline."""

from __future__ import annotations

import os

import numpy as np

PART_ROWS = int(os.environ.get("BENCH_PART_ROWS", "100000"))


def trivial(key: dict) -> dict:
    return {"value": key["item_id"] % 1000}


def many_rows(key: dict) -> dict:
    """PART_ROWS blobs as numpy columns, like detect_blobs returns them (made fresh on each call)."""
    rng = np.random.default_rng(key["source_id"])
    n = PART_ROWS
    return {
        "num_rows": n,
        "Row": {
            "row_idx": np.arange(n, dtype=np.int32),
            "x": rng.uniform(0, 1000, n).astype(np.float32),
            "y": rng.uniform(0, 1000, n).astype(np.float32),
            "radius": rng.uniform(1, 20, n).astype(np.float32),
        },
    }
