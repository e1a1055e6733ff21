"""The query language (SPEC section 3) on SQLite and PostgreSQL: every example of the spec with its exact
rows, the Query API, `blobflow query` in each output format, errors with their caret, and inputs that
look like SQL injection."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from conftest import Backend, postgres_url
from helpers import CLEAN_ENV
from sqlalchemy.dialects import postgresql, sqlite

from blobflow import open_pipeline
from blobflow.api import PipelineHandle
from blobflow.cli import cli
from blobflow.errors import DataError, QueryError
from blobflow.query import refused_values
from blobflow.query.conditions import CheckedInteger

# A blobs-like pipeline whose Detection is a manual table (so its rows and its part rows can be inserted
# directly) and whose SelectedDetection has a nullable note.
MANIFEST = """\
    schema: {schema}
    tables:
      Image:
        tier: manual
        key: {{image_id: int16}}
        attributes:
          image_name: varchar(100)
          image: blob
      DetectionParams:
        tier: lookup
        key: {{params_id: int16}}
        attributes: {{min_sigma: float32, max_sigma: float32, threshold: float32}}
        contents:
          - {{params_id: 1, min_sigma: 2.0, max_sigma: 6.0, threshold: 0.001}}
          - {{params_id: 2, min_sigma: 3.0, max_sigma: 8.0, threshold: 0.002}}
          - {{params_id: 3, min_sigma: 4.0, max_sigma: 20.0, threshold: 0.01}}
      Detection:
        tier: manual
        depends: [Image, DetectionParams]
        attributes: {{num_blobs: int32}}
        parts:
          Blob:
            key: {{blob_idx: int32}}
            attributes: {{x: float32, y: float32, radius: float32}}
      SelectedDetection:
        tier: manual
        depends: [Image]
        references: [Detection]
        attributes:
          note: {{type: varchar(20), default: null}}
    """

COINS, CELLS, STARS = "<blob float64 (3, 4)>", "<blob float32 (2, 2)>", "<blob int64 (5,)>"
TABLES = "Image, DetectionParams, Detection, Detection.Blob, SelectedDetection"


def fill(pipe: PipelineHandle) -> None:
    pipe.table("Image").insert(
        [
            {"image_id": 1, "image_name": "coins", "image": np.zeros((3, 4))},
            {"image_id": 2, "image_name": "cells", "image": np.ones((2, 2), np.float32)},
            {"image_id": 3, "image_name": "stars", "image": np.arange(5, dtype=np.int64)},
        ]
    )
    blob = ("blob_idx", "x", "y", "radius")
    pipe.table("Detection").insert(
        [
            {
                "image_id": 1,
                "params_id": 1,
                "num_blobs": 250,
                "Blob": [dict(zip(blob, (0, 1.5, 2.5, 3.0))), dict(zip(blob, (1, 10, 20, 6.5)))],
            },
            {"image_id": 1, "params_id": 2, "num_blobs": 120, "Blob": [dict(zip(blob, (0, 4, 4, 5.5)))]},
            {"image_id": 1, "params_id": 3, "num_blobs": 40},
            {
                "image_id": 2,
                "params_id": 1,
                "num_blobs": 600,
                "Blob": [dict(zip(blob, (0, 0.5, 0.25, 2.0))), dict(zip(blob, (1, 7, 8, 7.25)))],
            },
            {"image_id": 2, "params_id": 2, "num_blobs": 310},
        ]
    )
    pipe.table("SelectedDetection").insert(
        [{"image_id": 1, "params_id": 2, "note": "sharpest"}, {"image_id": 2, "params_id": 1}]
    )


class Project:
    """The test pipeline in a schema of its own, filled, reachable from the API and the CLI."""

    def __init__(self, backend: Backend, directory: Path):
        self.backend = backend
        self.manifest = directory / "pipeline.yaml"
        self.manifest.write_text(textwrap.dedent(MANIFEST.format(schema=backend.schema("qblobs"))))
        self.pipe = open_pipeline(self.manifest, backend.url)
        self.pipe.init()
        fill(self.pipe)

    def cli(self, *args: object) -> Result:
        runner = CliRunner(env=CLEAN_ENV)
        return runner.invoke(
            cli,
            ["-p", str(self.manifest), "--database", self.backend.url, "query", *map(str, args)],
            catch_exceptions=False,
        )

    def ok(self, *args: object) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return result.stdout

    def fails(self, *args: object) -> list[str]:
        """Exit status 2, nothing on stdout, no traceback: the three lines of the error."""
        result = self.cli(*args)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("Error: ")
        return result.stderr.removeprefix("Error: ").splitlines()

    def counts(self) -> dict[str, int | None]:
        return self.pipe.row_counts()


def _project(name: str, factory: pytest.TempPathFactory) -> Iterator[Project]:
    directory = factory.mktemp(f"query_{name}")
    url = f"sqlite:///{directory / 'test.db'}" if name == "sqlite" else postgres_url()
    backend = Backend(name, url, directory)
    project = Project(backend, directory)
    yield project
    project.pipe.close()
    backend.cleanup()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """One filled pipeline per backend for the tests that only read."""
    yield from _project(request.param, tmp_path_factory)


@pytest.fixture
def own(backend: Backend, tmp_path: Path) -> Iterator[Project]:
    """A filled pipeline of this test's own, for the tests that write or might."""
    project = Project(backend, tmp_path)
    yield project
    project.pipe.close()


def plain(value: object) -> object:
    return f"<blob {value.dtype} {tuple(value.shape)}>" if isinstance(value, np.ndarray) else value


