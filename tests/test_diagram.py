"""`blobflow diagram`: the Mermaid and dot texts of the blobs pipeline exactly, the layered layout, and the
drawn SVG and PNG (valid files, tiers in their colours, parts beside their master); needs no database."""

from __future__ import annotations

import io
import itertools
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from helpers import write_pipeline
from PIL import Image as PILImage

from blobflow import diagram
from blobflow.cli import cli
from blobflow.manifest import load_pipeline

REPO = Path(__file__).resolve().parent.parent
BLOBS = REPO / "pipelines" / "blobs"
S = "tutorial_blobs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLEAN_ENV = {
    "BLOBFLOW_PIPELINE": None,
    "BLOBFLOW_DATABASE_URL": None,
    "BLOBFLOW_DEBUG": None,
    "NO_COLOR": "1",
}

BLOBS_MERMAID = """\
flowchart TB
    classDef manual fill:#c9f2c9,stroke:#2e8b2e,color:#006400
    classDef lookup fill:#dedede,stroke:#7a7a7a,color:#000000
    classDef computed fill:#fad0d0,stroke:#b03030,color:#7f0000
    classDef part fill:#ffffff,stroke:#a0a0a0,color:#333333,font-size:11px
    Image("Image"):::manual
    DetectionParams("DetectionParams"):::lookup
    Detection("Detection"):::computed
    Detection_Blob("Detection.Blob"):::part
    SelectedDetection("SelectedDetection"):::manual
    Image --> Detection
    DetectionParams --> Detection
    Detection --- Detection_Blob
    Image --> SelectedDetection
    Detection -.-> SelectedDetection
"""

NODE = "fontsize=11, height=0.38, penwidth=1.2];"
BLOBS_DOT = f"""\
digraph "tutorial_blobs" {{
    graph [rankdir=TB, nodesep=0.3, ranksep=0.45, fontname="DejaVu Sans"];
    node [shape=box, style="rounded,filled", fontname="DejaVu Sans", margin="0.12,0.04"];
    edge [color="#555555", arrowsize=0.7];
    "Image" [fillcolor="#c9f2c9", color="#2e8b2e", fontcolor="#006400", {NODE}
    "DetectionParams" [fillcolor="#dedede", color="#7a7a7a", fontcolor="#000000", {NODE}
    "Detection" [fillcolor="#fad0d0", color="#b03030", fontcolor="#7f0000", {NODE}
    "Detection.Blob" [fillcolor="#ffffff", color="#a0a0a0", fontcolor="#333333", fontsize=8.5, height=0.26, \
penwidth=0.8];
    "SelectedDetection" [fillcolor="#c9f2c9", color="#2e8b2e", fontcolor="#006400", {NODE}
    "Image" -> "Detection";
    "DetectionParams" -> "Detection";
    "Detection" -> "Detection.Blob" [arrowhead=none, penwidth=0.8];
    "Image" -> "SelectedDetection";
    "Detection" -> "SelectedDetection" [style=dashed];
    {{rank=same; "Detection"; "Detection.Blob";}}
}}
"""

# Two schemas; an imported table; a master with two parts beside it; a part (Spikes.Unit) with a parent of
# its own; a part (Session.Note) pushed below its master by a parent on the master's row.
LAB = """\
    schema: lab
    tables:
      Subject:
        tier: manual
        key: {subject_id: int32}
      Protocol:
        tier: lookup
        key: {protocol: int16}
      Session:
        tier: manual
        depends: [Subject]
        references: [Protocol]
        key: {session: int16}
        parts:
          Trial:
            key: {trial: int16}
          Stim:
            key: {stim: int16}
      Rater:
        tier: manual
        depends: [Subject]
        key: {rater: int16}
      Recording:
        tier: imported
        depends: [Session]
        make: m:f
    """
ANALYSIS = """\
    schema: ana
    tables:
      Method:
        tier: lookup
        key: {method: int16}
      Spikes:
        tier: computed
        depends: [lab.Recording, Method]
        make: m:f
        parts:
          Unit:
            key: {unit: int16}
            depends: [lab.Session.Trial]
      Review:
        tier: computed
        depends: [lab.Subject]
        make: m:f
        parts:
          Note:
            depends: [lab.Rater]
    """


@pytest.fixture(scope="module")
def blobs():
    return load_pipeline(BLOBS)


@pytest.fixture
def lab(tmp_path):
    return load_pipeline(write_pipeline(tmp_path, {"a.yaml": LAB, "b.yaml": ANALYSIS}))


