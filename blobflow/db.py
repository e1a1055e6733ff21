"""Engines from URLs, and every difference between SQLite and PostgreSQL that is not SQL text.

SQLite has no schemas: each manifest schema is a database file attached under the schema's name,
beside the main file (`blobs.db` -> `blobs.tutorial_blobs.db`), so `schema.table` names work on both.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from blobflow.errors import ConnectionFailed, DataError
from blobflow.rows import PreparedRows

SQLITE_BUSY_TIMEOUT_MS = 60_000


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; bare `postgresql://` (and `postgres://`) mean psycopg 3."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sa.exc.ArgumentError:
        raise ConnectionFailed(
            "the database URL cannot be read; expected sqlite:///path/to/file.db or "
            "postgresql://user:password@host:5432/database"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConnectionFailed(f"unsupported database {parsed.drivername!r}; use sqlite:/// or postgresql://")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ConnectionFailed(
            f"PostgreSQL is used through psycopg 3; write postgresql+psycopg:// "
            f"instead of {parsed.drivername}://"
        )
    return parsed


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ***, for every message a user may see."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sa.exc.ArgumentError:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def create_engine(url: str | URL, schemas: Sequence[str]) -> Engine:
    """An engine on which `schema.table` names work for every schema of the pipeline."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, tuple(schemas))
    # READ COMMITTED whatever the server's or role's default: claims rely on seeing other processes'
    # commits statement by statement, and the part triggers refuse master deletes under older
    # snapshots (part_integrity.py).
    engine = sa.create_engine(
        parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10}, isolation_level="READ COMMITTED"
    )
    sa.event.listen(engine, "before_cursor_execute", _binary_results)
    return engine


# Execution option: on PostgreSQL, the server sends the results in binary, so bytea comes as raw bytes
# instead of hex text twice its size (a 7 MB image is fetched in half the time). psycopg loads every
# type blobflow declares to the same Python values either way (float4 to the exact float32, which
# Float32 rounds to the shortest decimal as it does the text form).
BINARY_RESULTS = "blobflow_binary_results"


def _binary_results(_connection, cursor, _statement, _parameters, context, _executemany) -> None:
    if context is not None and context.execution_options.get(BINARY_RESULTS):
        from psycopg import pq

        cursor.format = pq.Format.BINARY


def schema_file(url: URL, schema: str) -> str:
    """Where a schema's tables live on SQLite; ':memory:' for in-memory databases."""
    database = url.database or ""
    if database in ("", ":memory:"):
        return ":memory:"
    main = Path(database)
    return str(main.with_name(f"{main.stem}.{schema}{main.suffix or '.db'}"))


