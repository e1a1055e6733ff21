"""blobflow: parameter-sweep pipelines declared in YAML, stored in SQLite or PostgreSQL.

import blobflow
pipe = blobflow.open_pipeline("pipelines/blobs", "sqlite:///blobs.db")
pipe.init()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from blobflow.errors import BlobflowError, DataError, ManifestError

if TYPE_CHECKING:
    from blobflow.api import PipelineHandle, TableHandle, open_pipeline
    from blobflow.manifest import load_pipeline

__version__ = "0.1.0"

# Imported on first use: `--jobs` workers import blobflow.populate, which would otherwise pull in the
# manifest reader, the query language and the API with it (a tenth of a second per worker).
_LAZY = {
    "PipelineHandle": "blobflow.api",
    "TableHandle": "blobflow.api",
    "open_pipeline": "blobflow.api",
    "load_pipeline": "blobflow.manifest",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'blobflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "BlobflowError",
    "DataError",
    "ManifestError",
    "PipelineHandle",
    "TableHandle",
    "load_pipeline",
    "open_pipeline",
]