def invoke(*args: object) -> Result:
    return CliRunner(env=CLEAN_ENV).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def pixels_of(image: np.ndarray, hex_colour: str) -> np.ndarray:
    """Boolean mask of the pixels exactly in that colour."""
    return np.all(image[:, :, :3] == rgb(hex_colour), axis=2)


# --- text formats --------------------------------------------------------------------------------------


def test_mermaid_of_the_blobs_pipeline(blobs):
    assert diagram.to_mermaid(blobs) == BLOBS_MERMAID


def test_dot_of_the_blobs_pipeline(blobs):
    assert diagram.to_dot(blobs) == BLOBS_DOT


def test_rows_and_edges_of_the_blobs_pipeline(blobs):
    assert diagram.layers(blobs) == {
        f"{S}.Image": 0,
        f"{S}.DetectionParams": 0,
        f"{S}.Detection": 1,
        f"{S}.Detection.Blob": 1,  # beside its master
        f"{S}.SelectedDetection": 2,  # references Detection: below it
    }
    assert [(e.parent, e.child, e.depends, e.composition) for e in diagram.edges(blobs)] == [
        (f"{S}.Image", f"{S}.Detection", True, False),
        (f"{S}.DetectionParams", f"{S}.Detection", True, False),
        (f"{S}.Detection", f"{S}.Detection.Blob", True, True),
        (f"{S}.Image", f"{S}.SelectedDetection", True, False),
        (f"{S}.Detection", f"{S}.SelectedDetection", False, False),
    ]


def test_mermaid_across_schemas_with_imported_tables_and_parts(lab):
    text = diagram.to_mermaid(lab)
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    assert [line.split()[1] for line in lines if "classDef" in line] == [
        "manual",
        "lookup",
        "imported",
        "computed",
        "part",
    ]
    assert "    classDef imported fill:#c9cdf2,stroke:#3a3aa0,color:#00007f" in lines
    # One subgraph per schema, its tables inside, labelled schema.Table; parts right after their master.
    start, end = lines.index('    subgraph schema_lab["lab"]'), lines.index("    end")
    assert lines[start + 1 : end] == [
        '        lab__Subject("lab.Subject"):::manual',
        '        lab__Protocol("lab.Protocol"):::lookup',
        '        lab__Rater("lab.Rater"):::manual',
        '        lab__Session("lab.Session"):::manual',
        '        lab__Session_Trial("lab.Session.Trial"):::part',
        '        lab__Session_Stim("lab.Session.Stim"):::part',
        '        lab__Recording("lab.Recording"):::imported',
    ]
    assert '    subgraph schema_ana["ana"]' in lines
    edges = [line.strip() for line in lines if "->" in line or "---" in line]
    assert "lab__Protocol -.-> lab__Session" in edges  # references: dashed
    assert "lab__Session --- lab__Session_Trial" in edges  # a part beside its master: a plain line
    assert "lab__Session --- lab__Session_Stim" in edges
    assert "lab__Recording --> ana__Spikes" in edges  # across schemas
    assert "ana__Spikes --- ana__Spikes_Unit" in edges
    assert "lab__Session_Trial --> ana__Spikes_Unit" in edges  # a part's own parent
    assert "ana__Review --> ana__Review_Note" in edges  # a part below its master: an arrow
    assert "lab__Rater --> ana__Review_Note" in edges
    assert len(edges) == 13


def test_dot_across_schemas(lab):
    text = diagram.to_dot(lab)
    assert text.startswith('digraph "pipeline" {\n')
    assert '    subgraph "cluster_lab" {\n        label="lab"; style=dashed; color="#999999";\n' in text
    assert '    subgraph "cluster_ana" {' in text
    assert (
        '        "lab.Recording" [fillcolor="#c9cdf2", color="#3a3aa0", fontcolor="#00007f", fontsize=11, '
        "height=0.38, penwidth=1.2];\n"
    ) in text
    assert '    "lab.Protocol" -> "lab.Session" [style=dashed];\n' in text
    assert '    "ana.Review" -> "ana.Review.Note";\n' in text
    same_rank = [line.strip() for line in text.splitlines() if "rank=same" in line]
    assert same_rank == [
        '{rank=same; "lab.Session"; "lab.Session.Trial";}',
        '{rank=same; "lab.Session"; "lab.Session.Stim";}',
        '{rank=same; "ana.Spikes"; "ana.Spikes.Unit";}',
    ]


