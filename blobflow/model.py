"""The typed, immutable description of a pipeline: the only thing the rest of blobflow sees of a manifest.

Built by `blobflow.manifest.load_pipeline`; turned into SQL tables by `blobflow.tables`.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from blobflow.errors import SourceLocation

TIERS = ("manual", "lookup", "imported", "computed")
PART_TIER = "part"
DERIVED_TIERS = ("imported", "computed")


def snake_case(name: str) -> str:
    """DetectionParams -> detection_params; HTTPLog -> http_log."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def sql_table_name(name: str) -> str:
    """A table's name in SQL: snake_case, a part joined to its master by `__` (detection__blob)."""
    return "__".join(snake_case(part) for part in name.split("."))


@dataclass(frozen=True)
class AttributeType:
    """An attribute type as declared: `kind` plus its parameters, e.g. varchar(100) or enum(a,b)."""

    kind: str
    length: int | None = None  # varchar(n), char(n)
    precision: int | None = None  # decimal(p,s)
    scale: int | None = None
    values: tuple[str, ...] = ()  # enum(...)

    def __str__(self) -> str:
        if self.kind in ("varchar", "char"):
            return f"{self.kind}({self.length})"
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "enum":
            return "enum(" + ",".join(self.values) + ")"
        return self.kind


@dataclass(frozen=True)
class Attribute:
    name: str
    type: AttributeType
    in_key: bool
    nullable: bool = False
    default: Any = None
    has_default: bool = False
    comment: str = ""
    # The foreign key that brought this attribute in, as the parent's qualified name; None when own.
    inherited_from: str | None = None
    location: SourceLocation | None = field(default=None, compare=False)

    @property
    def required(self) -> bool:
        """A row must give it: it has no default and may not be null."""
        return not self.has_default and not self.nullable


@dataclass(frozen=True)
class ForeignKey:
    """A dependency on a parent table: every parent primary-key attribute maps onto one of ours."""

    parent: str  # qualified name, e.g. "tutorial_blobs.Image"
    columns: tuple[tuple[str, str], ...]  # (parent attribute, our attribute), in the parent's key order
    in_key: bool  # `depends` (part of our primary key) or `references` (secondary)
    nullable: bool = False
    unique: bool = False
    location: SourceLocation | None = field(default=None, compare=False)

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(child for _, child in self.columns)


@dataclass(frozen=True)
class MakeInput:
    """One keyword argument of a make function: a whole parent row, or one attribute of it."""

    name: str
    table: str  # qualified name
    attribute: str | None = None


@dataclass(frozen=True)
class Make:
    module: str
    function: str
    inputs: tuple[MakeInput, ...] = ()
    location: SourceLocation | None = field(default=None, compare=False)

    @property
    def reference(self) -> str:
        return f"{self.module}:{self.function}"


@dataclass(frozen=True)
class Table:
    name: str  # as declared: "Image", or "Detection.Blob" for a part
    schema: str
    tier: str  # one of TIERS, or PART_TIER
    attributes: tuple[Attribute, ...]  # key attributes first, in declaration order
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    description: str = ""
    master: str | None = None  # qualified name of the master, for parts
    parts: tuple[str, ...] = ()  # qualified names of this table's parts
    make: Make | None = None
    key_source: str | None = None
    contents: tuple[Mapping[str, Any], ...] = ()
    location: SourceLocation | None = field(default=None, compare=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        """The table's name in SQL: snake_case, parts joined to their master by `__` (detection__blob)."""
        return sql_table_name(self.name)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes if a.in_key)

    @property
    def secondary(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if not a.in_key)

    @property
    def is_part(self) -> bool:
        return self.tier == PART_TIER

    @property
    def master_reference(self) -> ForeignKey | None:
        """A part's foreign key to its master (None for tables that are not parts)."""
        if not self.is_part:
            return None
        return next(fk for fk in self.foreign_keys if fk.parent == self.master)

    @property
    def is_derived(self) -> bool:
        return self.tier in DERIVED_TIERS

    def attribute(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)


@dataclass(frozen=True)
class View:
    name: str
    module: str
    function: str
    description: str = ""
    location: SourceLocation | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Pipeline:
    """All tables of all manifest files, in dependency order (parents before children)."""

    tables: Mapping[str, Table]  # qualified name -> table, topologically sorted
    schemas: tuple[str, ...]
    sources: tuple[str, ...]  # the manifest files read
    root: str  # directory put on sys.path so `make` modules import
    database: str | None = None
    description: str = ""
    views: Mapping[str, View] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables.values())

    def table(self, qualified_name: str) -> Table:
        return self.tables[qualified_name]

    def display_name(self, table: Table) -> str:
        """The name shown for a table, and the key of per-table results (row counts, summaries): its
        own name, or `schema.Name` when a table of another schema has the same name."""
        return table.qualified_name if self._shared_names.get(table.name, 0) > 1 else table.name

    @functools.cached_property
    def _shared_names(self) -> dict[str, int]:
        return dict(collections.Counter(t.name for t in self))

    def children(self, qualified_name: str) -> tuple[Table, ...]:
        """Tables with a foreign key to this one (parts included)."""
        return tuple(t for t in self if any(fk.parent == qualified_name for fk in t.foreign_keys))
