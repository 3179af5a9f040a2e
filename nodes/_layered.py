"""Layered depth-of-field for ``core.blur`` with a ``depth`` input.

The depth range of the map (its minimum to its maximum) is cut into ``slices`` equal
intervals; every pixel belongs to exactly one slice (empty slices are dropped) and a
slice sits at the mean depth of its pixels, so a scene made of flat planes gets one
slice per plane at exactly the plane's depth. Adjacent slices' radii then differ by
``aperture * depth_range / slices`` (e.g. 1920 px wide, ``aperture`` 0.02 relative,
the full depth range, 8 slices: 4.8 px); within a slice every pixel gets the slice's
radius, at most half that step away from its own ``|depth - focus| * aperture``.

Each slice is a premultiplied RGBA layer: the slice's own pixels (alpha 1) plus a
*fill* where nearer slices cover it. A frame blurs every layer (colour and alpha alike)
with its own radius and composites them far to near with "over", the blurred alpha as
coverage: a sharp near object never bleeds into the blurred far layer (that layer holds
none of its colour), and a blurred near object spreads, half transparent, over what is
behind it. Where a blurred near edge turns transparent, what shows through is the
layer behind continued under the object: each pixel of a slice is filled in exactly
one farther layer, the one whose pixels are nearest to it in the image (the surface the
near object stands in front of). Where that pixel is within two slice widths of the
layer's depth, it is the same surface going on (a slope, a ramp) and the layer holds
the pixel's own colour: a continuous surface then has no seams at slice boundaries
(measured: a filled band showed there as a light streak along each boundary on a
photo with a smooth depth map). Farther in front it is an occluder, and the layer's
own colours are continued into the hole by normalised convolution (a push-pull
pyramid: each level's holes take the coverage-weighted average of the level below).
The accumulated colour is finally divided by the accumulated alpha, so a seam where two
layers' blurred edges meet does not darken.

Everything but the blurs and the composite depends only on the image and the depth
map, and is computed once per render (see :func:`layers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from focusgraph.nodes._memo import last_for

_SURFACE = 2.0  # in slice widths: a nearer pixel this close in depth continues the layer's surface


@dataclass(frozen=True)
class Layer:
    """One depth slice: its depth, share of the image, and premultiplied RGBA (H, W, 4) float32."""

    depth: float
    share: float
    rgba: np.ndarray
    box: tuple[int, int, int, int]  # rows y0:y1, columns x0:x1 holding every non-zero alpha


def push_pull_fill(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill the pixels of ``values`` (H, W, C) where ``weight`` (H, W, in [0, 1]) is 0.

    Normalised convolution over a pyramid: a level's premultiplied colour and weight are
    halved in size until the weight covers everything; going back up, each level keeps
    its own colour in proportion to its weight and takes the rest from the (filled)
    coarser level. Pixels of weight 1 are returned unchanged.
    """
    channels = values.shape[2]
    premultiplied = values * weight[..., None]
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    colour: np.ndarray = premultiplied
    cover: np.ndarray = weight.astype(np.float32)
    while True:
        levels.append((colour, cover))
        if cover.min() > 0 or max(cover.shape) <= 1:
            break
        size = (max(1, (cover.shape[1] + 1) // 2), max(1, (cover.shape[0] + 1) // 2))
        colour = np.asarray(cv2.resize(colour, size, interpolation=cv2.INTER_AREA)).reshape(
            size[1], size[0], channels
        )
        cover = np.asarray(cv2.resize(cover, size, interpolation=cv2.INTER_AREA))
    colour, cover = levels[-1]
    filled = colour / np.maximum(cover, 1e-12)[..., None]
    for colour, cover in reversed(levels[:-1]):
        up = cv2.resize(filled, (cover.shape[1], cover.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(cover.shape[0], cover.shape[1], channels)
        # Where cover is partial the level's colour is premultiplied: add the rest from above.
        filled = colour + (1.0 - cover)[..., None] * up
        filled = np.where(cover[..., None] > 0, filled, up)
    return np.asarray(filled, np.float32)


def slice_labels(depth: np.ndarray, slices: int) -> tuple[np.ndarray, list[float]]:
    """Slice index of every pixel (0 = farthest) and each slice's mean depth, far to near.

    The depth range is cut into ``slices`` equal intervals; empty ones are dropped.
    """
    low, high = float(depth.min()), float(depth.max())
    if high - low < 1e-6:
        return np.zeros(depth.shape, np.int32), [low]
    bins = np.clip(((depth - low) / (high - low) * slices).astype(np.int32), 0, slices - 1)
    bins = slices - 1 - bins  # far (high depth) first
    counts = np.bincount(bins.ravel(), minlength=slices)
    sums = np.bincount(bins.ravel(), weights=depth.ravel().astype(np.float64), minlength=slices)
    present = np.flatnonzero(counts)
    compact = np.full(slices, -1, np.int32)
    compact[present] = np.arange(len(present), dtype=np.int32)
    return compact[bins], [float(sums[i] / counts[i]) for i in present]


@last_for
def layers(values: np.ndarray, depth: np.ndarray, slices: int) -> list[Layer]:
    """The time-invariant layers of ``values`` (H, W, 3 working colour) cut by ``depth``.

    Memoised on the identity of both arrays: a render builds them once.
    """
    labels, depths = slice_labels(depth, slices)
    low, high = float(depth.min()), float(depth.max())
    count = len(depths)
    height, width = labels.shape
    # behind[p]: the farther slice whose pixels are nearest to p (-1 for the farthest slice's pixels).
    behind = np.full(labels.shape, -1, np.int32)
    running = np.full(labels.shape, -1, np.int32)
    nearest = np.full(labels.shape, np.inf, np.float32)
    for index in range(count):
        own = labels == index
        behind[own] = running[own]
        if index < count - 1:
            distance = cv2.distanceTransform((~own).astype(np.uint8), cv2.DIST_L2, 3)
            closer = distance < nearest
            nearest[closer] = distance[closer]
            running[closer] = index
    total = float(height * width)
    result = []
    for index in range(count):
        own = labels == index
        hole = behind == index
        rgba = np.zeros((height, width, 4), np.float32)
        if hole.any():
            # A nearer pixel within two slice widths is the same surface going on (a slope):
            # the layer takes its real colour there. Farther in front it is an occluder: fill.
            rgba[hole, :3] = values[hole]
            occluded = hole & (depth < depths[index] - _SURFACE * (high - low) / slices)
            if occluded.any():
                fill = push_pull_fill(values, own.astype(np.float32))
                rgba[occluded, :3] = fill[occluded]
        rgba[own, :3] = values[own]
        rgba[..., 3] = own | hole
        rows, cols = np.flatnonzero((own | hole).any(axis=1)), np.flatnonzero((own | hole).any(axis=0))
        box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        result.append(Layer(depths[index], float(own.sum()) / total, rgba, box))
    return result


Blurrer = Callable[[np.ndarray, float], np.ndarray]
"""Blurs an (H, W, 4) float32 layer by a radius in pixels; may return it at a reduced size."""


def composite(stack: list[Layer], radii: list[float], blur: Blurrer, reach: float | None) -> np.ndarray:
    """Blur every layer by its radius and composite them far to near; straight (H, W, 3) colour.

    With ``reach`` (how far the blur spreads, in radii), a layer is blurred and composited
    only within its box grown by that reach (plus 2 px); ``None`` blurs whole layers
    (a blur that depends on the position in the frame, such as ``zoom``).
    """
    height, width = stack[0].rgba.shape[:2]
    accumulated = np.zeros((height, width, 4), np.float32)
    for layer, radius in zip(stack, radii, strict=True):
        y0, y1, x0, x1 = 0, height, 0, width
        if reach is not None:
            margin = int(np.ceil(reach * radius)) + 2
            y0, y1 = max(0, layer.box[0] - margin), min(height, layer.box[1] + margin)
            x0, x1 = max(0, layer.box[2] - margin), min(width, layer.box[3] + margin)
        blurred = blur(layer.rgba[y0:y1, x0:x1], radius)
        if blurred.shape[:2] != (y1 - y0, x1 - x0):
            blurred = cv2.resize(blurred, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        target = accumulated[y0:y1, x0:x1]  # a view: rows keep their stride, which OpenCV accepts
        transparency = np.float32(1.0) - blurred[..., 3]
        cv2.multiply(target, cv2.merge([transparency] * 4), dst=target)
        cv2.add(target, blurred, dst=target)
    alpha = np.maximum(accumulated[..., 3:], 1e-6)
    return np.asarray(accumulated[..., :3] / alpha, np.float32)
