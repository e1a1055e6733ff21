"""A pure-Python reference evaluator for the query language, over lists of dicts.

It walks the same lark parse trees as blobflow's compiler (`blobflow.query.parser.parse`), but
evaluates them row by row with DataJoint's semantics and SQL's three-valued logic, so that what the
databases answer can be checked against something written without SQL:

>>> tables = {"A": Table(("a_id", "n"), ("a_id",), [{"a_id": 1, "n": None}, {"a_id": 2, "n": 5}])}
>>> evaluate("A & n > 1", tables).rows
[{'a_id': 2, 'n': 5}]

Type checks are the compiler's business; this evaluator assumes a query that compiles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lark
import numpy as np

from blobflow.query.conditions import _unquote
from blobflow.query.parser import parse

Row = dict[str, Any]


@dataclass
class Table:
    """A relation: attribute names (primary key first), the primary key, and the rows as dicts.
    `float32` names the attributes whose literals are rounded to float32 in comparisons."""

    heading: tuple[str, ...]
    primary_key: tuple[str, ...]
    rows: list[Row]
    float32: frozenset[str] = field(default_factory=frozenset)

    def tuples(self) -> list[tuple]:
        return [tuple(row[name] for name in self.heading) for row in self.rows]


class Unsupported(Exception):
    """The query uses something this evaluator does not model (the compiler would reject it)."""


def evaluate(text: str, tables: Mapping[str, Table]) -> Table:
    """The rows of a query expression over `tables` (names matched case-insensitively)."""
    return _Evaluator(tables).relation(parse(text))


# --- three-valued logic: True, False and None (unknown) -------------------------------------------


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _not(a: bool | None) -> bool | None:
    return None if a is None else not a


def _like(value: str, pattern: str) -> bool:
    """SQL LIKE with backslash as the escape character; case-sensitive, matching whole strings."""
    regex, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            regex.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        regex.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.fullmatch("".join(regex), value, flags=re.DOTALL) is not None


def _equal(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a == b


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class _Value:
    """A value compiled against a heading: a function of the row, and whether it is a float32
    attribute or a numeric literal (literals compared with float32 attributes are rounded)."""

    get: Callable[[Row], Any]
    float32: bool = False
    literal: bool = False


class _Evaluator:
    def __init__(self, tables: Mapping[str, Table]):
        self.tables = {name.lower(): table for name, table in tables.items()}

    # relations
    def relation(self, node: lark.Tree) -> Table:
        kind = node.data
        if kind in ("name", "member"):
            return self.table(node)
        if kind == "restrict":
            return self.restrict(self.relation(node.children[0]), node.children[1])
        if kind == "sub":
            return self.restrict(self.relation(node.children[0]), node.children[2], negate=True)
        if kind == "mul":
            return self.join(self.relation(node.children[0]), self.relation(node.children[2]))
        if kind == "add":
            return self.union(self.relation(node.children[0]), self.relation(node.children[2]))
        if kind == "method":
            return self.method(node)
        raise Unsupported(f"not a relation: {kind}")

    def dotted(self, node: lark.Tree) -> str | None:
        if node.data == "name":
            return str(node.children[0])
        if node.data == "member":
            head = self.dotted(node.children[0])
            return None if head is None else f"{head}.{node.children[1]}"
        return None

    def is_table(self, name: str | None) -> bool:
        return name is not None and name.lower() in self.tables

    def table(self, node: lark.Tree) -> Table:
        name = self.dotted(node)
        if not self.is_table(name):
            raise Unsupported(f"unknown table {name}")
        table = self.tables[name.lower()]
        return Table(table.heading, table.primary_key, [dict(r) for r in table.rows], table.float32)

    def is_relation(self, node: lark.Tree, heading: Sequence[str]) -> bool:
        """The compiler's rule for whether a restrictor is a relation (a semijoin) or a condition."""
        if node.data == "name":
            return str(node.children[0]) not in heading and self.is_table(str(node.children[0]))
        if node.data == "member":
            return self.is_table(self.dotted(node))
        if node.data in ("method", "restrict"):
            return True
        if node.data in ("mul", "add", "sub"):
            return self.is_relation(node.children[0], heading)
        return False

    def restrict(self, relation: Table, restrictor: lark.Tree, negate: bool = False) -> Table:
        test = self.restriction(relation, restrictor)
        keep = [row for row in relation.rows if (_not(test(row)) if negate else test(row)) is True]
        return Table(relation.heading, relation.primary_key, keep, relation.float32)

    def restriction(self, relation: Table, restrictor: lark.Tree) -> Callable[[Row], bool | None]:
        if restrictor.data == "string":
            inner = parse(_unquote(str(restrictor.children[0])))
            return self.condition(relation, inner)
        if self.is_relation(restrictor, relation.heading):
            return self.semijoin(relation.heading, self.relation(restrictor))
        return self.condition(relation, restrictor)

    @staticmethod
    def semijoin(heading: Sequence[str], other: Table) -> Callable[[Row], bool]:
        shared = [name for name in other.heading if name in heading]

        def matches(row: Row) -> bool:
            return any(all(_equal(row[n], o[n]) is True for n in shared) for o in other.rows)

        return matches

    def join(self, left: Table, right: Table) -> Table:
        shared = [name for name in right.heading if name in left.heading]
        primary_key = left.primary_key + tuple(n for n in right.primary_key if n not in left.primary_key)
        secondary = [n for n in left.heading + right.heading if n not in primary_key]
        heading = primary_key + tuple(dict.fromkeys(secondary))
        rows = [
            {n: (a[n] if n in left.heading else b[n]) for n in heading}
            for a in left.rows
            for b in right.rows
            if all(_equal(a[n], b[n]) is True for n in shared)
        ]
        return Table(heading, primary_key, rows, left.float32 | right.float32)

    @staticmethod
    def union(left: Table, right: Table) -> Table:
        """SQL's UNION: every distinct row of either side (NULLs count as equal here)."""
        seen: dict[tuple, Row] = {}
        for row in left.rows + right.rows:
            values = tuple(row[n] for n in left.heading)
            seen.setdefault(values, {n: row[n] for n in left.heading})
        return Table(left.heading, left.primary_key, list(seen.values()), left.float32 & right.float32)

    # methods
    def method(self, node: lark.Tree) -> Table:
        relation = self.relation(node.children[0])
        arguments = node.children[2].children if len(node.children) > 2 else []
        name = str(node.children[1])
        if name == "proj":
            return self.project(relation, arguments)
        if name == "aggr":
            return self.aggregate(relation, arguments)
        if name == "top":
            return self.top(relation, arguments)
        raise Unsupported(f"unknown method {name}")

    @staticmethod
    def _named(argument: lark.Tree) -> tuple[str, lark.Tree] | None:
        if argument.data == "equals" and argument.children[0].data == "name":
            return str(argument.children[0].children[0]), argument.children[2]
        return None

    def project(self, relation: Table, arguments: list) -> Table:
        """Keep the key and the named attributes; `new = old` renames (key attributes too); `new =
        expression` computes. Assigning to a key attribute that stays is an error in the compiler."""
        renamed_from: dict[str, str] = {}
        for argument in arguments:
            named = self._named(argument)
            if named and named[1].data == "name" and str(named[1].children[0]) in relation.heading:
                renamed_from[str(named[1].children[0])] = named[0]
        renamed_keys = {s for s, new in renamed_from.items() if s in relation.primary_key and new != s}
        chosen: dict[str, Callable[[Row], Any]] = {
            n: _getter(n) for n in relation.primary_key if n not in renamed_keys
        }
        float32 = set()
        for argument in arguments:
            named = self._named(argument)
            if named is None:
                name = str(argument.children[0])
                chosen[name] = _getter(name)
                if name in relation.float32:
                    float32.add(name)
                continue
            name, expression = named
            if name in relation.primary_key and name not in renamed_keys:
                continue  # `key = key`
            if expression.data == "name" and str(expression.children[0]) in relation.heading:
                source = str(expression.children[0])
                chosen[name] = _getter(source)
                if source in relation.float32:
                    float32.add(name)
                continue
            chosen[name] = self.value(relation, expression).get
        primary_key = tuple(renamed_from[n] if n in renamed_keys else n for n in relation.primary_key)
        heading = primary_key + tuple(n for n in chosen if n not in primary_key)
        rows = [{n: chosen[n](row) for n in heading} for row in relation.rows]
        return Table(heading, primary_key, rows, frozenset(float32))

    def aggregate(self, relation: Table, arguments: list) -> Table:
        other = self.relation(arguments[0])
        key = relation.primary_key
        groups: dict[tuple, list[Row]] = {}
        for row in other.rows:
            groups.setdefault(tuple(row[n] for n in key), []).append(row)
        functions = []
        for argument in arguments[1:]:
            name, expression = self._named(argument)
            function = str(expression.children[0]).lower()
            get = None if expression.data == "call_star" else self.value(other, expression.children[1]).get
            functions.append((name, function, get))
        rows = []
        for row in relation.rows:
            group = groups.get(tuple(row[n] for n in key))
            if not group:
                continue  # DataJoint's aggr keeps only rows with matches
            out = dict(row)
            for name, function, get in functions:
                if get is None:
                    out[name] = len(group)
                    continue
                values = [v for v in (get(g) for g in group) if v is not None]
                if function == "count":
                    out[name] = len(values)
                elif not values:
                    out[name] = None
                elif function == "sum":
                    out[name] = sum(values)
                elif function == "avg":
                    out[name] = sum(values) / len(values)
                else:
                    out[name] = (min if function == "min" else max)(values)
            rows.append(out)
        heading = relation.heading + tuple(name for name, _, _ in functions)
        return Table(heading, relation.primary_key, rows, relation.float32)

    def top(self, relation: Table, arguments: list) -> Table:
        limit = int(str(arguments[0].children[0]))
        order: list[tuple[str, bool]] = []
        for argument in arguments[1:]:
            _, expression = self._named(argument)
            for item in _unquote(str(expression.children[0])).split(","):
                words = item.split()
                order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
        named = {name for name, _ in order}
        order += [(n, False) for n in relation.primary_key if n not in named]
        return Table(relation.heading, relation.primary_key, sort_rows(relation.rows, order)[:limit])

    # conditions and values
    def condition(self, relation: Table, node: lark.Tree) -> Callable[[Row], bool | None]:
        return self.value(relation, node).get

    def value(self, relation: Table, node: lark.Tree) -> _Value:
        handler = getattr(self, f"_v_{node.data}", None)
        if handler is None:
            raise Unsupported(f"not a value: {node.data}")
        return handler(relation, node)

    def _v_name(self, relation: Table, node: lark.Tree) -> _Value:
        name = str(node.children[0])
        if name in relation.heading:
            return _Value(_getter(name), float32=name in relation.float32)
        return _Value(self.semijoin(relation.heading, self.table(node)))  # a table inside a condition

    @staticmethod
    def _v_number(relation: Table, node: lark.Tree) -> _Value:
        text = str(node.children[0])
        number = float(text) if any(c in text for c in ".eE") else int(text)
        return _Value(lambda row: number, literal=True)

    @staticmethod
    def _v_string(relation: Table, node: lark.Tree) -> _Value:
        text = _unquote(str(node.children[0]))
        return _Value(lambda row: text)

    @staticmethod
    def _v_true(relation: Table, node: lark.Tree) -> _Value:
        return _Value(lambda row: True)

    @staticmethod
    def _v_false(relation: Table, node: lark.Tree) -> _Value:
        return _Value(lambda row: False)

    @staticmethod
    def _v_null(relation: Table, node: lark.Tree) -> _Value:
        return _Value(lambda row: None)

    def _v_or_(self, relation: Table, node: lark.Tree) -> _Value:
        a, b = self.value(relation, node.children[0]).get, self.value(relation, node.children[2]).get
        return _Value(lambda row: _or(a(row), b(row)))

    def _v_and_(self, relation: Table, node: lark.Tree) -> _Value:
        a, b = self.value(relation, node.children[0]).get, self.value(relation, node.children[2]).get
        return _Value(lambda row: _and(a(row), b(row)))

    def _v_not_(self, relation: Table, node: lark.Tree) -> _Value:
        a = self.value(relation, node.children[1]).get
        return _Value(lambda row: _not(a(row)))

    def _pair(self, relation: Table, left: lark.Tree, right: lark.Tree) -> tuple[Callable, Callable]:
        a, b = self.value(relation, left), self.value(relation, right)
        return _rounded(a, b).get, _rounded(b, a).get

    def _compare(self, relation: Table, left: lark.Tree, operator: str, right: lark.Tree) -> _Value:
        a, b = self._pair(relation, left, right)
        test = _COMPARE[operator]

        def compare(row: Row) -> bool | None:
            x, y = a(row), b(row)
            return None if x is None or y is None else test(x, y)

        return _Value(compare)

    def _v_compare(self, relation: Table, node: lark.Tree) -> _Value:
        return self._compare(relation, node.children[0], str(node.children[1]), node.children[2])

    def _v_equals(self, relation: Table, node: lark.Tree) -> _Value:
        return self._compare(relation, node.children[0], "=", node.children[2])

    def _v_in_(self, relation: Table, node: lark.Tree, negate: bool = False) -> _Value:
        subject = self.value(relation, node.children[0])
        items = [_rounded(self.value(relation, item), subject).get for item in node.children[-1].children]

        def contained(row: Row) -> bool | None:
            x = subject.get(row)
            result: bool | None = False
            for item in items:
                result = _or(result, _equal(x, item(row)))
            return _not(result) if negate else result

        return _Value(contained)

    def _v_not_in(self, relation: Table, node: lark.Tree) -> _Value:
        return self._v_in_(relation, node, negate=True)

    def _v_between(self, relation: Table, node: lark.Tree, negate: bool = False) -> _Value:
        subject = self.value(relation, node.children[0])
        low = _rounded(self.value(relation, node.children[-3]), subject).get
        high = _rounded(self.value(relation, node.children[-1]), subject).get

        def between(row: Row) -> bool | None:
            x, lo, hi = subject.get(row), low(row), high(row)
            above = None if x is None or lo is None else x >= lo
            below = None if x is None or hi is None else x <= hi
            result = _and(above, below)
            return _not(result) if negate else result

        return _Value(between)

    def _v_not_between(self, relation: Table, node: lark.Tree) -> _Value:
        return self._v_between(relation, node, negate=True)

    def _v_like(self, relation: Table, node: lark.Tree, negate: bool = False) -> _Value:
        subject = self.value(relation, node.children[0]).get
        pattern = self.value(relation, node.children[-1]).get

        def like(row: Row) -> bool | None:
            x, p = subject(row), pattern(row)
            result = None if x is None or p is None else _like(x, p)
            return _not(result) if negate else result

        return _Value(like)

    def _v_not_like(self, relation: Table, node: lark.Tree) -> _Value:
        return self._v_like(relation, node, negate=True)

    def _v_is_null(self, relation: Table, node: lark.Tree) -> _Value:
        a = self.value(relation, node.children[0]).get
        return _Value(lambda row: a(row) is None)

    def _v_is_not_null(self, relation: Table, node: lark.Tree) -> _Value:
        a = self.value(relation, node.children[0]).get
        return _Value(lambda row: a(row) is not None)

    def _arithmetic(self, relation: Table, node: lark.Tree, operation: Callable) -> _Value:
        a, b = self.value(relation, node.children[0]).get, self.value(relation, node.children[2]).get

        def compute(row: Row) -> Any:
            x, y = a(row), b(row)
            return None if x is None or y is None else operation(x, y)

        return _Value(compute)

    def _v_add(self, relation: Table, node: lark.Tree) -> _Value:
        return self._arithmetic(relation, node, lambda x, y: x + y)

    def _v_sub(self, relation: Table, node: lark.Tree) -> _Value:
        return self._arithmetic(relation, node, lambda x, y: x - y)

    def _v_mul(self, relation: Table, node: lark.Tree) -> _Value:
        return self._arithmetic(relation, node, lambda x, y: x * y)

    def _v_div(self, relation: Table, node: lark.Tree) -> _Value:
        # True division; by zero gives NULL, as blobflow does on both databases.
        return self._arithmetic(relation, node, lambda x, y: None if y == 0 else float(x) / float(y))

    def _v_neg(self, relation: Table, node: lark.Tree) -> _Value:
        a = self.value(relation, node.children[1])
        return _Value(lambda row: None if a.get(row) is None else -a.get(row), literal=a.literal)


