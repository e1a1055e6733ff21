"""Worker processes for `populate --jobs N`: spawned (never forked), each with its own connection.

A dispatcher thread in the parent hands chunks of keys to the workers, up to two at a time each
(one computing, one whose inputs are being fetched; one near the end of a table). When a worker dies
(a segfault, os._exit, SIGKILL), a new worker takes its place. Each worker tallies the keys whose make
calls it began and ended in memory it shares with the parent, so the parent knows which key's make was
running: that key is recorded as failed at once and the other keys the worker held are handed out
again. A worker that died outside a make (killed while fetching or writing, say) has its keys retried
one per task, and a key whose worker dies again alone is recorded as failed.
"""

from __future__ import annotations

import atexit
import collections
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from blobflow.database import Database
from blobflow.errors import BlobflowError
from blobflow.model import Pipeline, Table
from blobflow.populate.chunks import ChunkSizer
from blobflow.populate.dispenser import WAIT, KeyDispenser
from blobflow.populate.reservations import KeyFailure, WorkerId
from blobflow.populate.writer import write_results

Report = Callable[[int, Sequence[KeyFailure], int], None]
POLL_SECONDS = 0.2
_SENT, _WAIT, _OTHERS_HOLD, _DRY = "sent", "wait", "others hold", "dry"  # what _send did


def worker_main(
    connection: Any, tally: Any, pipeline: Pipeline, url: str, schema_map: dict[str, str]
) -> None:
    """A worker process: compute the chunks the parent sends until told to stop.

    As in `compute_locally`, threads of the worker's own do the database work: a receiver takes each
    chunk as it arrives, also while a make runs, and has its inputs fetched at once; a writer writes
    each chunk once computed, then tells the parent ("done"). Makes run in the main thread only, one
    chunk after another, in the order the chunks came. `tally` (shared with the parent) counts
    the keys whose make calls began and ended, for the parent to tell which key killed the process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    database = Database(pipeline, url, schema_map)
    worker = WorkerId()
    callers: dict[str, Any] = {}  # table -> MakeCaller, made in the main thread (it imports the make)
    send_lock = threading.Lock()  # the main thread and the writer both send

    def send(message: tuple) -> None:
        with send_lock:
            connection.send(message)

    fetcher, writer = ThreadPoolExecutor(1, "blobflow-fetch"), ThreadPoolExecutor(1, "blobflow-write")
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def receive() -> None:
        try:
            while True:
                message = connection.recv()
                if message[0] == "stop":
                    inbox.put(_STOP)
                    return
                chunk = _Chunk(*message[1:])
                if chunk.table_name in callers:  # else the main thread makes the caller, then fetches
                    chunk.caller = callers[chunk.table_name]
                    chunk.inputs = fetcher.submit(chunk.caller.fetch_inputs, chunk.keys)
                inbox.put(chunk)
        except (EOFError, OSError):
            inbox.put(_PARENT_GONE)
        except BaseException:  # anything else: die, so the parent retries this worker's keys
            inbox.put(_BROKEN)

    try:
        send(("ready",))
    except OSError:  # the parent is gone already
        os._exit(0)
    threading.Thread(target=receive, name="blobflow-receive", daemon=True).start()
    while (chunk := inbox.get()) is not _STOP:
        if chunk is _PARENT_GONE:  # killed, or exited meanwhile: nobody to work for
            writer.shutdown(wait=True, cancel_futures=True)
            os._exit(0)
        if chunk is _BROKEN:
            os._exit(GAVE_UP)
        _prepare(chunk, database, pipeline, worker, callers, fetcher)
        results, errors, seconds = _compute(chunk, tally)
        written = writer.submit(_write_and_tell, database, chunk, results, errors, seconds, send)
        written.add_done_callback(_die_unless_told)
    writer.shutdown(wait=True)
    fetcher.shutdown(wait=True)
    database.dispose()
    # Every result is written and reported and the connections are closed. Run the exit handlers
    # (the make's modules may have some), then skip tearing down the interpreter (numpy, SQLAlchemy,
    # the make's modules): that took 0.1 s that populate spent waiting for its workers to exit.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


_STOP, _PARENT_GONE, _BROKEN = object(), object(), object()  # put in the inbox besides chunks
# The exit status of a worker that ends itself (a failed write it could not report, a broken pipe):
# not a crash of the make that happens to be running, whose key is then not to blame.
GAVE_UP = 70
# Workers dying before they are ready, this many times per worker in a row, end populate: a worker
# that cannot start (its database unreachable, say) would otherwise be replaced forever.
STARTUP_DEATHS_PER_WORKER = 2


def _die_unless_told(written: Future) -> None:
    """A chunk whose "done" could not be sent (the parent is gone, or a bug) ends the worker: the
    parent, if alive, sees it die and retries the keys it held, instead of waiting forever."""
    if written.exception() is not None:
        os._exit(GAVE_UP)


@dataclass
class _Chunk:
    """A chunk in a worker: its keys, the caller of its table's make, its inputs being fetched."""

    table_name: str
    keys: list[tuple]
    caller: Any = None
    inputs: Future | None = None
    problem: BaseException | None = None  # the make cannot be imported, say: every key fails


