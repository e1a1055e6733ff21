"""Property check: rows given as columns (`rows.prepare_any`, the vectorised path) come out exactly as
the row-by-row path makes them: the same values of the same Python types, or the same error message.

Run as `.venv/bin/pytest -q bench/check_columns_equivalence.py` (not part of `make test`: it takes
about a minute). Mixed dtypes, NaN, infinities, out-of-range values, booleans, strings, duplicates,
missing and extra fields, key values that differ from the key being written, structured arrays and
lists.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blobflow.rows as rows_module
from blobflow.manifest import load_pipeline
from blobflow.rows import as_row_dicts, prepare_any, prepare_rows

PART = load_pipeline(Path(__file__).parent / "pipelines" / "columns").table("eq.Master.P")
NAMES = ["m", "i", "a8", "u16", "u32", "i64", "f32", "f64", "f32n", "f64d", "b", "s", "blob", "extra", "P"]
COUNTS = {"columns": 0, "fell_back": 0}


def outcome(prepare):
    try:
        prepared = prepare()
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    values = [
        tuple((type(v).__name__, "nan" if isinstance(v, float) and math.isnan(v) else v) for v in row)
        for row in prepared.values
    ]
    return ("ok", prepared.columns, values, list(prepared.labels))


ints = st.integers(-(2**40), 2**40)
special = st.sampled_from([0, 1, -1, 127, 128, -129, 65535, 65536, 2**32 - 1, 2**32, 2**31, -(2**31) - 1])
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([3.5e38, 3.4028235e38, -3.5e38, 0.1])
)
int_dtypes = st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"])


@st.composite
def column(draw, n):
    kind = draw(st.sampled_from(["int", "float", "bool", "list", "str", "object"]))
    if kind == "int":
        dtype = draw(int_dtypes)
        info = np.iinfo(dtype)
        values = st.one_of(special, ints).filter(lambda v: info.min <= v <= info.max)
        return np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype)
    if kind == "float":
        dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
        values = draw(st.lists(st.one_of(floats, special.map(float)), min_size=n, max_size=n))
        with np.errstate(over="ignore"):
            return np.array(values, dtype=np.float64).astype(dtype)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if kind == "list":
        anything = st.one_of(ints, floats, st.booleans(), st.none(), st.text(max_size=4))
        return draw(st.lists(anything, min_size=n, max_size=n))
    if kind == "str":
        return np.array(draw(st.lists(st.text(alphabet="abcdé ", max_size=4), min_size=n, max_size=n)))
    return np.array(draw(st.lists(st.one_of(ints, floats, st.none()), min_size=n, max_size=n)), dtype=object)


@st.composite
def columns(draw):
    n = draw(st.integers(0, 6))
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    result = {name: draw(column(n)) for name in names}
    if draw(st.booleans()):  # mostly valid columns, so the vectorised path succeeds often
        result["i"] = (
            np.arange(n, dtype=draw(int_dtypes))
            if draw(st.booleans())
            else np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
        )
        result |= {
            "a8": np.zeros(n, dtype="int8"),
            "u16": np.arange(n, dtype="uint16"),
            "u32": np.arange(n, dtype="int64"),
            "i64": np.arange(n),
            "f32": np.linspace(0, 1, n),
            "f64": np.linspace(0, 1, n).astype(np.float32),
            "b": np.ones(n, dtype=bool),
            "s": ["ab"] * n,
        }
    if "m" in result and draw(st.booleans()):
        result["m"] = np.full(n, 7, dtype=draw(int_dtypes))
    plain = all(isinstance(c, np.ndarray) and c.dtype != object for c in result.values())
    if result and plain and draw(st.booleans()):
        structured = np.zeros(n, dtype=[(k, c.dtype) for k, c in result.items()])
        for name, values in result.items():
            structured[name] = values
        return structured
    return result


@settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck))
@given(columns(), st.booleans(), st.booleans())
def test_columns_as_rows(rows, ignore_extra_fields, with_key):
    key = {"m": 7} if with_key else None
    options = {"ignore_extra_fields": ignore_extra_fields, "given": key, "label": "P row"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_rows = outcome(lambda: prepare_rows(PART, as_row_dicts(rows), **options))
        by_columns = outcome(lambda: prepare_any(PART, rows, **options))
    assert by_rows == by_columns


_prepare_columns = rows_module._prepare_columns


def _counting(*args, **kwargs):
    try:
        prepared = _prepare_columns(*args, **kwargs)
    except Exception:
        COUNTS["fell_back"] += 1
        raise
    COUNTS["columns"] += 1
    return prepared


rows_module._prepare_columns = _counting


def test_the_vectorised_path_was_exercised():
    assert COUNTS["columns"] > 100, COUNTS
