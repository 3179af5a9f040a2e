"""``core.composite``: a foreground over a background through a soft mask.

A photo's soft edges (hair, motion blur, the feathered rim of a matte) are mixtures:
``photo = alpha * subject + (1 - alpha) * old_background``. Laying the photo over a
new background with plain alpha keeps the old background's share in those pixels,
a fringe of the sharp wall's colour around the subject. With ``plate`` connected
(the old background as estimated behind the subject, e.g. by ``inpaint``), only
that share is swapped: ``photo + (1 - alpha) * (background - plate)``. The subject's
colour stays, the old background's colour leaves the edge (colour decontamination),
and where the new background equals the plate the photo comes back exactly.
"""

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


def replace_background(
    photo: np.ndarray, plate: np.ndarray, background: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """``photo + (1 - alpha) * (background - plate)``, rounded and clipped to uint8.

    Parameters
    ----------
    photo : ndarray
        (H, W, 3) uint8 image whose pixels mix subject and ``plate`` by ``alpha``.
    plate : ndarray
        The background behind the subject, equal to ``photo`` where ``alpha`` is 0.
    background : ndarray
        The new background.
    alpha : ndarray
        (H, W) float subject alpha.
    """
    change = np.asarray(cv2.subtract(background, plate, dtype=cv2.CV_32F), np.float32)
    change *= (1.0 - np.asarray(alpha, np.float32))[..., None]
    return cv2.add(photo, change, dtype=cv2.CV_8U)


class Composite(Node):
    """Place a foreground over a background using a mask as alpha."""

    type_name = "core.composite"
    description = "Foreground over background through a soft mask; optional colour decontamination."

    class Params(NodeParams):
        pass

    inputs = {
        "foreground": Port(PortType.IMAGE, "The layer in front (e.g. the sharp photo)."),
        "background": Port(PortType.IMAGE, "The layer behind (e.g. the blurred plate)."),
        "mask": Port(PortType.MASK, "Alpha of the foreground (1 = foreground)."),
        "plate": Port(
            PortType.IMAGE,
            "The background as it is in `foreground` (e.g. the inpainted plate, equal to the "
            "photo where the mask is 0): its colour is removed from soft edges.",
            optional=True,
        ),
    }
    outputs = {"image": Port(PortType.IMAGE, "The composite.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        foreground, background, mask = inputs["foreground"], inputs["background"], inputs["mask"]
        check_same_size("foreground", foreground, "background", background)
        check_same_size("foreground", foreground, "mask", mask)
        plate: np.ndarray | None = inputs.get("plate")
        if plate is None:
            return {"image": over(foreground, background, mask)}
        check_same_size("foreground", foreground, "plate", plate)
        return {"image": replace_background(foreground, plate, background, mask)}
