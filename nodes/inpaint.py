"""``core.inpaint``: fill the background behind the subject.

The masked region (grown by ``grow``) is filled by pull-push interpolation: the
known pixels are averaged over an image pyramid and the hole takes the colours of
the nearest background at every scale. The fill is smooth, which is what a blurred
background needs: blurring it afterwards cannot smear the subject's colours into a
halo. Pixels outside the grown mask are returned untouched.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import Field

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes._units import UNITS_HELP, Units, check_same_size, to_pixels
from focusgraph.nodes.feather import grow_mask


def pull_push_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill pixels where ``known`` is 0 from the surrounding known pixels.

    Parameters
    ----------
    image : ndarray
        float32 (H, W, C) values.
    known : ndarray
        float32 (H, W) weights in [0, 1]; 1 = keep this pixel's value.
    """
    numerators = [image * known[..., None]]
    weights = [known]
    while min(weights[-1].shape[:2]) > 2:
        numerators.append(cv2.pyrDown(numerators[-1]))
        weights.append(cv2.pyrDown(weights[-1]))
    filled = numerators[-1] / np.maximum(weights[-1], 1e-8)[..., None]
    coarse_weight = weights[-1]
    if not np.any(coarse_weight > 0):
        return image  # nothing known at all: nothing to fill from
    for numerator, weight in zip(reversed(numerators[:-1]), reversed(weights[:-1]), strict=True):
        height, width = weight.shape[:2]
        upsampled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR).reshape(
            numerator.shape
        )
        own = numerator / np.maximum(weight, 1e-8)[..., None]
        alpha = np.clip(weight, 0.0, 1.0)[..., None]
        filled = own * alpha + upsampled * (1.0 - alpha)
    return filled


class Inpaint(Node):
    """Fill the subject's area with surrounding background (a clean plate)."""

    type_name = "core.inpaint"
    description = "Fill the region under a mask from the surrounding background (clean plate)."

    class Params(NodeParams):
        grow: float = Field(
            default=0.005,
            ge=0,
            le=1000,
            description="Also replace this far beyond the mask (removes edge fringe).",
        )
        threshold: float = Field(default=0.5, gt=0, lt=1, description="Mask values above this are replaced.")
        units: Units = Field(default="relative", description=UNITS_HELP)

    inputs = {
        "image": Port(PortType.IMAGE, "The photo."),
        "mask": Port(PortType.MASK, "What to remove (1 = subject)."),
    }
    outputs = {
        "image": Port(PortType.IMAGE, "The photo with the masked region filled."),
        "mask": Port(PortType.MASK, "The region that was filled (1 = filled)."),
    }

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        image: np.ndarray = inputs["image"]
        mask: np.ndarray = inputs["mask"]
        check_same_size("image", image, "mask", mask)
        hole = (mask > params.threshold).astype(np.float32)
        hole = grow_mask(hole, to_pixels(params.grow, params.units, image))
        if not hole.any():
            return {"image": image, "mask": hole}
        filled = pull_push_fill(image.astype(np.float32), 1.0 - hole)
        result = image.copy()
        inside = hole > 0.5
        result[inside] = np.clip(filled[inside] + 0.5, 0, 255).astype(np.uint8)
        return {"image": result, "mask": hole}
