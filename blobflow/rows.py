"""Rows as users and make functions give them -> checked tuples in column order, with numbered errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from blobflow import codec
from blobflow.errors import DataError
from blobflow.model import Table
from blobflow.values import InvalidValue, convert_value


@dataclass(frozen=True)
class PreparedRows:
    """Rows of one table, converted and complete: one tuple per row, values in `columns` order,
    ready for the database (blobs encoded)."""

    table: Table
    columns: tuple[str, ...]
    values: list[tuple[Any, ...]]
    labels: list[str]  # how errors name each row: "row 3", "row 2, Blob row 7"

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
                raise DataError(
                    f"{where}: '{extra[0]}' is not an attribute of {table.name} "
                    f"(attributes: {', '.join(columns)}); --ignore-extra-fields skips such fields"
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
