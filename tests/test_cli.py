"""The command line through click's CliRunner (the group's error boundary included) and, for the entry
point and the confirmation prompt, as real processes: exact output, exit status, what is written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import CLEAN_ENV, run_in_pty
from sqlalchemy.engine import make_url

from blobflow import open_pipeline
from blobflow.cli import cli

REPO = Path(__file__).resolve().parent.parent
BLOBS = REPO / "pipelines" / "blobs"
BLOBFLOW_SCRIPT = Path(sys.executable).parent / "blobflow"
BLOBS_TABLES = "Image, DetectionParams, Detection, Detection.Blob, SelectedDetection"


LAB = """\
    schema: {schema}
    tables:
      Subject:
        tier: manual
        key: {{subject_id: int32}}
        attributes:
          name: varchar(20)
          weight: {{type: float64, default: null}}
          scan: {{type: blob, default: null}}
      Session:
        tier: manual
        depends: [Subject]
        key: {{session: int16}}
        attributes:
          note: {{type: text, default: ""}}
        parts:
          Trial:
            key: {{trial: int16}}
            attributes: {{score: float64}}
      Score:
        tier: computed
        depends: [Session]
        attributes: {{total: float64}}
        make: {{function: "labmake:total"}}
    """

LABMAKE = """\
import numpy as np


def total(key):
    return {"total": 1.0}


def ramp(n):
    return np.arange(n, dtype=np.float32) / 2