def rows_of(project: Project, text: str) -> tuple[tuple[str, ...], list[tuple]]:
    query = project.pipe.query(text)
    return query.heading, [tuple(plain(v) for v in row.values()) for row in query.fetch()]


DETECTION = ("image_id", "params_id", "num_blobs")
IMAGE = ("image_id", "image_name", "image")
PARAMS = ("params_id", "min_sigma", "max_sigma", "threshold")
BLOB = ("image_id", "params_id", "blob_idx", "x", "y", "radius")
ALL_DETECTIONS = [(1, 1, 250), (1, 2, 120), (1, 3, 40), (2, 1, 600), (2, 2, 310)]
ALL_PARAMS = [(1, 2.0, 6.0, 0.001), (2, 3.0, 8.0, 0.002), (3, 4.0, 20.0, 0.01)]
ALL_IMAGES = [(1, "coins", COINS), (2, "cells", CELLS), (3, "stars", STARS)]
ALL_BLOBS = [
    (1, 1, 0, 1.5, 2.5, 3.0),
    (1, 1, 1, 10.0, 20.0, 6.5),
    (1, 2, 0, 4.0, 4.0, 5.5),
    (2, 1, 0, 0.5, 0.25, 2.0),
    (2, 1, 1, 7.0, 8.0, 7.25),
]

# Every example of SPEC section 3, with the heading and the exact rows (in primary-key order).
SPEC_EXAMPLES = [
    ("Detection & num_blobs < 300", DETECTION, [(1, 1, 250), (1, 2, 120), (1, 3, 40)]),
    ("Detection & image_id = 1 & params_id in (1, 3)", DETECTION, [(1, 1, 250), (1, 3, 40)]),
    (
        "Image * Detection",
        ("image_id", "params_id", "image_name", "image", "num_blobs"),
        [
            (1, 1, "coins", COINS, 250),
            (1, 2, "coins", COINS, 120),
            (1, 3, "coins", COINS, 40),
            (2, 1, "cells", CELLS, 600),
            (2, 2, "cells", CELLS, 310),
        ],
    ),
    (
        "(Image * Detection).proj(image_name, num_blobs)",
        ("image_id", "params_id", "image_name", "num_blobs"),
        [
            (1, 1, "coins", 250),
            (1, 2, "coins", 120),
            (1, 3, "coins", 40),
            (2, 1, "cells", 600),
            (2, 2, "cells", 310),
        ],
    ),
    (
        "Detection.proj(n = num_blobs, big = num_blobs > 500)",
        ("image_id", "params_id", "n", "big"),
        [(1, 1, 250, False), (1, 2, 120, False), (1, 3, 40, False), (2, 1, 600, True), (2, 2, 310, False)],
    ),
    (
        "Image.aggr(Detection, n = count(*), most = max(num_blobs))",
        ("image_id", "image_name", "image", "n", "most"),
        [(1, "coins", COINS, 3, 250), (2, "cells", CELLS, 2, 600)],
    ),
    ("Image - SelectedDetection", IMAGE, [(3, "stars", STARS)]),
    ("DetectionParams & (min_sigma >= 3 or threshold < 0.002)", PARAMS, ALL_PARAMS),
    (
        '(Detection & "image_id = 2") + (Detection & params_id = 1)',
        DETECTION,
        [(1, 1, 250), (2, 1, 600), (2, 2, 310)],
    ),
    (
        "Detection.Blob & image_id = 1 & radius > 5",
        BLOB,
        [(1, 1, 1, 10.0, 20.0, 6.5), (1, 2, 0, 4.0, 4.0, 5.5)],
    ),
]

