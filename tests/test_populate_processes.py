"""populate with real processes: --jobs N workers, makes that kill their process, Ctrl-C, and several
`blobflow populate` processes sharing one PostgreSQL database with leases, one of them SIGKILLed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import run_in_pty

from blobflow import open_pipeline
from blobflow.api import PipelineHandle
from blobflow.errors import BlobflowError
from blobflow.populate.executor import PopulateOptions, populate

pytestmark = pytest.mark.slow

WORKERS = Path(__file__).resolve().parent / "pipelines" / "workers"
BLOBFLOW_SCRIPT = Path(sys.executable).parent / "blobflow"


def size_of(item_id: int) -> int:
    return item_id % 3 + 1  # every key has 1 to 3 Piece rows


@dataclass
class Project:
    """tests/pipelines/workers copied into a directory of its own, in a schema of its own, initialised."""

    directory: Path
    url: str
    log: Path

    @property
    def manifest(self) -> Path:
        return self.directory / "pipeline.yaml"

    def open(self) -> PipelineHandle:
        return open_pipeline(self.manifest, self.url)

    def env(self, **settings: object) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BLOBFLOW_", "WORKERS_TEST_"))}
        env.update(NO_COLOR="1", COLUMNS="200", WORKERS_TEST_LOG=str(self.log))
        env.update({f"WORKERS_TEST_{k.upper()}": str(v) for k, v in settings.items()})
        return env

    def command(self, *args: object) -> list[str]:
        return [str(BLOBFLOW_SCRIPT), "-p", str(self.manifest), "--database", self.url, *map(str, args)]

    def start(self, *args: object, **settings: object) -> subprocess.Popen:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.directory,
            env=self.env(**settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C must reach populate even when the tests run where SIGINT is ignored (a job
            # started in the background by a script), which a child would otherwise inherit.
            preexec_fn=_default_sigint,
        )

    def run(self, *args: object, timeout: float = 20, **settings: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args),
            cwd=self.directory,
            env=self.env(**settings),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def logged(self) -> list[tuple[int, int]]:
        """(item_id, pid) of every finished make call."""
        if not self.log.exists():
            return []
        return [tuple(map(int, line.split())) for line in self.log.read_text().splitlines() if line]

    def squares(self) -> list[dict]:
        with self.open() as pipe:
            return pipe.table("Square").fetch()

    def pieces(self) -> list[dict]:
        with self.open() as pipe:
            return pipe.table("Square.Piece").fetch()

    def jobs(self) -> list[dict]:
        with self.open() as pipe:
            jobs = pipe.database.sql.jobs[pipe.table("Square").model.qualified_name]
            select = sa.select(jobs).order_by(jobs.c.item_id)
            with pipe.database.engine.connect() as connection:
                return [dict(row) for row in connection.execute(select).mappings()]

    def check_masters_have_their_parts(self) -> list[dict]:
        """Every computed Square has exactly its Piece rows, and no Piece is without its Square."""
        squares = self.squares()
        pieces = Counter(p["item_id"] for p in self.pieces())
        assert set(pieces) == {s["item_id"] for s in squares}
        for square in squares:
            assert square["value"] == square["item_id"] ** 2
            assert pieces[square["item_id"]] == size_of(square["item_id"])
        return squares


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_project(backend, tmp_path: Path, name: str, items: int) -> Project:
    directory = tmp_path / name
    directory.mkdir()
    shutil.copy(WORKERS / "workers_make.py", directory)
    manifest = (WORKERS / "pipeline.yaml").read_text()
    text, count = re.subn(r"^schema: .*$", f"schema: {backend.schema('procs')}", manifest, flags=re.M)
    assert count == 1
    (directory / "pipeline.yaml").write_text(text)
    project = Project(directory, backend.url, tmp_path / f"{name}.log")
    with project.open() as pipe:
        pipe.init()
        pipe.table("Item").insert([{"item_id": i, "size": size_of(i)} for i in range(1, items + 1)])
    return project


def summary_counts(stderr: str, table: str = "Square") -> tuple[int, int]:
    match = re.search(rf"^{table}: (\d+) computed, (\d+) failed", stderr, flags=re.M)
    assert match, stderr
    return int(match[1]), int(match[2])


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate(timeout=5)


def test_jobs_2_gives_the_same_rows_as_serial(backend, tmp_path):
    serial = make_project(backend, tmp_path, "serial", 40)
    parallel = make_project(backend, tmp_path, "parallel", 40)
    with serial.open() as pipe:  # in this process, without sleeping
        summaries = populate(pipe.database, None, PopulateOptions())
        assert (summaries["Square"].computed, summaries["Square"].failed) == (40, 0)
    result = parallel.run("populate", "--no-progress", "--jobs", "2", sleep=0.05)
    assert result.returncode == 0, result.stderr
    assert summary_counts(result.stderr) == (40, 0)
    pids = {pid for _, pid in parallel.logged()}
    assert len(pids) == 2  # two worker processes computed
    assert sorted(item for item, _ in parallel.logged()) == list(range(1, 41))  # each key once
    assert parallel.squares() == serial.squares()
    assert parallel.pieces() == serial.pieces()
    assert len(serial.check_masters_have_their_parts()) == 40
    assert parallel.jobs() == []


def test_a_make_that_kills_its_worker_is_recorded_and_the_others_go_on(backend, tmp_path):
    project = make_project(backend, tmp_path, "crashy", 14)
    crash = "5:exit,12:kill,9:segv"
    begun = tmp_path / "begun.log"
    result = project.run("populate", "--no-progress", "--jobs", "3", timeout=45, crash=crash, begun=begun)
    assert result.returncode == 1, result.stderr
    assert summary_counts(result.stderr) == (11, 3)
    assert "  (item_id=12): WorkerDied: the worker process died (killed by SIGKILL) computing this key" in (
        result.stderr.splitlines()
    )
    assert "Traceback" not in result.stderr
    # The parent knows whose make was running when a worker died: that key is not run again.
    began = Counter(int(line.split()[0]) for line in begun.read_text().splitlines())
    assert (began[5], began[9], began[12]) == (1, 1, 1), began
    squares = project.check_masters_have_their_parts()
    assert [s["item_id"] for s in squares] == [i for i in range(1, 15) if i not in (5, 9, 12)]
    jobs = project.jobs()
    assert [(j["item_id"], j["status"], j["error_type"], j["error_message"]) for j in jobs] == [
        (5, "error", "WorkerDied", "the worker process died (exit status 3) computing this key"),
        (9, "error", "WorkerDied", "the worker process died (killed by SIGSEGV) computing this key"),
        (12, "error", "WorkerDied", "the worker process died (killed by SIGKILL) computing this key"),
    ]
    listed = project.run("jobs", "--errors")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 4
    assert "WorkerDied: the worker process died (killed by SIGKILL) computing this key" in listed.stdout


def test_workers_that_cannot_start_end_populate_with_one_error(backend, tmp_path):
    project = make_project(backend, tmp_path, "nostart", 4)
    with project.open() as pipe:
        pipe.database.url = "mysql://nowhere/x"  # the parent is connected; each worker fails at once
        refused = r"^worker processes die as they start \(exit status 1, 4 times in a row\)"
        with pytest.raises(BlobflowError, match=refused):
            populate(pipe.database, None, PopulateOptions(jobs=2))
    assert project.squares() == []


@pytest.mark.postgres
def test_workers_killed_outside_a_make_fail_no_key(postgres_backend, tmp_path):
    """Workers killed while they wait for the database (here: for a lock on the input table) were
    computing no key: their keys are retried, none is recorded as failed."""
    items = 30
    project = make_project(postgres_backend, tmp_path, "waiting", items)
    begun = tmp_path / "begun.log"
    process = project.start("populate", "--no-progress", "--jobs", "2", sleep=0.05, begun=begun)
    with project.open() as pipe:
        item = pipe.database.sql[pipe.table("Item").model.qualified_name]
        schema, name = item.schema, item.name
    locker = sa.create_engine(postgres_backend.url)
    try:
        wait_for(lambda: len(project.logged()) >= 4, 20, "four keys computed")
        with locker.connect() as connection:
            relation = f'"{schema}"."{name}"'
            connection.exec_driver_sql(f"LOCK TABLE {relation} IN ACCESS EXCLUSIVE MODE")
            waiting = sa.text(  # sessions waiting for a lock on the Item table
                f"SELECT count(*) FROM pg_locks WHERE relation = '{relation}'::regclass AND NOT granted"
            )

            # The workers' writes and fetches wait for the lock; each worker computes what it has
            # already fetched (makes of 0.05 s), then waits too: no make runs.
            def idle() -> bool:
                begun_calls = len(begun.read_text().splitlines())
                return locker_count(locker, waiting) >= 2 and begun_calls == len(project.logged())

            wait_for(idle, 20, "both workers waiting, outside any make")
            time.sleep(0.3)
            assert idle()
            workers = {int(line.split()[1]) for line in begun.read_text().splitlines()}
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)  # the parent sees them die while the lock is held
            connection.rollback()  # releases the lock
        _, stderr = process.communicate(timeout=30)
    finally:
        stop(process)
        locker.dispose()
    assert process.returncode == 0, stderr
    assert summary_counts(stderr) == (items, 0)
    assert [s["item_id"] for s in project.check_masters_have_their_parts()] == list(range(1, items + 1))
    assert project.jobs() == []


def locker_count(engine: sa.Engine, select: sa.TextClause) -> int:
    with engine.connect() as connection:
        return connection.execute(select).scalar_one()


@pytest.mark.parametrize(
    ("jobs", "items", "sleep"),
    [(1, 400, 0.002), (2, 40, 0.1)],  # quick makes: Ctrl-C often comes while a chunk is written
    ids=["serial", "jobs2"],
)
def test_ctrl_c_keeps_finished_keys_releases_claims_and_exits_130(backend, tmp_path, jobs, items, sleep):
    project = make_project(backend, tmp_path, "interrupted", items)
    process = project.start("populate", "--no-progress", "--reserve", "--jobs", jobs, sleep=sleep)
    try:
        wait_for(lambda: len(project.logged()) >= 10, 15, "ten keys computed")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        stop(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.splitlines()[-1] == "Error: interrupted"
    computed, failed = summary_counts(stderr)
    squares = project.check_masters_have_their_parts()  # a key in flight was rolled back entirely
    done = [s["item_id"] for s in squares]
    assert 1 <= len(done) < items
    assert set(done) <= {item for item, _ in project.logged()}
    if jobs == 1:
        assert done == list(range(1, len(done) + 1))  # in key order, without gaps
    assert failed == 0, stderr
    assert computed == len(squares), stderr  # the summary counts every key written
    assert project.jobs() == []  # claims released, nothing recorded as failed
    finished = project.run("populate", "--no-progress")  # the rest, later
    assert finished.returncode == 0, finished.stderr
    assert summary_counts(finished.stderr) == (items - len(squares), 0)
    assert len(project.check_masters_have_their_parts()) == items


@pytest.mark.postgres
def test_several_processes_share_the_keys_and_take_over_a_killed_ones_claims(postgres_backend, tmp_path):
    items = 300
    project = make_project(postgres_backend, tmp_path, "shared", items)
    processes = [project.start("populate", "--no-progress", "--lease", "2", sleep=0.01) for _ in range(3)]
    victim, survivors = processes[0], processes[1:]
    try:
        wait_for(
            lambda: sum(pid == victim.pid for _, pid in project.logged()) >= 10, 15, "the victim to compute"
        )
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=5)
        # it died holding claims (it claims its next chunk as it writes the last), which no one can
        # take for the 2 s of their lease
        orphaned = [j["item_id"] for j in project.jobs() if j["pid"] == victim.pid]
        outputs = [p.communicate(timeout=20) for p in survivors]
    finally:
        for process in processes:
            stop(process)
    assert victim.returncode == -signal.SIGKILL
    assert orphaned
    for process, (_, stderr) in zip(survivors, outputs):
        assert process.returncode == 0, stderr
    squares = project.check_masters_have_their_parts()
    assert [s["item_id"] for s in squares] == list(range(1, items + 1))  # every key, once
    assert project.jobs() == []  # the victim's claims were taken over and cleared

    logged = project.logged()
    assert {item for item, _ in logged} == set(range(1, items + 1))
    by_survivors = [item for item, pid in logged if pid != victim.pid]
    assert len(by_survivors) == len(set(by_survivors))  # no key computed by two live processes
    with project.open() as pipe:
        table = pipe.database.sql[pipe.table("Square").model.qualified_name]
        with pipe.database.engine.connect() as connection:
            select = sa.select(table.c.item_id, table.c._computed_on)
            writer = {item: int(on.rsplit(":", 1)[1]) for item, on in connection.execute(select)}
    written_on = Counter(writer.values())
    assert set(written_on) <= {p.pid for p in processes}
    assert all(written_on[p.pid] > 0 for p in survivors)  # both survivors took part
    for process, (_, stderr) in zip(survivors, outputs):
        computed, failed = summary_counts(stderr)
        assert (computed, failed) == (written_on[process.pid], 0), stderr
    # what the victim computed but never wrote, a survivor computed again after the lease ran out
    unwritten = {item for item, pid in logged if pid == victim.pid and writer[item] != victim.pid}
    assert all(writer[item] in (survivors[0].pid, survivors[1].pid) for item in unwritten)
    assert all(writer[item] in (survivors[0].pid, survivors[1].pid) for item in orphaned)
    assert set(by_survivors) == set(range(1, items + 1)) - {
        item for item, pid in writer.items() if pid == victim.pid
    }


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_when_piped(backend, tmp_path):
    project = make_project(backend, tmp_path, "progress", 12)
    env = project.env(sleep=0.02) | {"TERM": "xterm-256color"}
    status, output = run_in_pty(project.command("populate"), env, project.directory, timeout=20)
    assert status == 0, output
    assert "12/12" in output and "\u2501" in output, output  # rich's bar and its count
    assert "Square: 12 pending" not in output  # the plain lines are for pipes and logs
    summary = re.search(r"^(\x1b\[\?25h)?Square: 12 computed, 0 failed in \d+\.\d s$", output, flags=re.M)
    assert summary, output  # after the bar (and the escape showing the cursor again)

    status, output = run_in_pty(
        project.command("populate", "--no-progress"), env, project.directory, timeout=20
    )
    assert status == 0, output
    assert re.fullmatch(r"Square: 0 computed, 0 failed in \d+\.\d s\n", output), output

    piped = project.run("populate")
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.splitlines()[0] == "Square: 0 pending"
