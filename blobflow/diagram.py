"""The pipeline's diagram, as DataJoint draws it: tables coloured by tier, edges from parents to children.

Pure: a `Pipeline` model in, text (Mermaid, Graphviz dot) or a matplotlib figure (SVG, PNG) out. No
database, no graphviz binary. The colours follow the seed tutorial's `dj.Diagram`: manual green, lookup
grey, imported blue, computed red, parts small and plain beside their master.

    >>> from blobflow.manifest import load_pipeline  # doctest: +SKIP
    >>> print(to_mermaid(load_pipeline("pipelines/blobs")))  # doctest: +SKIP
    flowchart TB
    ...
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blobflow.errors import UsageError
from blobflow.model import PART_TIER, Pipeline, Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("mermaid", "dot", "svg", "png")
EXTENSIONS = {
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",  # written as a ```mermaid fenced block, which GitHub renders
    ".dot": "dot",
    ".gv": "dot",
    ".svg": "svg",
    ".png": "png",
}
TIER_ORDER = ("manual", "lookup", "imported", "computed", PART_TIER)


@dataclass(frozen=True)
class TierStyle:
    fill: str
    stroke: str
    text: str
    font_size: float  # points
    height: float  # inches, of a box in the drawn figure
    line_width: float  # points


# Opaque versions of DataJoint's colours (#00FF0030 green, #00000020 grey, #00007F40 blue, #FF000020 red
# over white), a little more saturated so they read on a screen; parts: no colour, small text.
TIER_STYLES: dict[str, TierStyle] = {
    "manual": TierStyle("#c9f2c9", "#2e8b2e", "#006400", 11, 0.38, 1.2),
    "lookup": TierStyle("#dedede", "#7a7a7a", "#000000", 11, 0.38, 1.2),
    "imported": TierStyle("#c9cdf2", "#3a3aa0", "#00007f", 11, 0.38, 1.2),
    "computed": TierStyle("#fad0d0", "#b03030", "#7f0000", 11, 0.38, 1.2),
    PART_TIER: TierStyle("#ffffff", "#a0a0a0", "#333333", 8.5, 0.26, 0.8),
}
EDGE_COLOUR = "#555555"


# --- the graph: labels, edges, layers -------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    parent: str  # qualified names
    child: str
    depends: bool  # a foreign key inside the child's primary key (solid); else a reference (dashed)
    composition: bool  # master -> part drawn beside it: a plain line, no arrowhead


def label(pipeline: Pipeline, table: Table) -> str:
    """The name shown: the table's name, qualified by its schema when the pipeline has several."""
    return table.qualified_name if len(pipeline.schemas) > 1 else table.name


def edges(pipeline: Pipeline) -> list[Edge]:
    """One edge per (parent, child), in the order the child declares them; solid when any of the foreign
    keys between them is in the child's primary key."""
    layer = layers(pipeline)
    found: dict[tuple[str, str], bool] = {}
    for table in pipeline:
        for fk in table.foreign_keys:
            pair = (fk.parent, table.qualified_name)
            found[pair] = found.get(pair, False) or fk.in_key
    result = []
    for (parent, child), depends in found.items():
        beside = pipeline.table(child).master == parent and layer[child] == layer[parent]
        result.append(Edge(parent, child, depends, beside))
    return result


def layers(pipeline: Pipeline) -> dict[str, int]:
    """Each table's row, top to bottom: the longest path from a table without parents. A part shares its
    master's row (it is drawn beside it) unless another of its parents sits on that row or below."""
    layer: dict[str, int] = {}
    for table in pipeline:  # parents come first: the model is topologically sorted
        row = 0
        for fk in table.foreign_keys:
            row = max(row, layer[fk.parent] + (0 if fk.parent == table.master else 1))
        layer[table.qualified_name] = row
    return layer


def _ids(pipeline: Pipeline) -> dict[str, str]:
    """Node identifiers safe in Mermaid: Detection.Blob -> Detection_Blob; schema__Table across schemas."""
    many = len(pipeline.schemas) > 1
    return {t.qualified_name: (f"{t.schema}__" if many else "") + t.name.replace(".", "_") for t in pipeline}


