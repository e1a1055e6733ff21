"""Query text -> a lark parse tree, or a QueryError pointing at the column that does not fit."""

from __future__ import annotations

import functools
from pathlib import Path

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from blobflow.errors import QueryError

MAX_QUERY_LENGTH = 20_000
# Deeper parse trees would exhaust Python's recursion while compiling (and databases' parsers before).
MAX_DEPTH = 100

_EXPECTED_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "LPAR": "'('", "RPAR": "')'",
    "COMMA": "','", "DOT": "'.'", "AMPERSAND": "'&'", "STAR": "'*'", "PLUS": "'+'", "MINUS": "'-'",
    "$END": "the end of the query",
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse(text: str, *, offset: int = 0, whole: str | None = None) -> lark.Tree:
    """Parse a query. `offset`/`whole` place a quoted condition's errors inside the full query."""
    whole = text if whole is None else whole
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query longer than {MAX_QUERY_LENGTH} characters", whole, offset + 1)
    if not text.strip():
        raise QueryError("empty query; expected a table name such as Detection", whole, offset + 1)
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        raise QueryError(f"unexpected character {char!r}", whole, offset + exc.pos_in_stream + 1) from None
    except UnexpectedEOF as exc:
        raise QueryError(
            f"the query ends too early; expected {_expected(exc.expected)}",
            whole,
            offset + len(text.rstrip()) + 1,
        ) from None
    except UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            raise QueryError(
                f"the query ends too early; expected {_expected(exc.expected)}",
                whole,
                offset + len(text.rstrip()) + 1,
            ) from None
        raise QueryError(
            f"unexpected {token.value!r}; expected {_expected(exc.expected)}",
            whole,
            offset + position(token),
        ) from None
    except UnexpectedInput as exc:  # pragma: no cover - the three above are all lark raises for LALR
        raise QueryError("syntax error", whole, offset + (exc.column or 1)) from None
    except RecursionError:
        raise QueryError("query nested too deeply", whole, offset + 1) from None
    _check_depth(tree, whole, offset)
    return tree


def _check_depth(tree: lark.Tree, whole: str, offset: int) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryError(
                f"query nested too deeply (more than {MAX_DEPTH} levels)", whole, offset + position(node)
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def position(node: lark.Tree | lark.Token) -> int:
    """Where a node starts, counted in characters from 1 over the whole query (not per line: a query
    written over several lines is shown on one line, with the caret under this position)."""
    if isinstance(node, lark.Token):
        return (node.start_pos or 0) + 1
    return getattr(node.meta, "start_pos", 0) + 1


def _expected(names: set[str] | frozenset[str]) -> str:
    readable = sorted({_EXPECTED_NAMES.get(n, n.lower()) for n in names if not n.startswith("__")})
    if len(readable) > 6:
        return "a table, an attribute, a value or an operator"
    return ", ".join(readable) if readable else "something else"
