"""Everything printed for people: rich tables on a terminal, plain stable text when piped, JSON on request.

The only module that imports rich. Data goes to stdout; messages go to stderr.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table as RichTable

from blobflow import codec


def stdout_console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def format_cell(value: Any) -> str:
    """One value as text: blobs as `<blob float64 (872, 1000)>`, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return codec.describe(bytes(value))
    if isinstance(value, np.ndarray):
        return f"<blob {value.dtype} {tuple(value.shape)}>"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, separators=(", ", ": "))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def json_value(value: Any) -> Any:
    """A value as native JSON: numbers stay numbers, blobs become their description."""
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (bytes, bytearray, memoryview, np.ndarray)):
        return format_cell(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def print_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None, total: bool = False
) -> None:
    """A table of rows: rich when stdout is a terminal, tab-free aligned text otherwise."""
    cells = [[format_cell(v) for v in row] for row in rows]
    console = stdout_console()
    if console.is_terminal:
        table = RichTable(title=title, title_justify="left")
        for name in columns:
            table.add_column(name)
        for row in cells:
            table.add_row(*row)
        console.print(table)
    else:
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    if total:
        print(f"Total: {len(rows)}")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=json_value))


def print_text(text: str) -> None:
    print(text)


def message(text: str) -> None:
    """A status line for people, on stderr."""
    stderr_console().print(text, markup=False)


def error(text: str) -> None:
    print(f"Error: {text}", file=sys.stderr)


def confirm(question: str) -> bool:
    """Ask yes/no on the terminal; anything but y/yes is no."""
    stderr_console().print(f"{question} [y/N] ", end="", markup=False)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