def _tiers_used(pipeline: Pipeline) -> list[str]:
    used = {t.tier for t in pipeline}
    return [tier for tier in TIER_ORDER if tier in used]


def _display_order(pipeline: Pipeline) -> list[Table]:
    """The tables in dependency order, each master followed by its parts."""
    order = []
    for table in pipeline:
        if not table.is_part:
            order.append(table)
            order.extend(pipeline.table(part) for part in table.parts)
    return order


def _grouped(pipeline: Pipeline) -> list[tuple[str | None, list[Table]]]:
    """Tables by schema when there are several (drawn as clusters), else one group without a name."""
    tables = _display_order(pipeline)
    if len(pipeline.schemas) == 1:
        return [(None, tables)]
    return [(schema, [t for t in tables if t.schema == schema]) for schema in pipeline.schemas]


# --- text formats ------------------------------------------------------------------------------------


def to_mermaid(pipeline: Pipeline) -> str:
    """A Mermaid flowchart (renders on GitHub): classes per tier, parts small right after their master,
    solid arrows for `depends`, dashed for `references`, a plain line from a master to its parts."""
    ids = _ids(pipeline)
    lines = ["flowchart TB"]
    for tier in _tiers_used(pipeline):
        style = TIER_STYLES[tier]
        extra = f",font-size:{round(style.font_size * 4 / 3)}px" if tier == PART_TIER else ""
        lines.append(f"    classDef {tier} fill:{style.fill},stroke:{style.stroke},color:{style.text}{extra}")
    for schema, tables in _grouped(pipeline):
        indent = "    "
        if schema is not None:
            lines.append(f'    subgraph schema_{schema}["{schema}"]')
            indent = "        "
        for table in tables:
            lines.append(f'{indent}{ids[table.qualified_name]}("{label(pipeline, table)}"):::{table.tier}')
        if schema is not None:
            lines.append("    end")
    for edge in edges(pipeline):
        arrow = "---" if edge.composition else "-->" if edge.depends else "-.->"
        lines.append(f"    {ids[edge.parent]} {arrow} {ids[edge.child]}")
    return "\n".join(lines) + "\n"


def to_dot(pipeline: Pipeline) -> str:
    """Graphviz dot text, styled as the other formats: `dot -Tsvg` draws it where graphviz is installed."""
    name = pipeline.schemas[0] if len(pipeline.schemas) == 1 else "pipeline"
    lines = [
        f'digraph "{name}" {{',
        '    graph [rankdir=TB, nodesep=0.3, ranksep=0.45, fontname="DejaVu Sans"];',
        '    node [shape=box, style="rounded,filled", fontname="DejaVu Sans", margin="0.12,0.04"];',
        f'    edge [color="{EDGE_COLOUR}", arrowsize=0.7];',
    ]

    def quoted(qualified: str) -> str:
        return f'"{label(pipeline, pipeline.table(qualified))}"'

    for schema, tables in _grouped(pipeline):
        indent = "    "
        if schema is not None:
            lines.append(f'    subgraph "cluster_{schema}" {{')
            lines.append(f'        label="{schema}"; style=dashed; color="#999999";')
            indent = "        "
        for table in tables:
            style = TIER_STYLES[table.tier]
            lines.append(
                f'{indent}{quoted(table.qualified_name)} [fillcolor="{style.fill}", '
                f'color="{style.stroke}", fontcolor="{style.text}", fontsize={style.font_size:g}, '
                f"height={style.height:g}, penwidth={style.line_width:g}];"
            )
        if schema is not None:
            lines.append("    }")
    for edge in edges(pipeline):
        attributes = []
        if edge.composition:
            attributes += ["arrowhead=none", "penwidth=0.8"]
        elif not edge.depends:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {quoted(edge.parent)} -> {quoted(edge.child)}{suffix};")
    for edge in edges(pipeline):
        if edge.composition:
            lines.append(f"    {{rank=same; {quoted(edge.parent)}; {quoted(edge.child)};}}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- the drawn diagram: a layered layout ---------------------------------------------------------------

MARGIN = 0.25  # inches around the drawing
ROW_GAP = 0.55  # between rows of boxes
COLUMN_GAP = 0.3  # between boxes of a row
PART_GAP = 0.16  # between a master and the parts beside it
DUMMY_GAP = 0.12  # an edge passing through a row keeps this far from its neighbours
PAD_X = 0.14  # text to box side
ROW_HEIGHT = max(style.height for style in TIER_STYLES.values())


@dataclass(frozen=True)
class Box:
    name: str  # qualified name
    label: str
    tier: str
    row: int
    x: float  # centre, inches from the left
    y: float  # centre, inches from the top
    width: float
    height: float

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def top(self) -> float:
        return self.y - self.height / 2


@dataclass(frozen=True)
class Route:
    edge: Edge
    points: tuple[tuple[float, float], ...]  # from the parent's box to the child's, inches from top-left


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]
    routes: tuple[Route, ...]
    width: float  # inches
    height: float


