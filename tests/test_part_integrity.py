"""A part's rows always have their master, whoever writes to the database.

blobflow writes parts only with their master. These tests write SQL directly, as another program
might, and check that the database itself refuses part rows without a master and masters removed
from under their parts: through the foreign key on SQLite, through the statement-level triggers of
blobflow/part_integrity.py on PostgreSQL (including against a concurrent transaction).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sqlalchemy as sa

from blobflow.delete import execute_delete
from blobflow.part_integrity import _dollar_quoted, _identifier, create_statements

DETECTION = "tutorial_blobs.Detection"
BLOB = "tutorial_blobs.Detection.Blob"


def blob_rows(image_id: int, params_id: int, count: int) -> list[dict]:
    return [
        {"image_id": image_id, "params_id": params_id, "blob_idx": i, "x": 1.0, "y": 2.0, "radius": 3.0}
        for i in range(count)
    ]


def detect_by_hand(pipe):
    """Two images and, written by hand, Detection (1, 1) with three blobs."""
    images = [{"image_id": i, "image_name": f"image {i}", "image": np.zeros((4, 4))} for i in (1, 2)]
    pipe.table("Image").insert(images)
    sql = pipe.database.sql
    with pipe.database.engine.begin() as connection:
        connection.execute(sa.insert(sql[DETECTION]), [{"image_id": 1, "params_id": 1, "num_blobs": 3}])
        connection.execute(sa.insert(sql[BLOB]), blob_rows(1, 1, 3))
    return pipe


@pytest.fixture
def detected(blobs):
    """The blobs pipeline, on each backend, with Detection (1, 1) and its three blobs."""
    return detect_by_hand(blobs)


@pytest.fixture
def pg_detected(postgres_backend):
    """The same on PostgreSQL alone, for what only it has (TRUNCATE, isolation levels, triggers)."""
    pipe = postgres_backend.open()
    pipe.init()
    yield detect_by_hand(pipe)
    pipe.close()


def refused(database, *statements) -> str:
    """Run the statements in one transaction, expecting the database to refuse; the error text."""
    with pytest.raises(sa.exc.IntegrityError) as caught, database.engine.begin() as connection:
        for statement, *parameters in statements:
            connection.execute(statement, *parameters)
    return str(caught.value.orig)


def counts(database) -> tuple[int, int]:
    with database.engine.connect() as connection:
        return tuple(
            connection.execute(sa.select(sa.func.count()).select_from(database.sql[name])).scalar_one()
            for name in (DETECTION, BLOB)
        )


def test_part_rows_without_their_master_are_refused(detected):
    database = detected.database
    message = refused(database, (sa.insert(database.sql[BLOB]), blob_rows(2, 1, 2)))
    assert "FOREIGN KEY" in message or "is not present" in message
    if database.engine.dialect.name == "postgresql":
        assert "Key (image_id, params_id)=(2, 1) is not present" in message
    # Mixed with rows whose master exists, the whole statement goes.
    refused(database, (sa.insert(database.sql[BLOB]), blob_rows(1, 1, 0) + blob_rows(1, 2, 1)))
    assert counts(database) == (1, 3)


def test_master_and_parts_written_together_are_accepted(detected):
    database = detected.database
    sql = database.sql
    with database.engine.begin() as connection:
        connection.execute(
            sa.insert(sql[DETECTION]), [{"image_id": 2, "params_id": p, "num_blobs": 2} for p in (1, 2)]
        )
        connection.execute(sa.insert(sql[BLOB]), blob_rows(2, 1, 2) + blob_rows(2, 2, 2))
    assert counts(database) == (3, 7)


def test_a_master_with_parts_cannot_be_deleted_or_rekeyed(detected):
    database = detected.database
    detection, blob = database.sql[DETECTION], database.sql[BLOB]
    message = refused(database, (sa.delete(detection),))
    assert "FOREIGN KEY" in message or "still referenced" in message
    refused(database, (sa.update(detection).values(params_id=2),))
    # A part row moved to a master that does not exist.
    refused(database, (sa.update(blob).where(blob.c.blob_idx == 0).values(image_id=2),))
    assert counts(database) == (1, 3)
    # What does not break the reference goes through: a secondary attribute, parts first then master.
    with database.engine.begin() as connection:
        connection.execute(sa.update(detection).values(num_blobs=30))
    with database.engine.begin() as connection:
        connection.execute(sa.delete(blob))
        connection.execute(sa.delete(detection))
    assert counts(database) == (0, 0)


def test_truncate_of_a_master_needs_its_parts_truncated_with_it(pg_detected):
    database = pg_detected.database
    schema = database.sql_schema("tutorial_blobs")
    detection, selected, blob = (
        f'"{schema}".{name}' for name in ("detection", "selected_detection", "detection__blob")
    )
    message = refused(database, (sa.text(f"TRUNCATE {detection}, {selected}"),))
    assert "still has rows" in message
    with database.engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {detection}, {selected}, {blob}"))
    assert counts(database) == (0, 0)


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["delete_master", "insert_parts"])
def test_concurrent_delete_of_the_master_and_insert_of_its_parts(postgres_backend, first):
    """Two transactions: one deletes master (1, 2), the other adds part rows to it. Whichever goes first,
    the second waits for it, then fails; no part row is left without its master. (SQLite has one
    writer at a time.)"""
    pipe = postgres_backend.open()
    pipe.init()
    database = pipe.database
    pipe.table("Image").insert([{"image_id": 1, "image_name": "one", "image": np.zeros((2, 2))}])
    detection, blob = database.sql[DETECTION], database.sql[BLOB]
    with database.engine.begin() as connection:
        connection.execute(sa.insert(detection), [{"image_id": 1, "params_id": 2, "num_blobs": 0}])

    def delete_master(connection):
        connection.execute(sa.delete(detection))

    def insert_parts(connection):
        connection.execute(sa.insert(blob), blob_rows(1, 2, 5))

    steps = {"delete_master": delete_master, "insert_parts": insert_parts}
    second = "insert_parts" if first == "delete_master" else "delete_master"
    outcome: dict[str, BaseException | None] = {}
    holder = database.engine.connect()
    holder_transaction = holder.begin()
    steps[first](holder)  # done, not committed: its locks are held

    def run_second():
        try:
            with database.engine.begin() as connection:
                steps[second](connection)
            outcome[second] = None
        except BaseException as exc:
            outcome[second] = exc

    thread = threading.Thread(target=run_second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), "the second transaction should wait for the first one's locks"
    holder_transaction.commit()
    holder.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert isinstance(outcome[second], sa.exc.IntegrityError), outcome
    with database.engine.connect() as connection:
        orphans = connection.execute(
            sa.select(sa.func.count())
            .select_from(blob.outerjoin(detection))
            .where(detection.c.image_id.is_(None))
        ).scalar_one()
    assert orphans == 0
    assert counts(database) == ((0, 0) if first == "delete_master" else (1, 5))
    pipe.close()


def test_trigger_names_fit_postgresql_and_stay_distinct():
    long_a, long_b = "x" * 80 + "a", "x" * 80 + "b"
    names = {_identifier("blobflow_parts_delete__", n) for n in (long_a, long_b, "detection__blob")}
    assert len(names) == 3
    assert all(len(name) <= 63 for name in names)
    assert (
        _identifier("blobflow_parts_delete__", "detection__blob") == "blobflow_parts_delete__detection__blob"
    )


@pytest.mark.postgres
def test_a_master_goes_only_under_read_committed(postgres_backend):
    """Under an older snapshot a trigger cannot see part rows committed meanwhile, so deleting or
    re-keying a master is refused there (blobflow itself always runs READ COMMITTED)."""
    pipe = postgres_backend.open()
    pipe.init()
    database = pipe.database
    pipe.table("Image").insert([{"image_id": 1, "image_name": "one", "image": np.zeros((2, 2))}])
    detection = database.sql[DETECTION]
    with database.engine.begin() as connection:
        connection.execute(
            sa.insert(detection), [{"image_id": 1, "params_id": p, "num_blobs": 0} for p in (1, 2)]
        )
    repeatable = database.engine.execution_options(isolation_level="REPEATABLE READ")
    refusal = pytest.raises(sa.exc.DBAPIError, match="needs READ COMMITTED isolation")
    with refusal, repeatable.begin() as connection:
        connection.execute(sa.delete(detection).where(detection.c.params_id == 1))
    with repeatable.begin() as connection:  # what leaves every master key in place is fine
        connection.execute(sa.update(detection).values(num_blobs=5))
    with database.engine.begin() as connection:  # READ COMMITTED, as blobflow's delete runs
        connection.execute(sa.delete(detection).where(detection.c.params_id == 1))
    assert counts(database) == (1, 0)
    pipe.close()


def test_the_triggers_can_be_created_again_and_outlive_a_part_dropped_by_hand(pg_detected):
    database = pg_detected.database
    pipeline = database.pipeline
    with database.engine.begin() as connection:  # again: replaced, not refused as existing
        for statement in create_statements(
            pipeline, pipeline.table(BLOB), database.sql_schema, connection.dialect
        ):
            connection.exec_driver_sql(statement)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f'DROP TABLE "{database.sql_schema("tutorial_blobs")}".detection__blob')
    with database.engine.begin() as connection:  # the master's trigger does not trip over the gone part
        connection.execute(sa.delete(database.sql[DETECTION]))


def test_function_bodies_are_quoted_with_a_tag_they_do_not_contain():
    assert _dollar_quoted("SELECT 1") == "$blobflow$SELECT 1$blobflow$"
    hostile = 'SELECT 1 FROM "odd$blobflow$schema".t'
    quoted = _dollar_quoted(hostile)
    tag = quoted[: quoted.index("$", 1) + 1]
    assert tag not in hostile
    assert quoted == f"{tag}{hostile}{tag}"


@pytest.mark.postgres
def test_blobflow_deletes_under_read_committed_whatever_the_servers_default(postgres_backend, monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c default_transaction_isolation=repeatable\\ read")  # before connecting
    with postgres_backend.open() as pipe:
        pipe.init()
        database = detect_by_hand(pipe).database
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "read committed"
        plan = execute_delete(database, "Image")
        assert plan.counts == {"Image": 2, "Detection": 1, "Detection.Blob": 3}
        assert counts(database) == (0, 0)


def test_a_renamed_part_still_protects_its_rows(pg_detected):
    """Only a part dropped by hand lets the master's check stand down; renamed, its rows still count."""
    database = pg_detected.database
    schema = database.sql_schema("tutorial_blobs")
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f'ALTER TABLE "{schema}".detection__blob RENAME TO moved_away')
    with pytest.raises(sa.exc.DBAPIError), database.engine.begin() as connection:
        connection.execute(sa.delete(database.sql[DETECTION]))
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql(f'SELECT count(*) FROM "{schema}".detection').scalar_one() == 1
