"""Running populate: tables upstream first, keys in adaptive chunks, in this process and in workers.

With `jobs=1` this process computes every key, in its main thread, while two threads claim and
fetch the next chunk and write the last one. With `jobs=N` it spawns N worker processes and
computes nothing itself, so a make that kills its process (os._exit, a segfault) takes down a worker,
never populate; a dispatcher thread feeds the workers and notices when one dies. Ctrl-C stops
everything: finished keys are written, claims are released, and KeyboardInterrupt propagates.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from blobflow import db
from blobflow.database import Database
from blobflow.graph import populate_order
from blobflow.model import Table
from blobflow.populate.chunks import ChunkSizer
from blobflow.populate.dispenser import WAIT, DispenseOptions, KeyDispenser
from blobflow.populate.make import Computed, MakeCaller
from blobflow.populate.planner import where_restrictions
from blobflow.populate.reservations import KeyFailure, WorkerId, release_claims, renew_leases
from blobflow.populate.writer import write_results

WAIT_SECONDS = 0.5


@dataclass
class PopulateOptions:
    jobs: int = 1
    retry_errors: bool = False
    limit: int | None = None
    random_order: bool = False
    reserve: bool | None = None  # None: reserve on PostgreSQL, where other processes may populate too
    lease_seconds: float = 60.0
    where: str | None = None  # a condition or expression restricting every table's keys it applies to
    target_chunk_seconds: float = 0.25  # how much computing to do between writes


@dataclass
class TableSummary:
    computed: int = 0
    failed: int = 0
    skipped: int = 0  # computed meanwhile by another process
    seconds: float = 0.0
    errors: list[KeyFailure] = field(default_factory=list)

    def add(self, computed: int, failed: Sequence[KeyFailure], skipped: int) -> None:
        self.computed += computed
        self.failed += len(failed)
        self.skipped += skipped
        self.errors.extend(failed)


ProgressCallback = Callable[[str, str, int, TableSummary], None]  # (event, table, total, summary)


def populate(
    database: Database,
    targets: Sequence[Table] | None,
    options: PopulateOptions,
    progress: ProgressCallback | None = None,
    summaries: dict[str, TableSummary] | None = None,
) -> dict[str, TableSummary]:
    """Compute every pending key of the targets' computed tables and of those upstream of them.

    `summaries`, when given, is filled as tables run, so a caller interrupted by Ctrl-C can still
    report what was done.
    """
    order = populate_order(database.pipeline, [t.qualified_name for t in targets] if targets else None)
    restrictions = where_restrictions(database, order, targets, options.where)
    reserve = db.is_postgres(database.engine) if options.reserve is None else options.reserve
    worker = WorkerId()
    retry_cutoff = _database_now(database) if options.retry_errors else None
    summaries = {} if summaries is None else summaries
    heartbeat = _Heartbeat(database, worker, options.lease_seconds) if reserve else None
    pool = None
    try:
        if options.jobs > 1:
            from blobflow.populate.pool import WorkerPool

            pool = WorkerPool(database, options.jobs)
        for table in order:
            if options.where is not None and table.qualified_name not in restrictions:
                continue  # the condition does not apply to this upstream table: leave it as it is
            dispense = DispenseOptions(
                reserve,
                options.lease_seconds,
                retry_cutoff,
                options.limit,
                options.random_order,
                restrictions.get(table.qualified_name),
            )
            dispenser = KeyDispenser(database, table, worker, dispense)
            summary = summaries[database.pipeline.display_name(table)] = TableSummary()
            _run_table(database, table, worker, dispenser, summary, options, pool, progress)
    finally:
        if pool is not None:
            pool.close()
        if heartbeat is not None:
            heartbeat.stop()
            with database.engine.begin() as connection:
                release_claims(connection, database, worker)
    return summaries


def _database_now(database: Database):
    with database.engine.connect() as connection:
        return connection.execute(sa.select(db.utc_now(connection))).scalar_one()


def _run_table(
    database: Database,
    table: Table,
    worker: WorkerId,
    dispenser: KeyDispenser,
    summary: TableSummary,
    options: PopulateOptions,
    pool,
    progress: ProgressCallback | None,
) -> None:
    started = time.perf_counter()
    lock = threading.Lock()
    name = database.pipeline.display_name(table)

    def report(computed: int, failed: Sequence[KeyFailure], skipped: int) -> None:
        with lock:
            summary.add(computed, failed, skipped)
            summary.seconds = time.perf_counter() - started
            if progress:
                progress("advance", name, dispenser.total, summary)

    if progress:
        progress("start", name, dispenser.total, summary)
    try:
        if pool is None:
            compute_locally(database, table, worker, dispenser, report, options.target_chunk_seconds)
        else:  # the workers compute; a make that crashes must not take this process down with it
            MakeCaller(database, table, worker)  # a make that cannot be imported: one error, here
            pool.start_table(table, dispenser, report, options.target_chunk_seconds)
            pool.finish_table()
    finally:
        summary.seconds = time.perf_counter() - started
        if progress:
            progress("finish", name, dispenser.total, summary)


def compute_locally(
    database: Database,
    table: Table,
    worker: WorkerId,
    dispenser: KeyDispenser,
    report: Callable[[int, Sequence[KeyFailure], int], None],
    target_seconds: float,
) -> None:
    """Take chunks of keys and compute them here until the dispenser runs dry.

    The database work overlaps the computing: while the makes of one chunk run, one thread claims the
    next chunk and fetches its inputs and another writes the chunk before. With a core to spare,
    populate then takes little longer than the make calls alone. Makes run only here, one chunk
    after another, and the writer takes chunks in the order they were computed. An in-memory SQLite
    database has a single connection, which threads must not share: there the same steps run one
    after the other in this thread.
    """
    caller = MakeCaller(database, table, worker)
    if db.single_connection(database.engine):
        fetcher = writer = _InThisThread()
    else:
        fetcher, writer = ThreadPoolExecutor(1, "blobflow-fetch"), ThreadPoolExecutor(1, "blobflow-write")
    sizer = ChunkSizer(target_seconds)
    upcoming = fetcher.submit(_take_and_fetch, dispenser, caller, sizer.next())
    writes: list[Future] = []
    try:
        while True:
            keys, inputs = upcoming.result()
            if keys == WAIT:  # other processes hold the only keys left: theirs may expire
                time.sleep(WAIT_SECONDS)
                upcoming = fetcher.submit(_take_and_fetch, dispenser, caller, sizer.next())
                continue
            if not keys:
                break
            upcoming = fetcher.submit(_take_and_fetch, dispenser, caller, sizer.next())
            started = time.perf_counter()
            results: list[Computed] = []
            errors: list[KeyFailure] = []
            try:
                caller.compute_each(keys, inputs, results, errors)
            finally:  # on Ctrl-C too: what finished is written (held back while written here)
                with _ctrl_c_held():
                    writes.append(writer.submit(_write, database, caller, results, errors, report))
            sizer.observe(len(keys), time.perf_counter() - started)
            while writes and writes[0].done():
                writes.pop(0).result()  # a failed write stops populate here, as it would without the thread
    finally:
        # Ctrl-C waits until every chunk computed is written and reported, so the summary counts
        # every key written. It does not wait for the chunk being claimed ahead: that claim is let
        # finish, so that populate() releases it afterwards, but Ctrl-C again cuts the wait short.
        fetcher.shutdown(wait=False, cancel_futures=True)
        try:
            with _ctrl_c_held():
                writer.shutdown(wait=True)
        finally:
            concurrent.futures.wait([upcoming])
    for write in writes:
        write.result()


def _take_and_fetch(dispenser: KeyDispenser, caller: MakeCaller, count: int) -> tuple[list | str, dict]:
    keys = dispenser.take(count)
    if keys == WAIT or not keys:
        return keys, {}
    return keys, caller.fetch_inputs(keys)


def _write(
    database: Database,
    caller: MakeCaller,
    results: list[Computed],
    errors: list[KeyFailure],
    report: Callable[[int, Sequence[KeyFailure], int], None],
) -> None:
    written = write_results(database, caller.table, caller.worker, results, errors)
    report(len(written.written), written.failed, len(written.already_done))


class _InThisThread:
    """The I/O thread's interface, running each task at once in the calling thread."""

    def submit(self, function: Callable, *arguments) -> Future:
        future: Future = Future()
        try:
            future.set_result(function(*arguments))
        except Exception as exc:  # handed over as the thread would hand it over: at result()
            future.set_exception(exc)
        return future  # (KeyboardInterrupt is not held: Ctrl-C stops at once)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the block is done, then raise KeyboardInterrupt. Only where
    Ctrl-C raises KeyboardInterrupt (the main thread, Python's own handler): worker processes ignore
    SIGINT and must go on ignoring it."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


class _Heartbeat:
    """Renews this process's leases every third of a lease, in a thread of its own."""

    def __init__(self, database: Database, worker: WorkerId, lease_seconds: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(database, worker, lease_seconds), daemon=True, name="blobflow-heartbeat"
        )
        self._thread.start()

    def _run(self, database: Database, worker: WorkerId, lease_seconds: float) -> None:
        while not self._stop.wait(lease_seconds / 3):
            try:
                with database.engine.begin() as connection:
                    renew_leases(connection, database, worker, lease_seconds)
            except Exception:  # a missed renewal is retried; the lease has two more thirds to go
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
