"""Rows as users and make functions give them -> checked tuples in column order, with numbered errors."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from blobflow import codec
from blobflow.errors import DataError
from blobflow.model import Attribute, Table
from blobflow.values import INTEGER_RANGES, InvalidValue, convert_value


class RowLabels(Sequence[str]):
    """Labels "Blob row 1", "Blob row 2", ... made when read: a make may return 100,000 rows, whose
    labels are needed only when something is wrong. More labels can be appended, as to a list."""

    def __init__(self, label: str, count: int):
        self._label, self._count = label, count
        self._more: list[str] = []

    def __len__(self) -> int:
        return self._count + len(self._more)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(index)
        return (
            f"{self._label} {position + 1}" if position < self._count else self._more[position - self._count]
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def extend(self, labels: Iterable[str]) -> None:
        self._more.extend(labels)


@dataclass(frozen=True)
class PreparedRows:
    """Rows of one table, converted and complete: one tuple per row, values in `columns` order,
    ready for the database (blobs encoded)."""

    table: Table
    columns: tuple[str, ...]
    values: list[tuple[Any, ...]]
    labels: list[str] | RowLabels  # how errors name each row: "row 3", "row 2, Blob row 7"

    def extend(self, other: PreparedRows) -> None:
        self.values.extend(other.values)
        self.labels.extend(other.labels)

    def keys(self) -> list[tuple[Any, ...]]:
        positions = [self.columns.index(name) for name in self.table.primary_key]
        return [tuple(row[i] for i in positions) for row in self.values]


def as_row_dicts(rows: Any) -> Iterable[Mapping[str, Any]]:
    """Accept a list of dicts, a dict of equal-length columns, or a numpy structured array."""
    if isinstance(rows, np.ndarray):
        if rows.dtype.names is None:
            raise DataError("rows given as a numpy array must be a structured array with named fields")
        names = rows.dtype.names
        return [{name: record[name] for name in names} for record in np.atleast_1d(rows)]
    if isinstance(rows, Mapping):
        lengths = {name: len(column) for name, column in rows.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{n}={length}" for n, length in lengths.items())
            raise DataError(f"columns have different lengths ({detail})")
        count = next(iter(lengths.values()), 0)
        return [{name: column[i] for name, column in rows.items()} for i in range(count)]
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise DataError(f"expected rows as a list of mappings, got {type(rows).__name__}")
    return rows


def prepare_rows(
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    ignore_extra_fields: bool = False,
    given: Mapping[str, Any] | None = None,
    label: str = "row",
) -> PreparedRows:
    """Check and convert rows for `table`.

    `given` holds attributes every row shares (a make's key, a master's key for its parts): rows may
    omit them, and must agree with them when they do not. Errors read "row 3: attribute 'x': ...".
    """
    columns = tuple(a.name for a in table.attributes)
    known = set(columns) | set(table_part_names(table))
    values: list[tuple[Any, ...]] = []
    labels: list[str] = []
    seen: dict[tuple[Any, ...], int] = {}
    key_positions = [columns.index(name) for name in table.primary_key]
    for number, row in enumerate(rows, start=1):
        where = f"{label} {number}"
        if not isinstance(row, Mapping):
            raise DataError(
                f"{where}: expected a mapping of attribute names to values, got {type(row).__name__}"
            )
        if not ignore_extra_fields:
            extra = [name for name in row if name not in known]
            if extra:
                parts = table_part_names(table)
                close = difflib.get_close_matches(str(extra[0]), sorted(known), n=1)
                raise DataError(
                    f"{where}: '{extra[0]}' is not an attribute of {table.name} "
                    f"(attributes: {', '.join(columns)}"
                    + (f"; parts: {', '.join(parts)}" if parts else "")
                    + ")"
                    + (f"; did you mean '{close[0]}'?" if close else "")
                    + ("; --ignore-extra-fields skips such fields" if label == "row" else "")
                )
        converted = tuple(_convert(table, row, name, given, where) for name in columns)
        key = tuple(converted[i] for i in key_positions)
        if key in seen:
            described = ", ".join(f"{n}={v!r}" for n, v in zip(table.primary_key, key))
            raise DataError(f"{where}: duplicate key ({described}), also in {label} {seen[key]}")
        seen[key] = number
        values.append(converted)
        labels.append(where)
    return PreparedRows(table, columns, values, labels)


def prepare_any(
    table: Table,
    rows: Any,
    *,
    ignore_extra_fields: bool = False,
    given: Mapping[str, Any] | None = None,
    label: str = "row",
) -> PreparedRows:
    """`prepare_rows` for rows in any form `as_row_dicts` accepts, with the same checks and results.

    Rows given as columns (a dict of numpy arrays, lists or tuples, or a structured array) are checked
    and converted a column at a time, numeric numpy columns with vectorised checks, without making a
    dict per row. When anything does not fit, the row-by-row path runs instead and says exactly where.
    """
    columns = _as_columns(rows)
    if columns is not None:
        try:
            return _prepare_columns(table, *columns, ignore_extra_fields, given, label)
        except Exception:
            pass  # the row-by-row path below raises the precise error
    return prepare_rows(
        table, as_row_dicts(rows), ignore_extra_fields=ignore_extra_fields, given=given, label=label
    )


class _Unfit(Exception):
    """Raised inside the column path when a value does not fit; the row path explains it."""


_COLUMN_TYPES = (list, tuple, np.ndarray)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_columns(rows: Any) -> tuple[dict[str, Any], int] | None:
    """Rows as (equal-length columns by name, row count), when given as columns; else None."""
    if isinstance(rows, np.ndarray):
        if rows.dtype.names is None:
            return None
        rows = np.atleast_1d(rows)
        if rows.ndim != 1:
            return None
        columns = {name: rows[name] for name in rows.dtype.names}
    elif isinstance(rows, Mapping):
        columns = dict(rows)
    else:
        return None
    for column in columns.values():
        if not isinstance(column, _COLUMN_TYPES) or (isinstance(column, np.ndarray) and column.ndim == 0):
            return None
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        return None  # no columns, no rows, or columns of different lengths: the row path handles those
    return columns, lengths.pop()


def _prepare_columns(
    table: Table,
    columns: dict[str, Any],
    count: int,
    ignore_extra_fields: bool,
    given: Mapping[str, Any] | None,
    label: str,
) -> PreparedRows:
    names = tuple(a.name for a in table.attributes)
    ignored = set(table_part_names(table))
    if any(name not in names and name not in ignored and not ignore_extra_fields for name in columns):
        raise _Unfit("an extra field")
    converted: dict[str, list[Any] | None] = {}  # None: the same value in every row (in `constant`)
    constant: dict[str, Any] = {}
    for attribute in table.attributes:
        name = attribute.name
        if given and name in given:
            if name in columns:
                _check_agrees(columns[name], given[name])
            converted[name], constant[name] = None, _convert_value(table, attribute, given[name], label)
        elif name in columns:
            converted[name] = _convert_column(table, attribute, columns[name], label)
        elif attribute.has_default:
            converted[name], constant[name] = None, attribute.default
        elif attribute.nullable:
            converted[name], constant[name] = None, None
        else:
            raise _Unfit("a missing attribute")
    varying_key = [converted[name] for name in table.primary_key if converted[name] is not None]
    if len(varying_key) == 1:
        distinct = len(set(varying_key[0]))
    else:
        distinct = len(set(zip(*varying_key))) if varying_key else 1
    if distinct != count:
        raise _Unfit("a duplicate key")
    values = list(
        zip(*[itertools.repeat(constant[n], count) if converted[n] is None else converted[n] for n in names])
    )
    return PreparedRows(table, names, values, RowLabels(label, count))


def _check_agrees(column: Any, value: Any) -> None:
    """Every value of the column is the key's value (as `_convert` checks row by row)."""
    if (
        isinstance(column, np.ndarray)
        and column.dtype.kind in "iuf"
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        agrees = bool(np.all(column == value))
    else:
        agrees = not any(_plain(v) != _plain(value) for v in column)
    if not agrees:
        raise _Unfit("a value differing from the key")


def _convert_column(table: Table, attribute: Attribute, column: Any, label: str) -> list[Any]:
    """One column's values, converted as `_convert_value` converts each."""
    if isinstance(column, np.ndarray) and column.ndim == 1:
        values = _convert_numeric_array(attribute, column)
        if values is not None:
            return values
    return [_convert_value(table, attribute, value, label) for value in column]


def _convert_numeric_array(attribute: Attribute, column: np.ndarray) -> list[Any] | None:
    """Vectorised `_convert_value` for integer, float and bool arrays; None for any other case."""
    kind, dtype_kind = attribute.type.kind, column.dtype.kind
    if kind in INTEGER_RANGES and dtype_kind in "iu":
        low, high = INTEGER_RANGES[kind]
        if int(column.min()) < low or int(column.max()) > high:
            raise _Unfit("an integer out of range")
        return column.tolist()
    if kind in ("float32", "float64") and dtype_kind in "iuf":
        numbers = column.astype(np.float64)  # what float() makes of each value
        nan = np.isnan(numbers)
        if kind == "float32":
            finite = numbers[np.isfinite(numbers)]
            if finite.size and float(np.abs(finite).max()) > _FLOAT32_MAX:
                raise _Unfit("a value out of range for float32")
            numbers = numbers.astype(np.float32).astype(np.float64)  # rounded as _float rounds
        values = numbers.tolist()
        if nan.any():
            if not attribute.nullable:
                raise _Unfit("NaN in a column that is not nullable")
            for index in np.flatnonzero(nan).tolist():
                values[index] = None  # NaN is stored as null
        return values
    if kind == "bool" and dtype_kind == "b":
        return column.tolist()
    return None


def table_part_names(table: Table) -> list[str]:
    """The short names under which a master's rows may carry their part rows ("Blob")."""
    return [qualified.rsplit(".", 1)[1] for qualified in table.parts]


def _convert(
    table: Table, row: Mapping[str, Any], name: str, given: Mapping[str, Any] | None, where: str
) -> Any:
    attribute = table.attribute(name)
    if given and name in given:
        value = given[name]
        if name in row and _plain(row[name]) != _plain(value):
            raise DataError(
                f"{where}: attribute '{name}' is {row[name]!r}, but the key being written has {value!r}"
            )
    elif name in row:
        value = row[name]
    elif attribute.has_default:
        return attribute.default
    elif attribute.nullable:
        return None
    else:
        raise DataError(f"{where}: missing attribute '{name}' ({attribute.type}) of {table.name}")
    return _convert_value(table, attribute, value, where)


def _convert_value(table: Table, attribute: Attribute, value: Any, where: str) -> Any:
    name = attribute.name
    if _is_nan(value) and attribute.type.kind in ("float32", "float64"):
        # SQLite turns NaN into NULL; storing NaN as null everywhere keeps both databases alike.
        if not attribute.nullable:
            raise DataError(
                f"{where}: attribute '{name}' is NaN, which is stored as null, but {table.name}."
                f"{name} is not nullable (declare it with default: null)"
            )
        return None
    if value is None:
        if not attribute.nullable:
            raise DataError(f"{where}: attribute '{name}' of {table.name} cannot be null")
        return None
    try:
        if attribute.type.kind == "blob":
            return codec.encode(value)  # rows leave here database-ready
        return convert_value(value, attribute.type)
    except (InvalidValue, DataError) as exc:
        raise DataError(f"{where}: attribute '{name}': {exc}") from None


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and value != value


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
