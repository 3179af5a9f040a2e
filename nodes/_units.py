"""Helpers shared by nodes whose lengths may be given in pixels or relative to the image."""

from __future__ import annotations

from typing import Literal

import numpy as np

from focusgraph.graph.errors import GraphValidationError, Problem

Units = Literal["px", "relative"]

UNITS_HELP = "Units of lengths: `px`, or `relative` = a fraction of the image's longer side."


def to_pixels(length: float, units: Units, image: np.ndarray) -> float:
    """Convert ``length`` to pixels for ``image``."""
    if units == "px":
        return float(length)
    return float(length) * max(image.shape[0], image.shape[1])


def check_same_size(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Raise :class:`GraphValidationError` (a graph mistake, exit 2) if two images or masks differ in size."""
    if a.shape[:2] != b.shape[:2]:
        message = f"{name_a} is {a.shape[1]}x{a.shape[0]} but {name_b} is {b.shape[1]}x{b.shape[0]}"
        raise GraphValidationError([Problem(None, "inputs", message)])
