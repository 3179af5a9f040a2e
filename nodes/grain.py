"""``core.grain``: animated film grain.

Blurring a photo wipes out its own sensor noise, so a blurred background next to a
grainy subject looks like plastic. Grain puts a texture back. With ``reference``
connected, ``amount`` is relative to the noise measured in that image (1.0 = match
the photo), so a clean photo gets little grain and a grainy one more; otherwise it is
the grain's standard deviation in 8-bit levels.

Drawing a fresh full-frame Gaussian field every frame cost more than the rest of the
grain (18 ms at 1080p). Instead one field somewhat larger than the frame is drawn once
per (frame size, grain size, seed, channels) and every frame takes a window of it at an
offset hashed from ``seed`` and the frame number, so a render repeats exactly and the
pattern is new every frame. Even frames take their window from the left part of the
field and odd frames from the right part, further apart than the grain's correlation
reach, so consecutive frames are uncorrelated pixel for pixel. The field is stored as
uint8 (128 + 32 levels per standard deviation, clipped at about 4 deviations), with the
three channels already replicated for monochrome grain, and added with one OpenCV call
(``addWeighted`` of two uint8 arrays, about 2 ms at 1080p) on the window view. Grain
too faint to change any pixel (the field's largest offset times the deviation is under
half a level, as for a very clean photo's matched grain) is not added at all.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType, animatable
from focusgraph.nodes._memo import last_for
from focusgraph.nodes._units import check_same_size

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


# Share of the most textured pixels left out of the noise estimate.
_EDGE_SHARE = 0.1

# Stored grain: level = 128 + round(32 * noise), clipped to 1..255 (about +-4 deviations).
_CENTRE = 128
_LEVELS_PER_DEVIATION = 32.0
# Largest distance of a stored level from the centre (the field is clipped to it): grain
# whose deviation scales it below half a level changes no pixel (see :func:`changes_nothing`).
_MAX_OFFSET = 255 - _CENTRE
# Padded fields kept (one per distinct frame size, grain size, seed and channels).
_FIELDS_KEPT = 4

_MASK64 = (1 << 64) - 1


@last_for
def estimate_noise(image: np.ndarray) -> float:
    """Standard deviation of the image's noise in 8-bit levels.

    Immerkær's estimator (a Laplacian-difference kernel that cancels smooth image
    structure) averaged over the image's least textured 90% of pixels, ranked by Sobel
    gradient, so that edges and fine texture are not mistaken for noise (Tai and
    Yang's refinement).
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if min(gray.shape) < 3:
        return 0.0
    # Filtered straight from uint8 into float32 (exact: integer kernels), in place, and
    # averaged by cv2.mean under a mask rather than gathered: a third of the memory to
    # fault in, which is most of the time for a 4K photo.
    response = cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER)
    np.abs(response, out=response)
    response = response[1:-1, 1:-1]
    gradient = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    across = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    np.abs(gradient, out=gradient)
    np.abs(across, out=across)
    cv2.add(gradient, across, dst=gradient)
    del across
    gradient = gradient[1:-1, 1:-1]
    limit = np.quantile(gradient[::4, ::4], 1.0 - _EDGE_SHARE)
    flat = (gradient <= limit).view(np.uint8)
    return float(np.sqrt(np.pi / 2) * cv2.mean(response, mask=flat)[0] / 6.0)


def grain_deviation(amount: float, scale: float, reference: np.ndarray | None = None) -> float:
    """Grain deviation in 8-bit levels: ``amount * scale``, times the reference's noise if given."""
    deviation = amount * scale
    return deviation * estimate_noise(reference) if reference is not None else deviation


def changes_nothing(deviation: float) -> bool:
    """Whether grain of ``deviation`` (8-bit levels) rounds to no change at every pixel.

    Every stored offset times ``deviation / 32`` is then below half a level, so adding it
    to an 8-bit image and rounding gives the image back (a very clean photo's matched
    grain: a tenth of a level).
    """
    return deviation * _MAX_OFFSET / _LEVELS_PER_DEVIATION < 0.5 - 1e-3


