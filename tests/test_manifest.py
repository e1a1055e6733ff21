"""Valid manifests -> the Pipeline model: tables, keys, foreign keys, types, contents, parts, files."""

from __future__ import annotations

import datetime as dt
import decimal
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import write_pipeline

from blobflow.errors import ManifestError
from blobflow.manifest import load_pipeline
from blobflow.model import Attribute, AttributeType, MakeInput, Pipeline, Table, View, snake_case

BLOBS = Path(__file__).parent.parent / "pipelines" / "blobs"
S = "tutorial_blobs"


def f32(value: float) -> float:
    return float(np.float32(value))


def names(table: Table) -> list[str]:
    return [a.name for a in table.attributes]


def foreign_keys(table: Table) -> list[tuple]:
    return [(fk.parent, fk.columns, fk.in_key, fk.nullable, fk.unique) for fk in table.foreign_keys]


def load_tables(tmp_path: Path, tables: str, schema: str = "lab") -> Pipeline:
    """A one-file pipeline from its `tables:` section, written at the indentation of a YAML mapping."""
    return load_pipeline(write_pipeline(tmp_path, f"schema: {schema}\ntables:\n" + _indent(tables)))


def _indent(text: str) -> str:
    return textwrap.indent(textwrap.dedent(text).strip("\n"), "  ") + "\n"


# ------------------------------------------------------------------------------------- the blobs pipeline


@pytest.fixture(scope="module")
def blobs() -> Pipeline:
    return load_pipeline(BLOBS)


def test_blobs_pipeline_tables_in_dependency_order(blobs: Pipeline) -> None:
    assert list(blobs.tables) == [
        f"{S}.Image",
        f"{S}.DetectionParams",
        f"{S}.Detection",
        f"{S}.Detection.Blob",
        f"{S}.SelectedDetection",
    ]
    position = {name: i for i, name in enumerate(blobs.tables)}
    for table in blobs:
        for foreign_key in table.foreign_keys:
            assert position[foreign_key.parent] < position[table.qualified_name]
    assert blobs.schemas == (S,)
    assert blobs.sources == (str(BLOBS / "pipeline.yaml"),)
    assert blobs.root == str(BLOBS.resolve())
    assert blobs.database is None
    assert blobs.description == "Blob detection over images x parameter sets"
    assert list(blobs.views) == ["blobs"]
    assert blobs.views["blobs"].function == "plot_blobs"


def test_blobs_pipeline_keys_tiers_and_sql_names(blobs: Pipeline) -> None:
    summary = {t.name: (t.tier, t.sql_name, t.primary_key, tuple(a.name for a in t.secondary)) for t in blobs}
    assert summary == {
        "Image": ("manual", "image", ("image_id",), ("image_name", "image")),
        "DetectionParams": (
            "lookup",
            "detection_params",
            ("params_id",),
            ("min_sigma", "max_sigma", "threshold"),
        ),
        "Detection": ("computed", "detection", ("image_id", "params_id"), ("num_blobs",)),
        "Detection.Blob": (
            "part",
            "detection__blob",
            ("image_id", "params_id", "blob_idx"),
            ("x", "y", "radius"),
        ),
        "SelectedDetection": ("manual", "selected_detection", ("image_id",), ("params_id",)),
    }
    detection = blobs.table(f"{S}.Detection")
    assert detection.parts == (f"{S}.Detection.Blob",)
    assert blobs.table(f"{S}.Detection.Blob").master == f"{S}.Detection"
    assert blobs.table(f"{S}.Detection.Blob").is_part
    assert detection.is_derived and not blobs.table(f"{S}.Image").is_derived
    assert blobs.table(f"{S}.Image").description == "Images for blob detection"
    # Each table is located where it is named, for errors about the table as a whole.
    lines = (BLOBS / "pipeline.yaml").read_text().splitlines()
    for table in blobs:
        line = lines[table.location.line - 1]
        assert line[table.location.column - 1 :] == table.name.rsplit(".", 1)[-1] + ":"


