"""Micro-benchmark: blobflow.codec on a 128 MB float64 array against bare numpy byte copies.

Run as `.venv/bin/python bench/bench_codec.py`; prints one JSON object. A ratio near 1 means the codec
costs about one memory copy, like `arr.tobytes()` / `np.frombuffer(b).copy()`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np

from blobflow.codec import decode, describe, encode

REPEATS = 5
SHAPE = (4096, 4096)  # 16 Mi float64 values = 128 MiB


def best_ms(func: Callable[[], object]) -> float:
    """Best wall time of REPEATS runs, in milliseconds; the best run is the least disturbed one."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    arr = np.random.default_rng(0).standard_normal(SHAPE)
    raw = arr.tobytes()
    blob = encode(arr)
    assert np.array_equal(decode(blob), arr) and describe(blob) == "<blob float64 (4096, 4096)>"

    tobytes_ms = best_ms(arr.tobytes)
    encode_ms = best_ms(lambda: encode(arr))
    frombuffer_ms = best_ms(lambda: np.frombuffer(raw, dtype=np.float64).copy())
    decode_ms = best_ms(lambda: decode(blob))
    describe_us = best_ms(lambda: describe(blob)) * 1e3
    print(
        json.dumps(
            {
                "array": f"float64 {SHAPE}",
                "megabytes": arr.nbytes / 2**20,
                "blob_overhead_bytes": len(blob) - arr.nbytes,
                "tobytes_ms": round(tobytes_ms, 2),
                "encode_ms": round(encode_ms, 2),
                "encode_ratio": round(encode_ms / tobytes_ms, 3),
                "frombuffer_copy_ms": round(frombuffer_ms, 2),
                "decode_ms": round(decode_ms, 2),
                "decode_ratio": round(decode_ms / frombuffer_ms, 3),
                "describe_us": round(describe_us, 1),
                "repeats": REPEATS,
            }
        )
    )


if __name__ == "__main__":
    main()