def _sqlite_engine(url: URL, schemas: tuple[str, ...]) -> Engine:
    in_memory = schema_file(url, "x") == ":memory:"
    engine = sa.create_engine(
        url,
        poolclass=StaticPool if in_memory else None,
        connect_args={"check_same_thread": False} if in_memory else {},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin, so SAVEPOINT and DDL
        # transactions work (the recipe from SQLAlchemy's SQLite dialect documentation).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree so queries give the same rows.
        cursor.execute("PRAGMA case_sensitive_like = ON")
        dbapi_connection.create_function(CHECKED_INT64, 1, _checked_int64, deterministic=True)
        for schema in schemas:
            # Schema names are validated identifiers ([a-z][a-z0-9_]*); the file is a bound parameter.
            cursor.execute(f'ATTACH DATABASE ? AS "{schema}"', (schema_file(url, schema),))
            if not in_memory:
                cursor.execute(f'PRAGMA "{schema}".journal_mode = WAL')
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN")

    return engine


# SQLite computes integer arithmetic that overflows 64 bits in floating point, silently; PostgreSQL
# raises "bigint out of range". Queries wrap integer arithmetic in this function on SQLite
# (query/conditions.py), which refuses such a float. SQLite reports a failing function as
# "user-defined function raised exception", which `refused_values` turns into the same error as
# PostgreSQL's.
CHECKED_INT64 = "blobflow_int64"
INT64_OVERFLOW = "user-defined function raised exception"


def _checked_int64(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("integer out of range")  # (an OverflowError would read "string or blob too big")
    return value


def sqlite_file_missing(url: str | URL) -> str | None:
    """The main file of a SQLite URL when it does not exist yet (`init` creates it), else None."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite" or schema_file(parsed, "x") == ":memory:":
        return None
    return None if Path(parsed.database).exists() else parsed.database


def missing_schemas(engine: Engine, schemas: list[str]) -> list[str]:
    """Those of the schemas PostgreSQL does not have (`init` creates them); [] on SQLite, whose
    schemas are files that `sqlite_file_missing` and the first query find missing."""
    if not is_postgres(engine):
        return []
    select = sa.text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:schemas)")
    with engine.connect() as connection:
        present = set(connection.execute(select, {"schemas": list(schemas)}).scalars())
    return [schema for schema in schemas if schema not in present]


# What the database says when a table of the pipeline is not there: PostgreSQL's SQLSTATEs for an
# undefined table and schema, SQLite's message.
_UNDEFINED_TABLE_CODES = ("42P01", "3F000")


# blobflow's own temporary tables (delete.py): one of them missing is a bug, not a table to `init`.
TEMPORARY_TABLE_PREFIX = "blobflow_delete_"


def is_missing_table(exc: BaseException) -> bool:
    """Whether a database error says a table of the pipeline (or its schema) does not exist."""
    original = getattr(exc, "orig", None)
    if TEMPORARY_TABLE_PREFIX in str(original):
        return False
    if getattr(original, "sqlstate", None) in _UNDEFINED_TABLE_CODES:
        return True
    return isinstance(exc, sa.exc.OperationalError) and str(original).startswith("no such table")


def refused_value(exc: BaseException) -> DataError | None:
    """The user's error a database error stands for when the database refused a value a query
    computes (integer arithmetic beyond 64 bits); None when the error is anything else."""
    original = getattr(exc, "orig", None)
    if getattr(original, "sqlstate", None) == "22003":  # PostgreSQL: numeric value out of range
        reason = str(original).splitlines()[0]
    elif isinstance(exc, sa.exc.OperationalError) and str(original) in (INT64_OVERFLOW, "integer overflow"):
        reason = "integer out of range"  # SQLite: the check of integer arithmetic, or sum()
    else:
        return None
    return DataError(f"the database refused a value the query computes: {reason}")


def prepare_sqlite_directory(url: str | URL) -> None:
    missing = sqlite_file_missing(url)
    if missing:
        Path(missing).parent.mkdir(parents=True, exist_ok=True)


def single_connection(engine: Engine) -> bool:
    """Whether every use of the engine shares one connection (in-memory SQLite): not across threads."""
    return isinstance(engine.pool, StaticPool)


def check_connection(engine: Engine) -> None:
    """Connect once, turning failures into one readable line without the password."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        raise ConnectionFailed(f"cannot connect to {mask_url(engine.url)}: {_first_line(exc.orig)}") from None


def _first_line(error: BaseException | None) -> str:
    """psycopg's message without its "connection failed: connection to server at ... failed:" preamble."""
    text = " ".join(str(error or "unknown error").split())
    return text.rsplit(" failed: ", 1)[-1]


def is_postgres(engine: Engine | sa.Connection) -> bool:
    return engine.dialect.name == "postgresql"


def bulk_insert(
    connection: sa.Connection, table: sa.Table, prepared: PreparedRows, on_duplicate: str = "error"
) -> None:
    """Insert many rows in the current transaction, the fastest way each database offers.

    PostgreSQL: binary COPY for plain inserts (rows must hold database-ready values: blobs already
    encoded); INSERT ... ON CONFLICT for `skip` and `replace`. SQLite: executemany, with ON CONFLICT.
    """
    columns, rows = prepared.columns, prepared.values
    if not rows:
        return
    if on_duplicate == "error" and is_postgres(connection):
        copy_types = [_copy_type(table.c[name].type) for name in columns]
        _copy_rows(connection, table, columns, rows, copy_types)
        return
    if not is_postgres(connection):
        _execute_positional(connection, table, tuple(columns), rows, on_duplicate)
        return
    statement = _insert_statement(connection.dialect, table, on_duplicate, table.schema)
    connection.execute(statement, [dict(zip(columns, row)) for row in rows])


def _insert_statement(dialect: sa.Dialect, table: sa.Table, on_duplicate: str, schema: str | None):
    """INSERT into the raw table (in `schema`), with ON CONFLICT for `skip` and `replace`."""
    raw = _raw_table(table, schema)
    if on_duplicate == "error":
        return sa.insert(raw)
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(raw)
    key = [c.name for c in table.primary_key.columns]
    if on_duplicate == "skip":
        return statement.on_conflict_do_nothing(index_elements=key)
    others = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in key}
    if not others:
        return statement.on_conflict_do_nothing(index_elements=key)
    return statement.on_conflict_do_update(index_elements=key, set_=others)


# SQLAlchemy type -> the name psycopg sends it as in a binary COPY; the first match wins, so
# subclasses (SmallInteger is an Integer) come before their bases.
_COPY_TYPES: tuple[tuple[type, str], ...] = (
    (sa.SmallInteger, "int2"), (sa.BigInteger, "int8"), (sa.Integer, "int4"), (sa.REAL, "float4"),
    (sa.Double, "float8"), (sa.Numeric, "numeric"), (sa.Boolean, "bool"), (sa.Enum, "text"),
    (sa.String, "text"), (sa.DateTime, "timestamp"), (sa.Date, "date"), (sa.Uuid, "uuid"),
    (sa.JSON, "jsonb"), (sa.LargeBinary, "bytea"),
)  # fmt: skip


def _copy_type(column_type: sa.types.TypeEngine) -> str:
    if isinstance(column_type, sa.types.TypeDecorator):
        column_type = column_type.impl
    for kind, name in _COPY_TYPES:
        if isinstance(column_type, kind):
            return name
    raise TypeError(f"no COPY type for {column_type!r}")  # pragma: no cover - every attribute type is above


@functools.lru_cache(maxsize=256)
def _raw_table(table: sa.Table, schema: str | None) -> sa.Table:
    """The table (in `schema`) with plain column types: rows reaching bulk_insert are already
    database-ready, so type decorators (which encode blobs) must not run a second time."""
    raw = sa.Table(table.name, sa.MetaData(), schema=schema)
    for column in table.columns:
        column_type = column.type.impl if isinstance(column.type, sa.types.TypeDecorator) else column.type
        raw.append_column(sa.Column(column.name, column_type, primary_key=column.primary_key))
    return raw


def _execute_positional(
    connection: sa.Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple],
    on_duplicate: str,
) -> None:
    """executemany with the rows as they are (tuples), not one dict per row: the statement SQLAlchemy
    would send, at a fraction of its per-row cost. Types' bind processors (datetimes to text on
    SQLite, and so on) still run, a column at a time."""
    schema = _translated_schema(connection, table)
    sql, order, processors = _positional_insert(connection.dialect, table, schema, columns, on_duplicate)
    if order is not None or any(processors):
        parameters = []
        for position, process in zip(order or range(len(columns)), processors):
            column = map(operator.itemgetter(position), rows)
            parameters.append(column if process is None else map(process, column))
        rows = list(zip(*parameters))
    connection.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))