def test_blobs_pipeline_attributes(blobs: Pipeline) -> None:
    image = blobs.table(f"{S}.Image")
    assert image.attributes == (
        Attribute("image_id", AttributeType("int16"), in_key=True),
        Attribute("image_name", AttributeType("varchar", length=100), in_key=False),
        Attribute("image", AttributeType("blob"), False, comment="grayscale image as a 2-D float array"),
    )
    assert str(image.attribute("image_name").type) == "varchar(100)"
    blob = blobs.table(f"{S}.Detection.Blob")
    assert blob.attribute("radius") == Attribute(
        "radius", AttributeType("float32"), False, comment="blob radius"
    )
    assert blob.attribute("image_id").inherited_from == f"{S}.Detection"
    assert blob.attribute("blob_idx").inherited_from is None


def test_blobs_pipeline_foreign_keys(blobs: Pipeline) -> None:
    def keys(name: str) -> list[tuple]:
        return foreign_keys(blobs.table(f"{S}.{name}"))

    assert keys("Image") == [] and keys("DetectionParams") == []
    assert keys("Detection") == [
        (f"{S}.Image", (("image_id", "image_id"),), True, False, False),
        (f"{S}.DetectionParams", (("params_id", "params_id"),), True, False, False),
    ]
    assert keys("Detection.Blob") == [
        (f"{S}.Detection", (("image_id", "image_id"), ("params_id", "params_id")), True, False, False),
    ]
    assert keys("SelectedDetection") == [
        (f"{S}.Image", (("image_id", "image_id"),), True, False, False),
        (f"{S}.Detection", (("image_id", "image_id"), ("params_id", "params_id")), False, False, False),
    ]
    assert [t.name for t in blobs.children(f"{S}.Detection")] == ["Detection.Blob", "SelectedDetection"]


def test_blobs_pipeline_shares_the_inherited_image_id(blobs: Pipeline) -> None:
    selected = blobs.table(f"{S}.SelectedDetection")
    assert names(selected) == ["image_id", "params_id"]
    assert selected.attribute("image_id") == Attribute(
        "image_id", AttributeType("int16"), in_key=True, inherited_from=f"{S}.Image"
    )
    assert selected.attribute("params_id") == Attribute(
        "params_id", AttributeType("int16"), in_key=False, inherited_from=f"{S}.Detection"
    )
    assert selected.foreign_keys[1].attributes == ("image_id", "params_id")


def test_blobs_pipeline_make_and_contents(blobs: Pipeline) -> None:
    make = blobs.table(f"{S}.Detection").make
    assert make is not None
    assert (make.module, make.function, make.reference) == ("detect", "detect_blobs", "detect:detect_blobs")
    assert make.inputs == (
        MakeInput("image", f"{S}.Image", "image"),
        MakeInput("params", f"{S}.DetectionParams", None),
    )
    params = blobs.table(f"{S}.DetectionParams")
    assert params.contents == (
        {"params_id": 1, "min_sigma": 2.0, "max_sigma": 6.0, "threshold": f32(0.001)},
        {"params_id": 2, "min_sigma": 3.0, "max_sigma": 8.0, "threshold": f32(0.002)},
        {"params_id": 3, "min_sigma": 4.0, "max_sigma": 20.0, "threshold": f32(0.01)},
    )
    assert params.contents[0]["threshold"] != 0.001  # rounded to float32, as both databases store it
    assert all(t.contents == () for t in blobs if t.name != "DetectionParams")
    assert all(t.make is None for t in blobs if t.name != "Detection")


# ---------------------------------------------------------------------------------------- attribute types


ALL_TYPES = {
    "a_int8": ("int8", AttributeType("int8")),
    "a_int16": ("int16", AttributeType("int16")),
    "a_int32": ("int32", AttributeType("int32")),
    "a_int64": ("int64", AttributeType("int64")),
    "a_uint8": ("uint8", AttributeType("uint8")),
    "a_uint16": ("uint16", AttributeType("uint16")),
    "a_uint32": ("uint32", AttributeType("uint32")),
    "a_float32": ("float32", AttributeType("float32")),
    "a_float64": ("float64", AttributeType("float64")),
    "a_bool": ("bool", AttributeType("bool")),
    "a_decimal": ("decimal(10,4)", AttributeType("decimal", precision=10, scale=4)),
    "a_varchar": ("varchar(255)", AttributeType("varchar", length=255)),
    "a_char": ("char(8)", AttributeType("char", length=8)),
    "a_text": ("text", AttributeType("text")),
    "a_date": ("date", AttributeType("date")),
    "a_datetime": ("datetime", AttributeType("datetime")),
    "a_uuid": ("uuid", AttributeType("uuid")),
    "a_json": ("json", AttributeType("json")),
    "a_enum": ("enum(low, high)", AttributeType("enum", values=("low", "high"))),
    "a_blob": ("blob", AttributeType("blob")),
}