"""


def invoke(*args: object, input: str | None = None, env: dict | None = None) -> Result:
    runner = CliRunner(env={**CLEAN_ENV, **(env or {})})
    return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def clean_subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env.update({k: v for k, v in CLEAN_ENV.items() if v is not None})
    return env


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in tmp_path (no stray blobflow.db in the repository) and forget the modules the pipelines of
    this test imported from beside their manifests, so the next test imports its own copies."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


class Project:
    """A manifest in tmp_path, in a schema of its own, and the CLI pointed at it and at the backend."""

    def __init__(self, manifest: Path, url: str, schema: str):
        self.manifest = manifest
        self.url = url
        self.schema = schema

    def cli(self, *args: object, input: str | None = None) -> Result:
        return invoke("-p", self.manifest, "--database", self.url, *args, input=input)

    def ok(self, *args: object, input: str | None = None) -> Result:
        result = self.cli(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def fails(self, *args: object, input: str | None = None) -> str:
        """Exit status 2 and exactly one `Error: ` line on stderr, nothing on stdout; the error text."""
        result = self.cli(*args, input=input)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert "Traceback" not in result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        return lines[0].removeprefix("Error: ")

    def counts(self) -> dict[str, int | None]:
        with open_pipeline(self.manifest, self.url) as pipe:
            return pipe.row_counts()

    def fetch(self, table: str, **options) -> list[dict]:
        with open_pipeline(self.manifest, self.url) as pipe:
            return pipe.table(table).fetch(**options)


def copy_blobs(directory: Path, schema: str) -> Path:
    """pipelines/blobs copied into `directory`, its schema renamed."""
    directory.mkdir()
    for source in [*BLOBS.glob("*.py"), BLOBS / "pipeline.yaml"]:
        shutil.copy(source, directory / source.name)
    manifest = directory / "pipeline.yaml"
    text, count = re.subn(r"^schema: .*$", f"schema: {schema}", manifest.read_text(), flags=re.M)
    assert count == 1
    manifest.write_text(text)
    return manifest


@pytest.fixture
def blobs(backend, tmp_path) -> Project:
    """The blobs pipeline, not yet initialised."""
    schema = backend.schema("cli_blobs")
    return Project(copy_blobs(tmp_path / "blobs", schema), backend.url, schema)


@pytest.fixture
def lab(backend, tmp_path) -> Project:
    """A small pipeline with a blob attribute, a part and a computed table; initialised, two subjects."""
    directory = tmp_path / "lab"
    directory.mkdir()
    manifest = directory / "lab.yaml"
    schema = backend.schema("cli_lab")
    manifest.write_text(textwrap.dedent(LAB.format(schema=schema)))
    (directory / "labmake.py").write_text(LABMAKE)
    project = Project(manifest, backend.url, schema)
    project.ok("init")
    (tmp_path / "subjects.yaml").write_text("- {subject_id: 1, name: ann}\n- {subject_id: 2, name: bob}\n")
    result = project.ok("insert", "Subject", tmp_path / "subjects.yaml")
    assert result.stderr == "inserted 2 Subject rows\n"
    return project


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --- init, tables, describe -----------------------------------------------------------------------


def test_init_creates_then_finds_everything_and_hides_the_password(backend, blobs):
    password = None
    if backend.name == "postgres":  # trust auth accepts and ignores a password; else the URL has one
        url = make_url(backend.url)
        password = url.password or "sekrit"
        blobs.url = url.set(password=password).render_as_string(hide_password=False)
        shown = blobs.url.replace(f":{password}@", ":***@")
        assert shown != blobs.url
    else:
        shown = backend.url
    first = blobs.ok("init")
    assert first.stdout == ""
    assert first.stderr == (
        "created Image\n"
        "created DetectionParams\n"
        "created Detection\n"
        "created Detection.Blob\n"
        "created SelectedDetection\n"
        "inserted 3 contents rows into DetectionParams\n"
        f"5 tables created, 0 already there ({shown})\n"
    )
    second = blobs.ok("init")
    assert (second.stdout, second.stderr) == ("", f"0 tables created, 5 already there ({shown})\n")
    assert password is None or password not in first.output + second.output
    assert blobs.counts()["DetectionParams"] == 3


def test_tables_plain_text_and_json(blobs):
    before = blobs.ok("tables")
    assert before.stdout == (
        "table              tier      key                            rows\n"
        "Image              manual    image_id                       -\n"
        "DetectionParams    lookup    params_id                      -\n"
        "Detection          computed  image_id, params_id            -\n"
        "Detection.Blob     part      image_id, params_id, blob_idx  -\n"
        "SelectedDetection  manual    image_id                       -\n"
    )
    assert before.stderr == ""
    blobs.ok("init")
    after = blobs.ok("tables")
    assert after.stdout.splitlines() == [
        "table              tier      key                            rows",
        "Image              manual    image_id                       0",
        "DetectionParams    lookup    params_id                      3",
        "Detection          computed  image_id, params_id            0",
        "Detection.Blob     part      image_id, params_id, blob_idx  0",
        "SelectedDetection  manual    image_id                       0",
    ]
    as_json = blobs.ok("tables", "--json")
    assert json.loads(as_json.stdout) == [
        {"table": "Image", "tier": "manual", "key": "image_id", "rows": 0},
        {"table": "DetectionParams", "tier": "lookup", "key": "params_id", "rows": 3},
        {"table": "Detection", "tier": "computed", "key": "image_id, params_id", "rows": 0},
        {"table": "Detection.Blob", "tier": "part", "key": "image_id, params_id, blob_idx", "rows": 0},
        {"table": "SelectedDetection", "tier": "manual", "key": "image_id", "rows": 0},
    ]


def test_describe_shows_definitions_case_insensitively(blobs):
    not_yet = blobs.ok("describe", "IMAGE")
    assert not_yet.stderr == "Image: not created yet (run blobflow init)\n"
    blobs.ok("init")
    image = blobs.ok("describe", "image")
    assert image.stdout.splitlines() == [
        "# Images for blob detection",
        "# Image: manual",
        "image_id             : int16",
        "---",
        "image_name           : varchar(100)",
        "image                : blob              # grayscale image as a 2-D float array",
    ]
    assert image.stderr == "Image: 0 rows\n"
    blob = blobs.ok("describe", "detection.blob")
    assert blob.stdout.splitlines() == [
        "# Individual detected blobs",
        "# Detection.Blob: part",
        "-> master",
        "blob_idx             : int32",
        "---",
        "x                    : float32           # x coordinate",
        "y                    : float32           # y coordinate",
        "radius               : float32           # blob radius",
    ]
    assert blob.stderr == "Detection.Blob: 0 rows\n"
    detection = blobs.ok("describe", "Detection").stdout.splitlines()
    assert detection[:6] == [
        "# Blob detection results",
        "# Detection: computed, make detect:detect_blobs",
        "-> Image",
        "-> DetectionParams",
        "---",
        "num_blobs            : int32             # number of blobs detected",
    ]
    assert detection[6:9] == ["", "# Individual detected blobs", "# Detection.Blob: part"]
    selected = blobs.ok("describe", "selecteddetection").stdout.splitlines()
    assert selected[2:] == ["-> Image", "---", "-> Detection"]
    assert blobs.ok("describe", "DetectionParams").stderr == "DetectionParams: 3 rows\n"


def test_unknown_table_lists_the_pipeline(blobs):
    blobs.ok("init")
    expected = f"unknown table 'Nope'; the pipeline has: {BLOBS_TABLES}"
    assert blobs.fails("describe", "Nope") == expected
    (blobs.manifest.parent / "rows.yaml").write_text("- {x: 1}\n")
    assert blobs.fails("insert", "Nope", blobs.manifest.parent / "rows.yaml") == expected


# --- insert -----------------------------------------------------------------------------------------


def test_insert_yaml_json_jsonl_csv(lab, tmp_path):
    yaml_rows = write(tmp_path / "in" / "rows.yaml", "- {subject_id: 3, name: cy, weight: 50.5}\n")
    assert lab.ok("insert", "subject", yaml_rows).stderr == "inserted 1 Subject rows\n"
    json_rows = write(
        tmp_path / "in" / "rows.json",
        '[{"subject_id": 4, "name": "di"},\n {"subject_id": 5, "name": "ed", "weight": 70}]\n',
    )
    assert lab.ok("insert", "Subject", json_rows).stderr == "inserted 2 Subject rows\n"
    jsonl_rows = write(
        tmp_path / "in" / "rows.jsonl",
        '{"subject_id": 6, "name": "fa"}\n\n{"subject_id": 7, "name": "gu", "weight": null}\n',
    )
    assert lab.ok("insert", "SUBJECT", jsonl_rows).stderr == "inserted 2 Subject rows\n"
    csv_rows = write(tmp_path / "in" / "rows.csv", "subject_id,name,weight\n8,hy,61.25\n9,io,\n")
    result = lab.ok("insert", "Subject", csv_rows)
    assert (result.stdout, result.stderr) == ("", "inserted 2 Subject rows\n")
    rows = lab.fetch("Subject", attributes=["subject_id", "name", "weight"])
    assert rows == [
        {"subject_id": 1, "name": "ann", "weight": None},
        {"subject_id": 2, "name": "bob", "weight": None},
        {"subject_id": 3, "name": "cy", "weight": 50.5},
        {"subject_id": 4, "name": "di", "weight": None},
        {"subject_id": 5, "name": "ed", "weight": 70.0},
        {"subject_id": 6, "name": "fa", "weight": None},
        {"subject_id": 7, "name": "gu", "weight": None},
        {"subject_id": 8, "name": "hy", "weight": 61.25},
        {"subject_id": 9, "name": "io", "weight": None},
    ]
    assert all(type(r["subject_id"]) is int for r in rows)  # CSV strings were converted


def test_insert_from_stdin_and_with_format(lab, tmp_path):
    assert lab.ok("insert", "Subject", "-", input="- {subject_id: 3, name: cy}\n").stderr == (
        "inserted 1 Subject rows\n"
    )
    assert lab.ok("insert", "Subject", "-", input='[{"subject_id": 4, "name": "di"}]').stderr == (
        "inserted 1 Subject rows\n"
    )
    csv_text = "subject_id,name,weight\n5,ed,1.5\n"
    assert lab.ok("insert", "Subject", "-", "--format", "csv", input=csv_text).stderr == (
        "inserted 1 Subject rows\n"
    )
    odd_name = write(
        tmp_path / "rows.txt", '{"subject_id": 6, "name": "fa"}\n{"subject_id": 7, "name": "gu"}\n'
    )
    assert lab.ok("insert", "Subject", odd_name, "--format", "jsonl").stderr == "inserted 2 Subject rows\n"
    assert [(r["subject_id"], r["name"], r["weight"]) for r in lab.fetch("Subject")][2:] == [
        (3, "cy", None),
        (4, "di", None),
        (5, "ed", 1.5),
        (6, "fa", None),
        (7, "gu", None),
    ]
    # --format overrides the extension: CSV text in a .yaml file is one YAML string, not rows
    as_csv = write(tmp_path / "really_csv.yaml", "subject_id,name\n8,hy\n")
    assert lab.fails("insert", "Subject", as_csv) == f"{as_csv}: expected a list of rows, got str"
    assert lab.ok("insert", "Subject", as_csv, "--format", "csv").stderr == "inserted 1 Subject rows\n"
    bad_format = lab.cli("insert", "Subject", as_csv, "--format", "xml")
    assert (bad_format.exit_code, bad_format.stdout) == (2, "")
    assert "Invalid value for '--format': 'xml' is not one of 'yaml', 'json', 'jsonl', 'csv'." in (
        bad_format.stderr
    )


def test_blob_values_from_npy_image_and_call(lab, tmp_path):
    from skimage import io as skio

    data = tmp_path / "data"
    data.mkdir()
    array = np.arange(12, dtype=">i2").reshape(3, 4).T  # big-endian, Fortran-ordered
    np.save(data / "scan.npy", array)
    picture = (np.arange(20, dtype=np.uint8) * 12).reshape(4, 5)
    skio.imsave(data / "picture.png", picture, check_contrast=False)
    rows = write(
        data / "rows.yaml",
        """\
        - {subject_id: 3, name: npy, scan: {npy: scan.npy}}
        - {subject_id: 4, name: png, scan: {image: picture.png}}
        - {subject_id: 5, name: call, scan: {call: "labmake:ramp", args: [4]}}
        """,
    )
    assert lab.ok("insert", "Subject", rows).stderr == "inserted 3 Subject rows\n"
    # a CSV cell may hold the same mapping as JSON; paths are relative to the CSV file's directory
    csv_rows = write(data / "more.csv", 'subject_id,name,scan\n6,csv,"{""npy"": ""scan.npy""}"\n')
    assert lab.ok("insert", "Subject", csv_rows).stderr == "inserted 1 Subject rows\n"
    # from stdin, relative paths resolve against the current directory
    from_stdin = lab.ok(
        "insert", "Subject", "-", input="- {subject_id: 7, name: cwd, scan: {npy: data/scan.npy}}"
    )
    assert from_stdin.stderr == "inserted 1 Subject rows\n"
    scans = {r["subject_id"]: r["scan"] for r in lab.fetch("Subject", attributes=["subject_id", "scan"])}
    assert scans[1] is None
    for key in (3, 6, 7):
        assert scans[key].dtype == array.dtype and scans[key].shape == (4, 3)
        np.testing.assert_array_equal(scans[key], array)
    assert scans[4].dtype == np.uint8
    np.testing.assert_array_equal(scans[4], picture)
    assert scans[5].dtype == np.float32
    np.testing.assert_array_equal(scans[5], [0.0, 0.5, 1.0, 1.5])


def test_skip_duplicates_replace_and_extra_fields(lab, tmp_path):
    rows = write(tmp_path / "again.yaml", "- {subject_id: 2, name: bobby}\n- {subject_id: 3, name: cy}\n")
    assert lab.fails("insert", "Subject", rows) == (
        "row 1: Subject already has a row with key (subject_id=2); use --skip-duplicates or --replace"
    )
    assert lab.counts()["Subject"] == 2  # row 2 was not kept either
    kept = lab.ok("insert", "Subject", rows, "--skip-duplicates")
    assert kept.stderr == "inserted or kept 2 Subject rows\n"
    assert [r["name"] for r in lab.fetch("Subject")] == ["ann", "bob", "cy"]
    replaced = lab.ok("insert", "Subject", rows, "--replace")
    assert replaced.stderr == "inserted or replaced 2 Subject rows\n"
    assert [r["name"] for r in lab.fetch("Subject")] == ["ann", "bobby", "cy"]
    assert lab.fails("insert", "Subject", rows, "--replace", "--skip-duplicates") == (
        "choose one of --skip-duplicates and --replace"
    )
    extra = write(tmp_path / "extra.yaml", "- {subject_id: 4, name: di, age: 30}\n")
    assert lab.fails("insert", "Subject", extra) == (
        "row 1: 'age' is not an attribute of Subject (attributes: subject_id, name, weight, scan); "
        "--ignore-extra-fields skips such fields"
    )
    assert lab.ok("insert", "Subject", extra, "--ignore-extra-fields").stderr == "inserted 1 Subject rows\n"
    assert lab.fetch("Subject", attributes=["subject_id", "name"])[-1] == {"subject_id": 4, "name": "di"}


def test_nested_part_rows_in_yaml(lab, tmp_path):
    rows = write(
        tmp_path / "sessions.yaml",
        """\
        - subject_id: 1
          session: 1
          Trial:
            - {trial: 1, score: 0.5}
            - {trial: 2, score: 0.25}
        - subject_id: 2
          session: 1
          note: second
          Trial: [{trial: 1, score: 1.0}]
        """,
    )
    result = lab.ok("insert", "session", rows)
    assert result.stderr == "inserted 2 Session rows, 3 Session.Trial rows\n"
    assert lab.fetch("Session") == [
        {"subject_id": 1, "session": 1, "note": ""},
        {"subject_id": 2, "session": 1, "note": "second"},
    ]
    assert [(t["subject_id"], t["trial"], t["score"]) for t in lab.fetch("Session.Trial")] == [
        (1, 1, 0.5),
        (1, 2, 0.25),
        (2, 1, 1.0),
    ]


# --- insert errors: one line, exit 2, nothing written --------------------------------------------


# (table, file name, file text, the error after "Error: "; {dir} is the file's directory)
INSERT_ERRORS = [
    (
        "Subject",
        "bad.csv",
        "subject_id,name\n3,cy\nfour,di\n",
        "row 2: attribute 'subject_id': expected int32, got 'four'",
    ),
    (
        "Subject",
        "missing.csv",
        "subject_id,name\n3,\n",
        "row 1: missing attribute 'name' (varchar(20)) of Subject",
    ),
    (
        "Subject",
        "dup.yaml",
        "- {subject_id: 5, name: x}\n- {subject_id: 1, name: y}\n",
        "row 2: Subject already has a row with key (subject_id=1); use --skip-duplicates or --replace",
    ),
    (
        "Subject",
        "dup_within.yaml",
        "- {subject_id: 5, name: x}\n- {subject_id: 5, name: y}\n",
        "row 2: duplicate key (subject_id=5), also in row 1",
    ),
    (
        "Session",
        "orphan.yaml",
        "- {subject_id: 1, session: 1}\n- {subject_id: 42, session: 1}\n",
        "row 2: no Subject row has (subject_id=42)",
    ),
    (
        "Session",
        "badpart.yaml",
        "- {subject_id: 1, session: 1, Trial: [{trial: 1, score: 0.5}, {trial: 2, score: x}]}\n",
        "row 1, Trial row 2: attribute 'score': expected float64, got 'x'",
    ),
    (
        "Subject",
        "bad.json",
        '[{"subject_id": 3, "name": "cy"},\n {"subject_id": 4 "name": "x"}]\n',
        "{dir}/bad.json:2:19: invalid JSON: Expecting ',' delimiter",
    ),
    (
        "Subject",
        "bad.jsonl",
        '{"subject_id": 3, "name": "cy"}\n{"subject_id": 4 "name": "x"}\n',
        "{dir}/bad.jsonl:2:18: invalid JSON: Expecting ',' delimiter",
    ),
    (
        "Subject",
        "bad.yaml",
        "- {subject_id: 3, name: cy}\n- {subject_id: 4, name: [di}\n",
        "{dir}/bad.yaml:2:28: invalid YAML: expected ',' or ']', but got '}'",
    ),
    ("Subject", "scalar.json", '"rows"', "{dir}/scalar.json: expected a list of rows, got str"),
    (
        "Subject",
        "npy.yaml",
        "- {subject_id: 3, name: cy}\n- {subject_id: 4, name: di, scan: {npy: nope.npy}}\n",
        "row 2, attribute 'scan': cannot load npy 'nope.npy': FileNotFoundError: "
        "[Errno 2] No such file or directory: '{dir}/nope.npy'",
    ),
    (
        "Subject",
        "call.yaml",
        "- {subject_id: 3, name: cy, scan: {call: 'labmake:nothing'}}\n",
        "row 1, attribute 'scan': cannot load call 'labmake:nothing': ManifestError: "
        "cannot import 'labmake:nothing': module 'labmake' has no 'nothing'",
    ),
    (
        "session.trial",
        "part.yaml",
        "- {subject_id: 1, session: 1, trial: 1, score: 0.5}\n",
        "Session.Trial is a part table: write its rows together with their Session row, nested under 'Trial'",
    ),
    (
        "Score",
        "computed.yaml",
        "- {subject_id: 1, session: 1, total: 0.5}\n",
        "Score is computed: its rows come from `blobflow populate`, not insert",
    ),
]


def test_insert_errors_are_one_line_and_write_nothing(lab, tmp_path):
    unchanged = {"Subject": 2, "Session": 0, "Session.Trial": 0, "Score": 0}
    for table, name, text, expected in INSERT_ERRORS:
        path = tmp_path / "errors" / name
        expected = expected.replace("{dir}", str(path.parent))
        assert lab.fails("insert", table, write(path, text)) == expected, name
        assert lab.counts() == unchanged, name
    from_stdin = lab.fails("insert", "Subject", "-", input='[{"subject_id": 3}')
    # stdin without a --format is read as YAML, which reads JSON too (and YAML flow style).
    assert from_stdin == "<stdin>:1:19: invalid YAML: expected ',' or ']', but got '<stream end>'"
    assert lab.counts() == unchanged


# --- manifest and connection errors -------------------------------------------------------------


def test_manifest_error_is_one_line_unless_debug(tmp_path):
    manifest = write(
        tmp_path / "broken.yaml",
        """\
        schema: broken
        tables:
          Image:
            tier: manual
            key:
              image_id: int17
        """,
    )
    expected = f"Error: {manifest}:6:17: unknown attribute type 'int17'; did you mean 'int16'?\n"
    result = invoke("-p", manifest, "--database", f"sqlite:///{tmp_path / 'x.db'}", "tables")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", expected)
    debug = invoke("--debug", "-p", manifest, "--database", f"sqlite:///{tmp_path / 'x.db'}", "tables")
    assert debug.exit_code == 2 and debug.stdout == ""
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert "blobflow.errors.ManifestError: " in debug.stderr
    assert debug.stderr.endswith(expected)
    via_env = invoke("-p", manifest, "tables", env={"BLOBFLOW_DEBUG": "1"})
    assert via_env.exit_code == 2 and via_env.stderr.startswith("Traceback (most recent call last):\n")


@pytest.mark.parametrize(
    "command", [["query", "Image"], ["populate"], ["jobs"], ["delete", "Image", "--yes"], ["status"]]
)
def test_commands_before_init_say_to_run_init(blobs, command):
    if command == ["status"]:  # shows the pipeline with no rows yet: nothing to refuse
        assert "Image" in blobs.ok(*command).stdout
        return
    assert blobs.fails(*command).endswith("; run `blobflow init` first (or check --database)")


def test_a_table_added_to_the_manifest_after_init_says_to_run_init(blobs, tmp_path):
    blobs.ok("init")
    text = blobs.manifest.read_text()
    added = "  Note:\n    tier: manual\n    key: {note_id: int32}\n\nviews:"
    blobs.manifest.write_text(text.replace("\nviews:", "\n" + added, 1))
    notes = write(tmp_path / "notes.yaml", "- {note_id: 1}\n")
    for command in (["query", "Note"], ["insert", "Note", notes], ["delete", "Note", "--yes"]):
        message = blobs.fails(*command)
        assert "note" in message
        assert message.endswith(
            ": run `blobflow init` to create the pipeline's missing tables (or check --database)"
        )
    blobs.ok("init")
    blobs.ok("insert", "Note", notes)
    assert blobs.ok("query", "Note").stdout.startswith("note_id")


def test_integer_overflow_in_conditions_is_one_error_line(blobs):
    blobs.ok("init")
    blobs.ok("insert", "Image", BLOBS / "inserts" / "images.yaml")
    overflowing = "params_id * 9223372036854775807 > 0"
    refused = r"the database refused a value the query computes: (bigint|integer) out of range"
    assert re.fullmatch(refused, blobs.fails("populate", "detection", "--dry-run", "--where", overflowing))
    assert re.fullmatch(refused, blobs.fails("delete", f"DetectionParams & {overflowing}", "--yes"))
    assert blobs.counts()["DetectionParams"] == 3


def test_no_pipeline_given(tmp_path):
    result = invoke("tables")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: no pipeline given: use -p PATH, set BLOBFLOW_PIPELINE, or run where ./pipeline.yaml "
        "or ./pipeline/ exists\n"
    )


def test_connection_error_hides_the_password(tmp_path):
    manifest = copy_blobs(tmp_path / "blobs", "cli_blobs")
    result = invoke("-p", manifest, "--database", "postgresql://postgres:sekrit@127.0.0.1:1/test", "tables")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(
        "Error: cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:1/test: "
    )
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert "sekrit" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x", "unsupported database 'mysql'; use sqlite:/// or postgresql://"),
        (
            "postgresql+psycopg2://u:sekrit@h/x",
            "PostgreSQL is used through psycopg 3; write postgresql+psycopg:// instead of postgresql+psycopg2://",
        ),
    ],
)
def test_unsupported_database_urls(tmp_path, url, message):
    manifest = copy_blobs(tmp_path / "blobs", "cli_blobs")
    result = invoke("-p", manifest, "--database", url, "tables")
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")
    assert "sekrit" not in result.output


# --- drop ---------------------------------------------------------------------------------------------


# what drop lists before it asks or refuses: the blobs pipeline just after init
LISTING = (
    "  Image: 0 rows\n"
    "  DetectionParams: 3 rows\n"
    "  Detection: 0 rows\n"
    "  Detection.Blob: 0 rows\n"
    "  SelectedDetection: 0 rows\n"
)


def test_drop_refuses_without_yes_off_a_terminal_then_drops_with_yes(blobs):
    blobs.ok("init")
    refused = blobs.cli("drop", input="y\n")
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == (
        f"{LISTING}Error: drop deletes everything: pass --yes when not running on a terminal\n"
    )
    assert blobs.counts()["DetectionParams"] == 3
    dropped = blobs.ok("drop", "--yes")
    assert dropped.stderr == f"{LISTING}dropped {blobs.schema}\n"
    assert blobs.ok("tables").stdout.splitlines()[1:] == [
        "Image              manual    image_id                       -",
        "DetectionParams    lookup    params_id                      -",
        "Detection          computed  image_id, params_id            -",
        "Detection.Blob     part      image_id, params_id, blob_idx  -",
        "SelectedDetection  manual    image_id                       -",
    ]
    again = blobs.ok("drop")
    assert again.stderr == "nothing to drop: no table of the pipeline exists\n"


@pytest.mark.slow
def test_drop_asks_on_a_terminal(blobs, tmp_path):
    blobs.ok("init")
    command = [str(BLOBFLOW_SCRIPT), "-p", str(blobs.manifest), "--database", blobs.url, "drop"]
    question = f"Drop schema {blobs.schema} with 5 tables and 3 rows? [y/N] "
    status, output = run_in_pty(command, clean_subprocess_env(), tmp_path, answer=b"n")
    assert status == 0, output
    assert output == f"{LISTING}{question}n\nnothing dropped\n"  # the terminal echoes the answer
    assert blobs.counts()["DetectionParams"] == 3
    status, output = run_in_pty(command, clean_subprocess_env(), tmp_path, answer=b"y")
    assert status == 0, output
    assert output == f"{LISTING}{question}y\ndropped {blobs.schema}\n"
    assert set(blobs.counts().values()) == {None}


# --- help, environment, entry point -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[], *([name] for name in sorted(cli.commands))], ids=lambda c: c[0] if c else "cli"
)
def test_every_command_has_help_with_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: cli {' '.join(command)}".rstrip() + " [OPTIONS]")
    assert re.search(r"^  Example:\n    blobflow \S", result.stdout, flags=re.M), result.stdout
    assert invoke(*command, "-h").stdout == result.stdout


def test_environment_variables_and_precedence(blobs):
    blobs.ok("init")
    env = {"BLOBFLOW_PIPELINE": str(blobs.manifest), "BLOBFLOW_DATABASE_URL": blobs.url}
    from_env = invoke("tables", "--json", env=env)
    assert from_env.exit_code == 0, from_env.output
    assert [t["rows"] for t in json.loads(from_env.stdout)] == [0, 3, 0, 0, 0]
    wrong = {**env, "BLOBFLOW_DATABASE_URL": "mysql://x"}
    refused = invoke("tables", env=wrong)
    assert (refused.exit_code, refused.stderr) == (
        2,
        "Error: unsupported database 'mysql'; use sqlite:/// or postgresql://\n",
    )
    beaten = invoke("--database", blobs.url, "tables", "--json", env=wrong)
    assert beaten.exit_code == 0, beaten.output
    assert beaten.stdout == from_env.stdout
    # -p beats BLOBFLOW_PIPELINE too
    other = {**env, "BLOBFLOW_PIPELINE": str(blobs.manifest.parent / "missing.yaml")}
    assert invoke("-p", blobs.manifest, "tables", "--json", env=other).stdout == from_env.stdout


@pytest.mark.slow
def test_console_script_entry_point(tmp_path):
    assert BLOBFLOW_SCRIPT.is_file(), f"{BLOBFLOW_SCRIPT} is not installed (pip install -e .)"
    manifest = copy_blobs(tmp_path / "blobs", "cli_blobs")
    url = f"sqlite:///{tmp_path / 'entry.db'}"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BLOBFLOW_SCRIPT), "-p", str(manifest), "--database", url, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=clean_subprocess_env(),
            timeout=60,
        )

    init = run("init")
    assert (init.returncode, init.stdout) == (0, "")
    assert init.stderr.splitlines() == [
        "created Image",
        "created DetectionParams",
        "created Detection",
        "created Detection.Blob",
        "created SelectedDetection",
        "inserted 3 contents rows into DetectionParams",
        f"5 tables created, 0 already there ({url})",
    ]
    tables = run("tables")
    assert (tables.returncode, tables.stderr) == (0, "")
    assert tables.stdout == (
        "table              tier      key                            rows\n"
        "Image              manual    image_id                       0\n"
        "DetectionParams    lookup    params_id                      3\n"
        "Detection          computed  image_id, params_id            0\n"
        "Detection.Blob     part      image_id, params_id, blob_idx  0\n"
        "SelectedDetection  manual    image_id                       0\n"
    )
    failing = run("describe", "Nope")
    assert (failing.returncode, failing.stdout) == (2, "")
    assert failing.stderr == f"Error: unknown table 'Nope'; the pipeline has: {BLOBS_TABLES}\n"
