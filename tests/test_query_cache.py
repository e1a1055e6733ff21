"""Compiled queries are reused per database, and the cache stays bounded."""

from __future__ import annotations

from conftest import BLOBS

from blobflow import open_pipeline
from blobflow.query import COMPILED_QUERY_CACHE, compile_query


def test_a_query_is_compiled_once_and_the_cache_is_bounded(tmp_path):
    pipe = open_pipeline(BLOBS, f"sqlite:///{tmp_path}/x.db")
    first = compile_query(pipe.database, "Detection & num_blobs < 300")
    assert compile_query(pipe.database, "Detection & num_blobs < 300") is first
    for n in range(COMPILED_QUERY_CACHE + 10):
        compile_query(pipe.database, f"Detection & num_blobs < {n}")
    assert len(pipe.database.compiled_queries) == COMPILED_QUERY_CACHE
    assert compile_query(pipe.database, "Detection & num_blobs < 300") is not first  # evicted, recompiled
