"""What every benchmark shares: the two backends, pipelines in throw-away schemas, timing, JSON output.

Each benchmark opens its pipelines with every schema renamed to a unique one (as tests/conftest.py
does) and drops them afterwards: on PostgreSQL the schemas, on SQLite the temporary directory.
PostgreSQL is found at $BLOBFLOW_BENCH_DATABASE_URL, else $BLOBFLOW_TEST_DATABASE_URL, else the test
default; when it does not answer, its benchmarks are reported as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from blobflow import open_pipeline
from blobflow.api import PipelineHandle
from blobflow.manifest import load_pipeline

REPO = Path(__file__).resolve().parent.parent
BLOBS = REPO / "pipelines" / "blobs"
BENCH_PIPELINE = Path(__file__).resolve().parent / "pipelines" / "bench"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("postgres", "sqlite")


def postgres_url() -> str:
    return os.environ.get(
        "BLOBFLOW_BENCH_DATABASE_URL", os.environ.get("BLOBFLOW_TEST_DATABASE_URL", POSTGRES_DEFAULT)
    )


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(postgres_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # any failure means: skip PostgreSQL, say why
        return f"PostgreSQL not reachable: {type(exc).__name__}"
    return None


class Backend:
    """One database for one benchmark, whose schemas are all unique and dropped on close."""

    def __init__(self, name: str):
        self.name = name
        self._directory = Path(tempfile.mkdtemp(prefix=f"blobflow-bench-{name}-"))
        self.url = postgres_url() if name == "postgres" else f"sqlite:///{self._directory / 'bench.db'}"
        self._schemas: list[str] = []
        self._handles: list[PipelineHandle] = []

    def open(self, pipeline: Path) -> PipelineHandle:
        """The pipeline, initialised, with each schema renamed to one no one else uses."""
        model = load_pipeline(pipeline)
        schema_map = {}
        for schema in model.schemas:
            schema_map[schema] = f"bench_{schema}_{uuid.uuid4().hex[:10]}"
            self._schemas.append(schema_map[schema])
        handle = open_pipeline(model, self.url, schema_map)
        self._handles.append(handle)
        handle.init()
        return handle

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        if self.name == "postgres" and self._schemas:
            engine = sa.create_engine(self.url)
            with engine.begin() as connection:
                for schema in self._schemas:
                    connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
            engine.dispose()
        shutil.rmtree(self._directory, ignore_errors=True)


@contextlib.contextmanager
def backend(name: str) -> Iterator[Backend]:
    opened = Backend(name)
    try:
        yield opened
    finally:
        opened.close()


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def summary(seconds: list[float]) -> dict[str, Any]:
    """Best and median of repeated timings, in seconds."""
    return {
        "best_s": round(min(seconds), 4),
        "median_s": round(statistics.median(seconds), 4),
        "runs": len(seconds),
    }


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "both"), default="both", help="database(s) to run on (default both)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repetitions (default: the benchmark's)")
    return parser.parse_args()


def selected_backends(choice: str) -> list[str]:
    return list(BACKENDS) if choice == "both" else [choice]


def emit(benchmark: str, backend_name: str, figures: dict[str, Any]) -> None:
    """Print one result as one JSON line, which bench/run_all.py collects."""
    record = {"benchmark": benchmark, "backend": backend_name, **figures}
    print(json.dumps(record), flush=True)


def run_on_backends(benchmark: str, choice: str, run: Callable[[Backend], dict[str, Any]]) -> None:
    """Run `run` on each selected backend and print its figures (or why it was skipped)."""
    for name in selected_backends(choice):
        if name == "postgres":
            problem = postgres_problem()
            if problem:
                emit(benchmark, name, {"skipped": problem})
                continue
        with backend(name) as opened:
            emit(benchmark, name, run(opened))


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": sys.platform}
