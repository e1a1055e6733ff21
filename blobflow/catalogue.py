"""Table definitions as canonical data: what the catalogue stores, hashes, and compares on `init`."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from blobflow.model import Table

# Comments and descriptions are documentation: changing them is not a change of the table.
_COSMETIC = ("comment", "description")


def table_definition(table: Table) -> dict[str, Any]:
    """A JSON-ready description of everything that shapes the SQL table."""
    return {
        "name": table.name,
        "tier": table.tier,
        "description": table.description,
        "attributes": [
            {
                "name": a.name,
                "type": str(a.type),
                "in_key": a.in_key,
                "nullable": a.nullable,
                "default": repr(a.default) if a.has_default else None,
                "comment": a.comment,
            }
            for a in table.attributes
        ],
        "foreign_keys": [
            {
                "parent": fk.parent,
                "columns": [list(c) for c in fk.columns],
                "in_key": fk.in_key,
                "nullable": fk.nullable,
                "unique": fk.unique,
            }
            for fk in table.foreign_keys
        ],
        "indexes": [list(index) for index in table.indexes],
    }


def definition_hash(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_structural(definition), sort_keys=True).encode()).hexdigest()


def _structural(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _structural(v) for k, v in value.items() if k not in _COSMETIC}
    if isinstance(value, list):
        return [_structural(v) for v in value]
    return value


def definition_differences(stored: dict[str, Any], declared: dict[str, Any]) -> list[str]:
    """Human-readable differences between the database's definition and the manifest's, e.g.
    "attribute 'num_blobs': type int32 in the database, int64 in the manifest"."""
    stored, declared = _structural(stored), _structural(declared)
    differences = []
    if stored.get("tier") != declared.get("tier"):
        differences.append(
            f"tier: {stored.get('tier')} in the database, {declared.get('tier')} in the manifest"
        )
    old = {a["name"]: a for a in stored.get("attributes", [])}
    new = {a["name"]: a for a in declared.get("attributes", [])}
    for name in new.keys() - old.keys():
        differences.append(f"attribute '{name}' is in the manifest but not in the database")
    for name in old.keys() - new.keys():
        differences.append(f"attribute '{name}' is in the database but not in the manifest")
    for name in old.keys() & new.keys():
        for field, value in old[name].items():
            if new[name].get(field) != value:
                differences.append(
                    f"attribute '{name}': {field} {value} in the database, "
                    f"{new[name].get(field)} in the manifest"
                )
    if [a["name"] for a in stored.get("attributes", []) if a["name"] in new] != [
        a["name"] for a in declared.get("attributes", []) if a["name"] in old
    ]:
        differences.append("attributes are in a different order")
    for field in ("foreign_keys", "indexes"):
        if stored.get(field) != declared.get(field):
            differences.append(
                f"{field.replace('_', ' ')} differ: {_short(stored.get(field))} in the database, "
                f"{_short(declared.get(field))} in the manifest"
            )
    return sorted(differences)


def _short(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