MORE_QUERIES = [
    # table names in any case
    ("detection & num_blobs < 300", DETECTION, ALL_DETECTIONS[:3]),
    ("DETECTION.blob & blob_idx = 1", BLOB, [ALL_BLOBS[1], ALL_BLOBS[4]]),
    ("detectionparams", PARAMS, ALL_PARAMS),
    # comparisons, logic and literals
    ("Detection & num_blobs != 250 & num_blobs <> 600", DETECTION, [(1, 2, 120), (1, 3, 40), (2, 2, 310)]),
    ("Detection & num_blobs == 120", DETECTION, [(1, 2, 120)]),
    ("Detection & num_blobs <= 120", DETECTION, [(1, 2, 120), (1, 3, 40)]),
    ("Detection & num_blobs >= 310", DETECTION, [(2, 1, 600), (2, 2, 310)]),
    ("Detection & 300 < num_blobs", DETECTION, [(2, 1, 600), (2, 2, 310)]),
    ("Detection & not num_blobs > 100", DETECTION, [(1, 3, 40)]),
    ("Detection & NOT (num_blobs > 100 AND image_id = 1)", DETECTION, [(1, 3, 40), (2, 1, 600), (2, 2, 310)]),
    ("Detection & (image_id = 2 or num_blobs < 50) and params_id = 1", DETECTION, [(2, 1, 600)]),
    ("Detection & params_id not in (1, 2)", DETECTION, [(1, 3, 40)]),
    ("Detection & num_blobs between 120 and 310", DETECTION, [(1, 1, 250), (1, 2, 120), (2, 2, 310)]),
    ("Detection & num_blobs not between 120 and 310", DETECTION, [(1, 3, 40), (2, 1, 600)]),
    ("Detection & true", DETECTION, ALL_DETECTIONS),
    ("Detection & false", DETECTION, []),
    ("Detection & num_blobs > 2.5e2", DETECTION, [(2, 1, 600), (2, 2, 310)]),
    ("Detection & num_blobs - 10 * image_id > 300 - -5", DETECTION, [(2, 1, 600)]),
    ("Detection & num_blobs / 100 = 2.5", DETECTION, [(1, 1, 250)]),
    ("Image & image_name like 'c%'", IMAGE, ALL_IMAGES[:2]),
    ("Image & image_name like '_oins'", IMAGE, ALL_IMAGES[:1]),
    ("Image & image_name like 'C%'", IMAGE, []),  # case-sensitive on both databases
    ("Image & image_name not like '%s'", IMAGE, []),
    ('Image & image_name = "stars"', IMAGE, ALL_IMAGES[2:]),
    ("Image & 'image_name = \"cells\"'", IMAGE, ALL_IMAGES[1:2]),
    ("Image & image_name > 'coins'", IMAGE, ALL_IMAGES[2:]),
    ("SelectedDetection & note is null", ("image_id", "params_id", "note"), [(2, 1, None)]),
    ("SelectedDetection & note is not null", ("image_id", "params_id", "note"), [(1, 2, "sharpest")]),
    ("SelectedDetection & note != 'x'", ("image_id", "params_id", "note"), [(1, 2, "sharpest")]),
    ("SelectedDetection & not note = 'x'", ("image_id", "params_id", "note"), [(1, 2, "sharpest")]),
    ("SelectedDetection - (note = 'x')", ("image_id", "params_id", "note"), [(1, 2, "sharpest")]),
    # float32 attributes: literals are rounded to float32
    ("DetectionParams & threshold = 0.001", PARAMS, ALL_PARAMS[:1]),
    ("DetectionParams & threshold in (0.002, 0.01)", PARAMS, ALL_PARAMS[1:]),
    ("DetectionParams & threshold between 0.001 and 0.002", PARAMS, ALL_PARAMS[:2]),
    ("DetectionParams & threshold > 0.002", PARAMS, ALL_PARAMS[2:]),
    ("DetectionParams & (min_sigma >= 4 or threshold < 0.002)", PARAMS, [ALL_PARAMS[0], ALL_PARAMS[2]]),
    ("Detection.Blob & radius = 7.25 & x = 7", BLOB, ALL_BLOBS[4:]),
    # semijoins and antijoins
    ("Image & Detection", IMAGE, ALL_IMAGES[:2]),
    ("Image & (Detection & num_blobs > 500)", IMAGE, ALL_IMAGES[1:2]),
    ("Image - (Detection & num_blobs > 500)", IMAGE, [ALL_IMAGES[0], ALL_IMAGES[2]]),
    ("Image & (SelectedDetection or image_id = 3)", IMAGE, ALL_IMAGES),
    ("Image & not SelectedDetection", IMAGE, ALL_IMAGES[2:]),
    ("Detection & SelectedDetection", DETECTION, [(1, 2, 120), (2, 1, 600)]),
    ("Detection - SelectedDetection", DETECTION, [(1, 1, 250), (1, 3, 40), (2, 2, 310)]),
    ("Detection & Detection.Blob", DETECTION, [(1, 1, 250), (1, 2, 120), (2, 1, 600)]),
    ("Image & (DetectionParams & params_id = 1)", IMAGE, ALL_IMAGES),  # nothing shared, not empty
    ("Image & (DetectionParams & params_id = 9)", IMAGE, []),  # nothing shared, empty
    ("Image - (DetectionParams & params_id = 9)", IMAGE, ALL_IMAGES),
    ("Image - DetectionParams", IMAGE, []),
    ("Detection & (Image * DetectionParams & min_sigma > 3)", DETECTION, [(1, 3, 40)]),
    # joins
    (
        "Image.proj(image_name) * DetectionParams.proj(min_sigma) & image_id = 3",
        ("image_id", "params_id", "image_name", "min_sigma"),
        [(3, 1, "stars", 2.0), (3, 2, "stars", 3.0), (3, 3, "stars", 4.0)],
    ),
    (
        "(Detection * DetectionParams & max_sigma >= 8).proj(num_blobs, max_sigma)",
        ("image_id", "params_id", "num_blobs", "max_sigma"),
        [(1, 2, 120, 8.0), (1, 3, 40, 20.0), (2, 2, 310, 8.0)],
    ),
    (
        "(Detection.Blob * SelectedDetection).proj(radius, note)",
        ("image_id", "params_id", "blob_idx", "radius", "note"),
        [(1, 2, 0, 5.5, "sharpest"), (2, 1, 0, 2.0, None), (2, 1, 1, 7.25, None)],
    ),
    # unions
    ("(Detection & image_id = 1) + (Detection & num_blobs > 500)", DETECTION, ALL_DETECTIONS[:4]),
    (
        "Detection.proj() + (Detection & num_blobs = 40).proj()",
        DETECTION[:2],
        [r[:2] for r in ALL_DETECTIONS],
    ),
    # proj: keep, rename (key attributes too), compute
    ("Detection.proj()", ("image_id", "params_id"), [r[:2] for r in ALL_DETECTIONS]),
    ("Image.proj(name = image_name)", ("image_id", "name"), [(1, "coins"), (2, "cells"), (3, "stars")]),
    ("Image.proj(id = image_id) & id > 2", ("id",), [(3,)]),
    (
        "Detection.proj(p = params_id, i = image_id, num_blobs) & p = 1",
        ("i", "p", "num_blobs"),
        [(1, 1, 250), (2, 1, 600)],
    ),
    (
        "Detection.proj(half = num_blobs / 200, neg = -num_blobs, s = num_blobs + params_id * 1000)"
        " & image_id = 1",
        ("image_id", "params_id", "half", "neg", "s"),
        [(1, 1, 1.25, -250, 1250), (1, 2, 0.6, -120, 2120), (1, 3, 0.2, -40, 3040)],
    ),
    ("Detection.proj(big = num_blobs > 500) & big", ("image_id", "params_id", "big"), [(2, 1, True)]),
    ("Detection.proj(r = 7 / 2) & params_id = 3", ("image_id", "params_id", "r"), [(1, 3, 3.5)]),
    ("Detection.proj(z = num_blobs / 0) & params_id = 3", ("image_id", "params_id", "z"), [(1, 3, None)]),
    (
        "DetectionParams.proj(width = max_sigma - min_sigma, ok = threshold = 0.001)",
        ("params_id", "width", "ok"),
        [(1, 4.0, True), (2, 5.0, False), (3, 16.0, False)],
    ),
    # aggr
    (
        "DetectionParams.aggr(Detection, total = sum(num_blobs), mean = avg(num_blobs),"
        " low = min(num_blobs))",
        (*PARAMS, "total", "mean", "low"),
        [
            (1, 2.0, 6.0, 0.001, 850, 425.0, 250),
            (2, 3.0, 8.0, 0.002, 430, 215.0, 120),
            (3, 4.0, 20.0, 0.01, 40, 40.0, 40),
        ],
    ),
    (
        "Detection.aggr(Detection.Blob, n = count(*), widest = max(radius), narrow = min(radius))"
        ".proj(n, widest, narrow)",
        ("image_id", "params_id", "n", "widest", "narrow"),
        [(1, 1, 2, 6.5, 3.0), (1, 2, 1, 5.5, 5.5), (2, 1, 2, 7.25, 2.0)],
    ),
    (
        "Image.aggr(SelectedDetection, notes = count(note), rows = count(*)).proj(notes, rows)",
        ("image_id", "notes", "rows"),
        [(1, 1, 1), (2, 0, 1)],
    ),
    (
        "Image.proj().aggr(Detection.Blob, x = sum(x), first = min(image_id * 10 + blob_idx))",
        ("image_id", "x", "first"),
        [(1, 15.5, 10), (2, 7.5, 20)],
    ),
    # top
    ("Detection.top(2)", DETECTION, ALL_DETECTIONS[:2]),
    ('Detection.top(2, order_by = "num_blobs desc")', DETECTION, [(2, 1, 600), (2, 2, 310)]),
    ('Detection.top(1, order_by = "params_id desc, image_id desc")', DETECTION, [(1, 3, 40)]),
    ('Image.top(1, order_by = "image_name")', IMAGE, ALL_IMAGES[1:2]),
    ('Detection.top(3, order_by = "num_blobs desc") & image_id = 1', DETECTION, [(1, 1, 250)]),
    ("Detection.top(0)", DETECTION, []),
]


