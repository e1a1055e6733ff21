"""How many keys to compute between writes."""

from __future__ import annotations

MAX_CHUNK = 1000


def next_chunk_size(current: int, done: int, seconds: float, target_seconds: float) -> int:
    """Grow chunks while makes are quick (fewer, bigger writes), shrink them when slow (prompt writes).

    >>> next_chunk_size(1, 1, 0.001, 0.25)  # quick: grow, but at most fourfold per step
    4
    >>> next_chunk_size(64, 64, 32.0, 0.25)  # half a second per key: one key at a time
    1
    """
    per_key = seconds / max(done, 1)
    ideal = int(target_seconds / per_key) if per_key > 0 else MAX_CHUNK
    return max(1, min(ideal, current * 4, MAX_CHUNK))
