"""Images for the blob-detection pipeline, as the seed tutorial prepares them."""

from __future__ import annotations

import numpy as np
from skimage import data
from skimage.color import rgb2gray


def hubble() -> np.ndarray:
    """The seed's image 1: the Hubble Deep Field in grayscale."""
    return rgb2gray(data.hubble_deep_field())


def coins() -> np.ndarray:
    """Stands in for the seed's image 2 (human_mitosis, which needs a download): a grayscale
    micrograph-like image of bright round objects on a dark background, scaled to [0, 1] as the seed does."""
    return data.coins() / 255.0


def human_mitosis() -> np.ndarray:
    """The seed's image 2 itself; needs network access to fetch it on first use."""
    return data.human_mitosis() / 255.0