def test_layers_are_longest_paths_and_parts_sit_beside_their_master(lab):
    rows = {name.split(".", 1)[1]: row for name, row in diagram.layers(lab).items()}
    assert rows == {
        "Subject": 0,
        "Protocol": 0,
        "Session": 1,
        "Session.Trial": 1,
        "Session.Stim": 1,
        "Rater": 1,
        "Recording": 2,
        "Method": 0,
        "Spikes": 3,
        "Spikes.Unit": 3,
        "Review": 1,
        "Review.Note": 2,  # its parent Rater is on Review's row
    }


def test_layout_has_no_overlaps_parents_above_children_and_parts_to_the_right(lab):
    plan = diagram.layout(lab)
    boxes = plan.boxes
    by_row: dict[float, list] = {}
    for box in boxes.values():
        by_row.setdefault(box.y, []).append(box)
        assert box.left >= 0 and box.left + box.width <= plan.width + 1e-9
        assert box.top >= 0 and box.top + box.height <= plan.height + 1e-9
    for row in by_row.values():
        row.sort(key=lambda b: b.x)
        for left, right in itertools.pairwise(row):
            assert left.left + left.width < right.left, (left.label, right.label)
    for route in plan.routes:
        parent, child = boxes[route.edge.parent], boxes[route.edge.child]
        if route.edge.composition:
            assert parent.y == child.y and child.left > parent.left + parent.width
            assert route.points == ((parent.left + parent.width, parent.y), (child.left, child.y))
        else:
            assert parent.y < child.y
            assert route.points[0][1] == pytest.approx(parent.top + parent.height)  # out of the bottom
            assert route.points[-1][1] == pytest.approx(child.top)  # into the top
            assert len(route.points) == child.row - parent.row + 1  # one point per row crossed
    session, trial, stim = (boxes[f"lab.Session{s}"] for s in ("", ".Trial", ".Stim"))
    assert session.x < trial.x < stim.x
    assert trial.height < session.height  # parts are small


# --- drawn formats ------------------------------------------------------------------------------------


