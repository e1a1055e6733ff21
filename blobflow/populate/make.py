"""Calling a table's make function: inputs fetched for many keys at once, results checked into rows.

Inputs are read in a short transaction before the computations and rows are written after them, so
no transaction is open while user code runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import sys
import time
import traceback
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from blobflow import db
from blobflow.callables import import_callable
from blobflow.database import Database
from blobflow.errors import DataError
from blobflow.model import Table
from blobflow.populate.reservations import KeyFailure, WorkerId
from blobflow.rows import PreparedRows, prepare_any, prepare_rows, table_part_names
from blobflow.tables import PROVENANCE
from blobflow.types import Blob

Key = tuple


@dataclass
class Computed:
    """One key's result, ready to write: the master row and its part rows."""

    key: Key
    batches: list[PreparedRows]  # master first, then each part


class MakeContext:
    """The `ctx` argument: read-only queries restricted by the key being computed.

    >>> ctx.fetch("Detection.Blob", "x", "y")  # doctest: +SKIP  (rows of this key's blobs)
    """

    def __init__(self, database: Database, key: Mapping[str, Any]):
        self._database = database
        self.key = dict(key)

    def _select(self, expression: str, attributes: tuple[str, ...]):
        from blobflow.query import compile_query, final_select, restrict_by_key

        relation = restrict_by_key(compile_query(self._database, expression), self.key)
        return relation, final_select(relation, attributes=attributes or None)

    def fetch(self, expression: str, *attributes: str) -> list[dict[str, Any]]:
        """Rows of a query expression (a table name, or e.g. "Image * Detection") that match the key."""
        from blobflow.query import iter_rows

        return list(iter_rows(self._database, self._select(expression, attributes)[1]))

    def fetch1(self, expression: str, *attributes: str) -> dict[str, Any]:
        rows = self.fetch(expression, *attributes)
        if len(rows) != 1:
            raise DataError(f"ctx.fetch1({expression!r}) for {self.key}: expected one row, found {len(rows)}")
        return rows[0]

    def to_arrays(self, expression: str, *attributes: str):
        from blobflow.query import to_arrays

        relation, select = self._select(expression, attributes)
        return to_arrays(self._database, relation, select)