def _prepare(chunk: _Chunk, database, pipeline, worker, callers, fetcher) -> None:
    """The chunk's caller, and its inputs being fetched, if the receiver could not see to them."""
    if chunk.caller is not None:
        return
    from blobflow.populate.make import MakeCaller

    try:
        if chunk.table_name not in callers:
            callers[chunk.table_name] = MakeCaller(database, pipeline.table(chunk.table_name), worker)
    except Exception as exc:  # import error and the like: the whole chunk fails with it
        chunk.problem = exc
        return
    chunk.caller = callers[chunk.table_name]
    chunk.inputs = fetcher.submit(chunk.caller.fetch_inputs, chunk.keys)


def _compute(chunk: _Chunk, tally: Any) -> tuple[list, list[KeyFailure], float | None]:
    started = time.perf_counter()
    try:
        inputs = chunk.inputs.result() if chunk.problem is None else None
    except Exception as exc:  # the database went away, say
        chunk.problem = exc
    if chunk.problem is not None:
        tally[0] += len(chunk.keys)  # begun and ended at once: the tally counts every key sent
        tally[1] += len(chunk.keys)
        return [], _chunk_failed(chunk), None  # no time: it says nothing of how long makes take
    results: list = []
    errors: list[KeyFailure] = []
    chunk.caller.compute_each(chunk.keys, inputs, results, errors, tally)
    return results, errors, time.perf_counter() - started


def _write_and_tell(
    database, chunk: _Chunk, results: list, errors: list, seconds: float | None, send
) -> None:
    if chunk.problem is not None:  # never started: nothing to record, the parent reports it
        send(("done", 0, errors, 0, seconds))
        return
    try:
        written = write_results(database, chunk.caller.table, chunk.caller.worker, results, errors)
    except Exception as exc:
        chunk.problem = exc
        send(("done", 0, _chunk_failed(chunk), 0, seconds))
        return
    send(("done", len(written.written), written.failed, len(written.already_done), seconds))


def _chunk_failed(chunk: _Chunk) -> list[KeyFailure]:
    problem = chunk.problem
    return [KeyFailure(key, type(problem).__name__, str(problem), "") for key in chunk.keys]


@dataclass
class _Worker:
    process: Any
    connection: Any
    tally: Any  # keys whose makes began, and ended: shared with the process, which counts them
    ready: bool = False
    started: bool = False  # said it was ready, once
    chunks: collections.deque[list[tuple]] = field(default_factory=collections.deque)  # sent, not done
    keys_reported: int = 0  # keys of the chunks reported done
    isolated: bool = False  # running one key retried after a crash outside any make

    @property
    def keys(self) -> list[tuple]:
        """Every key sent to this worker and not reported done, in the order it computes them."""
        return [key for chunk in self.chunks for key in chunk]

    def key_in_make(self) -> tuple | None:
        """The key whose make was running, if one was (read once the process is dead): the worker
        computes the keys sent to it in order, so the count of keys begun points at it."""
        begun, ended = self.tally
        position = begun - 1 - self.keys_reported
        keys = self.keys
        return keys[position] if begun > ended and 0 <= position < len(keys) else None


@dataclass
class _Retries:
    """Keys to hand out again after a worker died."""

    again: collections.deque[tuple] = field(default_factory=collections.deque)  # in chunks, as usual
    alone: collections.deque[tuple] = field(default_factory=collections.deque)  # one per task

    def __bool__(self) -> bool:
        return bool(self.again or self.alone)


