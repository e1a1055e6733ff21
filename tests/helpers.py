"""Helpers shared by the tests: pipelines written from strings, a clean CLI environment, and running a
command on a pseudo-terminal."""

from __future__ import annotations

import os
import select
import subprocess
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

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


def run_in_pty(
    command: list[str], env: Mapping[str, str], cwd: Path, *, answer: bytes | None = None, timeout: float = 30
) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on a pseudo-terminal; type `answer` at a [y/N] prompt.

    Returns (exit status, everything it printed); skips the test where no pseudo-terminal exists.
    """
    try:
        import pty

        master, slave = pty.openpty()
    except (ImportError, OSError) as exc:
        pytest.skip(f"no pseudo-terminal available: {exc}")
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=dict(env), close_fds=True
    )
    os.close(slave)
    output, answered = b"", answer is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child is gone and the terminal closed
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N] " in output:
                os.write(master, answer + b"\n")
                answered = True
        else:
            process.kill()
            pytest.fail(f"{command} did not finish within {timeout}s; output so far: {output!r}")
        status = process.wait(timeout=timeout)
    finally:
        os.close(master)
    return status, output.decode(errors="replace").replace("\r\n", "\n")
