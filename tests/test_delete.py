"""`delete`: a restricted table's rows and, cascading, every row depending on them, in one transaction.

The pipeline is a diamond (Subject -> Session, Subject -> Scan, Session + Scan -> Analysis) with two
parts on Analysis (one of them also depending on a lookup table, Device), a table depending on a part
(Flag), a table with a nullable `references` to Analysis (Report) and a table depending twice on Scan
through a rename (Comparison). Every case runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from blobflow import open_pipeline
from blobflow.api import PipelineHandle
from blobflow.cli import cli
from blobflow.delete import execute_delete, plan_delete
from blobflow.errors import DataError, QueryError, UsageError
from blobflow.populate.executor import PopulateOptions, populate

MAKE_MODULE = "delete_diamond_make"

MANIFEST = """\
    schema: {schema}
    tables:
      Subject:
        tier: manual
        key: {{subject_id: int32}}
        attributes: {{name: varchar(20)}}
      Device:
        tier: lookup
        key: {{device_id: int16}}
        attributes: {{label: varchar(20)}}
        contents:
          - {{device_id: 1, label: one}}
          - {{device_id: 2, label: two}}
          - {{device_id: 3, label: three}}
      Session:
        tier: manual
        depends: [Subject]
        key: {{session: int16}}
      Scan:
        tier: manual
        depends: [Subject]
        key: {{scan: int16}}
      Analysis:
        tier: computed
        depends: [Session, Scan]
        attributes: {{score: float64}}
        make: {module}:analyse
        parts:
          Detail:
            key: {{detail: int16}}
            attributes: {{value: float64}}
          Reading:
            depends: [Device]
            attributes: {{reading: float64}}
      Flag:
        tier: manual
        depends: [Analysis.Detail]
      Report:
        tier: manual
        key: {{report_id: int32}}
        references: [{{table: Analysis, nullable: true}}]
      Comparison:
        tier: manual
        depends: [Scan, {{table: Scan, rename: {{scan: other_scan}}}}]
    """

MAKE = """\
def analyse(key):
    score = key["subject_id"] * 100 + key["session"] * 10 + key["scan"]
    devices = [1, 2] if key["session"] == 1 else [1]
    return {
        "score": float(score),
        "Detail": [{"detail": d, "value": score + d / 10} for d in (0, 1)],
        "Reading": [{"device_id": d, "reading": float(score * d)} for d in devices],
    }
