"""Attribute types -> SQLAlchemy column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from blobflow import codec
from blobflow.model import AttributeType


class Float32(sa.types.TypeDecorator):
    """REAL on both databases; values are rounded to float32 on the way in so SQLite (which keeps
    doubles) returns what PostgreSQL's float4 returns."""

    impl = sa.REAL
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else float(np.float32(value))

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        # The shortest decimal that is the same float32: 0.001, not 0.0010000000474974513.
        return None if value is None else float(str(np.float32(value)))


class FixedChar(sa.types.TypeDecorator):
    """CHAR(n): PostgreSQL pads with spaces and SQLite does not; both return the value unpadded."""

    impl = sa.CHAR
    cache_ok = True

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else value.rstrip(" ")


class Blob(sa.types.TypeDecorator):
    """numpy arrays and nested containers, stored with blobflow's codec (never pickle)."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else codec.encode(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else codec.decode(value)


_INTEGERS: dict[str, type[sa.types.TypeEngine]] = {
    "int8": sa.SmallInteger,
    "uint8": sa.SmallInteger,
    "int16": sa.SmallInteger,
    "uint16": sa.Integer,
    "int32": sa.Integer,
    "uint32": sa.BigInteger,
    "int64": sa.BigInteger,
}


# Strings compare and sort by code point on PostgreSQL, whatever the database's locale, as they do on
# SQLite: `name < "b"`, `order_by="name"` and `top` give the same rows on both. (A database created
# with en_US.UTF-8, the common default, would otherwise sort "a" before "B" and ignore "_".)
BYTEWISE = "C"


def column_type(attribute_type: AttributeType, *, constraint_name: str | None = None) -> sa.types.TypeEngine:
    """The SQLAlchemy type for an attribute type; enum values are checked by a CHECK constraint."""
    kind = attribute_type.kind
    if kind in _INTEGERS:
        return _INTEGERS[kind]()
    simple: dict[str, sa.types.TypeEngine] = {
        "float32": Float32(),
        "float64": sa.Double(),
        "bool": sa.Boolean(create_constraint=False),
        "text": sa.Text().with_variant(sa.Text(collation=BYTEWISE), "postgresql"),
        "date": sa.Date(),
        "datetime": sa.DateTime(),
        "uuid": sa.Uuid(as_uuid=True),
        "json": sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql"),
        "blob": Blob(),
    }
    if kind in simple:
        return simple[kind]
    if kind == "varchar":
        length = attribute_type.length
        return sa.String(length).with_variant(sa.String(length, collation=BYTEWISE), "postgresql")
    if kind == "char":
        length = attribute_type.length
        return FixedChar(length).with_variant(FixedChar(length, collation=BYTEWISE), "postgresql")
    if kind == "decimal":
        return sa.Numeric(attribute_type.precision, attribute_type.scale, asdecimal=True)
    if kind == "enum":
        # Not a native PostgreSQL enum: a VARCHAR with a CHECK behaves identically on both databases
        # and needs no separate type to create, alter or drop.
        return sa.Enum(
            *attribute_type.values,
            native_enum=False,
            create_constraint=True,
            length=max(len(v) for v in attribute_type.values),
            name=constraint_name,
        )
    raise ValueError(f"unknown attribute type {attribute_type}")  # the manifest never lets one through


_NUMPY_DTYPES = {
    "int8": "int8", "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
    "uint32": "uint32", "int64": "int64", "float32": "float32", "float64": "float64", "bool": "bool",
    "date": "datetime64[D]", "datetime": "datetime64[us]",
}  # fmt: skip


def numpy_dtype(attribute_type: AttributeType) -> np.dtype | None:
    """The numpy dtype for a column of this type fetched as an array; None means an object array."""
    name = _NUMPY_DTYPES.get(attribute_type.kind)
    return np.dtype(name) if name else None