@pytest.mark.parametrize(("text", "heading", "rows"), SPEC_EXAMPLES, ids=[c[0] for c in SPEC_EXAMPLES])
def test_spec_examples(shared, text, heading, rows):
    assert rows_of(shared, text) == (heading, rows)


@pytest.mark.parametrize(("text", "heading", "rows"), MORE_QUERIES, ids=[c[0] for c in MORE_QUERIES])
def test_queries(shared, text, heading, rows):
    assert rows_of(shared, text) == (heading, rows)


def test_primary_keys_of_results(shared):
    pipe = shared.pipe
    assert pipe.query("Image * Detection").primary_key == ("image_id", "params_id")
    assert pipe.query("Image * DetectionParams").primary_key == ("image_id", "params_id")
    assert pipe.query("Detection.Blob * Image").primary_key == ("image_id", "params_id", "blob_idx")
    assert pipe.query("SelectedDetection * Detection").primary_key == ("image_id", "params_id")
    assert pipe.query("Image.aggr(Detection, n = count(*))").primary_key == ("image_id",)
    assert pipe.query("Detection.proj(a = image_id, b = params_id)").primary_key == ("a", "b")
    swapped = pipe.query("Detection.proj(image_id = params_id, params_id = image_id) & image_id = 3")
    assert swapped.primary_key == ("params_id", "image_id")
    assert swapped.fetch() == [{"params_id": 1, "image_id": 3}]


# --- the Query API ------------------------------------------------------------------------------------


def test_fetch_attributes_order_and_limit(shared):
    query = shared.pipe.query("Detection & image_id = 1")
    assert query.fetch() == [
        {"image_id": 1, "params_id": 1, "num_blobs": 250},
        {"image_id": 1, "params_id": 2, "num_blobs": 120},
        {"image_id": 1, "params_id": 3, "num_blobs": 40},
    ]
    assert query.fetch("num_blobs", order_by="num_blobs") == [
        {"num_blobs": 40},
        {"num_blobs": 120},
        {"num_blobs": 250},
    ]
    assert query.fetch("params_id", order_by="num_blobs desc", limit=2) == [
        {"params_id": 1},
        {"params_id": 2},
    ]
    assert list(query.iter("num_blobs", limit=1)) == [{"num_blobs": 250}]
    image = shared.pipe.query("Image & image_id = 1").fetch1()["image"]
    assert image.dtype == np.float64 and image.shape == (3, 4) and not image.any()
    with pytest.raises(
        QueryError, match=r"^'nope' is not an attribute of the result \(image_id, params_id, "
    ):
        query.fetch("nope")
    with pytest.raises(QueryError, match="cannot order by 'nope': not an attribute of Detection"):
        query.fetch(order_by="nope")


