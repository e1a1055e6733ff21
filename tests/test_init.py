"""`init`: tables created as declared, idempotent, additive, and refusing when definitions drift."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa

from blobflow.errors import SchemaMismatch, UsageError
from blobflow.tables import CATALOGUE


def write(tmp_path, text: str, name: str = "pipeline.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def inspector_names(pipe, schema: str) -> set[str]:
    with pipe.database.engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names(schema=pipe.database.sql_schema(schema)))


def test_init_creates_readable_tables_and_contents(blobs):
    names = inspector_names(blobs, "tutorial_blobs")
    assert names == {
        "image",
        "detection_params",
        "detection",
        "detection__blob",
        "selected_detection",
        CATALOGUE,
        "_jobs__detection",
    }
    params = blobs.table("DetectionParams").fetch()
    assert params == [
        {"params_id": 1, "min_sigma": 2.0, "max_sigma": 6.0, "threshold": 0.001},
        {"params_id": 2, "min_sigma": 3.0, "max_sigma": 8.0, "threshold": 0.002},
        {"params_id": 3, "min_sigma": 4.0, "max_sigma": 20.0, "threshold": 0.01},
    ]


def test_init_is_idempotent_and_keeps_rows(blobs):
    blobs.table("Image").insert1({"image_id": 1, "image_name": "one", "image": [1, 2]})
    result = blobs.init()
    assert result.created == ()
    assert set(result.existing) == {t.name for t in blobs.model}
    assert result.contents_inserted == {"DetectionParams": 0}
    assert blobs.row_counts()["Image"] == 1


def test_foreign_keys_and_primary_keys_in_the_database(blobs):
    with blobs.database.engine.connect() as connection:
        inspector = sa.inspect(connection)
        schema = blobs.database.sql_schema("tutorial_blobs")
        assert inspector.get_pk_constraint("detection__blob", schema=schema)["constrained_columns"] == [
            "image_id",
            "params_id",
            "blob_idx",
        ]
        fks = inspector.get_foreign_keys("selected_detection", schema=schema)
    referred = sorted((fk["referred_table"], tuple(fk["constrained_columns"])) for fk in fks)
    assert referred == [("detection", ("image_id", "params_id")), ("image", ("image_id",))]


def test_lookup_contents_keep_existing_rows(backend, tmp_path):
    manifest = """
        schema: lk
        tables:
          Colour:
            tier: lookup
            key: {colour: varchar(10)}
            attributes: {hex: char(7)}
            contents:
              - {colour: red, hex: "#ff0000"}
        """
    pipe = backend.open(write(tmp_path, manifest))
    pipe.init()
    pipe.table("Colour").insert1({"colour": "blue", "hex": "#0000ff"})
    pipe.init()
    assert pipe.table("Colour").fetch() == [
        {"colour": "blue", "hex": "#0000ff"},
        {"colour": "red", "hex": "#ff0000"},
    ]


def test_init_adds_new_tables_and_refuses_changed_ones(backend, tmp_path):
    first = """
        schema: grow
        tables:
          Subject:
            tier: manual
            key: {subject_id: int32}
            attributes: {name: varchar(40)}
        """
    path = write(tmp_path, first)
    pipe = backend.open(path)
    schema_map = pipe.database.schema_map
    pipe.init()
    pipe.close()

    from blobflow import open_pipeline

    path.write_text(
        textwrap.dedent(first)
        + textwrap.indent(
            textwrap.dedent("""
        Session:
          tier: manual
          depends: [Subject]
          key: {session: int16}
        """),
            "  ",
        )
    )
    pipe = open_pipeline(path, backend.url, schema_map)
    assert pipe.init().created == ("Session",)
    pipe.close()

    changed = path.read_text().replace("{name: varchar(40)}", "{name: varchar(80), age: int16}")
    path.write_text(changed)
    pipe = open_pipeline(path, backend.url, schema_map)
    with pytest.raises(SchemaMismatch) as error:
        pipe.init()
    message = str(error.value)
    assert (
        "Subject: attribute 'name': type varchar(40) in the database, varchar(80) in the manifest" in message
    )
    assert "Subject: attribute 'age' is in the manifest but not in the database" in message
    pipe.close()


def test_comment_changes_are_not_differences(backend, tmp_path):
    text = """
        schema: doc
        tables:
          Thing:
            tier: manual
            description: first words
            key: {thing_id: int32}
            attributes: {size: {type: float64, comment: in metres}}
        """
    path = write(tmp_path, text)
    pipe = backend.open(path)
    pipe.init()
    from blobflow import open_pipeline

    path.write_text(path.read_text().replace("in metres", "in m").replace("first words", "other words"))
    again = open_pipeline(path, backend.url, pipe.database.schema_map)
    assert again.init().created == ()


def test_unknown_table_name_is_a_usage_error(blobs):
    with pytest.raises(UsageError, match="unknown table 'Nope'; the pipeline has: Image, DetectionParams"):
        blobs.table("Nope")
    assert blobs.table("detection.blob").name == "Detection.Blob"
    assert blobs.table("detection_params").name == "DetectionParams"


def test_drop_removes_every_table(backend):
    pipe = backend.open()
    pipe.init()
    pipe.table("Image").insert1({"image_id": 1, "image_name": "x", "image": 1.0})
    plan = pipe.plan_drop()
    assert plan.row_counts == {
        "Image": 1,
        "DetectionParams": 3,
        "Detection": 0,
        "Detection.Blob": 0,
        "SelectedDetection": 0,
    }
    pipe.drop()
    from blobflow import open_pipeline

    again = open_pipeline(pipe.model, backend.url, pipe.database.schema_map)
    assert all(count is None for count in again.row_counts().values())
    again.init()  # and the pipeline can start over
    assert again.row_counts()["DetectionParams"] == 3