def _mix(value: int) -> int:
    """SplitMix64 finaliser: a well-spread 64-bit hash of ``value`` (the same in every process)."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def correlation_reach(size: float) -> int:
    """Shift in pixels beyond which two windows of a field of grain ``size`` are uncorrelated.

    Size 1 is white noise (any shift of one pixel or more). Larger grain is white noise
    enlarged by bicubic interpolation, whose kernel spans 4 source pixels: two samples
    more than ``4 * size`` pixels apart share no source pixel.
    """
    return 1 if size <= 1.0 else math.ceil(4.0 * size) + 1


def field_padding(size: float) -> int:
    """Margin in pixels on each side of the frame in the stored grain field."""
    return max(64, 8 * correlation_reach(size))


@functools.lru_cache(maxsize=_FIELDS_KEPT)
def padded_field(height: int, width: int, size: float, seed: int, channels: int) -> np.ndarray:
    """The stored grain of one frame size: ``(H + 2p, W + 2p, 3)`` uint8, read-only.

    Parameters
    ----------
    height, width : int
        Frame size; the field has :func:`field_padding` more pixels on each side.
    size : float
        Grain size in pixels.
    seed : int
        Seed of OpenCV's generator.
    channels : int
        1 for monochrome grain (the one channel replicated three times), 3 for colour.

    Returns
    -------
    ndarray
        ``128 + round(32 * noise)`` clipped to 1..255, where ``noise`` is zero-mean,
        unit-deviation Gaussian noise of grain ``size``.
    """
    pad = field_padding(size)
    full = (height + 2 * pad, width + 2 * pad)
    scale = max(size, 1.0)
    small = (max(1, round(full[0] / scale)), max(1, round(full[1] / scale)), channels)
    # One channel of OpenCV's generator (about twice as fast as NumPy's); drawn into a
    # (H, W * channels) array, since a scalar deviation would fill only a Mat's first channel.
    flat: np.ndarray = np.empty((small[0], small[1] * channels), np.float32)
    cv2.setRNGSeed(_mix(seed) & 0x7FFFFFFF)
    cv2.randn(flat, 0.0, 1.0)  # type: ignore[call-overload]  # scalars are accepted
    noise = flat.reshape(small)
    if scale > 1.0:
        resized: np.ndarray = cv2.resize(noise, (full[1], full[0]), interpolation=cv2.INTER_CUBIC)
        noise = resized.reshape(full[0], full[1], channels)
        noise -= float(noise.mean())
        noise /= max(float(noise.std()), 1e-6)
    noise *= _LEVELS_PER_DEVIATION
    np.rint(noise, out=noise)
    np.clip(noise, -_MAX_OFFSET, _MAX_OFFSET, out=noise)
    noise += _CENTRE
    levels = noise.astype(np.uint8)
    if channels == 1:
        levels = np.repeat(levels, 3, axis=2)
    levels.flags.writeable = False
    return levels


def window_offset(size: float, seed: int, frame: int) -> tuple[int, int]:
    """``(y, x)`` of frame ``frame``'s window in the padded field.

    Hashed from ``seed`` and ``frame``: reproducible, and different every frame. ``y``
    spans the whole margin; ``x`` is in the left part for even frames and in the right
    part for odd ones, at least :func:`correlation_reach` apart, so consecutive frames
    never overlap within the grain's correlation.
    """
    pad = field_padding(size)
    reach = correlation_reach(size)
    hashed = _mix(_mix(seed & _MASK64) ^ (frame & _MASK64))
    y = hashed % (2 * pad + 1)
    span = pad - (reach + 1) // 2  # x in [0, span] (even frames) or [2 pad - span, 2 pad] (odd)
    x = (hashed >> 32) % (span + 1)
    if frame % 2:
        x += 2 * pad - span
    return int(y), int(x)


def grain_window(shape: tuple[int, int], size: float, seed: int, frame: int, channels: int) -> np.ndarray:
    """Frame ``frame``'s grain as a read-only ``(H, W, 3)`` uint8 view (128 = no change, 32 per deviation)."""
    height, width = shape
    field = padded_field(height, width, float(size), seed, channels)
    y, x = window_offset(size, seed, frame)
    return field[y : y + height, x : x + width]


