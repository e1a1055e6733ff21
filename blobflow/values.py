"""Check and convert one Python value to what an attribute type stores.

Used for manifest defaults and lookup contents, for inserted rows and for rows returned by make
functions, so every entry point enforces the same rules on both databases (SQLite enforces almost
none itself: lengths, integer ranges and enum members are checked here).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from blobflow.model import AttributeType

INTEGER_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}
SCALAR_KINDS = (
    *INTEGER_RANGES,
    "float32",
    "float64",
    "bool",
    "text",
    "date",
    "datetime",
    "uuid",
    "json",
    "blob",
)
PARAMETRIC_KINDS = ("varchar", "char", "decimal", "enum")


class InvalidValue(ValueError):
    """Raised with a message that completes 'attribute x: ...'."""


def _integer(value: Any, kind: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise InvalidValue(f"expected {kind}, got a boolean")
    if isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    ):
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,30}", value.strip()):
        number = int(value.strip())
    else:
        raise InvalidValue(f"expected {kind}, got {value!r}")
    low, high = INTEGER_RANGES[kind]
    if not low <= number <= high:
        raise InvalidValue(f"{number} is out of range for {kind} ({low}..{high})")
    return number


def _float(value: Any, kind: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise InvalidValue(f"expected {kind}, got a boolean")
    if isinstance(value, (int, float, np.integer, np.floating, decimal.Decimal)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            raise InvalidValue(f"integer too large for {kind}") from None
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InvalidValue(f"expected {kind}, got {value!r}") from None
    else:
        raise InvalidValue(f"expected {kind}, got {value!r}")
    if kind == "float32":
        if math.isfinite(number) and abs(number) > float(np.finfo(np.float32).max):
            raise InvalidValue(f"{number} is out of range for float32")
        # Round to float32 here so both databases store (and return) the same value.
        number = float(np.float32(number))
    return number


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def _bool(value: Any, kind: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidValue(f"expected bool, got {value!r}")


def _date(value: Any, kind: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise InvalidValue(f"expected a date, got a datetime {value.isoformat()}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return _date(value.astype("datetime64[D]").item(), kind)
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidValue(f"expected a date (YYYY-MM-DD), got {value!r}")


def _datetime(value: Any, kind: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        # Stored without a time zone: an aware time is converted to UTC first, the same on both databases.
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, np.datetime64):
        return _datetime(value.astype("datetime64[us]").item(), kind)
    if isinstance(value, str):
        try:
            return _datetime(dt.datetime.fromisoformat(value.strip()), kind)
        except ValueError:
            pass
    raise InvalidValue(f"expected a datetime (YYYY-MM-DD HH:MM:SS), got {value!r}")


def _uuid(value: Any, kind: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise InvalidValue(f"expected a uuid, got {value!r}")


def _json(value: Any, kind: str) -> Any:
    try:
        # Round-trip through text so what is stored is exactly what will be read back.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidValue(f"expected a JSON value: {exc}") from None


def _text(value: Any, kind: str) -> str:
    if isinstance(value, (str, np.str_)):
        return str(value)
    raise InvalidValue(f"expected a string, got {value!r}")


def _blob(value: Any, kind: str) -> Any:
    return value  # the codec checks what it can store when the row is written


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    **dict.fromkeys(INTEGER_RANGES, _integer),
    "float32": _float,
    "float64": _float,
    "bool": _bool,
    "text": _text,
    "date": _date,
    "datetime": _datetime,
    "uuid": _uuid,
    "json": _json,
    "blob": _blob,
}


def convert_value(value: Any, attribute_type: AttributeType) -> Any:
    """Return `value` as stored for `attribute_type`, or raise InvalidValue saying why it does not fit.

    >>> convert_value("12", AttributeType("int16"))
    12
    """
    kind = attribute_type.kind
    if kind in _CONVERTERS:
        return _CONVERTERS[kind](value, kind)
    if kind in ("varchar", "char"):
        text = _text(value, kind)
        if kind == "char":
            text = text.rstrip(" ")  # CHAR pads with spaces: trailing ones are not part of the value
        if len(text) > (attribute_type.length or 0):
            raise InvalidValue(f"string of length {len(text)} is longer than {attribute_type}")
        return text
    if kind == "enum":
        text = _text(value, kind)
        if text not in attribute_type.values:
            raise InvalidValue(f"{text!r} is not one of {', '.join(attribute_type.values)}")
        return text
    if kind == "decimal":
        return _decimal(value, attribute_type)
    raise InvalidValue(f"unknown type {attribute_type}")  # pragma: no cover - the manifest rejects these


def _decimal(value: Any, attribute_type: AttributeType) -> decimal.Decimal:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, str, decimal.Decimal, np.number)
    ):
        raise InvalidValue(f"expected {attribute_type}, got {value!r}")
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise InvalidValue(f"expected {attribute_type}, got {value!r}") from None
    if not number.is_finite():
        raise InvalidValue(f"expected a finite {attribute_type}, got {value!r}")
    quantum = decimal.Decimal(1).scaleb(-(attribute_type.scale or 0))
    try:
        rounded = number.quantize(quantum, rounding=decimal.ROUND_HALF_EVEN)
    except decimal.InvalidOperation:  # more digits than the context holds: far too large anyway
        raise InvalidValue(f"{value} does not fit {attribute_type}") from None
    if len(rounded.as_tuple().digits) > (attribute_type.precision or 0) and rounded != 0:
        raise InvalidValue(f"{value} does not fit {attribute_type}")
    return rounded