def test_fetch1_one_none_or_several(shared):
    pipe = shared.pipe
    assert pipe.query("Detection & image_id = 2 & params_id = 2").fetch1() == {
        "image_id": 2,
        "params_id": 2,
        "num_blobs": 310,
    }
    assert pipe.query("Detection.aggr(Detection.Blob, n = count(*)) & num_blobs = 600").fetch1("n") == {
        "n": 2
    }
    with pytest.raises(DataError) as none:
        pipe.query("Detection & image_id = 9").fetch1()
    assert str(none.value) == "fetch1 on 'Detection & image_id = 9': expected one row, found none"
    with pytest.raises(DataError) as several:
        pipe.query("Detection & image_id = 1").fetch1()
    assert str(several.value) == "fetch1 on 'Detection & image_id = 1': expected one row, found 2 or more"


def test_to_arrays_keep_declared_dtypes(shared):
    x, y, radius, idx = shared.pipe.query("Detection.Blob & image_id = 1").to_arrays(
        "x", "y", "radius", "blob_idx"
    )
    assert (x.dtype, y.dtype, radius.dtype, idx.dtype) == (np.float32, np.float32, np.float32, np.int32)
    assert radius.tolist() == [3.0, 6.5, 5.5] and x.tolist() == [1.5, 10.0, 4.0]
    ids, names, n, most = shared.pipe.query(
        "Image.aggr(Detection, n = count(*), most = max(num_blobs))"
    ).to_arrays("image_id", "image_name", "n", "most")
    assert ids.dtype == np.int16 and ids.tolist() == [1, 2]
    assert names.dtype == object and names.tolist() == ["coins", "cells"]
    assert n.dtype.kind == "i" and n.tolist() == [3, 2]
    assert most.dtype == np.int32 and most.tolist() == [250, 600]
    (images,) = shared.pipe.query("Image").to_arrays("image")
    assert images.dtype == object and [a.shape for a in images] == [(3, 4), (2, 2), (5,)]
    (half,) = shared.pipe.query("Detection.proj(h = num_blobs / 2)").to_arrays("h", order_by="h")
    assert half.dtype == np.float64 and half.tolist() == [20.0, 60.0, 125.0, 155.0, 300.0]
    everything = shared.pipe.query("DetectionParams").to_arrays()
    assert [a.dtype for a in everything] == [np.int16, np.float32, np.float32, np.float32]
    assert everything[3].tolist() == [np.float32(0.001), np.float32(0.002), np.float32(0.01)]


def test_count_len_keys_heading(shared):
    query = shared.pipe.query("Detection.Blob & radius > 5")
    assert query.count() == len(query) == 3
    assert query.keys() == [
        {"image_id": 1, "params_id": 1, "blob_idx": 1},
        {"image_id": 1, "params_id": 2, "blob_idx": 0},
        {"image_id": 2, "params_id": 1, "blob_idx": 1},
    ]
    assert query.heading == BLOB and query.primary_key == BLOB[:3]
    assert shared.pipe.query("Image - Image").count() == 0
    assert shared.pipe.query('Detection.top(2, order_by = "num_blobs")').count() == 2
    assert repr(query) == "<Query 'Detection.Blob & radius > 5'>"


# --- blobflow query ----------------------------------------------------------------------------------


def test_cli_table(shared):
    assert shared.ok("Detection & num_blobs < 300") == (
        "image_id  params_id  num_blobs\n"
        "1         1          250\n"
        "1         2          120\n"
        "1         3          40\n"
        "Total: 3\n"
    )
    assert shared.ok("image") == (
        "image_id  image_name  image\n"
        "1         coins       <blob float64 (3, 4)>\n"
        "2         cells       <blob float32 (2, 2)>\n"
        "3         stars       <blob int64 (5,)>\n"
        "Total: 3\n"
    )
    assert shared.ok("Detection.proj(big = num_blobs > 500) & image_id = 2") == (
        "image_id  params_id  big\n2         1          true\n2         2          false\nTotal: 2\n"
    )
    assert shared.ok("SelectedDetection") == (
        "image_id  params_id  note\n1         2          sharpest\n2         1\nTotal: 2\n"
    )
    assert shared.ok("Detection & image_id = 9") == "image_id  params_id  num_blobs\nTotal: 0\n"


def test_cli_csv(shared):
    assert shared.ok("Image * SelectedDetection", "--format", "csv") == (
        "image_id,image_name,image,params_id,note\n"
        '1,coins,"<blob float64 (3, 4)>",2,sharpest\n'
        '2,cells,"<blob float32 (2, 2)>",1,\n'
    )
    assert shared.ok("DetectionParams & params_id = 1", "--format", "csv") == (
        "params_id,min_sigma,max_sigma,threshold\n1,2.0,6.0,0.001\n"
    )


def test_cli_json_has_native_values(shared):
    out = shared.ok(
        "(Detection * SelectedDetection).proj(num_blobs, note, big = num_blobs > 500, f = num_blobs / 8)",
        "--format",
        "json",
    )
    assert json.loads(out) == [
        {"image_id": 1, "params_id": 2, "num_blobs": 120, "note": "sharpest", "big": False, "f": 15.0},
        {"image_id": 2, "params_id": 1, "num_blobs": 600, "note": None, "big": True, "f": 75.0},
    ]
    assert out.startswith('[\n  {\n    "image_id": 1,\n')
    images = json.loads(shared.ok("Image & image_id < 3", "--format", "json"))
    assert images == [
        {"image_id": 1, "image_name": "coins", "image": COINS},
        {"image_id": 2, "image_name": "cells", "image": CELLS},
    ]
    assert json.loads(shared.ok("DetectionParams", "--format", "json"))[0] == {
        "params_id": 1,
        "min_sigma": 2.0,
        "max_sigma": 6.0,
        "threshold": 0.001,
    }
    assert shared.ok("Image & false", "--format", "json") == "[]\n"