def grain_field(shape: tuple[int, int], size: float, seed: int, frame: int, channels: int) -> np.ndarray:
    """Zero-mean, unit-deviation noise of grain ``size`` pixels, (H, W, channels) float32.

    The frame's window of the stored field (see :func:`grain_window`), decoded; for
    inspection and tests (the node adds the stored levels directly).
    """
    window = grain_window(shape, size, seed, frame, channels)[..., :channels]
    noise = window.astype(np.float32)
    noise -= _CENTRE
    noise /= _LEVELS_PER_DEVIATION
    return noise


def add_grain(
    image: np.ndarray, window: np.ndarray, deviation: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """``image + deviation * noise [* mask]``, rounded and clipped to uint8.

    Parameters
    ----------
    image : ndarray
        (H, W, 3) uint8 image.
    window : ndarray
        (H, W, 3) uint8 stored grain levels, as from :func:`grain_window` (a strided view
        is fine: OpenCV reads it in place).
    deviation : float
        Standard deviation of the grain in 8-bit levels.
    mask : ndarray, optional
        (H, W) float weight of the grain (1 = full); default everywhere.
    """
    gain = deviation / _LEVELS_PER_DEVIATION
    if mask is None:
        # One pass over uint8 data: saturate(image + gain * level - 128 gain).
        return cv2.addWeighted(image, 1.0, window, gain, -_CENTRE * gain)
    noise = window.astype(np.float32)
    noise -= _CENTRE
    noise *= (np.asarray(mask, np.float32) * np.float32(gain))[..., None]
    return cv2.add(image, noise, dtype=cv2.CV_8U)


class Grain(Node):
    """Add animated film grain, optionally matched to a photo's own noise."""

    type_name = "core.grain"
    version = 2  # grain windows of a stored field (a different pattern from version 1)
    description = "Animated film grain; amount animatable; can match a reference photo's noise."

    class Params(NodeParams):
        amount: animatable(ge=0, le=100) = Field(  # type: ignore[valid-type]
            default=1.0,
            description="Grain deviation in 8-bit levels (or a multiple of the reference's noise).",
        )
        scale: float = Field(
            default=1.0, ge=0, le=10, description="Multiplies `amount` (handy when `amount` is linked)."
        )
        size: float = Field(default=1.0, ge=1, le=8, description="Grain size in pixels.")
        monochrome: bool = Field(
            default=True, description="Luminance-only grain (as film), else per channel."
        )
        seed: int = Field(default=0, ge=0, description="Seed of the grain pattern.")

    inputs = {
        "image": Port(PortType.IMAGE, "Image to add grain to."),
        "reference": Port(PortType.IMAGE, "Photo whose noise level `amount` is relative to.", optional=True),
        "mask": Port(
            PortType.MASK, "Where to add grain (1 = full grain); default everywhere.", optional=True
        ),
    }
    outputs = {"image": Port(PortType.IMAGE, "The image with grain.")}
    varies_per_frame = True

    def varies_at(self, params: Any) -> bool:
        """Grain of amount 0 is the identity: the same for every frame."""
        return bool(params.amount * params.scale > 0)

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        image: np.ndarray = inputs["image"]
        deviation = grain_deviation(float(params.amount), params.scale, inputs.get("reference"))
        if deviation <= 0.0 or changes_nothing(deviation):
            return {"image": image}
        mask: np.ndarray | None = inputs.get("mask")
        if mask is not None:
            check_same_size("image", image, "mask", mask)
        channels = 1 if params.monochrome else 3
        window = grain_window(image.shape[:2], params.size, params.seed, ctx.frame, channels)
        return {"image": add_grain(image, window, deviation, mask)}