def test_every_attribute_type_parses(tmp_path: Path) -> None:
    attributes = "\n".join(f"    {name}: {text}" for name, (text, _) in ALL_TYPES.items())
    table = load_tables(
        tmp_path, f"Everything:\n  tier: manual\n  key: {{id: int32}}\n  attributes:\n{attributes}"
    )
    table = table.table("lab.Everything")
    assert {a.name: a.type for a in table.secondary} == {name: t for name, (_, t) in ALL_TYPES.items()}
    assert all(not a.nullable and not a.has_default and a.comment == "" for a in table.secondary)
    assert [str(a.type) for a in table.secondary] == [
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float32", "float64", "bool",
        "decimal(10,4)", "varchar(255)", "char(8)", "text", "date", "datetime", "uuid", "json",
        "enum(low,high)", "blob",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int16", AttributeType("int16")),
        ("  int16  ", AttributeType("int16")),
        ("varchar( 12 )", AttributeType("varchar", length=12)),
        ("char(1)", AttributeType("char", length=1)),
        ("varchar(65535)", AttributeType("varchar", length=65535)),
        ("decimal(38,0)", AttributeType("decimal", precision=38, scale=0)),
        ("decimal(5, 5)", AttributeType("decimal", precision=5, scale=5)),
        ("enum('a', \"b c\", d)", AttributeType("enum", values=("a", "b c", "d"))),
        ("enum(only)", AttributeType("enum", values=("only",))),
    ],
)
def test_type_spellings(tmp_path: Path, text: str, expected: AttributeType) -> None:
    quoted = text.replace("'", "''")
    pipeline = load_tables(
        tmp_path, f"T:\n  tier: manual\n  key: {{id: int8}}\n  attributes: {{v: '{quoted}'}}"
    )
    assert pipeline.table("lab.T").attribute("v").type == expected


def test_long_form_attributes(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Session:
          tier: manual
          key:
            session_id: {type: uuid, comment: assigned by the rig}
          attributes:
            operator: {type: varchar(20), comment: who ran it, default: anonymous}
            note: {type: text, nullable: true}
            weight: {type: float64, default: null}
            status: {type: 'enum(new, done)', default: new, nullable: false}
            price: {type: 'decimal(6,2)', default: 1.5}
            started: {type: date, default: 2024-01-31}
            finished: {type: datetime, default: '2024-01-31 12:30:00'}
            code: {type: char(4), default: 'ab  '}
            checked: {type: bool, default: true}
            ratio: {type: float32, default: 0.1}
            count: {type: uint16, default: '7'}
            extra: {type: json, default: null}
        """,
    )
    session = pipeline.table("lab.Session")

    def spec(name: str) -> tuple:
        a = session.attribute(name)
        return (a.in_key, a.nullable, a.has_default, a.default, a.comment)

    assert spec("session_id") == (True, False, False, None, "assigned by the rig")
    assert spec("operator") == (False, False, True, "anonymous", "who ran it")
    assert spec("note") == (False, True, False, None, "")
    assert spec("weight") == (False, True, True, None, "")  # `default: null` implies nullable
    assert spec("status") == (False, False, True, "new", "")
    assert spec("price") == (False, False, True, decimal.Decimal("1.50"), "")
    assert str(session.attribute("price").default) == "1.50"
    assert spec("started") == (False, False, True, dt.date(2024, 1, 31), "")
    assert spec("finished") == (False, False, True, dt.datetime(2024, 1, 31, 12, 30), "")
    assert spec("code") == (False, False, True, "ab", "")
    assert spec("checked") == (False, False, True, True, "")
    assert spec("ratio") == (False, False, True, f32(0.1), "")
    assert spec("count") == (False, False, True, 7, "")
    assert spec("extra") == (False, True, True, None, "")
    assert session.attribute("operator").location.line == 8  # where the attribute is named


def test_lookup_contents_are_converted_to_attribute_types(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Stimulus:
          tier: lookup
          key: {stim: varchar(16)}
          attributes:
            contrast: float32
            duration: {type: 'decimal(5,3)'}
            kind: enum(grating, noise)
            created: date
            note: {type: text, nullable: true}
            repeats: {type: uint8, default: 3}
          contents:
            - {stim: g1, contrast: 0.1, duration: 0.25, kind: grating, created: 2024-05-01, note: null}
            - stim: n1
              contrast: '0.5'
              duration: '1.0005'
              kind: noise
              created: '2024-05-02'
              note: second
              repeats: 7
        Empty:
          tier: lookup
          key: {empty_id: int8}
          contents: []
        """,
    )
    assert pipeline.table("lab.Stimulus").contents == (
        {
            "stim": "g1",
            "contrast": f32(0.1),
            "duration": decimal.Decimal("0.250"),
            "kind": "grating",
            "created": dt.date(2024, 5, 1),
            "note": None,
        },
        {
            "stim": "n1",
            "contrast": 0.5,
            "duration": decimal.Decimal("1.000"),  # rounded half-even to the declared scale
            "kind": "noise",
            "created": dt.date(2024, 5, 2),
            "note": "second",
            "repeats": 7,
        },
    )
    assert pipeline.table("lab.Empty").contents == ()


