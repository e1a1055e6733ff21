"""Two schemas with tables of the same name: every per-table result keeps them apart.

Row counts, populate's summary, status and delete's plan are keyed by the name shown, which is
`schema.Name` for a name that two schemas share (and the plain name otherwise)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from click.testing import CliRunner
from helpers import CLEAN_ENV, write_pipeline

from blobflow import open_pipeline
from blobflow.cli import cli
from blobflow.delete import plan_delete
from blobflow.populate.status import pipeline_status

MAKE = """\
def scaled(key, factor):
    return {"value": key["sample_id"] * factor}
"""


@pytest.fixture
def two_schemas(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    first, second = backend.schema("first"), backend.schema("second")
    table = """\
        tables:
          Sample:
            tier: manual
            key: {{sample_id: int32}}
          Factor:
            tier: lookup
            key: {{factor_id: int16}}
            attributes: {{factor: int32}}
            contents: [{{factor_id: 1, factor: {factor}}}]
          Result:
            tier: computed
            depends: [Sample, Factor]
            attributes: {{value: int32}}
            make: {{function: "shared_make:scaled", inputs: {{factor: Factor.factor}}}}
        """
    directory = write_pipeline(
        tmp_path,
        {
            "first.yaml": f"schema: {first}\n" + textwrap.dedent(table).format(factor=10),
            "second.yaml": f"schema: {second}\n" + textwrap.dedent(table).format(factor=100),
        },
    )
    (directory / "shared_make.py").write_text(MAKE)
    with open_pipeline(directory, backend.url) as pipe:
        pipe.init()
        pipe.table(f"{first}.Sample").insert([{"sample_id": i} for i in (1, 2)])
        pipe.table(f"{second}.Sample").insert([{"sample_id": i} for i in (1, 2, 3)])
    yield directory, backend.url, first, second
    for name in [m for m in sys.modules if m == "shared_make"]:
        del sys.modules[name]


def run(directory, url, *args):
    result = CliRunner(env=CLEAN_ENV).invoke(cli, ["-p", str(directory), "--database", url, *args])
    assert result.exit_code == 0, result.output
    return result


def test_counts_summaries_status_and_delete_plans_keep_same_named_tables_apart(two_schemas):
    directory, url, first, second = two_schemas
    tables = {row["table"]: row["rows"] for row in json.loads(run(directory, url, "tables", "--json").stdout)}
    assert tables == {
        f"{first}.Sample": 2,
        f"{first}.Factor": 1,
        f"{first}.Result": 0,
        f"{second}.Sample": 3,
        f"{second}.Factor": 1,
        f"{second}.Result": 0,
    }
    summary = json.loads(run(directory, url, "populate", "--no-progress", "--json").stdout)
    assert {name: s["computed"] for name, s in summary.items()} == {
        f"{first}.Result": 2,
        f"{second}.Result": 3,
    }
    with open_pipeline(directory, url) as pipe:
        statuses = {s.table: (s.rows, s.pending) for s in pipeline_status(pipe.database)}
        assert statuses[f"{first}.Result"] == (2, 0)
        assert statuses[f"{second}.Result"] == (3, 0)
        values = pipe.query(f"{second}.Result").fetch("value", order_by="sample_id")
        assert [row["value"] for row in values] == [100, 200, 300]
        plan = plan_delete(pipe.database, f"{second}.Sample & sample_id > 1")
        assert plan.table == f"{second}.Sample"
        assert plan.counts == {f"{second}.Sample": 2, f"{second}.Result": 2}
    described = run(directory, url, "describe", f"{first}.Sample")
    assert f"{first}.Sample: 2 rows" in described.stderr
