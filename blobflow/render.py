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


class PopulateProgress:
    """Progress of populate: a rich bar per table on a terminal, a plain line every few seconds
    otherwise (CI logs), nothing when disabled. Called by the executor as its progress callback."""

    PLAIN_INTERVAL = 5.0

    def __init__(self, enabled: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = stderr_console()
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._tasks: dict[str, Any] = {}
        self._last_line: dict[str, float] = {}
        self._progress = (
            Progress(
                TextColumn("{task.description:<20}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9} keys/s"),
                TextColumn("{task.fields[failed]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            if self.live
            else None
        )

    def __enter__(self) -> PopulateProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: str, table: str, total: int, summary: Any) -> None:
        if not self.enabled:
            return
        done = summary.computed + summary.failed + summary.skipped
        rate = done / summary.seconds if summary.seconds > 0 else 0.0
        failed = f"[red]{summary.failed} failed[/red]" if summary.failed else ""
        if self._progress is not None:
            if event == "start":
                self._tasks[table] = self._progress.add_task(table, total=total, rate="", failed="")
            self._progress.update(
                self._tasks[table], completed=done, total=max(total, done), rate=f"{rate:,.1f}", failed=failed
            )
            return
        import time

        now = time.monotonic()
        if event == "start":
            self._last_line[table] = now
            message(f"{table}: {total} pending")
        elif event == "finish" or now - self._last_line.get(table, 0) >= self.PLAIN_INTERVAL:
            self._last_line[table] = now
            state = "done" if event == "finish" else "running"
            message(
                f"{table}: {done}/{max(total, done)} {state}, {summary.failed} failed, {rate:,.1f} keys/s, "
                f"{summary.seconds:.1f} s"
            )


def print_query_rows(heading: Sequence[str], rows: Any, output_format: str) -> None:
    """Rows of a query: a table (with "Total: N", as DataJoint prints), CSV, a JSON list or JSON Lines.
    CSV and JSON Lines stream; the table and the JSON list are built whole."""
    if output_format == "table":
        print_rows(heading, [[row[name] for name in heading] for row in rows], total=True)
    elif output_format == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(heading)
        for row in rows:
            writer.writerow([format_cell(row[name]) for name in heading])
    elif output_format == "jsonl":
        for row in rows:
            print(json.dumps({name: json_value(row[name]) for name in heading}, default=json_value))
    else:
        print(
            json.dumps(
                [{name: json_value(row[name]) for name in heading} for row in rows],
                indent=2,
                default=json_value,
            )
        )