def test_png_is_valid_and_tables_have_their_tier_colours(blobs):
    data = diagram.render_diagram(blobs, "png")
    width, height = png_size(data)
    image = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGBA"))
    assert image.shape == (height, width, 4)
    plan = diagram.layout(blobs)
    dpi = 150
    assert abs(height - (plan.height + 0.45) * dpi) <= 1  # the drawing, then the legend
    offset = (width / dpi - plan.width) / 2  # the drawing is centred over the legend
    graph_rows = round(plan.height * dpi) - 10  # above the legend

    def region(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        """The pixels of a rectangle given in layout inches."""
        return image[
            round(y0 * dpi) : round(y1 * dpi), round((x0 + offset) * dpi) : round((x1 + offset) * dpi)
        ]

    for name, tier in [("Detection", "computed"), ("Image", "manual"), ("DetectionParams", "lookup")]:
        box = plan.boxes[f"{S}.{name}"]
        fill = rgb(diagram.TIER_STYLES[tier].fill)
        right = box.left + box.width
        # Between the border and the text, on both sides, the box is filled with its tier's colour.
        for x0 in (box.left + 0.03, right - 0.09):
            strip = region(x0, x0 + 0.06, box.top + 0.08, box.top + box.height - 0.08)
            assert strip.size and np.all(strip[:, :, :3] == fill), (name, tier)
        assert np.all(region(box.left - 0.06, box.left - 0.02, box.top, box.top + box.height) == 255)
        assert pixels_of(image[graph_rows:], diagram.TIER_STYLES[tier].fill).any()  # in the legend too
    # The computed colour is Detection's box, whole (less its border and text), and nothing else.
    detection = plan.boxes[f"{S}.Detection"]
    ys, xs = np.nonzero(pixels_of(image[:graph_rows], diagram.TIER_STYLES["computed"].fill))
    assert abs(xs.min() / dpi - (detection.left + offset)) < 0.03
    assert abs((xs.max() + 1) / dpi - (detection.left + detection.width + offset)) < 0.03
    assert abs(ys.min() / dpi - detection.top) < 0.03
    assert abs((ys.max() + 1) / dpi - (detection.top + detection.height)) < 0.03
    assert len(xs) > 0.6 * detection.width * detection.height * dpi * dpi
    # Parts are plain: no coloured fill around Detection.Blob, which sits right of Detection.
    blob = plan.boxes[f"{S}.Detection.Blob"]
    inside = image[
        round((blob.top + 0.04) * dpi) : round((blob.top + blob.height - 0.04) * dpi),
        round((blob.left + offset + 0.04) * dpi) : round((blob.left + blob.width + offset - 0.04) * dpi),
    ]
    text_colour = rgb(diagram.TIER_STYLES["part"].text)
    assert {tuple(p[:3]) for p in inside.reshape(-1, 4)} <= {
        tuple(c) for c in _blend(rgb("#ffffff"), text_colour)
    }


def _blend(background: tuple, foreground: tuple) -> np.ndarray:
    """Every colour antialiasing may produce between two colours (rounded per channel)."""
    steps = np.linspace(0, 1, 256)[:, None]
    mixed = np.asarray(background) * (1 - steps) + np.asarray(foreground) * steps
    return np.unique(np.concatenate([np.floor(mixed), np.ceil(mixed)]).astype(int), axis=0)


def test_no_computed_colour_without_computed_tables(tmp_path):
    manual_only = load_pipeline(
        write_pipeline(
            tmp_path,
            """
            schema: s
            tables:
              Subject: {tier: manual, key: {subject_id: int32}}
              Session: {tier: manual, depends: [Subject], key: {session: int16}}
            """,
        )
    )
    image = np.asarray(PILImage.open(io.BytesIO(diagram.render_diagram(manual_only, "png"))).convert("RGB"))
    assert not pixels_of(image, diagram.TIER_STYLES["computed"].fill).any()
    assert pixels_of(image, diagram.TIER_STYLES["manual"].fill).sum() > 2 * 0.5 * 0.3 * 150 * 150


def test_svg_is_valid_deterministic_and_searchable(blobs):
    text = diagram.render_diagram(blobs, "svg")
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    labels = {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"Image", "DetectionParams", "Detection", "Detection.Blob", "SelectedDetection"} <= labels
    assert {"manual", "lookup", "computed", "part", "depends", "references"} <= labels  # the legend
    assert "imported" not in labels  # only the tiers present
    assert "fill: #fad0d0" in text  # the computed fill
    assert diagram.render_diagram(blobs, "svg") == text


# --- the command ----------------------------------------------------------------------------------------


def test_default_is_mermaid_on_stdout_without_a_database(tmp_path):
    # The database URL names a server that is not there: the diagram never connects.
    result = invoke("-p", BLOBS, "--database", "postgresql://nobody@127.0.0.1:1/none", "diagram")
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == (BLOBS_MERMAID, "")
    dot = invoke("-p", BLOBS, "diagram", "--format", "dot")
    assert dot.stdout == BLOBS_DOT


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("d.mmd", "mermaid"), ("d.md", "mermaid"), ("d.gv", "dot"), ("d.svg", "svg"), ("d.PNG", "png")],
)
def test_out_picks_the_format_from_the_extension(tmp_path, name, fmt):
    out = tmp_path / "sub" / name
    result = invoke("-p", BLOBS, "diagram", "--out", out)
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", f"wrote {out} ({fmt})\n")
    data = out.read_bytes()
    if name.endswith(".md"):
        assert data.decode() == f"```mermaid\n{BLOBS_MERMAID}```\n"
    elif fmt == "mermaid":
        assert data.decode() == BLOBS_MERMAID
    elif fmt == "dot":
        assert data.decode() == BLOBS_DOT
    elif fmt == "svg":
        assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
    else:
        png_size(data)


def test_format_beats_the_extension_and_png_goes_to_a_pipe(tmp_path):
    result = invoke("-p", BLOBS, "diagram", "--format", "dot", "--out", tmp_path / "graph.txt")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "graph.txt").read_text() == BLOBS_DOT
    piped = invoke("-p", BLOBS, "diagram", "--format", "png")
    assert piped.exit_code == 0
    assert piped.stdout_bytes == diagram.render_diagram(load_pipeline(BLOBS), "png")


def test_unknown_extension_is_one_error_line(tmp_path):
    result = invoke("-p", BLOBS, "diagram", "--out", tmp_path / "d.jpeg")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: cannot tell the diagram format from '{tmp_path / 'd.jpeg'}' (known extensions: .mmd, "
        ".mermaid, .md, .dot, .gv, .svg, .png); pass --format mermaid|dot|svg|png\n"
    )
    assert not (tmp_path / "d.jpeg").exists()
    bad = invoke("-p", BLOBS, "diagram", "--format", "gif")
    assert bad.exit_code == 2 and "Invalid value for '--format'" in bad.stderr
