"""Helpers shared by the tests: pipelines written from strings, and a clean CLI environment."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

# Nothing from the caller's environment may steer the commands under test (CliRunner env=...).
CLEAN_ENV = {
    "BLOBFLOW_PIPELINE": None,
    "BLOBFLOW_DATABASE_URL": None,
    "BLOBFLOW_DEBUG": None,
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "NO_COLOR": "1",
    "COLUMNS": "200",
}


def write_pipeline(tmp_path: Path, text_or_files: str | Mapping[str, str]) -> Path:
    """Write a pipeline under `tmp_path` and return what `load_pipeline` takes.

    A string becomes `tmp_path/pipeline.yaml` (the file is returned); a mapping of file names to texts
    becomes the directory `tmp_path/pipeline/` (the directory is returned). Texts are dedented, so they
    can be written indented inside the test.

    >>> write_pipeline(tmp_path, {"a.yaml": "schema: a ...", "b.yaml": "schema: b ..."})  # doctest: +SKIP
    PosixPath('.../pipeline')
    """
    if isinstance(text_or_files, str):
        path = tmp_path / "pipeline.yaml"
        path.write_text(_clean(text_or_files), encoding="utf-8")
        return path
    directory = tmp_path / "pipeline"
    directory.mkdir()
    for name, text in text_or_files.items():
        (directory / name).write_text(_clean(text), encoding="utf-8")
    return directory


def _clean(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
