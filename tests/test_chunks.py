"""Chunk sizes: how many keys populate hands out at a time."""

from __future__ import annotations

from blobflow.populate.chunks import MAX_CHUNK, ChunkSizer


def test_quick_keys_grow_chunks_fourfold_up_to_the_maximum():
    sizer = ChunkSizer(target_seconds=0.25)
    sizes = []
    for _ in range(8):
        size = sizer.next()
        sizes.append(size)
        sizer.observe(size, size * 1e-5)
    assert sizes == [1, 4, 16, 64, 256, 1000, 1000, 1000]
    assert max(sizes) == MAX_CHUNK


def test_chunks_hold_about_the_target_time():
    sizer = ChunkSizer(target_seconds=0.25)
    for _ in range(6):
        size = sizer.next()
        sizer.observe(size, size * 0.01)  # 10 ms a key
    assert sizer.next() == 25


def test_one_quick_key_among_slow_ones_does_not_grow_the_chunk():
    """The seed's keys take 0.03-1.3 s: after the 0.03 s one, a worker must not get four keys."""
    sizer = ChunkSizer(target_seconds=0.25, workers=2)
    for seconds in (0.6, 0.66, 0.29, 0.48, 0.035):
        sizer.observe(1, seconds)
        assert sizer.next(remaining=18) == 1


def test_slow_keys_after_quick_ones_shrink_the_chunk():
    sizer = ChunkSizer(target_seconds=0.25)
    sizer.observe(1, 0.001)
    sizer.observe(4, 0.004)
    assert sizer.next() == 16
    sizer.observe(16, 16.0)  # a second a key now
    assert sizer.next() == 1


def test_with_several_workers_the_last_keys_are_shared_out():
    sizer = ChunkSizer(target_seconds=0.25, workers=2)
    for _ in range(5):
        sizer.observe(100, 0.001)
    assert sizer.next(remaining=1000) == 250  # half of a fair share each
    assert sizer.next(remaining=10) == 3
    assert sizer.next(remaining=1) == 1
    alone = ChunkSizer(target_seconds=0.25)
    for _ in range(5):
        alone.observe(100, 0.001)
    assert alone.next(remaining=10) == alone.next() > 10  # one worker: nothing to share
