"""Every error a user can cause is a BlobflowError; the CLI turns it into one line and an exit status.

Anything else that escapes is a bug in blobflow, shown as such (rerun with --debug).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A place in a manifest file; line and column count from 1, as editors do."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class BlobflowError(Exception):
    """Base of all user-facing errors. `exit_code` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, location: SourceLocation | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ManifestError(BlobflowError):
    """The manifest is malformed or inconsistent; carries where."""


class ConnectionFailed(BlobflowError):
    """The database could not be reached or refused us; the message never holds a password."""


class SchemaMismatch(BlobflowError):
    """The database holds tables whose definitions differ from the manifest."""


class DataError(BlobflowError):
    """A row, an input file or a value does not fit its table."""


class BlobDecodeError(DataError):
    """A blob payload is corrupt, truncated, or from a newer encoding."""


class UsageError(BlobflowError):
    """A command was asked for something that cannot be done as asked (unknown table, refused prompt)."""


class QueryError(BlobflowError):
    """A query that does not parse or does not fit the pipeline; shows the query with a caret."""

    def __init__(self, message: str, query: str, column: int):
        super().__init__(message)
        self.query = query
        self.column = max(1, column)  # 1-based, like manifest positions

    def __str__(self) -> str:
        line = " ".join(self.query.splitlines())
        return f"{self.message} (column {self.column})\n  {line}\n  {' ' * (self.column - 1)}^"
