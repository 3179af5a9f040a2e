"""``core.composite``: a foreground over a background through a soft mask."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes._units import check_same_size


def over(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``foreground * alpha + background * (1 - alpha)`` for uint8 images and a float mask.

    ``foreground`` is straight (not premultiplied) colour, like a photo's pixels, so the
    weights sum to one at every pixel and no fringe darkens.
    """
    weight = np.ascontiguousarray(alpha, dtype=np.float32)
    return cv2.blendLinear(foreground, background, weight, 1.0 - weight)


class Composite(Node):
    """Place a foreground over a background using a mask as alpha."""

    type_name = "core.composite"
    description = "Foreground over background through a soft mask (straight alpha)."

    class Params(NodeParams):
        pass

    inputs = {
        "foreground": Port(PortType.IMAGE, "The layer in front (e.g. the sharp photo)."),
        "background": Port(PortType.IMAGE, "The layer behind (e.g. the blurred plate)."),
        "mask": Port(PortType.MASK, "Alpha of the foreground (1 = foreground)."),
    }
    outputs = {"image": Port(PortType.IMAGE, "The composite.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        foreground, background, mask = inputs["foreground"], inputs["background"], inputs["mask"]
        check_same_size("foreground", foreground, "background", background)
        check_same_size("foreground", foreground, "mask", mask)
        return {"image": over(foreground, background, mask)}
