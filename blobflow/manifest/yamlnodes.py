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
        raise ManifestError(
            _yaml_problem(exc), _location(path, exc.problem_mark or exc.context_mark)
        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises marked errors for syntax
        raise ManifestError(f"invalid YAML: {exc}", SourceLocation(path, 1, 1)) from None
    if node is None:
        raise ManifestError(
            "the manifest is empty; expected a mapping with 'schema' and 'tables'", SourceLocation(path, 1, 1)
        )
    return _convert(node, path, set())


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, plus where the construct it was reading began when that is elsewhere
    (an unclosed `{` is only noticed lines later)."""
    problem = exc.problem or exc.context or "invalid YAML"
    # These come from a line indented differently from its neighbours (or a missing space after a
    # colon); PyYAML notices on the line after the slip.
    hint = "; check the indentation here and on the line before" if problem in _INDENTATION_PROBLEMS else ""
    if exc.problem and exc.context and exc.context_mark is not None:
        where = f"line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        return f"invalid YAML: {problem} ({exc.context} started at {where}){hint}"
    return f"invalid YAML: {problem}{hint}"


_INDENTATION_PROBLEMS = (
    "mapping values are not allowed here",
    "expected <block end>, but found '<block mapping start>'",
    "expected <block end>, but found '<block sequence start>'",
    "expected <block end>, but found '-'",
    "expected <block end>, but found '?'",
)


_scalars = yaml.SafeLoader("")


def _convert(node: yaml.Node, path: str, active: set[int]) -> Located:
    location = _location(path, node.start_mark)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        # An alias may point at a collection that contains it (`a: &x [*x]`); that has no plain value.
        if id(node) in active:
            raise ManifestError("recursive YAML alias: a value that contains itself", location)
        active.add(id(node))
        try:
            return _convert_collection(node, path, active, location)
        finally:
            active.discard(id(node))
    try:
        return Located(_scalars.construct_object(node, deep=True), location)
    except yaml.constructor.ConstructorError as exc:
        raise ManifestError(f"invalid YAML value: {exc.problem}", location) from None
    except Exception:  # PyYAML's constructors trust their regexes: 2024-02-30, `!!bool maybe`, ...
        kind = node.tag.rpartition(":")[2]
        what = "date or timestamp" if kind == "timestamp" else kind
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        raise ManifestError(f"invalid YAML value {text!r}: not a valid {what}", location) from None


def _convert_collection(node: yaml.Node, path: str, active: set[int], location: SourceLocation) -> Located:
    if isinstance(node, yaml.MappingNode):
        values: dict[Any, Located] = {}
        key_locations: dict[Any, SourceLocation] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ManifestError(
                    "YAML merge keys (<<) are not supported in manifests",
                    _location(path, key_node.start_mark),
                )
            key = _convert(key_node, path, active)
            if isinstance(key.value, (dict, list)):
                raise ManifestError("a mapping key must be a plain name", key.location)
            if key.value in values:
                first = key_locations[key.value]
                raise ManifestError(f"duplicate key '{key.value}' (first at line {first.line})", key.location)
            values[key.value] = _convert(value_node, path, active)
            key_locations[key.value] = key.location
        return Located(values, location, key_locations)
    return Located([_convert(item, path, active) for item in node.value], location)
