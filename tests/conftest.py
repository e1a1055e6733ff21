"""Shared fixtures: `backend` runs a test on SQLite and on PostgreSQL, each in schemas of its own."""

from __future__ import annotations

import functools
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from blobflow import open_pipeline
from blobflow.api import PipelineHandle
from blobflow.manifest import load_pipeline

POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parent.parent
BLOBS = REPO / "pipelines" / "blobs"


@functools.lru_cache(maxsize=1)
def _postgres_problem() -> tuple[str, str | None]:
    """(url, None) when PostgreSQL answers, else (url, why not)."""
    url = os.environ.get("BLOBFLOW_TEST_DATABASE_URL", POSTGRES_DEFAULT)
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as exc:  # any failure to reach it is a reason to skip (or fail in CI)
        return url, f"PostgreSQL not reachable at {url}: {type(exc).__name__}"
    return url, None


def postgres_url() -> str:
    url, problem = _postgres_problem()
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{problem} (CI must test PostgreSQL)")
        pytest.skip(problem)
    return url


@dataclass
class Backend:
    """One database for one test: a URL, and schema names no other test uses."""

    name: str
    url: str
    tmp_path: Path
    created_schemas: list[str] = field(default_factory=list)

    def schema(self, base: str) -> str:
        unique = f"{base}_{uuid.uuid4().hex[:10]}"
        self.created_schemas.append(unique)
        return unique

    def open(self, pipeline: str | Path = BLOBS) -> PipelineHandle:
        """Open a pipeline with each of its schemas renamed to a unique one."""
        model = load_pipeline(pipeline)
        schema_map = {s: self.schema(s) for s in model.schemas}
        return open_pipeline(model, self.url, schema_map)

    def cleanup(self) -> None:
        if self.name != "postgres" or not self.created_schemas:
            return
        engine = sa.create_engine(self.url)
        with engine.begin() as connection:
            for schema in self.created_schemas:
                connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'test.db'}" if request.param == "sqlite" else postgres_url()
    backend = Backend(request.param, url, tmp_path)
    yield backend
    backend.cleanup()


@pytest.fixture
def postgres_backend(tmp_path: Path):
    """PostgreSQL alone, for what only it does (several machines, TRUNCATE, concurrent writers)."""
    backend = Backend("postgres", postgres_url(), tmp_path)
    yield backend
    backend.cleanup()


@pytest.fixture
def blobs(backend: Backend):
    """The blobs pipeline, initialised, on each backend."""
    pipe = backend.open(BLOBS)
    pipe.init()
    yield pipe
    pipe.close()
