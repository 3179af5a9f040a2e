"""``core.transform``: zoom, pan and rotation of an image (and its mask): camera moves.

Every parameter is animatable, so a ``keyframe`` with easing drives a slow push-in
while the focus pulls. The node is layer-agnostic: a 2.5D parallax moves the
background plate less than the subject (photo and matte transformed alike) and
composites afterwards.

Geometry
--------
Coordinates are OpenCV's pixel-centre convention: pixel ``(i, j)`` has its centre at
``x = j, y = i``, and a relative position ``u`` (0 = left edge, 1 = right edge) is at
``x = u * width - 0.5``. With ``c`` the centre, ``s`` the zoom, ``R`` the rotation
and ``p = (pan_x * width, pan_y * height)``, a photo point ``x`` lands at::

    x' = c + s * R @ (x - c - p)

so the view is centred on the photo point ``c + p`` (positive ``pan_x`` moves the
view right over the photo and the content left, by ``s * pan_x * width`` output
pixels; positive ``pan_y`` moves the view down and the content up), and zoom and
rotation turn about the middle of the view. Positive ``rotation`` turns the content
counter-clockwise on screen, as :func:`cv2.getRotationMatrix2D` does; at ``pan`` 0
the matrix *is* ``cv2.getRotationMatrix2D(c, rotation, zoom)``. Zoom 1, pan 0 and
rotation 0 is the exact identity and returns the input arrays themselves.

Quality
-------
Each output is one :func:`cv2.warpAffine`. Zooming in, a good interpolator is all it
takes (``cubic`` by default: nearly as sharp as ``lanczos`` at the small zooms of
camera moves, without Lanczos's ringing around high-contrast edges, and about 4x
faster at 1080p; it is also the interpolator of OpenCV's reference). Zooming out (an
effective scale ``s < 1``), fine texture would alias into moire that crawls from frame
to frame; the image is first low-passed by a Gaussian of sigma ``0.5 / s`` source
pixels (half an output pixel), eased in over the first 5% of zoom-out (``s`` from 1 to
0.95, smoothstep) so that a zoom leaving 1 does not soften in a one-frame pop. On a
one-pixel checkerboard zoomed out from 1 to 0.8 over 60 frames this cuts the mean
frame-to-frame change from 48 to 14 grey levels (from 51 to 7 once the ramp is past),
on white noise from 25 to 13 (the rest is the noise really moving). Below ``s = 0.25``
the photo is first reduced by an integer factor (area averaging) and the remainder is
filtered the same way, so the cost stays bounded; the matrix is composed with the
reduction exactly.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import Field

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType, animatable
from focusgraph.nodes._units import check_same_size

Edges = Literal["reflect", "replicate", "black"]
Interpolation = Literal["cubic", "lanczos", "linear"]

_BORDERS: dict[str, int] = {
    "reflect": cv2.BORDER_REFLECT,
    "replicate": cv2.BORDER_REPLICATE,
    "black": cv2.BORDER_CONSTANT,
}
_INTERPOLATIONS: dict[str, int] = {
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "linear": cv2.INTER_LINEAR,
}
# Below this effective scale the photo is first reduced by an integer factor (area
# averaging), so the Gaussian that follows never needs a sigma above ~2 pixels.
_REDUCE_BELOW = 0.25
# The extra zoom of `cover` is capped (a view centred on the photo's very edge would
# need an unbounded one).
_MAX_COVER_ZOOM = 256.0
# Prefilter sigmas below this change nothing visible (and 8-bit rounding would add noise).
_MIN_SIGMA = 0.05
# The prefilter's sigma reaches its full 0.5 / scale once the scale is this far below 1.
_PREFILTER_RAMP = 0.05


def prefilter_sigma(scale: float) -> float:
    """Gaussian sigma (source pixels) that low-passes a photo before it is shown at ``scale``.

    ``0.5 / scale`` (half an output pixel) for ``scale <= 0.95``, eased in from 0 at
    ``scale = 1`` by a smoothstep; 0 for ``scale >= 1``.
    """
    if scale >= 1.0:
        return 0.0
    ramp = min(1.0, (1.0 - scale) / _PREFILTER_RAMP)
    return 0.5 / scale * ramp * ramp * (3.0 - 2.0 * ramp)


def _turn(degrees: float) -> tuple[float, float]:
    """``(cos, sin)`` of ``degrees``, exact at multiples of 90 (so 90 degrees is a pure permutation)."""
    if degrees % 90 == 0:
        quarter = round(degrees / 90) % 4
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[quarter]
    radians = math.radians(degrees)
    return math.cos(radians), math.sin(radians)


def transform_matrix(
    width: int,
    height: int,
    zoom: float,
    pan: tuple[float, float] = (0.0, 0.0),
    rotation: float = 0.0,
    center: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """The 2x3 forward (photo to output) affine matrix of a transform, in pixel-centre coordinates.

    Parameters
    ----------
    width, height : int
        Size of the photo (and of the output).
    zoom : float
        Scale about the centre (``> 1`` pushes in).
    pan : tuple of float
        ``(pan_x, pan_y)``: where the view's centre moves over the photo, as fractions of
        its width and height (positive: right, down; the content moves the other way).
    rotation : float
        Degrees; positive turns the content counter-clockwise on screen.
    center : tuple of float
        Centre of zoom and rotation, relative (``(0.5, 0.5)``: the middle).

    Returns
    -------
    ndarray
        float64 ``(2, 3)``; with ``pan`` 0 it equals ``cv2.getRotationMatrix2D(c, rotation, zoom)``,
        and zoom 1, pan 0, rotation 0 gives exactly ``[[1, 0, 0], [0, 1, 0]]``.
    """
    cos, sin = _turn(rotation)
    alpha, beta = zoom * cos, zoom * sin
    cx, cy = center[0] * width - 0.5, center[1] * height - 0.5
    # x' = c + s R (x - c - p), with s R = [[alpha, beta], [-beta, alpha]] (OpenCV's convention).
    qx, qy = cx + pan[0] * width, cy + pan[1] * height
    return np.array(
        [
            [alpha, beta, cx - (alpha * qx + beta * qy)],
            [-beta, alpha, cy - (-beta * qx + alpha * qy)],
        ],
        dtype=np.float64,
    )


def cover_zoom(matrix: np.ndarray, width: int, height: int, center: tuple[float, float]) -> float:
    """Smallest extra zoom (about ``center``, >= 1) after which every output pixel samples inside the photo.

    "Inside" means between the centres of the photo's outermost pixels, so no output
    pixel mixes in anything beyond the photo's edge.

    Parameters
    ----------
    matrix : ndarray
        The forward ``(2, 3)`` matrix of :func:`transform_matrix`.
    width, height : int
        Size of the photo and of the output.
    center : tuple of float
        The relative centre the extra zoom turns about (the transform's ``center``).

    Returns
    -------
    float
        The factor, capped at 256 (a view centred on or beyond the photo's edge cannot be
        covered by any zoom).
    """
    cx, cy = center[0] * width - 0.5, center[1] * height - 0.5
    inverse = cv2.invertAffineTransform(matrix)
    # The photo point shown at the centre, and the output corners' offsets from it.
    qx, qy = inverse @ np.array([cx, cy, 1.0])
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [0.0, height - 1.0], [width - 1.0, height - 1.0]])
    offsets = (corners - (cx, cy)) @ inverse[:, :2].T  # photo-space vectors, shrink by 1/k
    needed = 1.0
    for axis, (low, high, centre) in enumerate(((0.0, width - 1.0, qx), (0.0, height - 1.0, qy))):
        room_high, room_low = high - centre, centre - low
        for offset in offsets[:, axis]:
            room = room_high if offset > 0 else room_low
            if abs(offset) <= 1e-9:
                continue
            if room <= 0:
                return _MAX_COVER_ZOOM
            needed = max(needed, abs(offset) / room)
    return min(needed, _MAX_COVER_ZOOM)


def _zoomed_about(
    matrix: np.ndarray, factor: float, center: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """``matrix`` followed by a zoom of ``factor`` about the relative ``center`` of the output."""
    cx, cy = center[0] * size[0] - 0.5, center[1] * size[1] - 0.5
    zoomed = matrix * factor
    zoomed[0, 2] += cx * (1.0 - factor)
    zoomed[1, 2] += cy * (1.0 - factor)
    return zoomed


def _prefiltered(
    plane: np.ndarray, matrix: np.ndarray, scale: float, border: int
) -> tuple[np.ndarray, np.ndarray]:
    """Low-pass ``plane`` for an output scale ``scale`` < 1; return it and the matrix from it.

    Below ``_REDUCE_BELOW`` the plane is area-reduced by an integer factor first; the
    returned matrix maps the reduced plane's pixel centres exactly where ``matrix``
    mapped the original's.
    """
    height, width = plane.shape[:2]
    if scale < _REDUCE_BELOW:
        factor = math.floor(0.5 / scale)
        small = (max(1, round(width / factor)), max(1, round(height / factor)))
        plane = cv2.resize(plane, small, interpolation=cv2.INTER_AREA)
        ax, ay = small[0] / width, small[1] / height
        # Reduced pixel centre u came from photo point (u + 0.5) / a - 0.5.
        undo = np.array([[1 / ax, 0.0, 0.5 / ax - 0.5], [0.0, 1 / ay, 0.5 / ay - 0.5], [0.0, 0.0, 1.0]])
        matrix = matrix @ undo
        scale_x, scale_y = scale / ax, scale / ay
    else:
        scale_x = scale_y = scale
    sigmas = [prefilter_sigma(s) for s in (scale_x, scale_y)]
    if max(sigmas) >= _MIN_SIGMA:
        plane = cv2.GaussianBlur(plane, (0, 0), sigmaX=sigmas[0], sigmaY=sigmas[1], borderType=border)
    return plane, matrix


def warp(
    plane: np.ndarray,
    matrix: np.ndarray,
    scale: float,
    interpolation: int,
    border: int,
) -> np.ndarray:
    """Warp an image or mask by the forward ``matrix`` to its own size, anti-aliased when ``scale`` < 1.

    Parameters
    ----------
    plane : ndarray
        ``(H, W, 3)`` uint8 image or ``(H, W)`` float32 mask.
    matrix : ndarray
        Forward ``(2, 3)`` affine matrix (pixel-centre coordinates).
    scale : float
        The matrix's isotropic scale; below 1 the plane is low-passed first (no moire).
    interpolation, border : int
        OpenCV interpolation flag and border mode (constant borders are 0).
    """
    height, width = plane.shape[:2]
    if scale < 1.0:
        plane, matrix = _prefiltered(plane, matrix, scale, border)
    return cv2.warpAffine(
        plane, matrix, (width, height), flags=interpolation, borderMode=border, borderValue=0
    )


class Transform(Node):
    """Zoom, pan and rotate an image and its mask (camera moves, parallax layers)."""

    type_name = "core.transform"
    description = "Zoom, pan and rotation of an image (and its mask); animatable camera moves."

    class Params(NodeParams):
        zoom: animatable(gt=0, le=16) = Field(  # type: ignore[valid-type]
            default=1.0, description="Scale about `center` (animatable): 1.05 is a 5% push-in, < 1 zooms out."
        )
        pan_x: animatable(ge=-1, le=1) = Field(  # type: ignore[valid-type]
            default=0.0,
            description="Move of the view over the photo, fraction of its width (animatable): "
            "positive moves the view right, so the content moves left.",
        )
        pan_y: animatable(ge=-1, le=1) = Field(  # type: ignore[valid-type]
            default=0.0,
            description="Move of the view over the photo, fraction of its height (animatable): "
            "positive moves the view down, so the content moves up.",
        )
        rotation: animatable(ge=-180, le=180) = Field(  # type: ignore[valid-type]
            default=0.0,
            description="Turn in degrees (animatable); positive turns the content counter-clockwise.",
        )
        center: list[Annotated[float, Field(ge=0, le=1)]] = Field(
            default=[0.5, 0.5],
            min_length=2,
            max_length=2,
            description="Centre [x, y] of zoom and rotation, relative to the frame ([0.5, 0.5]: the middle).",
        )
        edges: Edges = Field(
            default="replicate",
            description="What fills areas the photo no longer covers: `reflect`, `replicate` the edge "
            "pixels, or `black` (0 in the mask).",
        )
        cover: bool = Field(
            default=False,
            description="Add the smallest extra zoom that keeps the frame covered by the photo whatever the "
            "pan and rotation (edges then never show).",
        )
        interpolation: Interpolation = Field(
            default="cubic",
            description="`cubic` (default: sharp, no Lanczos ringing, faster), `lanczos` (sharpest, rings "
            "at hard edges) or `linear` (softest); masks always use linear.",
        )

    inputs = {
        "image": Port(PortType.IMAGE, "The image to move."),
        "mask": Port(PortType.MASK, "A mask (e.g. the subject's matte) moved with the image.", optional=True),
    }
    outputs = {
        "image": Port(PortType.IMAGE, "The moved image, the input's size."),
        "mask": Port(
            PortType.MASK,
            "The input mask moved the same way (linear, clipped to 0..1); without a mask input, the "
            "share of each pixel that shows the photo itself rather than filled edges (all 1 with `cover`).",
        ),
    }

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        image: np.ndarray = inputs["image"]
        mask: np.ndarray | None = inputs.get("mask")
        if mask is not None:
            check_same_size("image", image, "mask", mask)
        height, width = image.shape[:2]
        center = (float(params.center[0]), float(params.center[1]))
        matrix = transform_matrix(
            width, height, params.zoom, (params.pan_x, params.pan_y), params.rotation, center
        )
        scale = float(params.zoom)
        if params.cover:
            extra = cover_zoom(matrix, width, height, center)
            if extra > 1.0:
                matrix = _zoomed_about(matrix, extra, center, (width, height))
                scale *= extra
        if np.array_equal(matrix, np.eye(2, 3)):
            return {
                "image": image,
                "mask": mask if mask is not None else np.ones((height, width), np.float32),
            }
        # Under `cover` every sample lies inside the photo: the border only feeds the tails of
        # the interpolation kernel at the outermost pixels, where the edge pixel avoids a fringe.
        border = cv2.BORDER_REPLICATE if params.cover else _BORDERS[params.edges]
        moved = warp(image, matrix, scale, _INTERPOLATIONS[params.interpolation], border)
        if mask is not None:
            moved_mask = warp(mask.astype(np.float32, copy=False), matrix, scale, cv2.INTER_LINEAR, border)
        elif params.cover or cover_zoom(matrix, width, height, center) <= 1.0 + 1e-9:
            moved_mask = np.ones((height, width), np.float32)  # every sample inside the photo
        else:
            ones = np.ones((height, width), np.float32)
            moved_mask = warp(ones, matrix, scale, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
        return {"image": moved, "mask": np.clip(moved_mask, 0.0, 1.0, out=moved_mask)}