def test_cli_jsonl(shared):
    assert shared.ok("Detection.Blob & radius > 6", "--format", "jsonl") == (
        '{"image_id": 1, "params_id": 1, "blob_idx": 1, "x": 10.0, "y": 20.0, "radius": 6.5}\n'
        '{"image_id": 2, "params_id": 1, "blob_idx": 1, "x": 7.0, "y": 8.0, "radius": 7.25}\n'
    )
    assert shared.ok("Image & image_id = 3", "--format", "jsonl") == (
        '{"image_id": 3, "image_name": "stars", "image": "<blob int64 (5,)>"}\n'
    )


def test_cli_limit_and_order_by(shared):
    assert shared.ok("Detection", "--order-by", "num_blobs desc", "--limit", "2") == (
        "image_id  params_id  num_blobs\n2         1          600\n2         2          310\nTotal: 2\n"
    )
    assert shared.ok("Detection", "--order-by", "params_id desc, num_blobs", "--format", "csv") == (
        "image_id,params_id,num_blobs\n1,3,40\n1,2,120\n2,2,310\n1,1,250\n2,1,600\n"
    )
    assert shared.ok("Detection", "--limit", "1", "--format", "jsonl") == (
        '{"image_id": 1, "params_id": 1, "num_blobs": 250}\n'
    )
    assert shared.ok("Detection", "--limit", "0", "--format", "csv") == "image_id,params_id,num_blobs\n"
    # the default order is the primary key, whatever order the rows went in
    assert shared.ok("Detection.proj(params_id, image_id)", "--format", "csv") == (
        "image_id,params_id\n1,1\n1,2\n1,3\n2,1\n2,2\n"
    )
    assert shared.fails("Detection", "--order-by", "nope") == [
        "cannot order by 'nope': not an attribute of Detection (image_id, params_id, num_blobs) (column 1)",
        "  nope",
        "  ^",
    ]
    result = shared.cli("Detection", "--limit", "-1")
    assert result.exit_code == 2 and "Traceback" not in result.output


# --- errors ------------------------------------------------------------------------------------------

ERRORS = [
    (
        "Detections & num_blobs > 1",
        f"unknown table 'Detections'; the pipeline has: {TABLES}",
        1,
    ),
    ("Detection.Blobs", f"unknown table 'Detection.Blobs'; the pipeline has: {TABLES}", 1),
    ("Image * Nothing", f"unknown table 'Nothing'; the pipeline has: {TABLES}", 9),
    (
        "Detection & num_blob > 1",
        "unknown attribute or table 'num_blob' (attributes here: image_id, params_id, num_blobs)",
        13,
    ),
    (
        'Detection & "num_blob > 1"',
        "unknown attribute or table 'num_blob' (attributes here: image_id, params_id, num_blobs)",
        14,
    ),
    (
        "Detection.proj(nope)",
        "proj takes attribute names and 'new = expression'; Detection has image_id, params_id, num_blobs",
        16,
    ),
    (
        "Detection.proj(n = nope + 1)",
        "unknown attribute 'nope' in Detection (it has image_id, params_id, num_blobs)",
        20,
    ),
    ("Detection & num_blobs = 'many'", "cannot compare a number with a string", 13),
    ("Image & image_name > 3", "cannot compare a string with a number", 9),
    ("Image & 'image_id = \"1\"'", "cannot compare a number with a string", 10),
    ("Detection & params_id in (1, '2')", "cannot compare a number with a string", 30),
    ("Image & image_name like 3", "'like' compares strings", 9),
    ("Detection & num_blobs + 'x' > 1", "arithmetic needs numbers, got a string", 25),
    ("Image & image = 1", "a blob attribute cannot be compared", 9),
    ("Detection & num_blobs = null", "use 'is null' rather than '= null'", 13),
    ("Detection & num_blobs", "expected a condition (true or false), got a number", 13),
    ("Detection & (num_blobs > 1", "the query ends too early; expected '&', ')'", 27),
    (
        "Detection && num_blobs > 1",
        "unexpected '&'; expected a table, an attribute, a value or an operator",
        12,
    ),
    (
        "Detection & num_blobs > > 1",
        "unexpected '>'; expected a table, an attribute, a value or an operator",
        25,
    ),
    ("Detection & num_blobs ! 1", "unexpected character '!'", 23),
    ("Detection & num_blobs > 1)", "unexpected ')'; expected '&', the end of the query", 26),
    ("   ", "empty query; expected a table name such as Detection", 1),
    (
        "Detection.proj(",
        "the query ends too early; expected a table, an attribute, a value or an operator",
        16,
    ),
    ("Detection.nope()", "unknown method 'nope'; expected proj, aggr or top", 11),
    (
        "Image + Detection",
        "union needs the same primary key on both sides: (image_id) and (image_id, params_id)",
        7,
    ),
    (
        "Image.proj() + Image.proj(image_name)",
        "union needs the same attributes on both sides: (image_id) and (image_id, image_name)",
        14,
    ),
    (
        "Image.proj(v = image_name) + Image.proj(v = image_id * 1)",
        "union needs the same kinds of attribute on both sides: 'v' is a string in Image.proj(), "
        "a number in Image.proj()",
        28,
    ),
    (
        "Detection.aggr(Image, n = count(*))",
        "Image lacks params_id of Detection's primary key, so its rows cannot be grouped by it",
        16,
    ),
    (
        "Image.aggr(Detection, n = count(*) + 1)",
        "expected count(*), count(x), sum(x), avg(x), min(x) or max(x)",
        27,
    ),
    ("Image.aggr(Detection, image_name = count(*))", "'image_name' is already an attribute", 23),
    ("Image.aggr(Detection, n = sum(image_id > 1))", "sum needs numbers, got a bool", 27),
    (
        "Image.aggr(n = count(*))",
        "aggr needs a query expression first: Image.aggr(Detection, n = count(*))",
        1,
    ),
    ("Image.proj(image_id = image_name)", "'image_id' is a primary-key attribute and cannot be assigned", 12),
    ("Image.proj(image_name, image_name = image_id)", "'image_name' is named twice", 24),
    (
        "Image.proj(x = image_name) * Image.proj(x = image_id)",
        "cannot join on 'x': a string in Image.proj(), a number in Image.proj()",
        28,
    ),
    (
        "Image & Image.proj(id = image_id, image_id = image_name)",
        "cannot restrict on 'image_id': a number here, a string in Image.proj()",
        9,
    ),
    (
        'Detection.top(2, order_by = "nope")',
        "cannot order by 'nope': not an attribute of Detection (image_id, params_id, num_blobs)",
        29,
    ),
    (
        'Detection.top(2, order_by = "num_blobs up")',
        "cannot read order 'num_blobs up'; expected 'attribute [asc|desc]'",
        29,
    ),
    ("Detection.top(1.5)", 'top needs a whole number first: top(10, order_by = "num_blobs desc")', 15),
    ("Detection.top(99999999999999999999)", "top(99999999999999999999) is too large", 15),
    ("Detection & num_blobs = 99999999999999999999", "number 99999999999999999999 is too large", 25),
    (
        "Image & image_name like 'x\\\\'",
        "a 'like' pattern cannot end with a lone backslash (its escape character)",
        9,
    ),
    ("Detection & 2 = (1 = 1)", "cannot compare a number with a bool", 13),
    (
        "Detection\n  & nope = 1",
        "unknown attribute or table 'nope' (attributes here: image_id, params_id, num_blobs)",
        15,
    ),
]