def text_width(text: str, font_size: float) -> float:
    """Width in inches of a label drawn in matplotlib's default font."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    return TextPath((0, 0), text, size=font_size, prop=FontProperties()).get_extents().width / 72


def layout(pipeline: Pipeline) -> Layout:
    """Rows by longest path from a root, parts beside their master, an edge spanning several rows routed
    through a slot in each row it crosses; order within rows by barycentres (fewest crossings found),
    positions pulled towards the boxes each one connects to."""
    row_of = layers(pipeline)
    all_edges = edges(pipeline)
    boxes: dict[str, Box] = {}
    for table in _display_order(pipeline):
        style = TIER_STYLES[table.tier]
        text = label(pipeline, table)
        width = max(text_width(text, style.font_size) + 2 * PAD_X, 0.5)
        boxes[table.qualified_name] = Box(
            table.qualified_name, text, table.tier, row_of[table.qualified_name], 0, 0, width, style.height
        )
    # Units: a box with the parts drawn beside it move together; so does each slot of a long edge.
    unit_of: dict[str, str] = {name: name for name in boxes}
    members: dict[str, list[str]] = {name: [name] for name in boxes}
    for edge in all_edges:
        if edge.composition:
            master = unit_of[edge.parent]
            unit_of[edge.child] = master
            members[master].append(edge.child)
            del members[edge.child]
    widths = {name: box.width for name, box in boxes.items()}
    unit_row = {unit: row_of[unit] for unit in members}
    # Slots: an edge from row r to row r + k passes rows r+1 .. r+k-1 through one slot each.
    chains: list[tuple[Edge, list[str]]] = []
    for edge in all_edges:
        if edge.composition:
            continue
        chain = [edge.parent]
        for row in range(row_of[edge.parent] + 1, row_of[edge.child]):
            slot = f"~{edge.parent}>{edge.child}@{row}"
            members[slot] = [slot]
            unit_of[slot] = slot
            unit_row[slot] = row
            widths[slot] = 0.0
            chain.append(slot)
        chain.append(edge.child)
        chains.append((edge, chain))
    up: dict[str, list[str]] = {name: [] for name in unit_of}  # node -> nodes one row up it connects to
    down: dict[str, list[str]] = {name: [] for name in unit_of}
    for _, chain in chains:
        for upper, lower in itertools.pairwise(chain):
            up[lower].append(upper)
            down[upper].append(lower)
    rows: list[list[str]] = [[] for _ in range(max(unit_row.values()) + 1)]
    for unit in members:  # boxes in declaration order, then slots
        rows[unit_row[unit]].append(unit)
    rows = _order_rows(rows, members, up, down)
    xs = _place(rows, members, widths, up, down)
    height_of = {name: box.height for name, box in boxes.items()}
    placed: dict[str, tuple[float, float]] = {}
    for index, row in enumerate(rows):
        y = MARGIN + index * (ROW_HEIGHT + ROW_GAP) + ROW_HEIGHT / 2
        for unit in row:
            for member, x in xs[unit]:
                placed[member] = (x, y)
    min_x = min(x - widths[n] / 2 for n, (x, _) in placed.items())
    shift = MARGIN - min_x
    for name in list(boxes):
        x, y = placed[name]
        box = boxes[name]
        boxes[name] = Box(
            box.name, box.label, box.tier, box.row, float(x + shift), y, float(box.width), box.height
        )
    slot_at = {n: (float(x + shift), y) for n, (x, y) in placed.items() if n not in boxes}
    routes = _routes(all_edges, chains, boxes, slot_at, height_of)
    width = max(box.left + box.width for box in boxes.values()) + MARGIN
    width = max([width] + [x + MARGIN for x, _ in slot_at.values()])
    height = MARGIN * 2 + len(rows) * ROW_HEIGHT + (len(rows) - 1) * ROW_GAP
    return Layout(boxes, tuple(routes), width, height)


def _order_rows(
    rows: list[list[str]], members: dict[str, list[str]], up: dict, down: dict
) -> list[list[str]]:
    """Barycentre sweeps, down and up, keeping the order with the fewest crossings."""

    def positions(order: list[list[str]]) -> dict[str, float]:
        where: dict[str, float] = {}
        for row in order:
            index = 0
            for unit in row:
                for member in members[unit]:
                    where[member] = index
                    index += 1
        return where

    def crossings(order: list[list[str]]) -> int:
        where = positions(order)
        rows_of = {m: i for i, row in enumerate(order) for unit in row for m in members[unit]}
        by_row: dict[int, list[tuple[float, float]]] = {}
        for a in where:
            for b in down.get(a, []):
                by_row.setdefault(rows_of[a], []).append((where[a], where[b]))
        total = 0
        for pairs in by_row.values():
            for i, (a1, b1) in enumerate(pairs):
                for a2, b2 in pairs[i + 1 :]:
                    total += (a1 - a2) * (b1 - b2) < 0
        return total

    def sweep(order: list[list[str]], downwards: bool) -> list[list[str]]:
        order = [list(row) for row in order]
        indexes = range(1, len(order)) if downwards else range(len(order) - 2, -1, -1)
        for index in indexes:
            where = positions(order)
            neighbours = up if downwards else down

            def centre(unit: str, where=where, neighbours=neighbours) -> float:
                linked = [where[n] for m in members[unit] for n in neighbours[m]]
                return sum(linked) / len(linked) if linked else where[members[unit][0]]

            order[index].sort(key=centre)
        return order

    best, best_crossings = rows, crossings(rows)
    order = rows
    for _ in range(6):
        for downwards in (True, False):
            order = sweep(order, downwards)
            count = crossings(order)
            if count < best_crossings:
                best, best_crossings = order, count
    return best


def _place(
    rows: list[list[str]], members: dict[str, list[str]], widths: dict[str, float], up: dict, down: dict
) -> dict[str, list[tuple[float, float]]]:
    """x of each unit's members: packed in order, then pulled towards the centres of connected boxes
    (least squares under the order and the gaps: isotonic regression)."""
    offsets: dict[str, list[tuple[str, float]]] = {}  # unit -> (member, centre relative to unit's left)
    unit_width: dict[str, float] = {}
    for unit, names in members.items():
        left, placed = 0.0, []
        for i, member in enumerate(names):
            if i:
                left += PART_GAP
            placed.append((member, left + widths[member] / 2))
            left += widths[member]
        offsets[unit], unit_width[unit] = placed, left
    lefts: dict[str, float] = {}
    for row in rows:
        x = 0.0
        for i, unit in enumerate(row):
            if i:
                x += _gap(row[i - 1], unit)
            lefts[unit] = x
            x += unit_width[unit]

    def centres() -> dict[str, float]:
        return {m: lefts[u] + off for u in members for m, off in offsets[u]}

    passes = [up, down, up, down, None, None, None]
    for neighbours_of in passes:
        where = centres()
        for row in rows:
            wanted = []
            for unit in row:
                pulls = []
                for member, offset in offsets[unit]:
                    linked = up[member] + down[member] if neighbours_of is None else neighbours_of[member]
                    pulls += [where[n] - offset for n in linked]
                wanted.append(sum(pulls) / len(pulls) if pulls else lefts[unit])
            gaps = [0.0] + [unit_width[row[i - 1]] + _gap(row[i - 1], row[i]) for i in range(1, len(row))]
            for unit, left in zip(row, _isotonic(wanted, gaps)):
                lefts[unit] = left
    return {unit: [(m, lefts[unit] + off) for m, off in offsets[unit]] for unit in members}


def _gap(left_unit: str, right_unit: str) -> float:
    return DUMMY_GAP if left_unit.startswith("~") or right_unit.startswith("~") else COLUMN_GAP


def _isotonic(wanted: Sequence[float], gaps: Sequence[float]) -> list[float]:
    """Positions closest (least squares) to `wanted` with x[i] >= x[i-1] + gaps[i] (pool adjacent
    violators on x[i] minus the accumulated gaps)."""
    shifts, total = [], 0.0
    for gap in gaps:
        total += gap
        shifts.append(total)
    blocks: list[list[float]] = []  # [mean, count]
    for value in (w - s for w, s in zip(wanted, shifts)):
        blocks.append([value, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            blocks[-1][0] = (blocks[-1][0] * blocks[-1][1] + mean * count) / (blocks[-1][1] + count)
            blocks[-1][1] += count
    fitted = [mean for mean, count in blocks for _ in range(int(count))]
    return [f + s for f, s in zip(fitted, shifts)]


def _routes(
    all_edges: list[Edge],
    chains: list[tuple[Edge, list[str]]],
    boxes: dict[str, Box],
    slots: dict[str, tuple[float, float]],
    heights: dict[str, float],
) -> list[Route]:
    """Points of each edge: out of the parent's bottom, through its slots, into the child's top; the
    edges leaving (entering) one box spread along its side in the order of where they go (come from)."""
    routes: dict[Edge, Route] = {}
    for edge in all_edges:
        if edge.composition:
            master, part = boxes[edge.parent], boxes[edge.child]
            routes[edge] = Route(edge, ((master.x + master.width / 2, master.y), (part.left, part.y)))

    def point(name: str) -> tuple[float, float]:
        return (boxes[name].x, boxes[name].y) if name in boxes else slots[name]

    leaving: dict[str, list[tuple[float, int]]] = {}
    entering: dict[str, list[tuple[float, int]]] = {}
    for index, (_, chain) in enumerate(chains):
        leaving.setdefault(chain[0], []).append((point(chain[1])[0], index))
        entering.setdefault(chain[-1], []).append((point(chain[-2])[0], index))
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    for side, found in ((start, leaving), (end, entering)):
        for name, items in found.items():
            box = boxes[name]
            items.sort()
            step = min(0.16, box.width * 0.6 / max(len(items) - 1, 1))
            for i, (_, index) in enumerate(items):
                side[index] = box.x + (i - (len(items) - 1) / 2) * step
    for index, (edge, chain) in enumerate(chains):
        parent, child = boxes[chain[0]], boxes[chain[-1]]
        points = [(start[index], parent.y + heights[parent.name] / 2)]
        points += [slots[slot] for slot in chain[1:-1]]
        points.append((end[index], child.y - heights[child.name] / 2))
        routes[edge] = Route(edge, tuple(points))
    return [routes[edge] for edge in all_edges]


def figure(pipeline: Pipeline, dpi: float = 150) -> Figure:
    """The diagram as a matplotlib Figure (not attached to pyplot): 1 inch of the layout is 1 inch of
    the figure, so `layout(pipeline)` tells where each box is drawn."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    plan = layout(pipeline)
    legend_height = 0.45
    tiers = _tiers_used(pipeline)
    references = any(not route.edge.depends for route in plan.routes)
    legend_items = [(tier, text_width(tier, 8) + 0.2) for tier in tiers]
    samples = [("depends", True)] + ([("references", False)] if references else [])
    legend_width = sum(w + 0.12 for _, w in legend_items) + sum(
        0.5 + text_width(name, 8) + 0.15 for name, _ in samples
    )
    width = max(plan.width, legend_width + 2 * MARGIN)
    height = plan.height + legend_height
    fig = Figure(figsize=(width, height), dpi=dpi)
    fig.patch.set_facecolor("white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards, as in the layout
    ax.axis("off")
    centring = (width - plan.width) / 2

    def draw_box(x: float, y: float, w: float, h: float, tier: str, text: str, size: float) -> None:
        style = TIER_STYLES[tier]
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle=f"round,pad=0,rounding_size={min(0.09, h / 3):g}",
                facecolor=style.fill,
                edgecolor=style.stroke,
                linewidth=style.line_width,
                zorder=2,
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=size, color=style.text, zorder=3)

    for route in plan.routes:
        points = [(x + centring, y) for x, y in route.points]
        if route.edge.composition:
            vertices, codes = points, [MplPath.MOVETO, MplPath.LINETO]
            arrowstyle = "-"
        else:
            vertices, codes = [points[0]], [MplPath.MOVETO]
            for (x0, y0), (x1, y1) in itertools.pairwise(points):
                bend = (y1 - y0) / 2
                vertices += [(x0, y0 + bend), (x1, y1 - bend), (x1, y1)]
                codes += [MplPath.CURVE4] * 3
            arrowstyle = "-|>,head_length=0.5,head_width=0.22"
        ax.add_patch(
            FancyArrowPatch(
                path=MplPath(vertices, codes),
                arrowstyle=arrowstyle,
                mutation_scale=12,
                color=EDGE_COLOUR,
                linewidth=0.8 if route.edge.composition else 1.1,
                linestyle="-" if route.edge.depends else (0, (4, 2.5)),
                zorder=1,
            )
        )
    for box in plan.boxes.values():
        style = TIER_STYLES[box.tier]
        draw_box(box.x + centring, box.y, box.width, box.height, box.tier, box.label, style.font_size)

    # Legend: the tiers present, and the two kinds of edge when both occur.
    y = plan.height + legend_height / 2 - 0.05
    ax.plot([MARGIN, width - MARGIN], [plan.height - 0.05] * 2, color="#dddddd", linewidth=0.6)
    x = MARGIN
    for tier, w in legend_items:
        draw_box(x + w / 2, y, w, 0.22, tier, tier, 8)
        x += w + 0.12
    for name, solid in samples:
        ax.add_patch(
            FancyArrowPatch(
                (x + 0.05, y),
                (x + 0.4, y),
                arrowstyle="-|>,head_length=0.5,head_width=0.22",
                mutation_scale=10,
                color=EDGE_COLOUR,
                linewidth=1.0,
                linestyle="-" if solid else (0, (4, 2.5)),
            )
        )
        ax.text(x + 0.45, y, name, ha="left", va="center", fontsize=8, color="#333333")
        x += 0.5 + text_width(name, 8) + 0.15
    return fig


