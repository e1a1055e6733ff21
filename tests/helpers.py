"""Helpers shared by the tests: pipelines written from strings."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path


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
