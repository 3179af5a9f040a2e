"""``core.blur``: Gaussian or lens (bokeh) blur with an animatable radius.

``lens`` convolves with an anti-aliased disc in linear light, so bright points open
into round bokeh discs as through a real lens; ``gaussian`` uses sigma = radius / 2.
Large radii are computed at reduced resolution (the result is smooth, so nothing is
lost) which keeps a 1080p frame in the tens of milliseconds.

With a ``mask`` connected, masked pixels (e.g. the subject) are held out of the blur:
each output pixel averages only the unmasked pixels around it (normalised
convolution), so the subject's colours never smear into the background as a halo.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType, animatable
from focusgraph.nodes._units import UNITS_HELP, Units, check_same_size, to_pixels

# Work at a scale where the kernel radius is about this many pixels.
_LENS_WORK_RADIUS = 8.0
_GAUSS_WORK_SIGMA = 4.0
_IDENTITY_RADIUS = 0.25

_SRGB_TO_LINEAR = np.array(
    [((i / 255) / 12.92 if i <= 10 else ((i / 255 + 0.055) / 1.055) ** 2.4) for i in range(256)],
    dtype=np.float32,
)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB to float32 linear light in [0, 1]."""
    return _SRGB_TO_LINEAR[image]


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """float32 linear light to uint8 sRGB."""
    clipped = np.clip(linear, 0.0, 1.0)
    encoded = np.where(
        clipped <= 0.0031308, clipped * 12.92, 1.055 * np.power(clipped, 1 / 2.4) - 0.055
    )
    return np.clip(encoded * 255.0 + 0.5, 0, 255).astype(np.uint8)


def disc_kernel(radius: float) -> np.ndarray:
    """Normalised disc of ``radius`` pixels with a one-pixel anti-aliased rim."""
    extent = int(np.ceil(radius + 0.5))
    y, x = np.mgrid[-extent : extent + 1, -extent : extent + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0).astype(np.float32)
    return kernel / kernel.sum()


def _work_size(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    return max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale))


def blur_array(values: np.ndarray, kind: str, radius: float) -> np.ndarray:
    """Blur a float32 (H, W) or (H, W, C) array by ``radius`` pixels, same shape out."""
    height, width = values.shape[:2]
    work = _LENS_WORK_RADIUS if kind == "lens" else 2 * _GAUSS_WORK_SIGMA
    scale = min(1.0, work / radius)
    small = values
    if scale < 1.0:
        small = cv2.resize(values, _work_size(values.shape, scale), interpolation=cv2.INTER_AREA)
    scaled_radius = radius * scale
    if kind == "lens":
        blurred = cv2.filter2D(small, -1, disc_kernel(scaled_radius), borderType=cv2.BORDER_REFLECT)
    else:
        blurred = cv2.GaussianBlur(small, (0, 0), scaled_radius / 2, borderType=cv2.BORDER_REFLECT)
    if scale < 1.0:
        blurred = cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR)
    return blurred.reshape(values.shape)


class Blur(Node):
    """Blur an image, optionally holding a masked region (the subject) out of it."""

    type_name = "core.blur"
    description = "Gaussian or lens (bokeh) blur; animatable radius; optional holdout mask (no halo)."

    class Params(NodeParams):
        kind: Literal["gaussian", "lens"] = Field(
            default="lens", description="`lens`: disc (bokeh) kernel in linear light; `gaussian`: sigma = radius/2."
        )
        radius: animatable(ge=0, le=2000) = Field(  # type: ignore[valid-type]
            default=0.02, description="Blur radius (animatable); 0 leaves the image untouched."
        )
        units: Units = Field(default="relative", description=UNITS_HELP)

    inputs = {
        "image": Port(PortType.IMAGE, "Image to blur."),
        "mask": Port(PortType.MASK, "Pixels to hold out of the blur (1 = held out).", optional=True),
    }
    outputs = {"image": Port(PortType.IMAGE, "The blurred image.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        image: np.ndarray = inputs["image"]
        radius = to_pixels(params.radius, params.units, image)
        if radius < _IDENTITY_RADIUS:
            return {"image": image}
        holdout: np.ndarray | None = inputs.get("mask")
        linear = srgb_to_linear(image) if params.kind == "lens" else image.astype(np.float32) / 255
        if holdout is None:
            result = blur_array(linear, params.kind, radius)
        else:
            check_same_size("image", image, "mask", holdout)
            result = _holdout_blur(linear, 1.0 - holdout.astype(np.float32), params.kind, radius)
        if params.kind == "lens":
            return {"image": linear_to_srgb(result)}
        return {"image": np.clip(result * 255.0 + 0.5, 0, 255).astype(np.uint8)}


def _holdout_blur(values: np.ndarray, weight: np.ndarray, kind: str, radius: float) -> np.ndarray:
    """Normalised convolution: blur of ``values * weight`` divided by blur of ``weight``.

    Where almost no unheld pixel is within reach (deep inside a large subject), the
    plain blur of ``values`` is used instead; an inpainted plate makes that region clean.
    """
    stacked = np.dstack([values * weight[..., None], weight])
    blurred = blur_array(stacked, kind, radius)
    numerator, denominator = blurred[..., :3], blurred[..., 3:]
    confidence = np.clip(denominator / 0.05, 0.0, 1.0)
    normalised = numerator / np.maximum(denominator, 1e-6)
    plain = blur_array(values, kind, radius)
    return normalised * confidence + plain * (1.0 - confidence)
