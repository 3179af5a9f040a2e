"""Image metrics shared by the blur tests, mirroring ``benchmarks/quality.py``.

The halo metric: the error of a composite against the background alone blurred with its
own radius, in a ring ``RING`` px outside the subject, over the same error far (beyond
``FAR`` px) from it. 1.0 means the subject leaves no trace around itself; a blur that
smears the subject's colours into the background scores well above.
"""

from __future__ import annotations

import cv2
import numpy as np

RING = (3.0, 40.0)  # halo ring, px outside the subject
FAR = 80.0  # far region, px from the subject


def halo_regions(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ring ``RING`` px outside the subject (alpha > 0.02) and the region farther than ``FAR``."""
    outside = (alpha <= 0.02).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    ring = (distance >= RING[0]) & (distance <= RING[1])
    return ring, distance > FAR


def abs_error(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pixel mean over RGB of the absolute difference, float32 (H, W)."""
    return np.abs(image.astype(np.float32) - reference.astype(np.float32)).mean(axis=2)


def halo_errors(image: np.ndarray, blurred_background: np.ndarray, alpha: np.ndarray) -> tuple[float, float]:
    """Mean error against the blurred background in the ring around the subject, and far from it."""
    ring, far = halo_regions(alpha)
    error = abs_error(image, blurred_background)
    return float(error[ring].mean()), float(error[far].mean())


def halo_ratio(image: np.ndarray, blurred_background: np.ndarray, alpha: np.ndarray) -> float:
    """Mean error in the ring around the subject over mean error far from it (1.0 = no halo)."""
    ring, far = halo_errors(image, blurred_background, alpha)
    return ring / max(far, 1e-6)


def sharpness(image: np.ndarray, region: np.ndarray | tuple[slice, ...]) -> float:
    """Mean absolute Laplacian (3x3) of the luminance over ``region``."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3))[region].mean())
