"""The CLI's one error boundary: user errors, bugs, interrupts and broken pipes, each one line."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import BLOBS

from blobflow import cli as cli_module
from blobflow.cli import EXIT_INTERNAL, cli


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
