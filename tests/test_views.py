"""Views on both backends: the blobs pipeline's `plot_blobs` (the seed's figure, checked artist by artist
and as the PNG `blobflow view` writes), and the view contract: arguments, return forms, errors."""

from __future__ import annotations

import re
import shutil
import struct
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import CLEAN_ENV
from PIL import Image as PILImage

from blobflow import open_pipeline
from blobflow.callables import import_callable
from blobflow.populate.executor import PopulateOptions, populate
from blobflow.views import ViewFailed, run_view

REPO = Path(__file__).resolve().parent.parent
BLOBS = REPO / "pipelines" / "blobs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def spots(shape: tuple[int, int], centres: list[tuple[float, float, float]]) -> np.ndarray:
    """A dark image with bright gaussian spots at (row, column, sigma)."""
    rows, columns = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    image = np.zeros(shape)
    for row, column, sigma in centres:
        image += np.exp(-((rows - row) ** 2 + (columns - column) ** 2) / (2 * sigma**2))
    return image


# Off the diagonal and not square: swapping rows and columns would put circles off the spots.
IMAGES = [
    {
        "image_id": 1,
        "image_name": "Three spots",
        "image": spots((64, 64), [(16, 20, 3), (40, 44, 4), (48, 14, 5)]),
    },
    {"image_id": 2, "image_name": "Two spots", "image": spots((48, 72), [(20, 40, 3), (34, 58, 5)])},
]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in tmp_path; import the pipeline modules copied there, and forget them afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("views", "detect", "images"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


class Project:
    def __init__(self, manifest: Path, url: str):
        self.manifest = manifest
        self.url = url

    def cli(self, *args: object) -> Result:
        runner = CliRunner(env=CLEAN_ENV)
        arguments = ["-p", str(self.manifest), "--database", self.url, *map(str, args)]
        from blobflow.cli import cli

        return runner.invoke(cli, arguments, catch_exceptions=False)

    def fails(self, status: int, *args: object) -> str:
        """The exit status, nothing on stdout and exactly one `Error: ` line on stderr; its text."""
        result = self.cli(*args)
        assert result.exit_code == status, result.output
        assert result.stdout == ""
        assert "Traceback" not in result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        return lines[0].removeprefix("Error: ")


@pytest.fixture
def blobs(backend, tmp_path) -> Project:
    """pipelines/blobs copied into a schema of its own, two small images inserted, Detection populated."""
    directory = tmp_path / "blobs"
    directory.mkdir()
    for source in [*BLOBS.glob("*.py"), BLOBS / "pipeline.yaml"]:
        shutil.copy(source, directory / source.name)
    manifest = directory / "pipeline.yaml"
    schema = backend.schema("views_blobs")
    manifest.write_text(re.sub(r"^schema: .*$", f"schema: {schema}", manifest.read_text(), flags=re.M))
    with open_pipeline(manifest, backend.url) as pipe:
        pipe.init()
        pipe.table("Image").insert(IMAGES)
        summary = populate(pipe.database, None, PopulateOptions())
        assert (summary["Detection"].computed, summary["Detection"].failed) == (6, 0)
    return Project(manifest, backend.url)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --- the blobs pipeline's view ------------------------------------------------------------------------


def test_plot_blobs_draws_the_seeds_figure(blobs):
    with open_pipeline(blobs.manifest, blobs.url) as pipe:
        plot_blobs = import_callable("views:plot_blobs", str(blobs.manifest.parent))
        detections = pipe.query("Detection").fetch(order_by="image_id, params_id")
        blob_rows = {
            (d["image_id"], d["params_id"]): pipe.query(
                f"Detection.Blob & image_id = {d['image_id']} & params_id = {d['params_id']}"
            ).to_arrays("x", "y", "radius")
            for d in detections
        }
        fig = plot_blobs(pipe=pipe)
    assert tuple(fig.get_size_inches()) == (12, 8)  # 2 images x 3 parameter sets, 4 inches a panel
    axes = fig.axes
    assert len(axes) == 6 == len(detections)
    names = {1: "Three spots", 2: "Two spots"}
    for ax, detection in zip(axes, detections):  # row by image, column by parameter set, in key order
        key = (detection["image_id"], detection["params_id"])
        assert ax.get_title() == f"{names[key[0]]}\nParams {key[1]}: {detection['num_blobs']} blobs"
        assert not ax.axison
        (shown,) = ax.get_images()
        image = IMAGES[key[0] - 1]["image"]
        np.testing.assert_array_equal(shown.get_array(), image)
        assert shown.get_cmap().name == "gray_r"
        (circles,) = ax.collections
        x, y, radius = blob_rows[key]
        assert len(circles.get_paths()) == detection["num_blobs"] == len(x) > 0
        assert np.all(circles.get_facecolor() == 0)  # no fill
        assert circles.get_edgecolor()[0].tolist() == [1.0, 0.0, 0.0, 0.6]  # red, alpha 0.6
        # Each circle is centred at (column, row) = (y, x), as blob_doh's (row, col, sigma) needs.
        for path, xi, yi, ri in zip(circles.get_paths(), x, y, radius):
            vertices = path.vertices
            centre = (vertices.max(axis=0) + vertices.min(axis=0)) / 2
            np.testing.assert_allclose(centre, (yi, xi), atol=1e-4)
            np.testing.assert_allclose((vertices.max(axis=0) - vertices.min(axis=0)) / 2, ri * 1.2, rtol=1e-4)
        if key[1] == 3:  # the strictest parameters find only the spots: each circle sits on a bright one
            assert all(image[round(xi), round(yi)] > 0.5 for xi, yi in zip(x, y))


def test_view_command_writes_the_png(blobs, tmp_path):
    result = blobs.cli("view", "blobs", "--out", "figures/blobs.png")
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", "wrote figures/blobs.png\n")
    out = tmp_path / "figures" / "blobs.png"
    assert png_size(out) == (1200, 800)
    pixels = np.asarray(PILImage.open(out).convert("RGB")).astype(int)
    red = (pixels[:, :, 0] > 200) & (pixels[:, :, 1] < 150) & (pixels[:, :, 2] < 150)
    assert red.sum() > 200  # the circles
    # Case-insensitive name, default output NAME.png, another format by extension.
    assert blobs.cli("view", "BLOBS").stderr == "wrote blobs.png\n"
    assert png_size(tmp_path / "blobs.png") == (1200, 800)
    assert blobs.cli("view", "blobs", "--out", "blobs.svg").exit_code == 0
    assert (tmp_path / "blobs.svg").read_text().lstrip().startswith("<?xml")


def test_view_lists_views_and_refuses_unknown_ones(blobs, tmp_path):
    listing = blobs.cli("view")
    assert listing.exit_code == 0, listing.output
    assert listing.stdout.splitlines() == [
        "view   function          description",
        "blobs  views:plot_blobs  every image with its detected blobs, one panel per image x parameter set",
    ]
    assert blobs.fails(2, "view", "nope", "--out", "x.png") == (
        "unknown view 'nope'; the pipeline's views: blobs (every image with its detected blobs, one panel "
        "per image x parameter set)"
    )
    assert blobs.fails(2, "view", "blobs", "--out", "x.xyz").startswith(
        "cannot save a figure as 'x.xyz': use one of the extensions "
    )
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.xyz").exists()


def test_view_before_populate_is_one_error_line(backend, tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    for source in [*BLOBS.glob("*.py"), BLOBS / "pipeline.yaml"]:
        shutil.copy(source, directory / source.name)
    manifest = directory / "pipeline.yaml"
    schema = backend.schema("views_empty")
    manifest.write_text(re.sub(r"^schema: .*$", f"schema: {schema}", manifest.read_text(), flags=re.M))
    project = Project(manifest, backend.url)
    if backend.name == "sqlite":
        assert project.fails(2, "view", "blobs").startswith("no database at ")
    assert project.cli("init").exit_code == 0
    message = project.fails(1, "view", "blobs")
    assert re.fullmatch(
        r"view 'blobs' failed: ValueError: no Detection rows yet: run `blobflow populate` first "
        rf"\({re.escape(str(directory / 'views.py'))}:\d+\)",
        message,
    ), message
    assert not (tmp_path / "blobs.png").exists()


# --- the contract --------------------------------------------------------------------------------------

MANIFEST = """\
schema: {schema}
tables:
  Point:
    tier: manual
    key: {{point_id: int32}}
    attributes: {{x: float64, y: float64}}
views:
  points: {{function: "plots:scatter", description: the points}}
  writes: "plots:writes_itself"
  pyplot: "plots:with_pyplot"
  anything: "plots:takes_anything"
  broken: "plots:broken"
  nothing: "plots:nothing"
  wrong: "plots:wrong"
  needs: "plots:needs_colour"
  queries: "plots:bad_query"
"""

PLOTS = """\
from matplotlib.figure import Figure


def scatter(pipe):
    x, y = pipe.query("Point").to_arrays("x", "y")
    fig = Figure(figsize=(3, 2), dpi=50)
    fig.add_subplot().scatter(x, y)
    return fig


def writes_itself(out, pipe):
    fig = Figure(figsize=(2, 2), dpi=50)
    fig.add_subplot().plot([1, 2])
    fig.savefig(out)
    fig.set_size_inches(9, 9)  # returned after saving: blobflow keeps the file written
    return fig


def with_pyplot(pipe):
    import matplotlib.pyplot as plt

    plt.figure(figsize=(4, 1), dpi=50)
    plt.plot(*pipe.query("Point").to_arrays("x", "y"))


def takes_anything(**arguments):
    fig = Figure(figsize=(1, 1), dpi=50)
    fig.suptitle(",".join(sorted(arguments)))
    arguments["out"].with_suffix(".txt").write_text(type(arguments["pipe"]).__name__)
    return fig.add_subplot()  # an Axes: its figure is saved


def broken(pipe):
    return helper(pipe.query("Point").fetch())


def helper(rows):
    return len(rows) / 0


def nothing(pipe):
    return None


def wrong():
    return 42


def needs_colour(pipe, colour):
    raise AssertionError("never called")


def bad_query(pipe):
    pipe.query("Point & nope > 1").fetch()
"""


@pytest.fixture
def points(backend, tmp_path) -> Project:
    directory = tmp_path / "points"
    directory.mkdir()
    manifest = directory / "pipeline.yaml"
    manifest.write_text(MANIFEST.format(schema=backend.schema("views_points")))
    (directory / "plots.py").write_text(PLOTS)
    with open_pipeline(manifest, backend.url) as pipe:
        pipe.init()
        pipe.table("Point").insert([{"point_id": i, "x": float(i), "y": float(i * i)} for i in range(5)])
    return Project(manifest, backend.url)


def test_returned_written_and_pyplot_figures_are_saved(points, tmp_path):
    for name, size in [("points", (150, 100)), ("writes", (100, 100)), ("pyplot", (200, 50))]:
        result = points.cli("view", name, "--out", f"{name}.png")
        assert (result.exit_code, result.stderr) == (0, f"wrote {name}.png\n"), result.output
        assert png_size(tmp_path / f"{name}.png") == size, name
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # the pyplot figure was closed
    assert points.cli("view", "anything", "--out", "any.png").exit_code == 0
    assert png_size(tmp_path / "any.png") == (50, 50)
    assert (tmp_path / "any.txt").read_text() == "PipelineHandle"


def test_run_view_reports_who_saved(points, tmp_path):
    with open_pipeline(points.manifest, points.url) as pipe:
        assert run_view(pipe, "points", tmp_path / "a.png").saved_by == "blobflow"
        assert run_view(pipe, "writes", tmp_path / "b.png").saved_by == "view"
        with pytest.raises(ViewFailed, match=r"view 'broken' failed: ZeroDivisionError"):
            run_view(pipe, "broken", tmp_path / "c.png")


def test_a_view_that_raises_is_one_error_line(points, tmp_path):
    plots = tmp_path / "points" / "plots.py"
    line = PLOTS.splitlines().index("    return len(rows) / 0") + 1
    assert points.fails(1, "view", "broken", "--out", "b.png") == (
        f"view 'broken' failed: ZeroDivisionError: division by zero ({plots}:{line})"
    )
    assert not (tmp_path / "b.png").exists()
    debug = points.cli("--debug", "view", "broken", "--out", "b.png")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "in helper" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith("Error: view 'broken' failed: ZeroDivisionError")


def test_views_that_break_the_contract(points):
    assert points.fails(1, "view", "nothing") == (
        "view 'nothing' returned nothing and wrote nothing: return the matplotlib Figure (or write to the "
        "'out' argument)"
    )
    assert points.fails(1, "view", "wrong") == (
        "view 'wrong' returned an object of type int; expected a matplotlib Figure or None"
    )
    assert points.fails(2, "view", "needs") == (
        "view 'needs': 'plots:needs_colour' requires argument 'colour'; blobflow passes only 'pipe' and 'out'"
    )
    # blobflow's own errors raised inside a view pass unchanged: a query error shows its caret.
    result = points.cli("view", "queries")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and "^" in result.stderr and "Traceback" not in result.stderr


def test_a_view_module_that_fails_to_import_is_one_error_line(points, tmp_path):
    manifest = points.manifest
    manifest.write_text(manifest.read_text() + '  faulty: "faulty_plots:plot"\n')
    (tmp_path / "points" / "faulty_plots.py").write_text(
        textwrap.dedent(
            """\
            import os

            raise RuntimeError("no screen here")
            """
        )
    )
    line = len(manifest.read_text().splitlines())
    assert points.fails(2, "view", "faulty") == (
        f"{manifest}:{line}:11: cannot import 'faulty_plots:plot': RuntimeError: no screen here "
        f"({tmp_path / 'points' / 'faulty_plots.py'}:3)"
    )
