"""The CLI's one error boundary: user errors, bugs, interrupts and broken pipes, each one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import BLOBS
from helpers import CLEAN_ENV, write_pipeline

from blobflow import cli as cli_module
from blobflow import db, open_pipeline
from blobflow.cli import EXIT_INTERNAL, cli

BLOBFLOW = Path(sys.executable).parent / "blobflow"


def test_a_bug_is_one_line_with_exit_3_and_a_traceback_only_with_debug(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_module, "open_pipeline", broken)
    arguments = ["-p", str(BLOBS), "--database", f"sqlite:///{tmp_path}/x.db", "tables"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == EXIT_INTERNAL == 3
    assert result.stderr == (
        "Error: unexpected RuntimeError: boom (a bug in blobflow; rerun with --debug for the traceback)\n"
    )
    debugged = CliRunner().invoke(cli, ["--debug", *arguments])
    assert "Traceback (most recent call last)" in debugged.stderr
    assert debugged.exit_code == 3


def test_ctrl_c_exits_130(monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "open_pipeline", interrupted)
    result = CliRunner().invoke(cli, ["-p", str(BLOBS), "--database", f"sqlite:///{tmp_path}/x.db", "tables"])
    assert result.exit_code == 130
    assert result.stderr == "Error: interrupted\n"


def test_a_broken_pipe_of_blobflows_own_is_a_bug_not_a_closed_reader(monkeypatch, tmp_path):
    """Only stdout's reader going away is quiet success; a worker's pipe breaking is a failure."""

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_module, "open_pipeline", broken)
    result = CliRunner().invoke(cli, ["-p", str(BLOBS), "--database", f"sqlite:///{tmp_path}/x.db", "tables"])
    assert result.exit_code == EXIT_INTERNAL
    assert result.stderr.startswith(
        "Error: unexpected BrokenPipeError: [Errno 32] Broken pipe (a bug in blobflow"
    )


def test_a_reader_closing_stdout_early_is_quiet_success(tmp_path):
    manifest = write_pipeline(
        tmp_path,
        """\
        schema: many
        tables:
          Thing:
            tier: manual
            key: {thing_id: int32}
            attributes: {label: varchar(40)}
        """,
    )
    url = f"sqlite:///{tmp_path}/many.db"
    with open_pipeline(manifest, url) as pipe:
        pipe.init()
        pipe.table("Thing").insert([{"thing_id": i, "label": f"thing number {i}"} for i in range(20_000)])
    command = f"{BLOBFLOW} -p {manifest} --database {url} query Thing | head -n 2; exit ${{PIPESTATUS[0]}}"
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 2


def database_error(engine: sa.Engine, sql: str) -> sa.exc.DBAPIError:
    with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as caught:
        connection.exec_driver_sql(sql)
    return caught.value


def test_a_missing_table_is_told_from_a_missing_temporary_table_of_blobflows(backend):
    """A table of the pipeline missing means "run init"; one of blobflow's own temporary tables
    missing is a bug, reported as such."""
    engine = db.create_engine(backend.url, [])
    try:
        assert db.is_missing_table(database_error(engine, "SELECT * FROM nowhere_to_be_found"))
        temporary = f"{db.TEMPORARY_TABLE_PREFIX}0"
        assert not db.is_missing_table(database_error(engine, f"SELECT * FROM {temporary}"))
        assert not db.is_missing_table(database_error(engine, "SELECT 1 FROM"))  # a syntax error
    finally:
        engine.dispose()