@pytest.mark.parametrize(("text", "message", "column"), ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_point_at_the_column(shared, text, message, column):
    with pytest.raises(QueryError) as caught:
        shared.pipe.query(text)
    error = caught.value
    assert (error.message, error.column) == (message, column)
    one_line = " ".join(text.splitlines())
    assert str(error).splitlines() == [
        f"{message} (column {column})",
        f"  {one_line}",
        "  " + " " * (column - 1) + "^",
    ]


CLI_ERRORS = {
    "unknown table": "Detections & num_blobs > 1",
    "unknown attribute": "Detection & num_blob > 1",
    "type mismatch": "Detection & num_blobs = 'many'",
    "syntax": "Detection & (num_blobs > 1",
    "union keys": "Image + Detection",
    "aggr key": "Detection.aggr(Image, n = count(*))",
}


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [next(case for case in ERRORS if case[0] == text) for text in CLI_ERRORS.values()],
    ids=list(CLI_ERRORS),
)
def test_cli_errors_exit_2_with_the_caret(shared, text, message, column):
    assert shared.fails(text) == [
        f"{message} (column {column})",
        f"  {text}",
        "  " + " " * (column - 1) + "^",
    ]


def test_caret_sits_under_the_offending_text():
    """A check of the table above: each caret sits under what its message is about."""
    for text, message, column in ERRORS:
        at = " ".join(text.splitlines())[column - 1 :]
        if "ends too early" in message or message.startswith("empty query"):
            assert not at.strip(), text
            continue
        assert at and not at[0].isspace(), text
        if message.startswith(("unknown attribute", "cannot compare", "arithmetic needs")):
            quoted = re.findall(r"'(\w+)'", message)
            assert not quoted or at.startswith(quoted[0]) or message.startswith("cannot compare"), text
        if "unknown attribute or table 'num_blob'" in message:
            assert at.startswith("num_blob")
        elif message.startswith("union needs"):
            assert at.startswith("+")
        elif message.startswith("unknown table 'Nothing'"):
            assert at.startswith("Nothing")


# --- inputs that look like SQL injection ----------------------------------------------------------


def test_injection_attempts_are_errors_or_plain_values(own):
    before = own.counts()
    assert own.fails("Detection; DROP TABLE x") == [
        "unexpected character ';' (column 10)",
        "  Detection; DROP TABLE x",
        "           ^",
    ]
    assert own.fails("Detection & num_blobs = 1 -- x")[0] == (
        "unknown attribute or table 'x' (attributes here: image_id, params_id, num_blobs) (column 30)"
    )
    assert (
        own.fails("Image & \"image_name = 'x'; DROP TABLE image\"")[0]
        == "unexpected character ';' (column 26)"
    )
    assert own.fails("Image & image_name = 'x'' OR 1=1")[0] == 'unexpected character "\'" (column 25)'
    assert own.fails('Image & image_name = "x" UNION SELECT 1')[0].startswith("unexpected 'UNION'")
    assert own.fails("Image & image_id = 1 /* x */")[0].startswith("unexpected '*'")
    pipe = own.pipe
    # `or 1=1` is a condition of the language like any other: every image
    assert [r["image_id"] for r in pipe.query("Image & image_name = 'x' or 1=1").fetch()] == [1, 2, 3]
    for text in [
        "Image & image_name = \"x' or '1'='1\"",
        "Image & image_name = 'x\\' or \\'1\\'=\\'1'",
        "Image & image_name = 'coins; DROP TABLE image; --'",
        "Image & image_name = '\\'); DELETE FROM image; --'",
        "Image & image_name like '%\\'%'",
        "Image & image_name in ('a\"b', \"c'd\", '')",
    ]:
        assert pipe.query(text).fetch() == [], text
    assert own.counts() == before


