"""``core.feather``: grow or shrink a mask, then soften its edge."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import Field

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes._units import UNITS_HELP, Units, to_pixels


def grow_mask(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Dilate (``pixels`` > 0) or erode (< 0) a soft mask with a round structuring element."""
    size = round(abs(pixels))
    if size == 0:
        return mask
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    operation = cv2.dilate if pixels > 0 else cv2.erode
    return operation(mask, element, borderType=cv2.BORDER_REPLICATE)


class Feather(Node):
    """Soften, erode or dilate a mask's edge."""

    type_name = "core.feather"
    description = "Grow/shrink a mask and soften its edge."

    class Params(NodeParams):
        radius: float = Field(
            default=0.003,
            ge=0,
            le=1000,
            description="Softness of the edge (Gaussian sigma = radius/2); 0 = none.",
        )
        grow: float = Field(
            default=0.0,
            ge=-1000,
            le=1000,
            description="Dilate (> 0) or erode (< 0) the mask before softening.",
        )
        units: Units = Field(default="relative", description=UNITS_HELP)

    inputs = {"mask": Port(PortType.MASK, "The mask to feather.")}
    outputs = {"mask": Port(PortType.MASK, "The feathered mask.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        mask: np.ndarray = inputs["mask"]
        result = grow_mask(mask, to_pixels(params.grow, params.units, mask))
        sigma = to_pixels(params.radius, params.units, mask) / 2
        if sigma >= 0.1:
            result = cv2.GaussianBlur(result, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        result = np.asarray(result, np.float32)
        # (clipped in place when the array is this node's own, not the input's)
        return {"mask": np.clip(result, 0.0, 1.0, out=None if result is mask else result)}
