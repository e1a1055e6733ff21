"""How many keys to hand out at a time."""

from __future__ import annotations

MAX_CHUNK = 1000


class ChunkSizer:
    """Chunk sizes for one table: grow while makes are quick (fewer, bigger writes), one key at a time
    when they are slow (prompt writes, and work shared evenly among workers).

    Sizes follow the mean time per key of every chunk finished so far, not the last chunk alone: one
    quick key among slow ones must not hand a worker four slow keys at once while the other workers
    run out of keys. With several workers, the keys left are shared out toward the end, so that no
    worker is left computing a long last chunk alone.

    >>> sizer = ChunkSizer(target_seconds=0.25)
    >>> sizer.observe(1, 0.001); sizer.next()  # quick: grow, but at most fourfold per step
    4
    >>> sizer.observe(4, 0.004); sizer.next()
    16
    >>> slow = ChunkSizer(target_seconds=0.25)
    >>> slow.observe(1, 0.6); slow.observe(1, 0.01); slow.next()  # one quick key among slow ones
    1
    >>> pool = ChunkSizer(target_seconds=0.25, workers=2)
    >>> pool.observe(1, 0.0001); pool.observe(4, 0.0004); pool.next(remaining=10)
    3
    """

    def __init__(self, target_seconds: float, workers: int = 1):
        self.target_seconds = target_seconds
        self.workers = workers
        self._size = 1
        self._keys = 0
        self._seconds = 0.0

    def observe(self, keys: int, seconds: float) -> None:
        """A chunk of `keys` keys took `seconds` to compute (make calls and checks)."""
        self._keys += keys
        self._seconds += seconds
        per_key = self._seconds / max(self._keys, 1)
        ideal = int(self.target_seconds / per_key) if per_key > 0 else MAX_CHUNK
        self._size = max(1, min(ideal, self._size * 4, MAX_CHUNK))

    def next(self, remaining: int | None = None) -> int:
        """The size of the next chunk; `remaining`: about how many keys are left to hand out."""
        if remaining is not None and self.workers > 1:
            share = -(-remaining // (2 * self.workers))  # ceil: half a fair share each
            return max(1, min(self._size, share))
        return self._size
