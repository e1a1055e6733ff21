"""Every attribute type stores and returns the same values on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import write_pipeline

from blobflow.errors import DataError

ALL_TYPES = """
    schema: types
    tables:
      Everything:
        tier: manual
        key: {item_id: int32}
        attributes:
          a_int8: int8
          a_int16: int16
          a_int32: int32
          a_int64: int64
          a_uint8: uint8
          a_uint16: uint16
          a_uint32: uint32
          a_float32: float32
          a_float64: float64
          a_bool: bool
          a_decimal: decimal(8,3)
          a_varchar: varchar(12)
          a_char: char(4)
          a_text: text
          a_date: date
          a_datetime: datetime
          a_uuid: uuid
          a_json: json
          a_enum: enum(left, right)
          a_blob: blob
          a_optional: {type: int16, default: null}
          a_default: {type: varchar(5), default: hello}
    """

ROW = {
    "item_id": 1,
    "a_int8": -128,
    "a_int16": 32767,
    "a_int32": -(2**31),
    "a_int64": 2**63 - 1,
    "a_uint8": 255,
    "a_uint16": 65535,
    "a_uint32": 2**32 - 1,
    "a_float32": 0.1,
    "a_float64": 0.1,
    "a_bool": True,
    "a_decimal": decimal.Decimal("12345.678"),
    "a_varchar": "héllo wörld",
    "a_char": "ab",
    "a_text": "x" * 10_000,
    "a_date": dt.date(2024, 2, 29),
    "a_datetime": dt.datetime(2024, 2, 29, 13, 45, 7, 123456),
    "a_uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "a_json": {"a": [1, 2.5, None, "x"], "b": {"c": True}},
    "a_enum": "right",
    "a_blob": {"image": np.arange(12, dtype=np.float32).reshape(3, 4), "label": "x"},
}


@pytest.fixture
def everything(backend, tmp_path):
    path = write_pipeline(tmp_path, ALL_TYPES)
    pipe = backend.open(path)
    pipe.init()
    yield pipe.table("Everything")
    pipe.close()


def test_every_type_round_trips(everything):
    everything.insert1(ROW)
    fetched = everything.fetch1({"item_id": 1})
    expected = dict(ROW, a_float32=0.1, a_optional=None, a_default="hello")
    blob = fetched.pop("a_blob")
    expected_blob = expected.pop("a_blob")
    assert fetched == expected
    assert type(fetched["a_decimal"]) is decimal.Decimal
    assert blob["label"] == "x"
    np.testing.assert_array_equal(blob["image"], expected_blob["image"])
    assert blob["image"].dtype == np.float32


def test_float32_values_are_stored_as_float32(everything, backend):
    everything.insert1(dict(ROW, a_float32=1 / 3))
    (values,) = everything.to_arrays("a_float32")
    assert values.dtype == np.float32
    assert values[0] == np.float32(1 / 3)
    # The stored double is the float32 value exactly, on both databases.
    sql_table = everything.database.sql[everything.model.qualified_name]
    with everything.database.engine.connect() as connection:
        raw = connection.execute(sa.select(sa.cast(sql_table.c.a_float32, sa.Double))).scalar_one()
    assert raw == float(np.float32(1 / 3))


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("a_int8", 128, "128 is out of range for int8 (-128..127)"),
        ("a_uint8", -1, "-1 is out of range for uint8 (0..255)"),
        ("a_int16", "12x", "expected int16, got '12x'"),
        ("a_int32", True, "expected int32, got a boolean"),
        ("a_int32", 1.5, "expected int32, got 1.5"),
        ("a_varchar", "x" * 13, "string of length 13 is longer than varchar(12)"),
        ("a_char", "abcde", "string of length 5 is longer than char(4)"),
        ("a_enum", "up", "'up' is not one of left, right"),
        ("a_decimal", "123456.5", "123456.5 does not fit decimal(8,3)"),
        ("a_date", "2024-13-01", "expected a date (YYYY-MM-DD), got '2024-13-01'"),
        ("a_uuid", "nope", "expected a uuid, got 'nope'"),
        ("a_json", {"x": float("nan")}, "expected a JSON value"),
        ("a_bool", "maybe", "expected bool, got 'maybe'"),
        ("a_float32", 1e39, "out of range for float32"),
        ("a_blob", {1, 2}, "cannot store a value of type 'set'"),
    ],
)
def test_bad_values_are_refused_with_row_and_attribute(everything, attribute, value, message):
    with pytest.raises(DataError) as error:
        everything.insert([dict(ROW, item_id=1), dict(ROW, item_id=2, **{attribute: value})])
    assert str(error.value).startswith(f"row 2: attribute '{attribute}': ")
    assert message in str(error.value)
    assert everything.count() == 0  # all or nothing


def test_strings_convert_like_csv_gives_them(everything):
    as_text = {k: str(v) for k, v in ROW.items() if k not in ("a_json", "a_bool", "a_blob")}
    everything.insert1(dict(as_text, a_json=ROW["a_json"], a_bool="true", a_blob=0))
    fetched = everything.fetch1()
    fetched.pop("a_blob")
    expected = dict(ROW, a_float32=0.1, a_optional=None, a_default="hello")
    expected.pop("a_blob")
    assert fetched == expected


def test_nulls_only_where_nullable(everything):
    with pytest.raises(DataError, match="row 1: attribute 'a_text' of Everything cannot be null"):
        everything.insert1(dict(ROW, a_text=None))
    with pytest.raises(DataError, match=r"row 1: missing attribute 'a_int8' \(int8\) of Everything"):
        everything.insert1({k: v for k, v in ROW.items() if k != "a_int8"})


def test_a_missing_json_value_is_sql_null_on_both_databases(backend, tmp_path):
    path = write_pipeline(
        tmp_path,
        """
        schema: jnull
        tables:
          Doc:
            tier: manual
            key: {doc_id: int32}
            attributes:
              meta: {type: json, default: null}
        """,
    )
    pipe = backend.open(path)
    pipe.init()
    pipe.table("Doc").insert([{"doc_id": 1}, {"doc_id": 2, "meta": {"a": 1}}])
    assert pipe.query("Doc & meta is null").fetch() == [{"doc_id": 1, "meta": None}]
    pipe.close()


def test_sums_of_float32_are_double_precision_on_both_databases(backend, tmp_path):
    path = write_pipeline(
        tmp_path,
        """
        schema: sums
        tables:
          Batch:
            tier: manual
            key: {batch_id: int16}
          Item:
            tier: manual
            depends: [Batch]
            key: {item: int16}
            attributes: {value: float32}
        """,
    )
    pipe = backend.open(path)
    pipe.init()
    values = [0.1, 0.2, 1 / 3, 1e-3, 12345.678, 7.7]
    pipe.table("Batch").insert1({"batch_id": 1})
    pipe.table("Item").insert([{"batch_id": 1, "item": i, "value": v} for i, v in enumerate(values)])
    row = pipe.query("Batch.aggr(Item, s = sum(value), m = avg(value))").fetch1()
    expected = sum(float(np.float32(v)) for v in values)
    assert row["s"] == pytest.approx(expected, rel=1e-12)
    assert row["m"] == pytest.approx(expected / len(values), rel=1e-12)
    pipe.close()


def test_float32_arrays_hold_the_fetched_values_with_and_without_nulls(backend, tmp_path):
    """to_arrays reads float32 columns unprocessed (fast); the values must be those fetch() gives."""
    path = write_pipeline(
        tmp_path,
        """\
            schema: readings
            tables:
              Reading:
                tier: manual
                key: {reading_id: int32}
                attributes:
                  value: {type: float32, default: null}
            """,
    )
    values = [0.001, 1 / 3, 1e-7, 3.4e38, -0.0, 123456.789, None]
    with backend.open(path) as pipe:
        pipe.init()
        pipe.table("Reading").insert([{"reading_id": i, "value": v} for i, v in enumerate(values)])
        fetched = [row["value"] for row in pipe.query("Reading").fetch(order_by="reading_id")]
        assert fetched[:3] == [0.001, 0.33333334, 1e-07]  # the shortest decimal of each float32
        (dense,) = pipe.query("Reading & value is not null").to_arrays("value", order_by="reading_id")
        assert dense.dtype == np.float32
        assert dense.tolist() == np.array(fetched[:-1], dtype=np.float32).tolist()
        (with_null,) = pipe.query("Reading").to_arrays("value", order_by="reading_id")
        assert with_null.dtype == object
        assert list(with_null) == fetched
        assert fetched[-1] is None


def test_strings_compare_and_sort_by_code_point_on_both_databases(backend, tmp_path):
    """PostgreSQL sorts by its database's locale unless told otherwise (en_US.UTF-8 puts "a" before
    "B" and ignores "_"); blobflow's string columns use code-point order there too, as on SQLite."""
    path = write_pipeline(
        tmp_path,
        """\
            schema: words
            tables:
              Word:
                tier: manual
                key: {word_id: int32}
                attributes:
                  short: varchar(10)
                  fixed: char(3)
                  long: text
            """,
    )
    words = ["a", "B", "_c", "é", "Z", "ab"]
    with backend.open(path) as pipe:
        pipe.init()
        pipe.table("Word").insert(
            [{"word_id": i, "short": w, "fixed": w[:3], "long": w * 3} for i, w in enumerate(words)]
        )
        for column, values in (("short", words), ("fixed", words), ("long", [w * 3 for w in words])):
            fetched = pipe.query("Word").fetch(column, order_by=column)
            assert [row[column] for row in fetched] == sorted(values), column
        smaller = pipe.query('Word & short < "a"').fetch("short", order_by="short")
        assert [row["short"] for row in smaller] == ["B", "Z", "_c"]
        if backend.name == "postgres":
            sql_table = pipe.database.sql[pipe.table("Word").model.qualified_name]
            select = sa.text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = :schema AND table_name = 'word' AND data_type <> 'integer'"
            )
            with pipe.database.engine.connect() as connection:
                schema = pipe.database.sql_schema(sql_table.schema)
                collations = dict(connection.execute(select, {"schema": schema}).all())
            assert collations == {"short": "C", "fixed": "C", "long": "C"}
