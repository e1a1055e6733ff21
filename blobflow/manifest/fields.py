"""Small checks over `Located` YAML values: expected shapes, names and types, each failing with a position."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as POSTGRES_RESERVED
from sqlalchemy.sql.compiler import RESERVED_WORDS as ANSI_RESERVED

from blobflow.errors import ManifestError
from blobflow.manifest.yamlnodes import Located
from blobflow.model import AttributeType
from blobflow.values import PARAMETRIC_KINDS, SCALAR_KINDS

ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
TABLE_NAME = re.compile(r"[A-Z][A-Za-z0-9]*\Z")
SCHEMA_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
# PostgreSQL truncates identifiers beyond 63 bytes; refuse rather than collide.
MAX_NAME_LENGTH = 63
SQL_KEYWORDS = frozenset(w.lower() for w in POSTGRES_RESERVED | ANSI_RESERVED) | {
    "abort", "analyze", "attach", "detach", "explain", "glob", "index", "key", "pragma", "regexp",
    "reindex", "replace", "rowid", "vacuum", "values", "view", "without",
}  # fmt: skip


def fail(message: str, node: Located) -> ManifestError:
    return ManifestError(message, node.location)


def expect_mapping(node: Located, what: str) -> dict[str, Located]:
    if not isinstance(node.value, dict):
        raise fail(f"{what} must be a mapping, got {kind_of(node)}", node)
    return node.value


def expect_list(node: Located, what: str) -> list[Located]:
    if not isinstance(node.value, list):
        raise fail(f"{what} must be a list, got {kind_of(node)}", node)
    return node.value


def expect_string(node: Located, what: str) -> str:
    if not isinstance(node.value, str) or not node.value.strip():
        raise fail(f"{what} must be a non-empty string, got {kind_of(node)}", node)
    return node.value.strip()


def expect_bool(node: Located, what: str) -> bool:
    if not isinstance(node.value, bool):
        raise fail(f"{what} must be true or false, got {kind_of(node)}", node)
    return node.value


def as_list(node: Located, what: str) -> list[Located]:
    """A list, or a single item standing for a one-item list (`depends: Image`)."""
    return node.value if isinstance(node.value, list) else [node]


def check_keys(node: Located, allowed: Iterable[str], what: str) -> None:
    allowed = list(allowed)
    for key, location in node.key_locations.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "expected one of: " + ", ".join(allowed)
            raise ManifestError(f"unknown field '{key}' in {what}; {hint}", location)


def require(mapping: dict[str, Located], key: str, node: Located, what: str) -> Located:
    if key not in mapping:
        raise fail(f"{what} needs '{key}'", node)
    return mapping[key]


def kind_of(node: Located) -> str:
    value = node.value
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def check_name(name: object, node: Located, what: str, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise fail(f"invalid {what} name {name!r}; expected a name like '{example}'", node)
    if len(name) > MAX_NAME_LENGTH:
        raise fail(f"{what} name '{name}' is longer than {MAX_NAME_LENGTH} characters", node)
    return name


def check_attribute_name(name: object, node: Located) -> str:
    check_name(name, node, "attribute", ATTRIBUTE_NAME, "image_id")
    if name in SQL_KEYWORDS:
        raise fail(f"attribute name '{name}' is an SQL keyword; choose another name", node)
    return str(name)


_TYPE = re.compile(r"\s*([a-z0-9_]+)\s*(?:\((.*)\))?\s*\Z", re.DOTALL)
# ASCII only: str.isdigit() also accepts '²', which int() then refuses.
_DIGITS = re.compile(r"[0-9]+\Z")


def parse_type(text: object, node: Located) -> AttributeType:
    """Parse 'int16', 'varchar(100)', 'decimal(8,3)', 'enum(a, b)' into an AttributeType."""
    known = ", ".join((*SCALAR_KINDS, "varchar(n)", "char(n)", "decimal(p,s)", "enum(a,b,...)"))
    if text is None:
        raise fail(f"missing attribute type; expected one of {known}", node)
    if isinstance(text, str) and "(" in text and ")" not in text:
        # `{type: decimal(8,3)}`: in a flow mapping the comma ends the value, leaving 'decimal(8'.
        raise fail(
            f"type {text!r} lacks its closing ')'; inside {{...}} quote a type that has a comma, "
            f"e.g. {{type: '{_EXAMPLES.get(text.partition('(')[0].strip().lower(), 'decimal(8,3)')}'}}",
            node,
        )
    match = _TYPE.match(text) if isinstance(text, str) else None
    if not match:
        raise fail(f"invalid attribute type {text!r}; expected one of {known}", node)
    kind, argument = match.group(1).lower(), match.group(2)
    if kind in SCALAR_KINDS:
        if argument is not None:
            raise fail(f"type {kind} takes no parameters", node)
        return AttributeType(kind)
    if kind not in PARAMETRIC_KINDS:
        close = difflib.get_close_matches(kind, [*SCALAR_KINDS, *PARAMETRIC_KINDS], n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of {known}"
        raise fail(f"unknown attribute type '{kind}'; {hint}", node)
    if argument is None or not argument.strip():
        raise fail(f"type {kind} needs parameters, e.g. {_EXAMPLES[kind]}", node)
    parts = [p.strip() for p in argument.split(",")]
    if kind in ("varchar", "char"):
        if len(parts) != 1 or not _DIGITS.match(parts[0]) or not 0 < int(parts[0]) <= 65535:
            raise fail(f"{kind} needs one length between 1 and 65535, e.g. {_EXAMPLES[kind]}", node)
        return AttributeType(kind, length=int(parts[0]))
    if kind == "decimal":
        if len(parts) != 2 or not all(_DIGITS.match(p) for p in parts):
            raise fail("decimal needs precision and scale, e.g. decimal(8,3)", node)
        precision, scale = int(parts[0]), int(parts[1])
        if not 0 < precision <= 38 or scale > precision:
            raise fail(
                f"decimal({precision},{scale}): need 1 <= precision <= 38 and scale <= precision", node
            )
        return AttributeType(kind, precision=precision, scale=scale)
    values = tuple(p.strip("'\"") for p in parts)
    if any(not v for v in values):
        raise fail("enum values must be non-empty, e.g. enum(left, right)", node)
    repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if repeated is not None:
        raise fail(f"enum value '{repeated}' is repeated in {text.strip()}", node)
    return AttributeType(kind, values=values)


_EXAMPLES = {"varchar": "varchar(100)", "char": "char(8)", "decimal": "decimal(8,3)", "enum": "enum(a, b)"}