@functools.lru_cache(maxsize=256)
def _positional_insert(
    dialect: sa.Dialect, table: sa.Table, schema: str | None, columns: tuple[str, ...], on_duplicate: str
) -> tuple[str, tuple[int, ...] | None, tuple]:
    """The INSERT's SQL text with positional parameters; where each parameter is in `columns` (None
    when in the same order); and each parameter's bind processor (None: the value goes as it is)."""
    statement = _insert_statement(dialect, table, on_duplicate, schema)
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    names = tuple(compiled.positiontup or ())
    order = None if names == columns else tuple(columns.index(name) for name in names)
    raw = _raw_table(table, schema)
    processors = tuple(_bind_processor(raw.c[name].type, dialect) for name in names)
    return compiled.string, order, processors


def _bind_processor(column_type: sa.types.TypeEngine, dialect: sa.Dialect):
    if isinstance(column_type, sa.Float):
        return None  # float() of what is a Python float already (values._float makes every one)
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _translated_schema(connection: sa.Connection, table: sa.Table) -> str | None:
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    return translate.get(table.schema, table.schema)


def _copy_rows(
    connection: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple],
    copy_types: Sequence[str],
) -> None:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    schema = _translated_schema(connection, table)
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema), sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    json_positions = [i for i, name in enumerate(copy_types) if name == "jsonb"]
    driver_connection = connection.connection.driver_connection
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(list(copy_types))
            for row in rows:
                if json_positions:
                    row = list(row)
                    for i in json_positions:
                        row[i] = None if row[i] is None else Jsonb(row[i])
                copy.write_row(row)
    except psycopg.Error as exc:
        # Raised by the driver directly (COPY bypasses SQLAlchemy): give callers SQLAlchemy's kinds.
        raise sa.exc.DBAPIError.instance(str(statement), None, exc, psycopg.Error) from exc


def utc_now(connection: sa.Connection | Engine) -> sa.ColumnElement:
    """The current UTC time as an SQL expression. On PostgreSQL the server's clock, so leases agree
    across machines whatever their clocks and time zones; SQLite serves one machine, whose clock it is."""
    if is_postgres(connection):
        return sa.func.timezone("UTC", sa.func.now()).cast(sa.DateTime)
    return sa.literal(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), sa.DateTime)
