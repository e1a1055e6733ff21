"""The pipeline's dependency graph: what to populate, upstream first."""

from __future__ import annotations

from collections.abc import Iterable

from blobflow.model import Pipeline, Table


def parents_of(pipeline: Pipeline, table: Table) -> list[str]:
    """Qualified names of the tables this one has foreign keys to (its master included)."""
    return list(dict.fromkeys(fk.parent for fk in table.foreign_keys))


def ancestors(pipeline: Pipeline, names: Iterable[str]) -> set[str]:
    """Every table the given ones depend on, directly or not (not including themselves)."""
    seen: set[str] = set()
    stack = [p for name in names for p in parents_of(pipeline, pipeline.table(name))]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(parents_of(pipeline, pipeline.table(name)))
    return seen


def populate_order(pipeline: Pipeline, targets: Iterable[str] | None = None) -> list[Table]:
    """Computed and imported tables to populate for the targets, upstream first (all when no targets).

    The pipeline's tables are already topologically sorted, so filtering keeps a valid order.
    """
    if targets is None:
        wanted = {t.qualified_name for t in pipeline}
    else:
        targets = list(targets)
        wanted = set(targets) | ancestors(pipeline, targets)
    return [t for t in pipeline if t.qualified_name in wanted and t.is_derived]
