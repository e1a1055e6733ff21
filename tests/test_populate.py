"""populate, status and jobs on both backends: pending planning, upstream-first order, the make contract
(arguments, return forms, validation of returned rows), master-part atomicity, failures recorded and
retried, provenance columns, the CLI's options and output, and the seed pipeline's exact results."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from helpers import CLEAN_ENV

from blobflow import open_pipeline
from blobflow.api import PipelineHandle
from blobflow.cli import cli
from blobflow.populate.dispenser import DispenseOptions, KeyDispenser
from blobflow.populate.executor import PopulateOptions, TableSummary, populate
from blobflow.populate.make import MakeCaller
from blobflow.populate.reservations import WorkerId
from blobflow.populate.status import list_jobs, pipeline_status
from blobflow.populate.writer import write_results

REPO = Path(__file__).resolve().parent.parent
BLOBS = REPO / "pipelines" / "blobs"


# Subject x Param -> Result (with part Item) -> Summary (reads Result through ctx).
MANIFEST = """\
    schema: {schema}
    tables:
      Subject:
        tier: manual
        key: {{subject_id: int32}}
        attributes: {{name: varchar(20)}}
      Param:
        tier: lookup
        key: {{param_id: int16}}
        attributes: {{factor: float64}}
        contents:
          - {{param_id: 1, factor: 1.0}}
          - {{param_id: 2, factor: 10.0}}
      Result:
        tier: computed
        depends: [Subject, Param]
        attributes:
          value: float64
          label: varchar(30)
        make:
          function: popmake:result
          inputs:
            name: Subject.name
            param: Param
        parts:
          Item:
            key: {{item: int16}}
            attributes: {{score: float64}}
      Summary:
        tier: computed
        depends: [Result]
        attributes:
          total: float64
          n: int32
          master_value: float64
        make: {{function: "popmake:summary"}}
    """

# The make functions. What they do wrong, per subject, is read from modes.json beside them at each call,
# so a test can make a key fail and then fix it; every call is logged to calls.log.
MAKE_MODULE = '''\
"""Make functions of the populate tests."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def _mode(key):
    path = HERE / "modes.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get(str(key["subject_id"]))


def _log(name, key):
    with open(HERE / "calls.log", "a") as log:
        log.write(f"{name} {key['subject_id']} {key['param_id']}\\n")


def result(key, name, param):
    _log("result", key)
    mode = _mode(key)
    subject = key["subject_id"]
    if mode == "raise":
        raise RuntimeError(f"boom for subject {subject}")
    value = subject * param["factor"]
    scores = [value + 1, value + 2, value + 3]
    form = subject % 3  # each form of part rows the contract allows
    if form == 1:
        items = [{"item": i + 1, "score": s} for i, s in enumerate(scores)]
    elif form == 2:
        items = {"item": np.arange(1, 4, dtype=np.int16), "score": np.array(scores)}
    else:
        items = np.array([(i + 1, s) for i, s in enumerate(scores)], dtype=[("item", "i2"), ("score", "f8")])
    row = {"value": value, "label": f"{name}-p{param['param_id']}", "Item": items}
    if mode == "missing":
        del row["value"]
    elif mode == "extra":
        row["bogus"] = 1
    elif mode == "wrong_type":
        row["value"] = "lots"
    elif mode == "collision":
        row["Item"] = [{"item": 1, "score": 0.5}, {"item": 2, "score": 0.5}, {"item": 1, "score": 0.7}]
    elif mode == "part_key":
        row["Item"] = [{"item": 1, "score": 0.5, "subject_id": 99}]
    elif mode == "bad_part":
        row["Item"] = [{"item": 1, "score": 0.5}, {"item": 2, "score": "high"}]
    elif mode == "too_long":
        row["label"] = "x" * 31
    elif mode == "not_a_dict":
        return [value]
    elif mode == "none":
        return None
    elif mode == "part_typo":
        row["Items"] = row.pop("Item")
    return row


def summary(key, ctx):
    _log("summary", key)
    items = ctx.fetch("Result.Item")
    master = ctx.fetch1("Result", "value")
    return {"total": sum(i["score"] for i in items), "n": len(items), "master_value": master["value"]}
