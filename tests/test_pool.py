"""Which key killed a worker: the parent reads the worker's tally of keys begun and ended."""

from __future__ import annotations

import collections

from blobflow.populate.pool import _Worker


def worker(begun: int, ended: int, chunks: list[list[tuple]], keys_reported: int = 0) -> _Worker:
    return _Worker(None, None, [begun, ended], chunks=collections.deque(chunks), keys_reported=keys_reported)


def test_the_key_whose_make_began_and_did_not_end_is_blamed():
    assert worker(1, 0, [[(1,), (2,)]]).key_in_make() == (1,)
    assert worker(2, 1, [[(1,), (2,)], [(3,)]]).key_in_make() == (2,)
    assert worker(3, 2, [[(1,), (2,)], [(3,)]]).key_in_make() == (3,)


def test_chunks_reported_done_are_counted_out():
    # keys 1-4 were sent, computed and reported in two chunks; 5 and 6 are held, 6 in its make
    assert worker(6, 5, [[(5,), (6,)]], keys_reported=4).key_in_make() == (6,)


def test_no_key_is_blamed_when_no_make_was_running():
    assert worker(0, 0, [[(1,)]]).key_in_make() is None  # died before its first make
    assert worker(2, 2, [[(1,), (2,)], [(3,)]]).key_in_make() is None  # between makes: fetching, say
    assert worker(5, 4, [[(1,)]]).key_in_make() is None  # a count that fits no key held: blame none
