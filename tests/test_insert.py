"""Inserting rows through the Python API: checks, all-or-nothing, duplicates, parts, bulk paths."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_pipeline

from blobflow.errors import DataError, UsageError

LAB = """
    schema: lab
    tables:
      Subject:
        tier: manual
        key: {subject_id: int32}
        attributes: {name: varchar(20)}
      Session:
        tier: manual
        depends: [Subject]
        key: {session: int16}
        attributes:
          note: {type: text, default: ""}
        parts:
          Trial:
            key: {trial: int16}
            attributes: {score: float64}
    """


@pytest.fixture
def lab(backend, tmp_path):
    path = write_pipeline(tmp_path, LAB)
    pipe = backend.open(path)
    pipe.init()
    pipe.table("Subject").insert([{"subject_id": 1, "name": "ann"}, {"subject_id": 2, "name": "bob"}])
    yield pipe
    pipe.close()


def test_rows_as_dicts_columns_or_structured_array(lab):
    subject = lab.table("Subject")
    subject.insert({"subject_id": [3, 4], "name": ["cy", "di"]})
    records = np.array([(5, "ed")], dtype=[("subject_id", "i4"), ("name", "U5")])
    subject.insert(records)
    assert [r["name"] for r in subject.fetch()] == ["ann", "bob", "cy", "di", "ed"]
    ids, names = subject.to_arrays("subject_id", "name")
    assert ids.dtype == np.int32 and ids.tolist() == [1, 2, 3, 4, 5]
    assert names.tolist() == ["ann", "bob", "cy", "di", "ed"]


def test_master_and_nested_parts_go_in_together(lab):
    result = lab.table("Session").insert(
        [
            {
                "subject_id": 1,
                "session": 1,
                "Trial": [{"trial": 1, "score": 0.5}, {"trial": 2, "score": 0.7}],
            },
            {"subject_id": 2, "session": 1, "Trial": {"trial": [1], "score": [0.9]}},
        ]
    )
    assert result.rows == 2 and result.part_rows == {"Session.Trial": 3}
    trials = lab.table("Session.Trial").fetch()
    assert [(t["subject_id"], t["trial"], t["score"]) for t in trials] == [
        (1, 1, 0.5),
        (1, 2, 0.7),
        (2, 1, 0.9),
    ]
    assert lab.table("Session").fetch1({"subject_id": 1})["note"] == ""


def test_a_bad_part_row_leaves_nothing_behind(lab):
    with pytest.raises(DataError, match=r"row 2, Trial row 1: attribute 'score': expected float64, got 'x'"):
        lab.table("Session").insert(
            [
                {"subject_id": 1, "session": 1, "Trial": [{"trial": 1, "score": 0.5}]},
                {"subject_id": 1, "session": 2, "Trial": [{"trial": 1, "score": "x"}]},
            ]
        )
    assert lab.table("Session").count() == 0 and lab.table("Session.Trial").count() == 0


def test_part_rows_must_agree_with_their_master_key(lab):
    with pytest.raises(DataError, match="row 1, Trial row 1: attribute 'subject_id' is 2, but the key being"):
        lab.table("Session").insert1(
            {"subject_id": 1, "session": 1, "Trial": [{"subject_id": 2, "trial": 1, "score": 1.0}]}
        )


def test_parts_and_computed_tables_are_not_inserted_directly(blobs, lab):
    with pytest.raises(
        UsageError,
        match="Session.Trial is a part table: write its rows together with their "
        "Session row, nested under 'Trial'",
    ):
        lab.table("Session.Trial").insert1({"subject_id": 1, "session": 1, "trial": 1, "score": 1.0})
    with pytest.raises(UsageError, match="Detection is computed: its rows come from `blobflow populate`"):
        blobs.table("Detection").insert1({"image_id": 1, "params_id": 1, "num_blobs": 3})


def test_duplicates_error_skip_or_replace(lab):
    subject = lab.table("Subject")
    with pytest.raises(DataError, match=r"row 2: Subject already has a row with key \(subject_id=2\); use "):
        subject.insert([{"subject_id": 9, "name": "new"}, {"subject_id": 2, "name": "again"}])
    assert subject.count() == 2  # row 1 was not kept either
    subject.insert(
        [{"subject_id": 9, "name": "new"}, {"subject_id": 2, "name": "again"}], skip_duplicates=True
    )
    assert subject.fetch1({"subject_id": 2})["name"] == "bob"
    subject.insert([{"subject_id": 2, "name": "again"}], replace=True)
    assert subject.fetch1({"subject_id": 2})["name"] == "again"
    with pytest.raises(UsageError, match="choose one of --skip-duplicates and --replace"):
        subject.insert([], skip_duplicates=True, replace=True)


def test_duplicate_keys_within_the_rows(lab):
    with pytest.raises(DataError, match=r"row 3: duplicate key \(subject_id=7\), also in row 1"):
        lab.table("Subject").insert(
            [{"subject_id": 7, "name": "a"}, {"subject_id": 8, "name": "b"}, {"subject_id": 7, "name": "c"}]
        )


def test_missing_parent_names_the_row(lab):
    with pytest.raises(DataError, match=r"row 2: no Subject row has \(subject_id=42\)"):
        lab.table("Session").insert([{"subject_id": 1, "session": 1}, {"subject_id": 42, "session": 1}])


def test_extra_fields_refused_or_ignored(lab):
    subject = lab.table("Subject")
    with pytest.raises(DataError, match="row 1: 'age' is not an attribute of Subject"):
        subject.insert1({"subject_id": 5, "name": "x", "age": 3})
    subject.insert1({"subject_id": 5, "name": "x", "age": 3}, ignore_extra_fields=True)
    assert subject.fetch1({"subject_id": 5}) == {"subject_id": 5, "name": "x"}


def test_many_rows_in_bulk(lab):
    subject = lab.table("Subject")
    subject.insert({"subject_id": np.arange(100, 20_100), "name": [f"s{i}" for i in range(20_000)]})
    assert subject.count() == 20_002
    assert subject.fetch1({"subject_id": 20_099})["name"] == "s19999"


def test_fetch1_needs_exactly_one_row(lab):
    with pytest.raises(DataError, match="expected one row, found more than one row"):
        lab.table("Subject").fetch1()
    with pytest.raises(DataError, match="expected one row, found no row"):
        lab.table("Subject").fetch1({"subject_id": 99})


def test_skip_duplicates_skips_the_parts_of_existing_masters(lab):
    session = lab.table("Session")
    session.insert1({"subject_id": 1, "session": 1, "Trial": [{"trial": 1, "score": 0.5}]})
    session.insert(
        [
            {"subject_id": 1, "session": 1, "Trial": [{"trial": 2, "score": 0.9}]},
            {"subject_id": 2, "session": 1, "Trial": [{"trial": 1, "score": 0.1}]},
        ],
        skip_duplicates=True,
    )
    trials = [(t["subject_id"], t["trial"], t["score"]) for t in lab.table("Session.Trial").fetch()]
    assert trials == [(1, 1, 0.5), (2, 1, 0.1)]


def test_replace_replaces_the_parts_of_existing_masters(lab):
    session = lab.table("Session")
    session.insert1(
        {"subject_id": 1, "session": 1, "Trial": [{"trial": 1, "score": 0.5}, {"trial": 2, "score": 0.6}]}
    )
    session.insert1(
        {"subject_id": 1, "session": 1, "note": "again", "Trial": [{"trial": 3, "score": 0.7}]}, replace=True
    )
    trials = [(t["trial"], t["score"]) for t in lab.table("Session.Trial").fetch()]
    assert trials == [(3, 0.7)]
    assert session.fetch1()["note"] == "again"


TWO_SCHEMAS = {
    "a.yaml": """
        schema: people
        tables:
          Person:
            tier: manual
            key: {person_id: int32}
        """,
    "b.yaml": """
        schema: visits
        tables:
          Visit:
            tier: manual
            depends: [people.Person]
            key: {visit: int16}
        """,
}


def test_foreign_keys_across_schemas_hold_on_both_databases(backend, tmp_path):
    pipe = backend.open(write_pipeline(tmp_path, TWO_SCHEMAS))
    pipe.init()
    pipe.table("Person").insert1({"person_id": 1})
    pipe.table("Visit").insert1({"person_id": 1, "visit": 1})
    with pytest.raises(DataError, match=r"row 2: no Person row has \(person_id=2\)"):
        pipe.table("Visit").insert([{"person_id": 1, "visit": 2}, {"person_id": 2, "visit": 1}])
    assert pipe.table("Visit").count() == 1
    pipe.close()


def test_nan_is_null_on_both_databases(backend, tmp_path):
    path = write_pipeline(
        tmp_path,
        """
        schema: measure
        tables:
          Reading:
            tier: manual
            key: {reading_id: int32}
            attributes:
              value: {type: float64, default: null}
              strict: float32
        """,
    )
    pipe = backend.open(path)
    pipe.init()
    reading = pipe.table("Reading")
    reading.insert1({"reading_id": 1, "value": float("nan"), "strict": 1.0})
    assert reading.fetch1()["value"] is None
    with pytest.raises(
        DataError, match="row 1: attribute 'strict' is NaN, which is stored as null, but Reading"
    ):
        reading.insert1({"reading_id": 2, "strict": np.float32("nan")})
    pipe.close()