def _getter(name: str) -> Callable[[Row], Any]:
    return lambda row: row[name]


def _rounded(value: _Value, other: _Value) -> _Value:
    """A numeric literal compared with a float32 attribute is rounded to float32 first."""
    if value.literal and other.float32:
        return _Value(lambda row: float(np.float32(value.get(row))), literal=True)
    return value


def sort_rows(rows: list[Row], order: Sequence[tuple[str, bool]]) -> list[Row]:
    """Rows sorted by (attribute, descending) pairs, NULLs first going up and last going down."""
    result = list(rows)
    for name, descending in reversed(order):  # stable sorts, least significant first
        present = [r for r in result if r[name] is not None]
        missing = [r for r in result if r[name] is None]
        present.sort(key=lambda r: r[name], reverse=descending)
        result = present + missing if descending else missing + present
    return result


def sort_key(values: Sequence[Any]) -> tuple:
    """A total order over rows of mixed values (None first), for comparing results as sorted lists."""
    return tuple(
        (0, 0) if v is None else (1, float(v)) if isinstance(v, (bool, int, float)) else (2, str(v))
        for v in values
    )


def same_rows(actual: Sequence[Sequence[Any]], expected: Sequence[Sequence[Any]]) -> bool:
    """Whether two results hold the same rows, in any order; floats equal within a tolerance."""
    if len(actual) != len(expected):
        return False
    for a, e in zip(sorted(actual, key=sort_key), sorted(expected, key=sort_key)):
        if len(a) != len(e):
            return False
        for x, y in zip(a, e):
            if x is None or y is None:
                if x is not y:
                    return False
            elif isinstance(x, float) or isinstance(y, float):
                if isinstance(x, str) or isinstance(y, str):
                    return False
                if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y or isinstance(x, bool) != isinstance(y, bool):
                return False
    return True
