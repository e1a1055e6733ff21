"""Rows from files (YAML, JSON, JSON Lines, CSV) and blob values that point elsewhere.

A blob attribute's value in a file may be `{npy: path}`, `{image: path}` (read with scikit-image;
`as_gray: true` converts colour images) or `{call: module:function}` (with optional `args`); paths
are relative to the file they appear in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from blobflow.callables import import_callable
from blobflow.errors import DataError
from blobflow.model import Pipeline, Table

FORMATS = ("yaml", "json", "jsonl", "csv")
_EXTENSIONS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
BLOB_SOURCES = ("npy", "image", "call")


def detect_format(name: str, text: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines):
        return "jsonl"
    # YAML reads JSON too, and YAML flow style ([{image_id: 1}]) is what people type on stdin.
    return "yaml"


def read_rows(stream: IO[str], name: str, file_format: str | None = None) -> list[dict[str, Any]]:
    """Parse a whole file of rows; a malformed file is a DataError naming the line."""
    text = stream.read()
    file_format = file_format or detect_format(name, text)
    if file_format == "csv":
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(io.StringIO(text))]
    if file_format == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                rows.append(_parse_json(line, name, line_number=number))
        return rows
    data = _parse_json(text, name) if file_format == "json" else _parse_yaml(text, name)
    if isinstance(data, Mapping):
        data = [data]
    if data is None:
        return []
    if not isinstance(data, list):
        raise DataError(f"{name}: expected a list of rows, got {type(data).__name__}")
    return data


def _parse_json(text: str, where: str, line_number: int | None = None) -> Any:
    """`line_number`: the line of the file `text` is (JSON Lines), reported instead of the line within it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = exc.lineno if line_number is None else line_number
        raise DataError(f"{where}:{line}:{exc.colno}: invalid JSON: {exc.msg}") from None


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        position = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise DataError(f"{where}{position}: invalid YAML: {exc.problem}") from None
    except (ValueError, OverflowError) as exc:  # a value PyYAML recognises but cannot build: 2024-13-01
        raise DataError(f"{where}: invalid YAML value: {exc}") from None


def resolve_blob_sources(
    rows: Iterable[dict[str, Any]], table: Table, pipeline: Pipeline, base: Path, *, from_csv: bool = False
) -> list[dict[str, Any]]:
    """Replace `{npy|image|call: ...}` values of blob attributes (also in nested part rows) by arrays.

    CSV cells are text, so there `json` attributes' cells are read as JSON too.
    """
    blob_names = {a.name for a in table.attributes if a.type.kind == "blob"}
    json_names = {a.name for a in table.attributes if a.type.kind == "json"} if from_csv else set()
    parts = {q.rsplit(".", 1)[1]: pipeline.table(q) for q in table.parts}
    resolved = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            resolved.append(row)
            continue
        row = dict(row)
        for name in blob_names & row.keys():
            row[name] = _load_blob(
                _maybe_json(row[name]), base, pipeline, f"row {number}, attribute '{name}'"
            )
        for name in json_names & row.keys():
            row[name] = _json_cell(row[name], f"row {number}, attribute '{name}'")
        for part_name, part in parts.items():
            if isinstance(row.get(part_name), list):
                row[part_name] = resolve_blob_sources(row[part_name], part, pipeline, base)
        resolved.append(row)
    return resolved


def _json_cell(value: Any, where: str) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not JSON: {exc.msg} at character {exc.pos + 1}") from None


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _load_blob(value: Any, base: Path, pipeline: Pipeline, where: str) -> Any:
    if not (isinstance(value, Mapping) and len(set(value) & set(BLOB_SOURCES)) == 1):
        return value
    try:
        if "npy" in value:
            return np.load(base / str(value["npy"]), allow_pickle=False)
        if "image" in value:
            from skimage import io as skio
            from skimage.color import rgb2gray

            image = skio.imread(base / str(value["image"]))
            return rgb2gray(image) if value.get("as_gray") else image
        function = import_callable(str(value["call"]), pipeline.root)
        return function(*value.get("args", []))
    except DataError:
        raise
    except Exception as exc:
        source = next(k for k in BLOB_SOURCES if k in value)
        raise DataError(
            f"{where}: cannot load {source} {value[source]!r}: {type(exc).__name__}: {exc}"
        ) from None