# --- one entry point for the CLI ------------------------------------------------------------------------


def format_for_path(path: str | Path) -> str:
    """The format an output file's extension asks for: .mmd/.mermaid/.md, .dot/.gv, .svg or .png."""
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        raise UsageError(
            f"cannot tell the diagram format from {str(path)!r} (known extensions: {known}); "
            f"pass --format {'|'.join(FORMATS)}"
        )
    return EXTENSIONS[suffix]


def render_diagram(pipeline: Pipeline, diagram_format: str, *, markdown: bool = False) -> str | bytes:
    """The diagram in one of FORMATS: text for mermaid, dot and svg, PNG bytes for png.
    `markdown` wraps Mermaid in a ```mermaid fence (for a .md file)."""
    if diagram_format == "mermaid":
        text = to_mermaid(pipeline)
        return f"```mermaid\n{text}```\n" if markdown else text
    if diagram_format == "dot":
        return to_dot(pipeline)
    if diagram_format not in ("svg", "png"):
        raise UsageError(f"unknown diagram format {diagram_format!r}; expected one of {', '.join(FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "svg and png diagrams need matplotlib: pip install 'blobflow[plot]' (or use --format mermaid)"
        ) from None
    from matplotlib import rc_context

    buffer = io.BytesIO()
    fig = figure(pipeline)
    if diagram_format == "svg":
        # Text stays text (searchable), and the file is the same for the same pipeline.
        with rc_context({"svg.fonttype": "none", "svg.hashsalt": "blobflow"}):
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        return buffer.getvalue().decode("utf-8")
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
