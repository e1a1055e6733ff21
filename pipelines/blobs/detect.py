"""The make function of Detection: blob_doh on one image with one parameter set (the seed's make)."""

from __future__ import annotations

import numpy as np
from skimage.feature import blob_doh


def detect_blobs(image: np.ndarray, params: dict) -> dict:
    """Detect bright blobs; returns the master's num_blobs and the Blob part rows as columns."""
    blobs = blob_doh(
        image,
        min_sigma=params["min_sigma"],
        max_sigma=params["max_sigma"],
        threshold=params["threshold"],
    )
    return {
        "num_blobs": len(blobs),
        "Blob": {
            "blob_idx": np.arange(len(blobs), dtype=np.int32),
            "x": blobs[:, 0].astype(np.float32),
            "y": blobs[:, 1].astype(np.float32),
            "radius": blobs[:, 2].astype(np.float32),
        },
    }