# ------------------------------------------------------------------------------------------- dependencies


def test_depends_with_rename(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Neuron:
          tier: manual
          key: {animal: varchar(16), neuron: int32}
        Synapse:
          tier: manual
          depends:
            - {table: Neuron, rename: {neuron: pre}}
            - table: Neuron
              rename: {neuron: post}
          attributes: {strength: float64}
        """,
    )
    synapse = pipeline.table("lab.Synapse")
    assert synapse.primary_key == ("animal", "pre", "post")
    assert synapse.attribute("pre") == Attribute(
        "pre", AttributeType("int32"), in_key=True, inherited_from="lab.Neuron"
    )
    assert synapse.attribute("animal").type == AttributeType("varchar", length=16)
    assert [(fk.parent, fk.columns, fk.in_key) for fk in synapse.foreign_keys] == [
        ("lab.Neuron", (("animal", "animal"), ("neuron", "pre")), True),
        ("lab.Neuron", (("animal", "animal"), ("neuron", "post")), True),
    ]


def test_references_nullable_and_unique(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Person:
          tier: manual
          key: {person_id: int32}
        Desk:
          tier: manual
          key: {desk_id: int16}
          references:
            - {table: Person, rename: {person_id: owner_id}, nullable: true, unique: true}
            - Person
        """,
    )
    desk = pipeline.table("lab.Desk")
    assert desk.primary_key == ("desk_id",)
    assert names(desk) == ["desk_id", "owner_id", "person_id"]
    assert desk.attribute("owner_id") == Attribute(
        "owner_id", AttributeType("int32"), in_key=False, nullable=True, inherited_from="lab.Person"
    )
    assert desk.attribute("person_id").nullable is False
    assert foreign_keys(desk) == [
        ("lab.Person", (("person_id", "owner_id"),), False, True, True),
        ("lab.Person", (("person_id", "person_id"),), False, False, False),
    ]


def test_single_dependency_may_be_written_without_a_list(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Image:
          tier: manual
          key: {image_id: int16}
        Label:
          tier: manual
          depends: Image
          attributes: {label: text}
        """,
    )
    assert pipeline.table("lab.Label").primary_key == ("image_id",)


def test_parts_key_is_master_key_plus_own(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Probe:
          tier: lookup
          key: {probe: char(4)}
        Recording:
          tier: manual
          key: {rec_id: int32}
        Sorting:
          tier: imported
          depends: [Recording]
          make: sorting:sort
          parts:
            Unit:
              key: {unit: int16}
              attributes: {rate: float32}
            Channel:
              depends: [Probe]
              key: {channel: uint16}
              indexes: [[channel]]
            Summary:
        """,
    )
    unit, channel, summary = (pipeline.table(f"lab.Sorting.{p}") for p in ("Unit", "Channel", "Summary"))
    assert unit.primary_key == ("rec_id", "unit")
    assert channel.primary_key == ("rec_id", "probe", "channel")
    assert summary.primary_key == ("rec_id",)
    assert [(fk.parent, fk.attributes) for fk in channel.foreign_keys] == [
        ("lab.Sorting", ("rec_id",)),
        ("lab.Probe", ("probe",)),
    ]
    assert channel.indexes == (("channel",),)
    assert (channel.tier, channel.master, channel.sql_name) == ("part", "lab.Sorting", "sorting__channel")
    assert pipeline.table("lab.Sorting").parts == (
        "lab.Sorting.Unit",
        "lab.Sorting.Channel",
        "lab.Sorting.Summary",
    )
    order = list(pipeline.tables)
    assert order.index("lab.Probe") < order.index("lab.Sorting.Channel")
    assert order.index("lab.Sorting") < order.index("lab.Sorting.Unit")


