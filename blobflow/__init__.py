"""blobflow: parameter-sweep pipelines declared in YAML, stored in SQLite or PostgreSQL.

import blobflow
pipe = blobflow.open_pipeline("pipelines/blobs", "sqlite:///blobs.db")
pipe.init()
"""

from blobflow.api import PipelineHandle, TableHandle, open_pipeline
from blobflow.errors import BlobflowError, DataError, ManifestError
from blobflow.manifest import load_pipeline

__version__ = "0.1.0"
__all__ = [
    "BlobflowError",
    "DataError",
    "ManifestError",
    "PipelineHandle",
    "TableHandle",
    "load_pipeline",
    "open_pipeline",
]