class WorkerPool:
    def __init__(self, database: Database, count: int):
        self._database = database
        self._context = multiprocessing.get_context("spawn")
        self._workers = [self._spawn() for _ in range(count)]
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failure: BaseException | None = None  # what stopped the dispatcher, raised by finish_table
        self._report: Report | None = None  # the current table's
        self._startup_deaths = 0  # workers that died before they were ready, in a row

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        tally = self._context.RawArray("q", 2)
        database = self._database
        process = self._context.Process(
            target=worker_main,
            name="blobflow-worker",
            daemon=True,
            args=(child_end, tally, database.pipeline, database.url, dict(database.schema_map)),
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end, tally)

    def start_table(
        self, table: Table, dispenser: KeyDispenser, report: Report, target_seconds: float
    ) -> None:
        self._sizer = ChunkSizer(target_seconds, workers=len(self._workers))
        self._handed_out = 0
        self._report = report
        self._failure = None
        self._dispatched = threading.Event()  # set when the dispatcher has returned
        self._thread = threading.Thread(
            target=self._dispatch_or_fail,
            args=(table, dispenser, report),
            daemon=True,
            name="blobflow-dispatcher",
        )
        self._thread.start()

    def finish_table(self) -> None:
        """Wait until the workers have finished every key of the current table."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._failure is not None:  # e.g. the database went away: not "all done"
            failure, self._failure = self._failure, None
            raise failure

    def _dispatch_or_fail(self, table: Table, dispenser: KeyDispenser, report: Report) -> None:
        try:
            self._dispatch(table, dispenser, report)
        except BaseException as exc:
            self._failure = exc
        finally:
            self._dispatched.set()

    def _dispatch(self, table: Table, dispenser: KeyDispenser, report: Report) -> None:
        retry = _Retries()
        dry = False
        while not self._stopping.is_set():
            for worker in self._workers:
                sent = None
                while (
                    worker.ready
                    and not dry
                    and not self._stopping.is_set()
                    and len(worker.chunks) < self._depth(worker, dispenser, retry)
                ):
                    sent = self._send(worker, table, dispenser, retry)
                    dry = sent == _DRY
                    if sent != _SENT:
                        break  # nothing to give this worker now, or no keys left
                if sent == _OTHERS_HOLD:
                    break  # other processes hold the last keys: ask again after the poll, once
            busy = [w for w in self._workers if w.keys]
            if dry and not busy and not retry:
                return
            waiting = [w.connection for w in self._workers] + [w.process.sentinel for w in self._workers]
            for ready in multiprocessing.connection.wait(waiting, timeout=POLL_SECONDS):
                worker = next((w for w in self._workers if ready in (w.connection, w.process.sentinel)), None)
                if worker is not None:
                    self._handle(worker, table, report, retry)
            if dry and retry:
                dry = False  # crashed keys to retry: keep handing out

    def _depth(self, worker: _Worker, dispenser: KeyDispenser, retry: _Retries) -> int:
        """How many chunks the worker may hold: one computing and one queued, whose inputs it fetches
        meanwhile; only one near the end of the table, so that no worker holds keys another idle one
        could take, and only one while keys are retried alone after a crash, so that the next crash
        points at its key."""
        if retry.alone or worker.isolated:
            return 1
        remaining = dispenser.total - self._handed_out
        return 2 if remaining >= 2 * len(self._workers) else 1

    def _send(self, worker: _Worker, table: Table, dispenser: KeyDispenser, retry: _Retries) -> str:
        """Give the worker a chunk: _SENT; _WAIT when there is none for this worker now (a retried key
        waits for it to be idle, or it just died); _OTHERS_HOLD when other processes hold the last
        keys; _DRY when no keys are left."""
        if retry.alone:
            if worker.chunks:
                return _WAIT  # a retried key runs alone: wait until the worker is idle
            chunk, worker.isolated = [retry.alone.popleft()], True
        elif retry.again:
            size = min(self._sizer.next(remaining=len(retry.again)), len(retry.again))
            chunk, worker.isolated = [retry.again.popleft() for _ in range(size)], False
        else:
            left = dispenser.total - self._handed_out
            keys = dispenser.take(self._sizer.next(remaining=left if left > 0 else None))
            if keys == WAIT:
                return _OTHERS_HOLD
            if not keys:
                return _DRY
            self._handed_out += len(keys)
            chunk, worker.isolated = list(keys), False
        try:
            worker.connection.send(("chunk", table.qualified_name, chunk))
        except OSError:  # the worker died (BrokenPipeError); its sentinel fires and it is replaced
            worker.ready, worker.isolated = False, False
            retry.again.extend(chunk)  # never delivered: not the keys that killed it
            return _WAIT
        worker.chunks.append(chunk)
        return _SENT

    def _handle(self, worker: _Worker, table: Table, report: Report, retry: _Retries) -> None:
        try:
            if worker.connection.poll():
                message = worker.connection.recv()
                if message[0] == "ready":
                    worker.ready = worker.started = True
                    self._startup_deaths = 0
                else:
                    self._chunk_done(worker, message, report)
                return
        except (EOFError, OSError):
            pass
        if worker.process.is_alive() or self._stopping.is_set():
            return  # (while stopping, close() terminates busy workers: no crash of theirs)
        self._replace(worker, table, report, retry)

    def _replace(self, dead: _Worker, table: Table, report: Report, retry: _Retries) -> None:
        dead.process.join(timeout=1)
        reason = _exit_reason(dead.process.exitcode)
        if not dead.started:
            self._startup_deaths += 1
            if self._startup_deaths >= STARTUP_DEATHS_PER_WORKER * len(self._workers):
                raise BlobflowError(
                    f"worker processes die as they start ({reason}, {self._startup_deaths} times in a "
                    "row); run with --jobs 1 to see why"
                )
        culprit = dead.key_in_make() if dead.process.exitcode != GAVE_UP else None
        # A chunk the worker wrote, but died before saying so (its writer thread commits while the
        # next make runs), is done: by this populate, not "by another process".
        written = _written_by(self._database, table, dead.keys, f"{WorkerId().host}:{dead.process.pid}")
        keys = [key for key in dead.keys if key not in written]
        if written:
            report(len(written), [], 0)
        if culprit is None and dead.isolated and keys:
            culprit = keys[0]  # it died alone with this key, if not in its make
        if culprit in keys:
            error = KeyFailure(
                culprit, "WorkerDied", f"the worker process died ({reason}) computing this key", ""
            )
            outcome = write_results(self._database, table, WorkerId(), [], [error])
            report(0, outcome.failed, 0)
            retry.again.extend(key for key in keys if key != culprit)
        else:
            retry.alone.extend(keys)  # died outside a make: which key killed it, if any, is unknown
        self._workers[self._workers.index(dead)] = self._spawn()

    def close(self) -> None:
        """Stop the workers: politely when idle, by force when busy (Ctrl-C); their transactions roll back."""
        self._stopping.set()
        if self._thread is not None:
            # Wait on the dispatcher's own event, not on join(): after Ctrl-C interrupted
            # finish_table's join(), a second join() could return while the dispatcher still ran,
            # and it took the workers terminated below for crashes.
            self._dispatched.wait(timeout=5)
        self._collect_finished()
        for worker in self._workers:
            try:
                if not worker.keys:
                    worker.connection.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 3
        for worker in self._workers:
            if worker.keys:
                worker.process.terminate()
            worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=1)
        self._collect_finished()

    def _collect_finished(self) -> None:
        """Report chunks whose workers wrote them and said so after the dispatcher stopped (Ctrl-C):
        their messages wait in the pipes, and the summary must count what was written."""
        report = self._report
        for worker in self._workers:
            try:
                while worker.chunks and worker.connection.poll():
                    message = worker.connection.recv()
                    if message[0] == "done":
                        self._chunk_done(worker, message, report)
            except (EOFError, OSError):
                continue

    def _chunk_done(self, worker: _Worker, message: tuple, report: Report | None) -> None:
        """A worker wrote its oldest chunk and said so ("done"): count and report it."""
        _, computed, failed, skipped, seconds = message
        chunk = worker.chunks.popleft()
        worker.keys_reported += len(chunk)
        if seconds is not None:
            self._sizer.observe(len(chunk), seconds)
        if report is not None:
            report(computed, failed, skipped)


def _written_by(database: Database, table: Table, keys: list[tuple], computed_on: str) -> set[tuple]:
    """Those of the keys whose rows the given process wrote (its `_computed_on`)."""
    if not keys:
        return set()
    sql_table = database.sql[table.qualified_name]
    columns = [sql_table.c[name] for name in table.primary_key]
    select = sa.select(*columns).where(sa.tuple_(*columns).in_(keys), sql_table.c._computed_on == computed_on)
    with database.engine.connect() as connection:
        return {tuple(row) for row in connection.execute(select)}


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"
