"""YAML -> plain values that remember where they came from.

PyYAML's safe loader forgets positions and silently keeps the last of two equal keys; the manifest
checks need both, so we compose the node graph ourselves and convert it into `Located` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from blobflow.errors import ManifestError, SourceLocation


@dataclass
class Located:
    """A YAML value and where it starts. Mappings hold `dict[str, Located]` plus each key's position;
    sequences hold `list[Located]`; scalars hold the plain value."""

    value: Any
    location: SourceLocation
    key_locations: dict[Any, SourceLocation] = field(default_factory=dict)

    def plain(self) -> Any:
        """The value with every position stripped, as `yaml.safe_load` would give it."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def _location(path: str, mark: yaml.Mark | None) -> SourceLocation:
    if mark is None:
        return SourceLocation(path, 1, 1)
    return SourceLocation(path, mark.line + 1, mark.column + 1)


def load_yaml(text: str, path: str) -> Located:
    """Parse one YAML document into `Located` values; YAML errors become ManifestErrors with a position."""
    if "\t" in text:
        # YAML forbids tabs for indentation, and PyYAML's message for it is cryptic; say it plainly.
        for number, line in enumerate(text.splitlines(), start=1):
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            if "\t" in indent:
                raise ManifestError(
                    "tab character used for indentation; YAML needs spaces",
                    SourceLocation(path, number, indent.index("\t") + 1),
                )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(f"invalid YAML: {problem}", _location(path, exc.problem_mark)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors for syntax
        raise ManifestError(f"invalid YAML: {exc}", SourceLocation(path, 1, 1)) from None
    if node is None:
        raise ManifestError(
            "the manifest is empty; expected a mapping with 'schema' and 'tables'", SourceLocation(path, 1, 1)
        )
    return _convert(node, path)


_scalars = yaml.SafeLoader("")


def _convert(node: yaml.Node, path: str) -> Located:
    location = _location(path, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        values: dict[Any, Located] = {}
        key_locations: dict[Any, SourceLocation] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ManifestError(
                    "YAML merge keys (<<) are not supported in manifests",
                    _location(path, key_node.start_mark),
                )
            key = _convert(key_node, path)
            if isinstance(key.value, (dict, list)):
                raise ManifestError("a mapping key must be a plain name", key.location)
            if key.value in values:
                first = key_locations[key.value]
                raise ManifestError(f"duplicate key '{key.value}' (first at line {first.line})", key.location)
            values[key.value] = _convert(value_node, path)
            key_locations[key.value] = key.location
        return Located(values, location, key_locations)
    if isinstance(node, yaml.SequenceNode):
        return Located([_convert(item, path) for item in node.value], location)
    try:
        return Located(_scalars.construct_object(node, deep=True), location)
    except yaml.constructor.ConstructorError as exc:
        raise ManifestError(f"invalid YAML value: {exc.problem}", location) from None