def test_quotes_inside_strings_are_values(own):
    tricky = 'it\'s "quoted"; -- \\ %_'
    own.pipe.table("Image").insert1({"image_id": 4, "image_name": tricky, "image": np.zeros(1)})
    for text in [
        "Image & image_name = 'it\\'s \"quoted\"; -- \\\\ %_'",
        'Image & image_name = "it\'s \\"quoted\\"; -- \\\\ %_"',
        "Image & image_name like 'it\\'s \"quoted\"; -- \\\\\\\\ \\%\\_'",
        "Image & image_name like '%\\%\\_'",
        "Image & image_name like '%;%'",
    ]:
        rows = own.pipe.query(text).fetch("image_id", "image_name")
        assert rows == [{"image_id": 4, "image_name": tricky}], text
    assert own.pipe.query("Image & image_name like '%\\_%'").fetch("image_id") == [{"image_id": 4}]
    out = own.ok("Image & image_id = 4", "--format", "csv")
    assert out == 'image_id,image_name,image\n4,"it\'s ""quoted""; -- \\ %_","<blob float64 (1,)>"\n'
    assert own.counts()["Image"] == 4


# --- long and deep queries, and a known gap ----------------------------------------------------------


def test_long_chains_run_on_both_databases(shared):
    """Restrictions add to one WHERE (SQLite's parser gives up on subqueries nested ~20 deep)."""
    conditions = " & ".join(f"num_blobs != {i}" for i in range(1000, 1060))
    assert shared.pipe.query(f"Detection & {conditions}").count() == 5
    semijoins = "Image" + " & Detection" * 30 + " - (SelectedDetection & note = 'x')" * 10
    assert rows_of(shared, semijoins)[1] == ALL_IMAGES[:2]
    union = " + ".join(f"(Detection & num_blobs = {n})" for n in (250, 120, 40, 600, 310, 1, 2, 3))
    assert shared.pipe.query(union).count() == 5
    projections = "Detection" + ".proj(num_blobs)" * 8 + " & num_blobs > 300"
    assert rows_of(shared, projections)[1] == [(2, 1, 600), (2, 2, 310)]


def test_a_condition_left_of_ampersand_says_to_use_and(shared):
    hint = (
        "expected a table or a query expression here, not a condition: `&` restricts an expression "
        "(`Image & image_id = 1`); conditions join with `and`, `or` (column 1)"
    )
    assert shared.fails("num_blobs > 3 & Detection")[0] == hint
    assert shared.fails("image_id = 1 & params_id = 1")[0] == hint
    assert shared.fails("1 + 2")[0] == "expected a table or a query expression here (column 1)"


def test_too_deep_is_a_query_error(shared):
    text = "Image & " + "not " * 120 + "true"
    with pytest.raises(QueryError) as caught:
        shared.pipe.query(text)
    assert caught.value.message == "query nested too deeply (more than 100 levels)"
    assert shared.fails("Image & " + "-" * 150 + "1 = 1")[0].startswith("query nested too deeply")


def test_integer_overflow_is_a_clean_error(shared):
    """Integer arithmetic beyond 64 bits fails on both databases (SQLite would go on in floats)."""
    refused = "the database refused a value the query computes: (bigint|integer) out of range"
    projected = "Detection.proj(x = num_blobs * 9223372036854775807)"
    with pytest.raises(DataError, match=f"^{refused}$"):
        shared.pipe.query(projected).fetch()
    for restricted in (
        "Detection & num_blobs * 9223372036854775807 > 0",
        "Detection & num_blobs + 9223372036854775807 > 0",
        "Detection & -(num_blobs - 9223372036854775807 - 1000) < 0",
    ):
        with pytest.raises(DataError, match=f"^{refused}$"):
            shared.pipe.query(restricted).count()
    [line] = shared.fails(projected)
    assert re.fullmatch(refused, line)
    # up to the limit, integers stay exact integers
    [row, *_] = shared.pipe.query("Detection.proj(x = num_blobs - num_blobs + 9223372036854775807)").fetch()
    assert row["x"] == 9223372036854775807 and isinstance(row["x"], int)


def test_a_sum_beyond_64_bits_on_sqlite_is_refused_too(tmp_path):
    """SQLite's sum() raises "integer overflow" by itself (a column of int64 values summing beyond)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sums.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.exec_driver_sql(f"INSERT INTO t VALUES ({2**62}), ({2**62})")
    refused = "^the database refused a value the query computes: integer out of range$"
    with pytest.raises(DataError, match=refused), refused_values(), engine.connect() as connection:
        connection.exec_driver_sql("SELECT sum(x) FROM t").all()
    engine.dispose()


@pytest.mark.parametrize(
    ("dialect", "wrapped"),
    [
        (sqlite.dialect(), "blobflow_int64(t.n * ?)"),
        (postgresql.psycopg.dialect(), "(t.n * %(n_1)s::BIGINT)"),
    ],
    ids=["sqlite", "postgres"],
)
def test_a_checked_integer_reads_from_its_tables(dialect, wrapped):
    """Selected alone, a checked expression brings its table into FROM, as the expression would."""
    table = sa.table("t", sa.column("n", sa.BigInteger))
    compiled = str(sa.select(CheckedInteger(table.c.n * 2)).compile(dialect=dialect))
    assert wrapped in compiled and compiled.replace("\n", " ").endswith("FROM t"), compiled