def test_part_can_be_a_parent(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Scan:
          tier: manual
          key: {scan_id: int16}
        Segmentation:
          tier: computed
          depends: [Scan]
          make: seg:segment
          parts:
            Cell:
              key: {cell: int32}
        CellLabel:
          tier: manual
          depends: [Segmentation.Cell]
          attributes: {label: varchar(32)}
        """,
    )
    label = pipeline.table("lab.CellLabel")
    assert label.primary_key == ("scan_id", "cell")
    assert label.foreign_keys[0].parent == "lab.Segmentation.Cell"


# --------------------------------------------------------------------------- indexes, key_source, make


def test_indexes_and_key_source(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        Image:
          tier: manual
          key: {image_id: int16}
          attributes: {camera: varchar(20), taken: datetime}
          indexes:
            - [camera, taken]
            - [taken]
        Thumbnail:
          tier: computed
          depends: [Image]
          key_source: Image & 'camera = "front"'
          make: thumbs:make_thumbnail
          attributes: {thumb: blob}
        """,
    )
    assert pipeline.table("lab.Image").indexes == (("camera", "taken"), ("taken",))
    assert pipeline.table("lab.Image").key_source is None
    assert pipeline.table("lab.Thumbnail").key_source == "Image & 'camera = \"front\"'"
    assert pipeline.table("lab.Thumbnail").indexes == ()


MAKE_INPUTS = """
Image:
  tier: manual
  key: {image_id: int16}
  attributes: {pixels: blob, scale: float32}
Params:
  tier: lookup
  key: {params_id: int16}
Detection:
  tier: computed
  depends: [Image, Params]
  make: detect:detect
  parts:
    Blob:
      key: {blob_idx: int32}
Refinement:
  tier: computed
  depends: [Detection.Blob]
  make:
    function: refine.steps:refine
    inputs: {INPUTS}
"""


def test_make_inputs_name_tables_and_attributes(tmp_path: Path) -> None:
    inputs = "{pixels: Image.pixels, params: Params, blob: Detection.Blob, detection: lab.Detection}"
    pipeline = load_tables(tmp_path, MAKE_INPUTS.replace("{INPUTS}", inputs))
    make = pipeline.table("lab.Refinement").make
    assert (make.module, make.function) == ("refine.steps", "refine")
    assert make.inputs == (
        MakeInput("pixels", "lab.Image", "pixels"),
        MakeInput("params", "lab.Params", None),
        MakeInput("blob", "lab.Detection.Blob", None),
        MakeInput("detection", "lab.Detection", None),
    )
    assert pipeline.table("lab.Detection").make.inputs == ()


def test_make_input_part_with_wider_key_is_rejected(tmp_path: Path) -> None:
    text = MAKE_INPUTS.replace("depends: [Detection.Blob]", "depends: [Detection]")
    with pytest.raises(ManifestError) as caught:
        load_tables(tmp_path, text.replace("{INPUTS}", "{blob: Detection.Blob}"))
    assert caught.value.message == (
        "input 'blob': Detection.Blob has key attributes (blob_idx) that are not in Refinement's key, "
        "so no single row matches a key"
    )
    assert (caught.value.location.line, caught.value.location.column) == (22, 22)  # at "Detection.Blob"


# ------------------------------------------------------------------------------------- files and schemas


IMAGING = """
schema: imaging
database: sqlite:///lab.db
tables:
  Image:
    tier: manual
    key: {image_id: int16}
"""
ANALYSIS = """
schema: analysis
description: Analyses of the imaging schema
tables:
  Detection:
    tier: computed
    depends: [imaging.Image]
    make: detect:detect
  Image:
    tier: manual
    description: same name, other schema
    key: {local_id: int32}
"""


