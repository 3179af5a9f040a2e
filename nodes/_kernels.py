"""Directional blurs of ``core.blur``: ``motion`` (a line kernel), ``zoom`` and ``spin``.

``motion`` convolves with an anti-aliased line of half-length ``radius`` through the
kernel's centre (a one-pixel tent across it, a one-pixel ramp at its ends), so a point
light becomes a streak ``2 * radius`` long at ``angle`` degrees (counter-clockwise from
the +x axis, as seen on screen). It runs at full resolution (reducing the image would
soften it across the streak, where a motion blur leaves it sharp) but costs the same at
any length: the line is two running box filters along the streak, on the image turned
so that the streak is horizontal (and back) unless it already is horizontal or vertical.

``zoom`` and ``spin`` average the image over a range of scalings (or rotations) about a
centre. Both families are one-parameter groups (zoom by ``e**a`` then ``e**b`` is zoom by
``e**(a + b)``), so ``2**k`` equally spaced copies are averaged in ``k`` steps, each
averaging the running result with itself transformed by twice the previous step
(recursive doubling): 8 bilinear warps for a 256-sample streak instead of 256. Samples
are at most one pixel apart at the farthest corner, so the streak is continuous.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

_MAX_DOUBLINGS = 12


@functools.lru_cache(maxsize=32)
def motion_kernel(half_length: float, angle: float) -> np.ndarray:
    """Normalised anti-aliased line of ``half_length`` pixels each side of the centre, at ``angle`` degrees.

    The angle is counter-clockwise from +x on screen (image rows grow downwards).
    """
    extent = math.ceil(half_length + 1.0)
    y, x = np.mgrid[-extent : extent + 1, -extent : extent + 1].astype(np.float32)
    ux, uy = math.cos(math.radians(angle)), -math.sin(math.radians(angle))
    along = x * ux + y * uy
    across = np.abs(y * ux - x * uy)
    weight = np.clip(1.0 - across, 0.0, 1.0) * np.clip(half_length + 0.5 - np.abs(along), 0.0, 1.0)
    if weight.sum() <= 0:  # half_length 0: a single tap
        weight[extent, extent] = 1.0
    return (weight / weight.sum()).astype(np.float32)


def _line_1d(values: np.ndarray, half_length: float, axis: int) -> np.ndarray:
    """The anti-aliased line of :func:`motion_kernel` along ``axis`` (1 = x, 0 = y): two box filters.

    Taps closer than ``m = floor(L + 0.5)`` weigh 1, the two at ``m`` weigh ``f = L + 0.5 - m``.
    """
    whole = math.floor(half_length + 0.5)
    part = half_length + 0.5 - whole
    if whole == 0:
        return values

    def box(length: int) -> np.ndarray:
        size = (length, 1) if axis == 1 else (1, length)
        return np.asarray(cv2.blur(values, size, borderType=cv2.BORDER_REFLECT))

    inner = box(2 * whole - 1)
    if part <= 1e-6:
        return inner
    norm = 2 * whole - 1 + 2 * part
    weights = ((2 * whole - 1) * (1 - part) / norm, (2 * whole + 1) * part / norm)
    return np.asarray(cv2.addWeighted(inner, weights[0], box(2 * whole + 1), weights[1], 0.0))


def motion_blur(values: np.ndarray, half_length: float, angle: float) -> np.ndarray:
    """Blur float32 ``values`` along a line of ``half_length`` pixels each side at ``angle`` degrees.

    Horizontal and vertical streaks are two box filters (exactly :func:`motion_kernel`); other
    angles turn the image so the streak is horizontal, filter, and turn it back (two bilinear
    resamplings, which widen it across the streak from 1.4 to about 2.2 px).
    """
    turn = angle % 180.0
    if min(turn, 180.0 - turn) < 1e-6:
        return _line_1d(values, half_length, axis=1)
    if abs(turn - 90.0) < 1e-6:
        return _line_1d(values, half_length, axis=0)
    height, width = values.shape[:2]
    # Turn by -angle (clockwise on screen) onto a canvas holding the whole turned image.
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), -angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    canvas = (math.ceil(width * cos + height * sin) + 2, math.ceil(width * sin + height * cos) + 2)
    matrix[0, 2] += (canvas[0] - width) / 2
    matrix[1, 2] += (canvas[1] - height) / 2
    turned = cv2.warpAffine(values, matrix, canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    streaked = _line_1d(np.asarray(turned), half_length, axis=1)
    back = cv2.warpAffine(
        streaked,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return np.asarray(back, np.float32)


def _corner_distance(shape: tuple[int, ...], centre: tuple[float, float]) -> float:
    """Distance (px) from ``centre`` (relative [x, y]) to the farthest corner of the image."""
    height, width = shape[:2]
    cx, cy = centre[0] * width, centre[1] * height
    return max(math.hypot(x - cx, y - cy) for x in (0.0, width) for y in (0.0, height))


def _about(matrix: np.ndarray, centre: tuple[float, float], shape: tuple[int, ...]) -> np.ndarray:
    """The 2x3 affine map applying the linear ``matrix`` about ``centre`` (pixel coordinates)."""
    height, width = shape[:2]
    c = np.array([centre[0] * width - 0.5, centre[1] * height - 0.5])
    return np.hstack([matrix, (c - matrix @ c)[:, None]]).astype(np.float64)


def _transform(kind: str, amount: float) -> np.ndarray:
    """Linear part of a zoom by ``e**amount`` or a rotation by ``amount`` radians."""
    if kind == "zoom":
        return np.eye(2) * math.exp(amount)
    cos, sin = math.cos(amount), math.sin(amount)
    return np.array([[cos, -sin], [sin, cos]])


def radial_span(kind: str, half_length: float, shape: tuple[int, ...], centre: tuple[float, float]) -> float:
    """Half-range of the zoom exponent (or spin angle): streaks ``half_length`` px at the farthest corner."""
    corner = max(_corner_distance(shape, centre), 1.0)
    if kind == "zoom":
        return math.asinh(half_length / corner)  # corner * sinh(span) = half_length
    return half_length / corner  # arc length = corner * angle


def radial_blur(values: np.ndarray, kind: str, half_length: float, centre: tuple[float, float]) -> np.ndarray:
    """``zoom`` or ``spin`` blur of float32 ``values``: streaks ``half_length`` px each side at a corner.

    Streaks shrink linearly towards ``centre`` (relative [x, y]), which stays sharp.
    """
    span = radial_span(kind, half_length, values.shape, centre)
    samples = 2 * half_length + 1  # at most a pixel apart at the corner
    doublings = min(_MAX_DOUBLINGS, max(1, math.ceil(math.log2(samples))))
    step = 2 * span / (2**doublings - 1)
    height, width = values.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP

    def warp(image: np.ndarray, amount: float) -> np.ndarray:
        matrix = _about(_transform(kind, amount), centre, values.shape)
        return np.asarray(
            cv2.warpAffine(image, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT)
        )

    result = warp(values, -span)  # the copies then run from -span to +span
    for doubling in range(doublings):
        result = cv2.addWeighted(result, 0.5, warp(result, step * 2**doubling), 0.5, 0.0)
    return np.asarray(result)


def radial_noise_kept(
    kind: str, half_length: float, shape: tuple[int, ...], centre: tuple[float, float]
) -> float:
    """RMS over the image of the noise a ``zoom``/``spin`` blur keeps (a 2L + 1 px streak: 1/sqrt(2L + 1))."""
    corner = max(_corner_distance(shape, centre), 1.0)
    height, width = shape[:2]
    y, x = np.mgrid[0:32, 0:32]
    distance = np.hypot(
        (x + 0.5) / 32 * width - centre[0] * width, (y + 0.5) / 32 * height - centre[1] * height
    )
    local = half_length * distance / corner
    kept_squared = 1.0 / (2.0 * np.maximum(local, 0.0) + 1.0)
    return float(np.sqrt(kept_squared.mean()))
