"""Commands that only read never create a database file (a mistyped --database stays visible)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import BLOBS
from helpers import CLEAN_ENV

from blobflow.cli import cli


def run(target, command):
    arguments = ["-p", str(BLOBS), "--database", f"sqlite:///{target}", *command]
    return CliRunner(env=CLEAN_ENV).invoke(cli, arguments)


@pytest.mark.parametrize("command", [["tables"], ["describe", "Image"], ["status"]])
def test_reading_commands_do_not_create_the_database(tmp_path, command):
    target = tmp_path / "missing" / "x.db"
    result = CliRunner(env=CLEAN_ENV).invoke(
        cli, ["-p", str(BLOBS), "--database", f"sqlite:///{target}", *command]
    )
    assert result.exit_code == 0, result.output
    assert not target.parent.exists()


@pytest.mark.parametrize(
    "command", [["query", "Image"], ["jobs"], ["populate"], ["delete", "Image", "--yes"]]
)
def test_commands_needing_data_refuse_a_missing_database(tmp_path, command):
    target = tmp_path / "x.db"
    result = CliRunner(env=CLEAN_ENV).invoke(
        cli, ["-p", str(BLOBS), "--database", f"sqlite:///{target}", *command]
    )
    assert result.exit_code == 2
    assert (
        result.stderr == f"Error: no database at {target}; run `blobflow init` first (or check --database)\n"
    )
    assert not target.exists()