def test_directory_of_two_schemas_with_cross_schema_dependency(tmp_path: Path) -> None:
    root = write_pipeline(tmp_path, {"10_imaging.yaml": IMAGING, "20_analysis.yml": ANALYSIS})
    pipeline = load_pipeline(root)
    assert pipeline.schemas == ("imaging", "analysis")
    order = list(pipeline.tables)
    assert sorted(order) == ["analysis.Detection", "analysis.Image", "imaging.Image"]
    assert order.index("imaging.Image") < order.index("analysis.Detection")
    detection = pipeline.table("analysis.Detection")
    assert (detection.schema, detection.primary_key) == ("analysis", ("image_id",))
    assert detection.foreign_keys[0].parent == "imaging.Image"
    assert detection.attribute("image_id").inherited_from == "imaging.Image"
    assert pipeline.table("analysis.Image").primary_key == ("local_id",)
    assert pipeline.sources == (str(root / "10_imaging.yaml"), str(root / "20_analysis.yml"))
    assert pipeline.root == str(root.resolve())
    assert pipeline.database == "sqlite:///lab.db"
    assert pipeline.description == "Analyses of the imaging schema"


def test_directory_files_are_loaded_sorted_by_name(tmp_path: Path) -> None:
    one_table = "schema: {schema}\ntables:\n  {table}:\n    tier: manual\n    key: {{id: int8}}\n"
    root = write_pipeline(
        tmp_path,
        {
            "b.yaml": one_table.format(schema="second", table="Beta"),
            "a.yml": one_table.format(schema="first", table="Alpha"),
            "c.yaml": one_table.format(schema="third", table="Gamma"),
            "notes.txt": "not a manifest: {",
            "d.yaml.bak": "not a manifest either: {",
        },
    )
    pipeline = load_pipeline(root)
    assert [Path(s).name for s in pipeline.sources] == ["a.yml", "b.yaml", "c.yaml"]
    assert pipeline.schemas == ("first", "second", "third")
    assert list(pipeline.tables) == ["first.Alpha", "second.Beta", "third.Gamma"]


def test_a_data_file_in_a_pipeline_directory_says_what_went_wrong(tmp_path: Path) -> None:
    one_table = "schema: lab\ntables:\n  Sample:\n    tier: manual\n    key: {id: int8}\n"
    root = write_pipeline(tmp_path, {"pipeline.yaml": one_table, "samples.yaml": "- {id: 1}\n- {id: 2}\n"})
    with pytest.raises(ManifestError) as caught:
        load_pipeline(root)
    assert str(caught.value) == (
        f"{root / 'samples.yaml'}:1:1: a manifest must be a mapping, got a list; every *.yaml in the "
        f"pipeline directory {root} is read as a manifest: keep data files elsewhere (a subdirectory, "
        "say) or give the manifest file itself with -p"
    )
    assert [t for t in load_pipeline(root / "pipeline.yaml").tables] == ["lab.Sample"]


def test_views_are_parsed(tmp_path: Path) -> None:
    pipeline = load_pipeline(
        write_pipeline(
            tmp_path,
            """
            schema: lab
            tables:
              Image:
                tier: manual
                key: {image_id: int16}
            views:
              gallery: plots:show_gallery
              blob_sizes:
                function: plots.histograms:blob_sizes
                description: Histogram of blob radii
            """,
        )
    )
    assert pipeline.views == {
        "gallery": View("gallery", "plots", "show_gallery", ""),
        "blob_sizes": View("blob_sizes", "plots.histograms", "blob_sizes", "Histogram of blob radii"),
    }
    assert pipeline.views["gallery"].location.line == 7


def test_write_pipeline_dedents(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, "\n    schema: lab\n    tables: {}\n")
    assert path == tmp_path / "pipeline.yaml"
    assert path.read_text() == "schema: lab\ntables: {}\n"


# ------------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("name", "sql"),
    [
        ("HTTPLog", "http_log"),
        ("DetectionParams", "detection_params"),
        ("Image", "image"),
        ("SelectedDetection", "selected_detection"),
        ("XMLHttpRequest", "xml_http_request"),
        ("ABTest", "ab_test"),
    ],
)
def test_snake_case(name: str, sql: str) -> None:
    assert snake_case(name) == sql


def test_sql_names_of_tables_and_parts(tmp_path: Path) -> None:
    pipeline = load_tables(
        tmp_path,
        """
        HTTPLog:
          tier: manual
          key: {log_id: int32}
          parts:
            RawLine:
              key: {line_no: int32}
        """,
    )
    assert [t.sql_name for t in pipeline] == ["http_log", "http_log__raw_line"]