"""

# What the fixture holds. Analysis is every (subject, session, scan) of one subject: 4 for subject 1,
# 1 for subject 2, none for subject 3 (no session). Each has 2 Detail rows, a Reading for device 1 and,
# for session 1, one for device 2.
ROWS = {
    "Subject": 3,
    "Device": 3,
    "Session": 3,
    "Scan": 4,
    "Analysis": 5,
    "Comparison": 3,
    "Analysis.Detail": 10,
    "Analysis.Reading": 8,
    "Report": 4,
    "Flag": 2,
}

# Restriction -> rows that go, per table, counted by hand from the data above.
CASES = {
    # a root row: everything of subject 1 (its reports 1 and 2; report 4 refers to nothing and stays)
    "Subject & subject_id = 1": {
        "Subject": 1,
        "Session": 2,
        "Scan": 2,
        "Analysis": 4,
        "Comparison": 2,
        "Analysis.Detail": 8,
        "Analysis.Reading": 6,
        "Report": 2,
        "Flag": 1,
    },
    # a middle row on one side of the diamond: the analyses of session (1, 2), not those of its scans
    "Session & subject_id = 1 & session = 2": {
        "Session": 1,
        "Analysis": 2,
        "Analysis.Detail": 4,
        "Analysis.Reading": 2,
        "Report": 1,
    },
    # the other side: scan (1, 2), and the comparisons naming it as scan or as other_scan
    "Scan & subject_id = 1 & scan = 2": {
        "Scan": 1,
        "Analysis": 2,
        "Comparison": 2,
        "Analysis.Detail": 4,
        "Analysis.Reading": 3,
        "Report": 1,
    },
    # through a part's other parent: device 2's readings take their Analysis rows with all their parts
    "Device & device_id = 2": {
        "Device": 1,
        "Analysis": 3,
        "Analysis.Detail": 6,
        "Analysis.Reading": 6,
        "Report": 2,
        "Flag": 2,
    },
    "Device & device_id = 3": {"Device": 1},
    "Subject - Session": {"Subject": 1, "Scan": 1},
    "Analysis & score >= 200": {
        "Analysis": 1,
        "Analysis.Detail": 2,
        "Analysis.Reading": 2,
        "Report": 1,
        "Flag": 1,
    },
    "Analysis & Flag": {"Analysis": 2, "Analysis.Detail": 4, "Analysis.Reading": 4, "Report": 2, "Flag": 2},
    "Report & report_id = 4": {"Report": 1},
    "Comparison & other_scan = 2": {"Comparison": 1},
    # conditions matching nothing
    "Subject & subject_id = 99": {},
    "Subject & name = 'nobody'": {},
    "Analysis & score < 0": {},
}

NOT_ONE_TABLE = (
    'delete needs a table restricted by conditions or other tables, such as "Detection & num_blobs < 300"; '
    "joins, proj, aggr, top and unions have no single table to delete from"
)


class Diamond:
    """The pipeline in tmp_path, in a schema of its own, initialised, filled and populated."""

    def __init__(self, manifest: Path, url: str):
        self.manifest = manifest
        self.url = url
        self.pipe: PipelineHandle = open_pipeline(manifest, url)

    @property
    def database(self):
        return self.pipe.database

    def fill(self) -> None:
        pipe = self.pipe
        pipe.init()
        pipe.table("Subject").insert([{"subject_id": i, "name": f"s{i}"} for i in (1, 2, 3)])
        pipe.table("Session").insert([{"subject_id": s, "session": n} for s, n in ((1, 1), (1, 2), (2, 1))])
        pipe.table("Scan").insert([{"subject_id": s, "scan": n} for s, n in ((1, 1), (1, 2), (2, 1), (3, 1))])
        pipe.table("Comparison").insert(
            [
                {"subject_id": 1, "scan": 1, "other_scan": 2},
                {"subject_id": 1, "scan": 2, "other_scan": 1},
                {"subject_id": 2, "scan": 1, "other_scan": 1},
            ]
        )
        summaries = populate(pipe.database, None, PopulateOptions())
        assert (summaries["Analysis"].computed, summaries["Analysis"].failed) == (5, 0)
        pipe.table("Flag").insert(
            [
                {"subject_id": 1, "session": 1, "scan": 1, "detail": 0},
                {"subject_id": 2, "session": 1, "scan": 1, "detail": 1},
            ]
        )
        pipe.table("Report").insert(
            [
                {"report_id": 1, "subject_id": 1, "session": 1, "scan": 1},
                {"report_id": 2, "subject_id": 1, "session": 2, "scan": 2},
                {"report_id": 3, "subject_id": 2, "session": 1, "scan": 1},
                {"report_id": 4},
            ]
        )

    def counts(self) -> dict[str, int | None]:
        return self.pipe.row_counts()

    def rows(self) -> dict[str, list[dict]]:
        """Every row of every table, by table name (all attributes)."""
        return {t.name: self.pipe.table(t.name).fetch() for t in self.pipe.model}

    def keys(self) -> dict[str, set[tuple]]:
        return {
            t.name: {tuple(row[k] for k in t.primary_key) for row in self.pipe.table(t.name).fetch()}
            for t in self.pipe.model
        }

    def orphans(self) -> dict[str, int]:
        """Per foreign key, rows whose (non-null) foreign-key values match no parent row: an anti-join."""
        found = {}
        with self.database.engine.connect() as connection:
            for table in self.pipe.model:
                child = self.database.sql[table.qualified_name]
                for fk in table.foreign_keys:
                    parent = self.database.sql[fk.parent]
                    matching = sa.select(sa.literal(1)).where(
                        *[parent.c[p] == child.c[c] for p, c in fk.columns]
                    )
                    orphaned = sa.select(sa.func.count()).where(
                        *[child.c[c].is_not(None) for _, c in fk.columns], ~matching.exists()
                    )
                    count = connection.execute(orphaned.select_from(child)).scalar_one()
                    if count:
                        found[f"{table.name} -> {fk.parent}"] = count
        return found

    def cli(self, *args: object, input: str | None = None) -> Result:
        runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200", "BLOBFLOW_DEBUG": None})
        return runner.invoke(
            cli,
            ["-p", str(self.manifest), "--database", self.url, *[str(a) for a in args]],
            input=input,
            catch_exceptions=False,
        )


@pytest.fixture
def diamond(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    directory = tmp_path / "diamond"
    directory.mkdir()
    manifest = directory / "pipeline.yaml"
    schema = backend.schema("del")
    manifest.write_text(textwrap.dedent(MANIFEST.format(schema=schema, module=MAKE_MODULE)))
    (directory / f"{MAKE_MODULE}.py").write_text(MAKE)
    project = Diamond(manifest, backend.url)
    try:
        project.fill()
        assert project.counts() == ROWS
        assert project.orphans() == {}
        yield project
    finally:
        project.pipe.close()
        sys.modules.pop(MAKE_MODULE, None)


def expected_deletion(diamond: Diamond, table_name: str, doomed: list[dict]) -> dict[str, set[tuple]]:
    """Which keys a delete should remove, worked out in Python from fetched rows: rows referring to a
    deleted row go, a part row takes its master, a master takes its parts. Independent of delete.py."""
    model = diamond.pipe.model
    rows = diamond.rows()
    by_qualified = {t.qualified_name: t for t in model}
    key = {t.name: (lambda row, t=t: tuple(row[k] for k in t.primary_key)) for t in model}
    gone: dict[str, set[tuple]] = {t.name: set() for t in model}
    gone[table_name] |= {key[table_name](row) for row in doomed}
    changed = True
    while changed:
        changed = False
        for table in model:
            for row in rows[table.name]:
                if key[table.name](row) in gone[table.name]:
                    continue
                refers = any(
                    all(row[c] is not None for _, c in fk.columns)
                    and any(
                        all(parent_row[p] == row[c] for p, c in fk.columns)
                        and key[by_qualified[fk.parent].name](parent_row)
                        in gone[by_qualified[fk.parent].name]
                        for parent_row in rows[by_qualified[fk.parent].name]
                    )
                    for fk in table.foreign_keys
                )
                if refers:
                    gone[table.name].add(key[table.name](row))
                    changed = True
            if table.is_part:
                master = by_qualified[table.master]
                for part_key in list(gone[table.name]):
                    part_row = next(r for r in rows[table.name] if key[table.name](r) == part_key)
                    master_key = tuple(part_row[k] for k in master.primary_key)
                    if master_key not in gone[master.name]:
                        gone[master.name].add(master_key)
                        changed = True
    return {name: keys for name, keys in gone.items() if keys}


# --- plan_delete ----------------------------------------------------------------------------------


def test_plan_counts_every_affected_table_and_deletes_nothing(diamond):
    order = [t.name for t in diamond.pipe.model]
    for expression, expected in CASES.items():
        plan = plan_delete(diamond.database, expression)
        assert plan.counts == expected, expression
        # parents first, in the pipeline's order; tables nothing goes from are left out
        assert list(plan.counts) == [name for name in order if name in expected], expression
        assert plan.table == expression.split()[0]
    assert diamond.counts() == ROWS


def test_plan_accepts_table_names_in_any_case(diamond):
    assert plan_delete(diamond.database, "device & device_id = 3").counts == {"Device": 1}
    assert plan_delete(diamond.database, "DEVICE & device_id = 3").table == "Device"


# --- execute_delete -------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", list(CASES))
def test_execute_removes_exactly_the_planned_rows_and_leaves_no_orphans(diamond, expression):
    before = diamond.keys()
    doomed = diamond.pipe.query(expression).fetch()
    expected_keys = expected_deletion(diamond, expression.split()[0], doomed)
    assert {name: len(keys) for name, keys in expected_keys.items()} == CASES[expression]

    done = execute_delete(diamond.database, expression)

    assert done.counts == CASES[expression]
    after = diamond.keys()
    assert {
        name: before[name] - after[name] for name in before if before[name] - after[name]
    } == expected_keys
    assert all(after[name] <= before[name] for name in before)
    assert diamond.counts() == {name: n - CASES[expression].get(name, 0) for name, n in ROWS.items()}
    assert diamond.orphans() == {}
    assert diamond.pipe.query(expression).count() == 0
    assert plan_delete(diamond.database, expression).counts == {}


def test_deleting_through_a_parts_other_parent_takes_the_master_and_its_other_parts(diamond):
    done = execute_delete(diamond.database, "Device & device_id = 2")
    assert done.counts == CASES["Device & device_id = 2"]
    keys = diamond.keys()
    # The masters of device 2's readings (session 1 of each subject) went, with every part row of theirs:
    # their Detail rows, and their Reading rows for device 1 too.
    assert keys["Analysis"] == {(1, 2, 1), (1, 2, 2)}
    assert keys["Analysis.Detail"] == {(1, 2, 1, 0), (1, 2, 1, 1), (1, 2, 2, 0), (1, 2, 2, 1)}
    assert keys["Analysis.Reading"] == {(1, 2, 1, 1), (1, 2, 2, 1)}
    assert keys["Device"] == {(1,), (3,)}
    assert keys["Flag"] == set()
    assert keys["Report"] == {(2,), (4,)}
    # Upstream of Analysis nothing changed.
    assert (len(keys["Subject"]), len(keys["Session"]), len(keys["Scan"])) == (3, 3, 4)
    assert diamond.orphans() == {}


def test_a_null_reference_is_not_a_reference(diamond):
    execute_delete(diamond.database, "Subject")
    assert diamond.counts() == {
        name: 3 if name == "Device" else 1 if name == "Report" else 0 for name in ROWS
    }
    assert diamond.pipe.table("Report").fetch() == [
        {"report_id": 4, "subject_id": None, "session": None, "scan": None}
    ]


def test_a_deleted_computed_key_is_pending_again(diamond):
    from blobflow.populate.status import pipeline_status

    execute_delete(diamond.database, "Analysis & subject_id = 1 & session = 2")
    status = {row.table: row for row in pipeline_status(diamond.database)}
    assert (status["Analysis"].rows, status["Analysis"].pending) == (3, 2)
    summaries = populate(diamond.database, None, PopulateOptions())
    assert summaries["Analysis"].computed == 2
    assert diamond.counts()["Analysis.Detail"] == 10


@pytest.mark.parametrize(
    ("expression", "master"),
    [
        ("Analysis.Detail & detail = 0", "Analysis"),
        ("analysis.reading & device_id = 2", "Analysis"),
        ("Analysis.Reading", "Analysis"),
    ],
)
def test_deleting_part_rows_alone_is_refused(diamond, expression, master):
    part = diamond.database.resolve(expression.split()[0]).name
    with pytest.raises(UsageError) as refused:
        plan_delete(diamond.database, expression)
    assert str(refused.value) == (
        f"part rows go with their master: delete from {master} instead (its {part} rows go with it)"
    )
    with pytest.raises(UsageError) as refused_again:
        execute_delete(diamond.database, expression)
    assert str(refused_again.value) == str(refused.value)
    assert diamond.counts() == ROWS


@pytest.mark.parametrize(
    "expression",
    [
        "Subject * Session",
        "(Session * Scan) & subject_id = 1",
        "Subject.proj(name)",
        "Subject.proj()",
        "(Subject & subject_id = 1).proj(n = name)",
        "Subject.aggr(Session, n = count(*))",
        "Subject.top(1)",
        "(Subject & subject_id = 1) + (Subject & subject_id = 2)",
    ],
)
def test_joins_proj_aggr_top_and_unions_are_refused(diamond, expression):
    for operation in (plan_delete, execute_delete):
        with pytest.raises(UsageError) as refused:
            operation(diamond.database, expression)
        assert str(refused.value) == NOT_ONE_TABLE
    assert diamond.counts() == ROWS


def test_a_restriction_by_a_join_is_still_one_table(diamond):
    # Restricting by a join (a semijoin) keeps Subject the table to delete from.
    plan = plan_delete(diamond.database, "Subject & (Session * Scan) & subject_id = 2")
    assert plan.table == "Subject"
    assert plan.counts == {
        "Subject": 1,
        "Session": 1,
        "Scan": 1,
        "Analysis": 1,
        "Comparison": 1,
        "Analysis.Detail": 2,
        "Analysis.Reading": 2,
        "Report": 1,
        "Flag": 1,
    }


def test_bad_queries_are_query_errors(diamond):
    with pytest.raises(QueryError) as error:
        plan_delete(diamond.database, "Subject & nmae = 1")
    assert error.value.column == 11
    with pytest.raises(QueryError):
        execute_delete(diamond.database, "Nope & x = 1")
    assert diamond.counts() == ROWS


# --- one transaction ------------------------------------------------------------------------------


def _external_table(diamond: Diamond) -> str:
    """A table blobflow does not know of, referring to Subject 1 with ON DELETE RESTRICT."""
    table = diamond.pipe.model.table(
        next(t.qualified_name for t in diamond.pipe.model if t.name == "Subject")
    )
    schema = diamond.database.sql_schema(table.schema)
    with diamond.database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            reference = f'"{schema}".{table.sql_name}'
        else:  # SQLite: a foreign key names a table of the same (attached) database, unqualified
            reference = table.sql_name
        connection.exec_driver_sql(
            f'CREATE TABLE "{schema}".external_note (subject_id INTEGER NOT NULL '
            f"REFERENCES {reference} (subject_id) ON DELETE RESTRICT)"
        )
        connection.exec_driver_sql(f'INSERT INTO "{schema}".external_note (subject_id) VALUES (1)')
    return schema


def test_a_delete_is_one_transaction(diamond):
    schema = _external_table(diamond)
    before = diamond.rows()
    # Subject rows are deleted last (children first), after every other table's rows went: the
    # database refuses that last step, and everything before it is rolled back.
    with pytest.raises(DataError) as refused:
        execute_delete(diamond.database, "Subject & subject_id = 1")
    assert str(refused.value).startswith("the database refused the delete, so nothing was deleted: ")
    assert diamond.rows() == before
    assert diamond.counts() == ROWS

    # Rows not referred to from outside still go (the failed attempt left nothing behind that is in
    # the way, its temporary tables included).
    assert execute_delete(diamond.database, "Subject & subject_id = 2").counts["Subject"] == 1
    with diamond.database.engine.begin() as connection:
        connection.exec_driver_sql(f'DELETE FROM "{schema}".external_note')
    assert (
        execute_delete(diamond.database, "Subject & subject_id = 1").counts
        == CASES["Subject & subject_id = 1"]
    )
    assert diamond.orphans() == {}


def test_a_refused_delete_on_the_command_line(diamond):
    _external_table(diamond)
    result = diamond.cli("delete", "Subject & subject_id = 1", "--yes")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: the database refused the delete, so nothing was deleted: ")
    assert diamond.counts() == ROWS


# --- the command line -----------------------------------------------------------------------------

LISTING = (
    "  Subject: 1 rows\n"
    "  Session: 2 rows\n"
    "  Scan: 2 rows\n"
    "  Analysis: 4 rows\n"
    "  Comparison: 2 rows\n"
    "  Analysis.Detail: 8 rows\n"
    "  Analysis.Reading: 6 rows\n"
    "  Report: 2 rows\n"
    "  Flag: 1 rows\n"
)


def test_cli_dry_run_shows_counts_and_deletes_nothing(diamond):
    result = diamond.cli("delete", "Subject & subject_id = 1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == LISTING
    assert diamond.counts() == ROWS


def test_cli_refuses_without_yes_off_a_terminal(diamond):
    for answer in (None, "y\n"):
        result = diamond.cli("delete", "subject & subject_id = 1", input=answer)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert result.stderr == (
            LISTING + "Error: delete removes rows: pass --yes when not running on a terminal\n"
        )
    assert diamond.counts() == ROWS


def test_cli_yes_deletes(diamond):
    result = diamond.cli("delete", "Subject & subject_id = 1", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == LISTING + (
        "deleted 1 Subject rows, 2 Session rows, 2 Scan rows, 4 Analysis rows, 2 Comparison rows, "
        "8 Analysis.Detail rows, 6 Analysis.Reading rows, 2 Report rows, 1 Flag rows\n"
    )
    assert diamond.counts() == {
        name: n - CASES["Subject & subject_id = 1"].get(name, 0) for name, n in ROWS.items()
    }
    assert diamond.orphans() == {}


def test_cli_nothing_matches(diamond):
    for extra in ((), ("--yes",), ("--dry-run",)):
        result = diamond.cli("delete", "Subject & subject_id = 99", *extra)
        assert result.exit_code == 0, result.output
        assert (result.stdout, result.stderr) == ("", "nothing to delete: no row matches\n")
    assert diamond.counts() == ROWS


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        (
            "Subject & nmae = 1",
            "unknown attribute or table 'nmae' (attributes here: subject_id, name)",
            11,
        ),
        (
            "Subject &",
            "the query ends too early; expected " + "a table, an attribute, a value or an operator",
            10,
        ),
        ("Subject & subject_id = 'one'", "cannot compare a number with a string", 11),
    ],
)
def test_cli_bad_query_shows_a_caret_and_exits_2(diamond, expression, message, column):
    for extra in ((), ("--yes",), ("--dry-run",)):
        result = diamond.cli("delete", expression, *extra)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert "Traceback" not in result.output
        assert result.stderr == (
            f"Error: {message} (column {column})\n  {expression}\n  {' ' * (column - 1)}^\n"
        )
    assert diamond.counts() == ROWS


def test_cli_refuses_part_rows_and_joins(diamond):
    part = diamond.cli("delete", "Analysis.Detail & detail = 0", "--yes")
    assert part.exit_code == 2
    assert part.stderr == (
        "Error: part rows go with their master: delete from Analysis instead "
        "(its Analysis.Detail rows go with it)\n"
    )
    join = diamond.cli("delete", "Subject * Session", "--yes")
    assert join.exit_code == 2
    assert join.stderr == f"Error: {NOT_ONE_TABLE}\n"
    assert diamond.counts() == ROWS