'''


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in tmp_path and forget the make modules this test imported, so the next imports its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


@dataclass
class Lab:
    """The test pipeline in tmp_path, in a schema of its own; library and CLI pointed at it."""

    directory: Path
    manifest: Path
    url: str
    schema: str

    def open(self) -> PipelineHandle:
        return open_pipeline(self.manifest, self.url)

    def cli(self, *args: object) -> Result:
        runner = CliRunner(env=CLEAN_ENV)
        arguments = ["-p", str(self.manifest), "--database", self.url, *map(str, args)]
        return runner.invoke(cli, arguments, catch_exceptions=False)

    def populate(self, *targets: str, **options) -> dict[str, TableSummary]:
        with self.open() as pipe:
            tables = [pipe.table(t).model for t in targets] or None
            return populate(pipe.database, tables, PopulateOptions(**options))

    def add_subjects(self, *ids: int) -> None:
        with self.open() as pipe:
            pipe.table("Subject").insert([{"subject_id": i, "name": f"s{i}"} for i in ids])

    def modes(self, **modes: str) -> None:
        """What the make does wrong, per subject: modes(s3="raise")."""
        (self.directory / "modes.json").write_text(json.dumps({k[1:]: v for k, v in modes.items()}))

    def calls(self) -> list[str]:
        log = self.directory / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def forget_calls(self) -> None:
        (self.directory / "calls.log").unlink(missing_ok=True)

    def rows(self, table: str, *columns: str) -> list[tuple]:
        """Rows straight from the SQL table (hidden columns included), in key order."""
        with self.open() as pipe:
            model = pipe.table(table).model
            sql_table = pipe.database.sql[model.qualified_name]
            select = sa.select(*[sql_table.c[c] for c in columns]).order_by(
                *[sql_table.c[k] for k in model.primary_key]
            )
            with pipe.database.engine.connect() as connection:
                return [tuple(row) for row in connection.execute(select)]

    def jobs_rows(self, table: str = "Result") -> list[dict]:
        with self.open() as pipe:
            model = pipe.table(table).model
            jobs = pipe.database.sql.jobs[model.qualified_name]
            select = sa.select(jobs).order_by(*[jobs.c[k] for k in model.primary_key])
            with pipe.database.engine.connect() as connection:
                return [dict(row) for row in connection.execute(select).mappings()]


@pytest.fixture
def lab(backend, tmp_path) -> Lab:
    """The pipeline, initialised, with subjects 1, 2 and 3: six Result keys, one per subject x param."""
    directory = tmp_path / "lab"
    directory.mkdir()
    schema = backend.schema("pop")
    manifest = directory / "pipeline.yaml"
    manifest.write_text(textwrap.dedent(MANIFEST.format(schema=schema)))
    (directory / "popmake.py").write_text(MAKE_MODULE)
    project = Lab(directory, manifest, backend.url, schema)
    with project.open() as pipe:
        pipe.init()
    project.add_subjects(1, 2, 3)
    return project


def expected_results(subjects=(1, 2, 3), params=(1, 2)) -> list[tuple]:
    factor = {1: 1.0, 2: 10.0}
    return [(s, p, s * factor[p], f"s{s}-p{p}") for s in subjects for p in params]


def expected_items(subjects=(1, 2, 3), params=(1, 2)) -> list[tuple]:
    factor = {1: 1.0, 2: 10.0}
    return [(s, p, i, s * factor[p] + i) for s in subjects for p in params for i in (1, 2, 3)]


def summary_lines(stderr: str) -> list[str]:
    """stderr with the seconds blanked out."""
    return [re.sub(r" in \d+\.\d s$", " in N s", line) for line in stderr.splitlines()]


# --- planning, idempotence, upstream first ------------------------------------------------------------


def test_pending_keys_are_the_key_source_minus_what_is_done(lab):
    with lab.open() as pipe:
        result = pipe.table("Result").model
        dispenser = KeyDispenser(pipe.database, result, WorkerId(), DispenseOptions(reserve=False))
        assert dispenser.total == 6
        assert dispenser.take(4) == [(1, 1), (1, 2), (2, 1), (2, 2)]
        assert dispenser.take(4) == [(3, 1), (3, 2)]
        assert dispenser.take(4) == []
        statuses = {s.table: s for s in pipeline_status(pipe.database)}
    assert (statuses["Result"].rows, statuses["Result"].pending) == (0, 6)
    assert (statuses["Summary"].rows, statuses["Summary"].pending) == (0, 0)  # no Result yet
    assert statuses["Subject"].pending is None

    summaries = lab.populate("Result")
    assert list(summaries) == ["Result"]
    assert (summaries["Result"].computed, summaries["Result"].failed) == (6, 0)
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == expected_results()
    assert lab.rows("Result.Item", "subject_id", "param_id", "item", "score") == expected_items()

    lab.add_subjects(4)
    lab.forget_calls()
    with lab.open() as pipe:
        statuses = {s.table: s for s in pipeline_status(pipe.database)}
    assert (statuses["Result"].rows, statuses["Result"].pending) == (6, 2)
    assert (statuses["Summary"].rows, statuses["Summary"].pending) == (0, 6)
    summaries = lab.populate("Result")
    assert summaries["Result"].computed == 2
    assert lab.calls() == ["result 4 1", "result 4 2"]  # only the new keys were computed


def test_second_run_computes_nothing(lab):
    first = lab.populate()
    assert {name: (s.computed, s.failed, s.skipped) for name, s in first.items()} == {
        "Result": (6, 0, 0),
        "Summary": (6, 0, 0),
    }
    lab.forget_calls()
    second = lab.populate()
    assert {name: (s.computed, s.failed, s.skipped) for name, s in second.items()} == {
        "Result": (0, 0, 0),
        "Summary": (0, 0, 0),
    }
    assert lab.calls() == []
    result = lab.cli("populate", "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    assert {k: v["computed"] for k, v in json.loads(result.stdout).items()} == {"Result": 0, "Summary": 0}


def test_naming_the_downstream_table_populates_upstream_first(lab):
    result = lab.cli("populate", "summary", "--no-progress")
    assert result.exit_code == 0, result.output
    assert summary_lines(result.stderr) == [
        "Result: 6 computed, 0 failed in N s",
        "Summary: 6 computed, 0 failed in N s",
    ]
    calls = lab.calls()
    assert [c.split()[0] for c in calls] == ["result"] * 6 + ["summary"] * 6
    # Summary's make read Result and its parts through ctx, restricted to its own key
    assert lab.rows("Summary", "subject_id", "param_id", "total", "n", "master_value") == [
        (s, p, 3 * v + 6, 3, v) for s, p, v, _ in expected_results()
    ]


def test_naming_a_part_populates_its_master(lab):
    result = lab.cli("populate", "Result.Item", "--no-progress")
    assert result.exit_code == 0, result.output
    assert summary_lines(result.stderr) == ["Result: 6 computed, 0 failed in N s"]
    assert len(lab.rows("Result.Item", "item")) == 18
    assert lab.rows("Summary", "subject_id") == []


def test_make_gets_key_inputs_and_ctx_and_returns_any_form_of_part_rows(lab):
    # subjects 1, 2, 3 return their parts as a list of dicts, a dict of columns, a structured array
    lab.populate()
    with lab.open() as pipe:
        items = pipe.table("Result.Item").fetch({"subject_id": 3, "param_id": 2})
        assert items == [
            {"subject_id": 3, "param_id": 2, "item": 1, "score": 31.0},
            {"subject_id": 3, "param_id": 2, "item": 2, "score": 32.0},
            {"subject_id": 3, "param_id": 2, "item": 3, "score": 33.0},
        ]
        assert pipe.table("Result").fetch1({"subject_id": 2, "param_id": 1}) == {
            "subject_id": 2,
            "param_id": 1,
            "value": 2.0,
            "label": "s2-p1",
        }
        assert pipe.table("Summary").fetch1({"subject_id": 2, "param_id": 2}) == {
            "subject_id": 2,
            "param_id": 2,
            "total": 66.0,
            "n": 3,
            "master_value": 20.0,
        }


def test_make_taking_only_some_arguments(backend, tmp_path):
    directory = tmp_path / "kw"
    directory.mkdir()
    schema = backend.schema("kw")
    (directory / "pipeline.yaml").write_text(
        textwrap.dedent(
            f"""\
            schema: {schema}
            tables:
              Thing:
                tier: manual
                key: {{thing: int32}}
              Keyless:
                tier: computed
                depends: [Thing]
                attributes: {{constant: int32}}
                make: {{function: "kwmake:keyless"}}
              Anything:
                tier: computed
                depends: [Thing]
                attributes: {{seen: varchar(100)}}
                make: {{function: "kwmake:anything"}}
            """
        )
    )
    (directory / "kwmake.py").write_text(
        "def keyless():\n"
        "    return {'constant': 7}\n\n\n"
        "def anything(**arguments):\n"
        "    return {'seen': ','.join(f'{k}={v}' for k, v in sorted(arguments.items()))}\n"
    )
    with open_pipeline(directory / "pipeline.yaml", backend.url) as pipe:
        pipe.init()
        pipe.table("Thing").insert([{"thing": 5}])
        summaries = populate(pipe.database, None, PopulateOptions())
        assert {n: s.computed for n, s in summaries.items()} == {"Keyless": 1, "Anything": 1}
        assert pipe.table("Keyless").fetch() == [{"thing": 5, "constant": 7}]
        assert pipe.table("Anything").fetch() == [{"thing": 5, "seen": "key={'thing': 5}"}]


# --- validation of returned rows: the error names the attribute, and nothing of the key is written -----

VALIDATION_CASES = {
    "missing": ("DataError", "popmake:result: returned row 1: missing attribute 'value' (float64) of Result"),
    "extra": ("DataError", "popmake:result: returned row 1: 'bogus' is not an attribute of Result"),
    "wrong_type": ("DataError", "popmake:result: returned row 1: attribute 'value': "),
    "collision": (
        "DataError",
        "popmake:result: Item row 3: duplicate key (subject_id=2, param_id=1, item=1), also in Item row 1",
    ),
    "part_key": (
        "DataError",
        "popmake:result: Item row 1: attribute 'subject_id' is 99, but the key being written has 2",
    ),
    "bad_part": ("DataError", "popmake:result: Item row 2: attribute 'score': "),
    "too_long": ("DataError", "popmake:result: returned row 1: attribute 'label': "),
    "not_a_dict": (
        "DataError",
        "popmake:result: make returned list; expected a dict of attributes and parts",
    ),
    "none": (
        "DataError",
        "popmake:result: make returned None; expected a dict with 'value', 'label' "
        "(and part rows under 'Item')",
    ),
    "part_typo": (
        "DataError",
        "popmake:result: returned row 1: 'Items' is not an attribute of Result (attributes: subject_id, "
        "param_id, value, label; parts: Item); did you mean 'Item'?",
    ),
    "raise": ("RuntimeError", "popmake:result: boom for subject 2"),
}


@pytest.mark.parametrize("mode", list(VALIDATION_CASES))
def test_bad_result_is_recorded_and_leaves_nothing_of_its_key(lab, mode):
    lab.modes(s2=mode)
    summaries = lab.populate("Result")
    summary = summaries["Result"]
    assert (summary.computed, summary.failed) == (4, 2)
    error_type, message = VALIDATION_CASES[mode]
    assert [(e.key, e.error_type) for e in summary.errors] == [((2, 1), error_type), ((2, 2), error_type)]
    assert summary.errors[0].message.startswith(message), summary.errors[0].message
    # nothing of subject 2: no master, and no part row either
    good = [r for r in expected_results() if r[0] != 2]
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == good
    assert lab.rows("Result.Item", "subject_id", "param_id", "item", "score") == [
        r for r in expected_items() if r[0] != 2
    ]
    jobs = lab.jobs_rows()
    assert [(j["subject_id"], j["param_id"], j["status"], j["error_type"]) for j in jobs] == [
        (2, 1, "error", error_type),
        (2, 2, "error", error_type),
    ]
    assert jobs[0]["error_message"].startswith(message)


def test_wrong_type_message_names_attribute_and_value(lab):
    lab.modes(s1="wrong_type")
    errors = lab.populate("Result")["Result"].errors
    assert errors[0].message == (
        "popmake:result: returned row 1: attribute 'value': expected float64, got 'lots'"
    ), errors[0].message


def test_error_is_recorded_with_traceback_host_pid_and_time(lab):
    lab.modes(s3="raise")
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=2)
    lab.populate("Result")
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=2)
    jobs = lab.jobs_rows()
    assert [(j["subject_id"], j["param_id"]) for j in jobs] == [(3, 1), (3, 2)]
    job = jobs[0]
    assert job["status"] == "error"
    assert job["error_type"] == "RuntimeError"
    assert job["error_message"] == "popmake:result: boom for subject 3"
    assert job["error_traceback"].startswith("Traceback (most recent call last):")
    assert 'popmake.py", line' in job["error_traceback"]
    assert job["error_traceback"].rstrip().endswith("RuntimeError: boom for subject 3")
    assert job["host"] == socket.gethostname()
    assert job["pid"] == os.getpid()
    assert before <= job["reserved_at"] <= after
    assert job["lease_until"] is None
    with lab.open() as pipe:
        listed = list_jobs(pipe.database, errors_only=True)
    assert [(j.table, j.key, j.status, j.error_type, j.pid) for j in listed] == [
        ("Result", {"subject_id": 3, "param_id": 1}, "error", "RuntimeError", os.getpid()),
        ("Result", {"subject_id": 3, "param_id": 2}, "error", "RuntimeError", os.getpid()),
    ]


def test_failure_exits_1_with_summary_and_shows_in_jobs_and_status(lab):
    lab.modes(s3="raise")
    result = lab.cli("populate", "--no-progress")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert summary_lines(result.stderr) == [
        "Result: 4 computed, 2 failed in N s",
        "  (subject_id=3, param_id=1): RuntimeError: popmake:result: boom for subject 3",
        "  (subject_id=3, param_id=2): RuntimeError: popmake:result: boom for subject 3",
        "  `blobflow jobs --errors -v` shows every failure with its traceback",
        "Summary: 4 computed, 0 failed in N s",
    ]

    status = lab.cli("status")
    assert status.exit_code == 0, status.output
    assert [line.split() for line in status.stdout.splitlines()] == [
        ["table", "tier", "rows", "pending", "in", "progress", "errors"],
        ["Subject", "manual", "3", "-", "-", "-"],
        ["Param", "lookup", "2", "-", "-", "-"],
        ["Result", "computed", "4", "0", "0", "2"],
        ["Result.Item", "part", "12", "-", "-", "-"],
        ["Summary", "computed", "4", "0", "0", "0"],
    ]
    as_json = json.loads(lab.cli("status", "--json").stdout)
    assert {r["table"]: (r["rows"], r["pending"], r["reserved"], r["errors"]) for r in as_json} == {
        "Subject": (3, None, None, None),
        "Param": (2, None, None, None),
        "Result": (4, 0, 0, 2),
        "Result.Item": (12, None, None, None),
        "Summary": (4, 0, 0, 0),
    }

    jobs = lab.cli("jobs", "--errors")
    assert jobs.exit_code == 0, jobs.output
    lines = jobs.stdout.splitlines()
    assert lines[0].split() == ["table", "key", "status", "host", "pid", "since", "error"]
    assert len(lines) == 3
    for line, param in zip(lines[1:], (1, 2)):
        assert re.fullmatch(
            rf"Result +subject_id=3, param_id={param} +error +{re.escape(socket.gethostname())} +"
            rf"{os.getpid()} +\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d +"
            r"RuntimeError: popmake:result: boom for subject 3",
            line,
        ), line
    assert "Traceback" not in jobs.stdout

    verbose = lab.cli("jobs", "--errors", "-v")
    assert verbose.exit_code == 0, verbose.output
    assert "\nResult subject_id=3, param_id=1:\nTraceback (most recent call last):\n" in verbose.stdout
    assert verbose.stdout.count("RuntimeError: boom for subject 3") == 2

    as_json = json.loads(lab.cli("jobs", "--errors", "--json").stdout)
    assert [(j["table"], j["key"], j["status"], j["error_type"]) for j in as_json] == [
        ("Result", {"subject_id": 3, "param_id": 1}, "error", "RuntimeError"),
        ("Result", {"subject_id": 3, "param_id": 2}, "error", "RuntimeError"),
    ]
    assert all(j["error_traceback"] is None for j in as_json)  # only with -v


def test_retry_errors_after_fixing_the_cause(lab):
    lab.modes(s1="raise")
    first = lab.cli("populate", "Result", "--no-progress")
    assert first.exit_code == 1, first.output
    assert len(lab.jobs_rows()) == 2

    lab.modes()  # fixed
    lab.forget_calls()
    again = lab.cli("populate", "Result", "--no-progress")  # failed keys are skipped until retried
    assert again.exit_code == 0, again.output
    assert summary_lines(again.stderr) == ["Result: 0 computed, 0 failed in N s"]
    assert lab.calls() == []

    retried = lab.cli("populate", "Result", "--no-progress", "--retry-errors")
    assert retried.exit_code == 0, retried.output
    assert summary_lines(retried.stderr) == ["Result: 2 computed, 0 failed in N s"]
    assert lab.calls() == ["result 1 1", "result 1 2"]
    assert lab.jobs_rows() == []
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == expected_results()
    assert lab.cli("jobs", "--errors").stdout.splitlines()[1:] == []


def test_deleting_upstream_rows_forgets_their_keys_recorded_errors(lab):
    lab.modes(s2="raise")
    lab.populate("Result")
    assert [(j["subject_id"], j["status"]) for j in lab.jobs_rows()] == [(2, "error"), (2, "error")]
    deleted = lab.cli("delete", "Subject & subject_id = 2", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert lab.jobs_rows() == []
    assert lab.cli("jobs", "--errors").stdout.splitlines()[1:] == []
    lab.modes()
    lab.add_subjects(2)  # back, say with new data: its keys are pending, not failed
    summaries = lab.populate("Result")
    assert (summaries["Result"].computed, summaries["Result"].failed) == (2, 0)
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == expected_results()


def test_retry_errors_that_fail_again_stay_recorded(lab):
    lab.modes(s1="raise")
    lab.populate("Result")
    lab.modes(s1="missing")
    summary = lab.populate("Result", retry_errors=True)["Result"]
    assert (summary.computed, summary.failed) == (0, 2)
    assert [(j["status"], j["error_type"]) for j in lab.jobs_rows()] == [("error", "DataError")] * 2


def test_writing_a_key_done_meanwhile_counts_it_as_done_not_failed(lab):
    """The per-key fallback of the writer: one key already there does not sink the others."""
    with lab.open() as pipe:
        table = pipe.table("Result").model
        worker = WorkerId()
        caller = MakeCaller(pipe.database, table, worker)
        keys = [(1, 1), (1, 2), (2, 1)]
        inputs = caller.fetch_inputs(keys)
        first = caller.compute((1, 2), inputs[(1, 2)])
        assert write_results(pipe.database, table, worker, [first]).written == [(1, 2)]
        results = [caller.compute(key, inputs[key]) for key in keys]
        outcome = write_results(pipe.database, table, worker, results)
        assert (outcome.written, outcome.already_done, outcome.failed) == ([(1, 1), (2, 1)], [(1, 2)], [])
    assert lab.rows("Result", "subject_id", "param_id") == [(1, 1), (1, 2), (2, 1)]
    assert len(lab.rows("Result.Item", "item")) == 9


def test_a_key_the_database_refuses_fails_alone_and_leaves_nothing(backend, lab):
    """Its parent row deleted while it was computed: the write of that key fails, the others go in."""
    with lab.open() as pipe:
        table = pipe.table("Result").model
        worker = WorkerId()
        caller = MakeCaller(pipe.database, table, worker)
        keys = [(1, 1), (2, 1), (3, 1)]
        inputs = caller.fetch_inputs(keys)
        results = [caller.compute(key, inputs[key]) for key in keys]
        subject = pipe.database.sql[pipe.table("Subject").model.qualified_name]
        with pipe.database.engine.begin() as connection:
            connection.execute(sa.delete(subject).where(subject.c.subject_id == 2))
        outcome = write_results(pipe.database, table, worker, results)
    assert (outcome.written, outcome.already_done) == ([(1, 1), (3, 1)], [])
    [failure] = outcome.failed
    assert failure.key == (2, 1)
    if backend.name == "sqlite":
        assert (failure.error_type, failure.message) == ("IntegrityError", "FOREIGN KEY constraint failed")
    else:
        assert failure.error_type == "ForeignKeyViolation"
        assert 'violates foreign key constraint "fk_result_subject_id"' in failure.message
    assert lab.rows("Result", "subject_id", "param_id") == [(1, 1), (3, 1)]
    assert lab.rows("Result.Item", "subject_id", "param_id") == [(1, 1)] * 3 + [(3, 1)] * 3
    assert [(j["subject_id"], j["param_id"], j["status"]) for j in lab.jobs_rows()] == [(2, 1, "error")]


# --- database work overlapping the makes --------------------------------------------------------------


def watch_fetches_and_makes(monkeypatch) -> dict:
    """Record which thread fetches each chunk's inputs; the first make call waits (up to 10 s) for the
    second chunk's inputs to be fetched, and records whether they were. The real methods run."""
    seen: dict = {"fetched_by": [], "second_fetched_during_first_make": None}
    second_fetch = threading.Event()
    fetch_inputs, compute = MakeCaller.fetch_inputs, MakeCaller.compute

    def watched_fetch(self, keys):
        seen["fetched_by"].append(threading.current_thread().name)
        if len(seen["fetched_by"]) == 2:
            second_fetch.set()
        return fetch_inputs(self, keys)

    def watched_compute(self, key, inputs):
        if seen["second_fetched_during_first_make"] is None:
            seen["second_fetched_during_first_make"] = second_fetch.wait(timeout=10)
        return compute(self, key, inputs)

    monkeypatch.setattr(MakeCaller, "fetch_inputs", watched_fetch)
    monkeypatch.setattr(MakeCaller, "compute", watched_compute)
    return seen


@pytest.mark.parametrize("reserve", [False, True])
def test_the_next_chunk_is_claimed_and_fetched_while_a_make_runs(lab, monkeypatch, reserve):
    seen = watch_fetches_and_makes(monkeypatch)
    summaries = lab.populate("Result", reserve=reserve)
    assert seen["second_fetched_during_first_make"] is True
    assert all(name.startswith("blobflow-fetch") for name in seen["fetched_by"]), seen
    assert summaries["Result"].computed == 6
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == expected_results()
    assert lab.rows("Result.Item", "subject_id", "param_id", "item", "score") == expected_items()
    assert lab.calls() == [f"result {s} {p}" for s in (1, 2, 3) for p in (1, 2)]  # still in key order
    assert lab.jobs_rows() == []


def test_in_memory_sqlite_populates_in_one_thread(lab, monkeypatch):
    """An in-memory database has one connection, which the I/O thread must not share."""
    seen = watch_fetches_and_makes(monkeypatch)
    with open_pipeline(lab.manifest, "sqlite://") as pipe:
        pipe.init()
        pipe.table("Subject").insert([{"subject_id": i, "name": f"s{i}"} for i in (1, 2, 3)])
        summaries = populate(pipe.database, None, PopulateOptions())
        assert (summaries["Result"].computed, summaries["Summary"].computed) == (6, 6)
        values = pipe.query("Result").fetch(
            "subject_id", "param_id", "value", "label", order_by="subject_id, param_id"
        )
        assert [tuple(row.values()) for row in values] == expected_results()
        assert pipe.query("Summary").count() == 6
    assert set(seen["fetched_by"]) == {threading.current_thread().name}


# --- reservations ------------------------------------------------------------------------------------


def test_claims_hold_keys_until_their_lease_runs_out(lab):
    with lab.open() as pipe:
        table = pipe.table("Result").model
        dead, alive = WorkerId(pid=1), WorkerId()
        held = KeyDispenser(pipe.database, table, dead, DispenseOptions(reserve=True, lease_seconds=1.5))
        assert held.take(2) == [(1, 1), (1, 2)]
        other = KeyDispenser(pipe.database, table, alive, DispenseOptions(reserve=True, lease_seconds=60))
        assert other.total == 4
        assert other.take(10) == [(2, 1), (2, 2), (3, 1), (3, 2)]
        assert other.take(10) == "wait"  # nothing to claim, but the other worker holds live claims
        statuses = {s.table: s for s in pipeline_status(pipe.database)}
        assert (statuses["Result"].pending, statuses["Result"].reserved) == (0, 6)

    reserved = lab.cli("jobs")
    assert reserved.exit_code == 0, reserved.output
    lines = reserved.stdout.splitlines()
    assert len(lines) == 7
    assert re.match(
        rf"Result +subject_id=1, param_id=1 +reserved +{re.escape(socket.gethostname())} +1 ", lines[1]
    )
    assert lab.cli("jobs", "--errors").stdout.splitlines()[1:] == []

    deadline = dt.datetime.now() + dt.timedelta(seconds=10)
    with lab.open() as pipe:
        table = pipe.table("Result").model
        other = KeyDispenser(pipe.database, table, alive, DispenseOptions(reserve=True, lease_seconds=60))
        while (keys := other.take(10)) == "wait":  # the dead worker's leases run out
            assert dt.datetime.now() < deadline, "the dead worker's claims never expired"
        assert keys == [(1, 1), (1, 2)]
    assert [(j["subject_id"], j["param_id"], j["worker"]) for j in lab.jobs_rows()] == [
        (s, p, alive.id) for s in (1, 2, 3) for p in (1, 2)
    ]


def test_populate_releases_its_claims_and_clears_them_as_keys_are_written(lab):
    lab.modes(s2="raise")
    summaries = lab.populate("Result", reserve=True, lease_seconds=30)
    assert (summaries["Result"].computed, summaries["Result"].failed) == (4, 2)
    assert [(j["subject_id"], j["status"]) for j in lab.jobs_rows()] == [(2, "error"), (2, "error")]


# --- options ---------------------------------------------------------------------------------------


def test_limit_computes_at_most_n_keys_per_table(lab):
    result = lab.cli("populate", "--limit", "2", "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {k: (v["computed"], v["failed"]) for k, v in summary.items()} == {
        "Result": (2, 0),
        "Summary": (2, 0),
    }
    assert lab.rows("Result", "subject_id", "param_id") == [(1, 1), (1, 2)]
    assert lab.rows("Summary", "subject_id", "param_id") == [(1, 1), (1, 2)]
    again = lab.cli("populate", "Result", "--limit", "3", "--no-progress")
    assert summary_lines(again.stderr) == ["Result: 3 computed, 0 failed in N s"]
    assert len(lab.rows("Result", "subject_id")) == 5


def test_random_order_computes_the_same(backend, lab):
    lab.add_subjects(*range(4, 16))  # 30 keys
    result = lab.cli("populate", "Result", "--order", "random", "--no-progress")
    assert result.exit_code == 0, result.output
    order = [tuple(map(int, c.split()[1:])) for c in lab.calls()]
    everything = [(s, p) for s in range(1, 16) for p in (1, 2)]
    assert sorted(order) == everything
    assert order != everything  # 1 in 30! to fail by chance
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == expected_results(range(1, 16))
    assert len(lab.rows("Result.Item", "item")) == 90


def test_original_order_is_key_order(lab):
    lab.cli("populate", "Result", "--no-progress")
    assert lab.calls() == [f"result {s} {p}" for s in (1, 2, 3) for p in (1, 2)]


def test_dry_run_shows_pending_and_computes_nothing(lab):
    result = lab.cli("populate", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Result: 6 pending: (subject_id=1, param_id=1), (subject_id=1, param_id=2), "
        "(subject_id=2, param_id=1), (subject_id=2, param_id=2), (subject_id=3, param_id=1) and 1 more\n"
        "Summary: 0 pending (more once the tables above are computed)\n"
    )
    assert lab.calls() == []
    assert lab.rows("Result", "subject_id") == []
    lab.populate("Result", limit=5)
    result = lab.cli("populate", "summary", "--dry-run")
    assert result.stdout == (
        "Result: 1 pending: (subject_id=3, param_id=2)\n"
        "Summary: 5 pending (more once the tables above are computed): (subject_id=1, param_id=1), "
        "(subject_id=1, param_id=2), (subject_id=2, param_id=1), (subject_id=2, param_id=2), "
        "(subject_id=3, param_id=1)\n"
    )


def test_dry_run_follows_limit_and_retry_errors(lab):
    assert lab.cli("populate", "Result", "--dry-run", "--limit", "2").stdout == (
        "Result: 2 pending: (subject_id=1, param_id=1), (subject_id=1, param_id=2)\n"
    )
    lab.modes(s1="raise")
    assert lab.cli("populate", "Result", "--no-progress").exit_code == 1
    lab.modes()
    assert lab.cli("populate", "Result", "--dry-run").stdout == (
        "Result: 0 pending (2 failed before: --retry-errors computes them again)\n"
    )
    assert lab.cli("populate", "Result", "--dry-run", "--retry-errors").stdout == (
        "Result: 2 pending: (subject_id=1, param_id=1), (subject_id=1, param_id=2)\n"
    )


def test_json_summary_shape(lab):
    lab.modes(s2="raise")
    result = lab.cli("populate", "--json", "--no-progress")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["Result", "Summary"]
    for values in summary.values():
        assert list(values) == ["computed", "failed", "skipped", "seconds"]
        assert isinstance(values["seconds"], float) and 0 <= values["seconds"] < 30
    assert {k: (v["computed"], v["failed"], v["skipped"]) for k, v in summary.items()} == {
        "Result": (4, 2, 0),
        "Summary": (4, 0, 0),
    }


def test_progress_lines_when_piped(lab):
    result = lab.cli("populate", "Result")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "Result: 6 pending"
    assert re.fullmatch(r"Result: 6/6 done, 0 failed, [\d,.]+ keys/s, \d+\.\d s", lines[-2]), lines
    assert re.fullmatch(r"Result: 6 computed, 0 failed in \d+\.\d s", lines[-1]), lines
    quiet = lab.cli("populate", "Result", "--no-progress")
    assert summary_lines(quiet.stderr) == ["Result: 0 computed, 0 failed in N s"]


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_make_that_cannot_be_imported_is_one_error_not_a_failure_per_key(lab, jobs):
    (lab.directory / "popmake.py").write_text('raise ImportError("no popmake today")\n')
    sys.modules.pop("popmake", None)  # imported by init; a new `blobflow` process imports it afresh
    result = lab.cli("populate", "--no-progress", "--jobs", jobs)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: "), line
    assert line.endswith(
        f"cannot import 'popmake:result': ImportError: no popmake today ({lab.directory / 'popmake.py'}:1)"
    ), line
    assert lab.jobs_rows() == []
    assert lab.rows("Result", "subject_id") == []


def test_a_missing_import_inside_the_make_module_names_the_line(lab):
    (lab.directory / "popmake.py").write_text('"""A make."""\nimport numpy\nimport no_such_package_here\n')
    sys.modules.pop("popmake", None)
    result = lab.cli("populate", "--no-progress")
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.endswith(
        "cannot import 'popmake:result': ModuleNotFoundError: No module named 'no_such_package_here' "
        f"({lab.directory / 'popmake.py'}:3)"
    ), line


def test_unknown_table_is_a_usage_error(lab):
    result = lab.cli("populate", "Nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: unknown table 'Nope'")
    assert "Traceback" not in result.output


# --- provenance -------------------------------------------------------------------------------------


def test_computed_rows_record_when_where_how_long_and_which_code(lab):
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=2)
    result = lab.cli("populate", "--no-progress")
    assert result.exit_code == 0, result.output
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=2)
    version = hashlib.sha256((lab.directory / "popmake.py").read_text().encode()).hexdigest()[:16]
    for table in ("Result", "Summary"):
        rows = lab.rows(table, "_computed_at", "_computed_on", "_compute_seconds", "_code_version")
        assert len(rows) == 6
        for computed_at, computed_on, seconds, code_version in rows:
            assert before <= computed_at <= after
            assert computed_on == f"{socket.gethostname()}:{os.getpid()}"
            assert 0 <= seconds < 5
            assert code_version == version
    # hidden: not attributes, not fetched
    with lab.open() as pipe:
        assert set(pipe.table("Result").fetch()[0]) == {"subject_id", "param_id", "value", "label"}


def test_code_version_changes_with_the_make_module(lab):
    lab.populate("Result", limit=1)
    source = (lab.directory / "popmake.py").read_text() + "\n# changed\n"
    (lab.directory / "popmake.py").write_text(source)
    for name in [n for n in sys.modules if n == "popmake"]:
        del sys.modules[name]
    lab.populate("Result", limit=1)
    versions = [v for (v,) in lab.rows("Result", "_code_version")]
    assert versions[1] == hashlib.sha256(source.encode()).hexdigest()[:16]
    assert versions[0] != versions[1]


# --- the seed pipeline -----------------------------------------------------------------------------


@pytest.mark.slow
def test_blobs_detection_counts_for_the_hubble_image(backend):
    if str(BLOBS) not in sys.path:
        sys.path.insert(0, str(BLOBS))
    import images

    pipe = backend.open(BLOBS)
    try:
        pipe.init()
        pipe.table("Image").insert([{"image_id": 1, "image_name": "Hubble", "image": images.hubble()}])
        summaries = populate(pipe.database, [pipe.table("Detection").model], PopulateOptions())
        assert (summaries["Detection"].computed, summaries["Detection"].failed) == (3, 0)
        detections = pipe.table("Detection").fetch(order_by=["params_id"])
        assert [(d["image_id"], d["params_id"], d["num_blobs"]) for d in detections] == [
            (1, 1, 1921),
            (1, 2, 971),
            (1, 3, 229),
        ]
        blob = pipe.table("Detection.Blob")
        for detection in detections:
            key = {"image_id": 1, "params_id": detection["params_id"]}
            assert blob.count(key) == detection["num_blobs"]
            (indices,) = blob.to_arrays("blob_idx", key=key)
            assert indices.tolist() == list(range(detection["num_blobs"]))
        x, radius = blob.to_arrays("x", "radius", key={"image_id": 1, "params_id": 3})
        assert x.dtype == np.float32 and x.min() >= 0 and radius.min() > 0
    finally:
        pipe.close()


@pytest.mark.postgres
def test_a_slow_claim_refreshes_the_jobs_tables_statistics_once_it_holds_many_rows(
    postgres_backend, tmp_path, monkeypatch
):
    """Claims are planned from the jobs table's statistics, which lag behind a run; a slow claim
    (here: any claim) has the table analysed, but only once it holds 1,000 rows or more."""
    from blobflow.populate import dispenser as dispenser_module

    schema = postgres_backend.schema("claims")
    directory = tmp_path / "claims"
    directory.mkdir()
    (directory / "pipeline.yaml").write_text(
        textwrap.dedent(f"""\
            schema: {schema}
            tables:
              Item: {{tier: manual, key: {{item_id: int32}}}}
              Out:
                tier: computed
                depends: [Item]
                attributes: {{v: int32}}
                make: {{function: "claims_make:f"}}
            """)
    )
    (directory / "claims_make.py").write_text("def f(key):\n    return {'v': 1}\n")
    monkeypatch.setattr(dispenser_module, "SLOW_CLAIM_SECONDS", 0.0)
    with open_pipeline(directory / "pipeline.yaml", postgres_backend.url) as pipe:
        pipe.init()
        pipe.table("Item").insert([{"item_id": i} for i in range(3000)])
        table = pipe.table("Out").model
        analyses = sa.text(
            "SELECT coalesce(analyze_count, 0) FROM pg_stat_user_tables "
            "WHERE schemaname = :schema AND relname = '_jobs__out'"
        )

        def analysed() -> int:
            with pipe.database.engine.connect() as connection:
                return connection.execute(analyses, {"schema": schema}).scalar_one()

        other = KeyDispenser(pipe.database, table, WorkerId(pid=1), DispenseOptions(reserve=True))
        assert len(other.take(500)) == 500  # 500 rows held: too few to analyse
        assert analysed() == 0
        mine = KeyDispenser(pipe.database, table, WorkerId(), DispenseOptions(reserve=True))
        assert len(mine.take(600)) == 600  # now 1,100
        assert analysed() == 1
        assert len(mine.take(10)) == 10  # at most one refresh every 5 s per dispenser
        assert analysed() == 1


def test_jobs_2_waits_quietly_while_another_process_holds_the_last_keys(lab, monkeypatch):
    """The dispatcher asks again every poll, not in a busy loop, then takes the keys whose lease ran out."""
    with lab.open() as pipe:
        table = pipe.table("Result").model
        holder = KeyDispenser(
            pipe.database, table, WorkerId(pid=1), DispenseOptions(reserve=True, lease_seconds=2)
        )
        assert len(holder.take(6)) == 6  # every key, held by a process that never writes them
    takes = []
    take = KeyDispenser.take

    def counted_take(self, count):
        takes.append(count)
        return take(self, count)

    monkeypatch.setattr(KeyDispenser, "take", counted_take)
    summaries = lab.populate("Result", jobs=2, reserve=True)
    assert (summaries["Result"].computed, summaries["Result"].failed) == (6, 0)
    assert len(takes) < 200, f"{len(takes)} claims while waiting about 2 s"
    assert lab.rows("Result", "subject_id", "param_id", "value", "label") == expected_results()