class MakeCaller:
    """Everything needed to compute keys of one table in this process."""

    def __init__(self, database: Database, table: Table, worker: WorkerId):
        assert table.make is not None
        self.database = database
        self.table = table
        self.worker = worker
        self.function = import_callable(table.make.reference, database.pipeline.root, table.make.location)
        self.code_version = _code_version(self.function)
        parameters = _parameters(self.function)
        self.pass_key = "key" in parameters or "**" in parameters
        self.pass_ctx = "ctx" in parameters
        self.parts = {
            name: database.pipeline.table(f"{table.qualified_name}.{name}")
            for name in table_part_names(table)
        }

    def fetch_inputs(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """Every declared input for every key: one query per input table, not one per key."""
        assert self.table.make is not None
        names = self.table.primary_key
        inputs: dict[Key, dict[str, Any]] = {key: {} for key in keys}
        if not self.table.make.inputs:
            return inputs
        with self.database.engine.connect() as connection:
            for make_input in self.table.make.inputs:
                parent = self.database.pipeline.table(make_input.table)
                positions = [names.index(k) for k in parent.primary_key]
                wanted = sorted({tuple(key[i] for i in positions) for key in keys}, key=repr)
                rows = _rows_by_key(connection, self.database, parent, wanted, make_input.attribute)
                for key in keys:
                    found = rows.get(tuple(key[i] for i in positions))
                    if found is not None:
                        inputs[key][make_input.name] = found
        return inputs

    def compute_each(
        self,
        keys: Sequence[Key],
        inputs: Mapping[Key, dict[str, Any]],
        results: list[Computed],
        errors: list[KeyFailure],
        tally: MutableSequence[int] | None = None,
    ) -> None:
        """Compute keys in order, appending each outcome as it comes: what finished before an
        interrupt (Ctrl-C) is in the lists, to be written. `tally`, if given, counts the keys
        whose make calls began and ended: a worker shares it with its parent, which tells from it
        whose make was running when the worker died."""
        for key in keys:
            if tally is not None:
                tally[0] += 1
            outcome = self.compute(key, inputs[key])
            if tally is not None:
                tally[1] += 1
            (results if isinstance(outcome, Computed) else errors).append(outcome)

    def compute(self, key: Key, inputs: dict[str, Any]) -> Computed | KeyFailure:
        """Run make for one key and check its result; any failure comes back as a KeyFailure."""
        assert self.table.make is not None
        key_dict = dict(zip(self.table.primary_key, key))
        missing = [i.name for i in self.table.make.inputs if i.name not in inputs]
        if missing:
            return KeyFailure(
                key, "MissingInput", f"no {missing[0]} row for {key_dict} (deleted meanwhile?)", ""
            )
        arguments = dict(inputs)
        if self.pass_key:
            arguments["key"] = key_dict
        if self.pass_ctx:
            arguments["ctx"] = MakeContext(self.database, key_dict)
        started = time.perf_counter()
        try:
            result = self.function(**arguments)
            seconds = time.perf_counter() - started
            return Computed(key, self._rows(key_dict, result, seconds))
        except Exception as exc:  # the user's code failed, or returned rows that do not fit
            text = "".join(traceback.format_exception(exc))
            return KeyFailure(key, type(exc).__name__, f"{self.table.make.reference}: {exc}", text)

    def _rows(self, key: dict[str, Any], result: Any, seconds: float) -> list[PreparedRows]:
        if result is None:
            required = [a.name for a in self.table.attributes if a.required and not a.in_key]
            if required:  # a bare `return`, or a forgotten one
                raise DataError(
                    f"make returned None; expected a dict with {', '.join(map(repr, required))}"
                    + (f" (and part rows under {', '.join(map(repr, self.parts))})" if self.parts else "")
                )
            result = {}
        if not isinstance(result, Mapping):
            raise DataError(f"make returned {type(result).__name__}; expected a dict of attributes and parts")
        master_row = {k: v for k, v in result.items() if k not in self.parts}
        master = prepare_rows(self.table, [master_row], given=key, label="returned row")
        provenance = (
            dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            f"{self.worker.host}:{self.worker.pid}",
            seconds,
            self.code_version,
        )
        batches = [
            PreparedRows(
                self.table, master.columns + PROVENANCE, [master.values[0] + provenance], master.labels
            )
        ]
        for name, part in self.parts.items():
            if name in result and result[name] is not None:
                batches.append(prepare_any(part, result[name], given=key, label=f"{name} row"))
        return batches


def _rows_by_key(
    connection: sa.Connection, database: Database, parent: Table, keys: list[Key], attribute: str | None
) -> dict[Key, Any]:
    sql_table = database.sql[parent.qualified_name]
    key_columns = [sql_table.c[k] for k in parent.primary_key]
    value_columns = (
        [sql_table.c[attribute]] if attribute else [sql_table.c[a.name] for a in parent.attributes]
    )
    found: dict[Key, Any] = {}
    if any(isinstance(c.type, Blob) for c in value_columns):
        # Blobs as raw bytes; SQLAlchemy sets the option on this connection, which only fetches inputs.
        connection = connection.execution_options(**{db.BINARY_RESULTS: True})
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        select = sa.select(*key_columns, *value_columns).where(sa.tuple_(*key_columns).in_(chunk))
        for row in connection.execute(select):
            key, values = tuple(row[: len(key_columns)]), row[len(key_columns) :]
            found[key] = values[0] if attribute else dict(zip((c.name for c in value_columns), values))
    return found


def _parameters(function: Any) -> set[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {"**"}
    return {"**" if p.kind is p.VAR_KEYWORD else p.name for p in parameters}


def _code_version(function: Any) -> str:
    """A hash of the source of the module defining the make function: which code made a row."""
    module = sys.modules.get(getattr(function, "__module__", ""), None)
    try:
        source = inspect.getsource(module) if module else repr(function)
    except (OSError, TypeError):
        source = repr(function)
    return hashlib.sha256(source.encode()).hexdigest()[:16]
