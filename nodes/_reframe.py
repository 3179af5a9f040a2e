"""Output size and aspect for ``core.encode``: pure geometry and one resampling function.

A :class:`Plan` says how one source frame becomes one output frame:

1. crop the window ``crop`` (``x, y, width, height`` in source pixels; the whole frame
   unless the fit is ``cover``);
2. scale it to ``inner`` (``width, height``);
3. paste it at ``offset`` on a canvas of ``size`` filled with the background colour
   (bars only for ``contain``).

:func:`plan` computes it from the source size, the requested size/aspect/fit and the
subject's centre; :func:`apply_plan` runs it on an image. Every function here takes
plain numbers and arrays, so property tests can drive them directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import cv2
import numpy as np

Fit = Literal["cover", "contain"]

#: ``W:H`` with positive integers (``9:16``) or decimals (``1.85:1``), or ``source``.
ASPECT_PATTERN = r"^(source|\d+(\.\d+)?:\d+(\.\d+)?)$"

#: The largest aspect ratio (either way) accepted: 20:1.
MAX_ASPECT = 20.0


def parse_aspect(text: str) -> float | None:
    """The ratio width / height of ``"W:H"``, or ``None`` for ``"source"``.

    Raises
    ------
    ValueError
        If ``text`` is neither ``source`` nor ``W:H`` with positive numbers, or the
        ratio is more extreme than 20:1.
    """
    if text == "source":
        return None
    if not re.fullmatch(ASPECT_PATTERN, text):
        raise ValueError(f"aspect must be 'source' or W:H such as 9:16 or 1.85:1, got {text!r}")
    width, height = (float(part) for part in text.split(":"))
    if width <= 0 or height <= 0:
        raise ValueError(f"aspect needs positive sides, got {text!r}")
    ratio = width / height
    if not 1 / MAX_ASPECT <= ratio <= MAX_ASPECT:
        raise ValueError(f"aspect {text!r} is more extreme than {MAX_ASPECT:g}:1")
    return ratio


def even(value: float) -> int:
    """Nearest even integer to ``value`` (halves round up), at least 2."""
    return max(2, 2 * math.floor(value / 2 + 0.5))


def output_size(
    source: tuple[int, int],
    *,
    width: int = 0,
    height: int = 0,
    aspect: float | None = None,
    fit: Fit = "cover",
    even_sides: bool = False,
) -> tuple[int, int]:
    """The ``(width, height)`` of the output frame.

    Parameters
    ----------
    source : tuple of int
        ``(width, height)`` of the source frame.
    width, height : int
        Requested size; 0 follows the other side through the aspect (both 0: no
        scaling, the native size of the cropped or padded frame).
    aspect : float, optional
        Target width / height; ``None`` uses ``width / height`` when both are given,
        else the source's aspect.
    fit : {"cover", "contain"}
        Without a requested size, ``cover`` keeps the crop's pixels (the largest
        window of the aspect inside the frame) and ``contain`` the padded frame.
    even_sides : bool
        Round to even sides (video in 4:2:0). A side given explicitly that is odd is
        reduced by one; a derived side goes to the nearest even number.

    Returns
    -------
    tuple of int
        Positive sides (at least 1, or 2 with ``even_sides``).
    """
    src_w, src_h = source
    if even_sides:  # explicit sides first, so that a derived side follows the rounded one
        width, height = (max(2, side - side % 2) if side else 0 for side in (width, height))
    if width and height:
        return width, height
    ratio = aspect if aspect is not None else src_w / src_h
    if width:
        out_w, out_h = float(width), width / ratio
    elif height:
        out_w, out_h = height * ratio, float(height)
    elif aspect is None:
        out_w, out_h = float(src_w), float(src_h)
    elif (ratio > src_w / src_h) == (fit == "cover"):  # the window spans the frame's width
        out_w, out_h = float(src_w), src_w / ratio
    else:  # the window spans the frame's height
        out_w, out_h = src_h * ratio, float(src_h)
    if not even_sides:
        return max(1, round(out_w)), max(1, round(out_h))
    if not (width or height):  # native pixels: drop an odd last column or row, never enlarge
        native_w, native_h = round(out_w), round(out_h)
        return max(2, native_w - native_w % 2), max(2, native_h - native_h % 2)
    return (width or even(out_w)), (height or even(out_h))


def cover_window(
    source: tuple[int, int], ratio: float, centre: tuple[float, float] | None = None
) -> tuple[int, int, int, int]:
    """The largest window of aspect ``ratio`` inside ``source``, centred on ``centre``.

    Parameters
    ----------
    source : tuple of int
        ``(width, height)`` of the frame.
    ratio : float
        Window width / height.
    centre : tuple of float, optional
        ``(x, y)`` relative to the frame (0..1) to centre on; ``None``: the frame's centre.
        The window is shifted as little as needed to stay inside the frame.

    Returns
    -------
    tuple of int
        ``(x, y, width, height)`` with ``0 <= x``, ``x + width <= source width``, and the
        same vertically; sides at least 1.
    """
    src_w, src_h = source
    if ratio > src_w / src_h:
        win_w, win_h = src_w, min(src_h, max(1, round(src_w / ratio)))
    else:
        win_w, win_h = min(src_w, max(1, round(src_h * ratio))), src_h
    cx, cy = centre if centre is not None else (0.5, 0.5)
    x = min(max(round(cx * src_w - win_w / 2), 0), src_w - win_w)
    y = min(max(round(cy * src_h - win_h / 2), 0), src_h - win_h)
    return x, y, win_w, win_h


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Alpha-weighted centre ``(x, y)`` of ``mask`` relative to its size, or ``None`` if empty.

    Pixel ``i`` covers ``[i, i + 1)``, so a single lit pixel at column ``c`` gives
    ``(c + 0.5) / width``.
    """
    weights = np.clip(np.nan_to_num(mask.astype(np.float64, copy=False)), 0.0, 1.0)
    total = float(weights.sum())
    if total <= 0.0:
        return None
    height, width = weights.shape
    cx = (float(weights.sum(axis=0) @ np.arange(width)) / total + 0.5) / width
    cy = (float(weights.sum(axis=1) @ np.arange(height)) / total + 0.5) / height
    return cx, cy


@dataclass(frozen=True)
class Plan:
    """How a source frame becomes an output frame; see the module docstring.

    Attributes
    ----------
    source : tuple of int
        ``(width, height)`` of the source frames the plan was made for.
    crop : tuple of int
        ``(x, y, width, height)`` of the window taken from the source.
    inner : tuple of int
        ``(width, height)`` the window is scaled to.
    offset : tuple of int
        ``(x, y)`` of the scaled window on the canvas.
    size : tuple of int
        ``(width, height)`` of the output.
    """

    source: tuple[int, int]
    crop: tuple[int, int, int, int]
    inner: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]

    @property
    def is_identity(self) -> bool:
        """True when the output is the source unchanged."""
        return self.crop == (0, 0, *self.source) and self.size == self.source == self.inner

    @property
    def bars(self) -> tuple[int, int, int, int]:
        """Bar thickness ``(left, top, right, bottom)`` in output pixels (``contain``)."""
        (x, y), (iw, ih), (w, h) = self.offset, self.inner, self.size
        return x, y, w - iw - x, h - ih - y


def plan(
    source: tuple[int, int],
    *,
    width: int = 0,
    height: int = 0,
    aspect: float | None = None,
    fit: Fit = "cover",
    centre: tuple[float, float] | None = None,
    even_sides: bool = False,
) -> Plan:
    """Plan the reframing of frames of size ``source``; see :func:`output_size`.

    ``cover`` crops the largest window of the output's aspect centred on ``centre``
    (relative ``(x, y)``, e.g. the subject's :func:`mask_centroid`) and scales it to
    fill the output; ``contain`` scales the whole frame to fit inside the output and
    centres it, leaving bars. The source's aspect with no size requested is the
    identity (with ``even_sides``, the last odd column or row is cropped).
    """
    out_w, out_h = output_size(
        source, width=width, height=height, aspect=aspect, fit=fit, even_sides=even_sides
    )
    src_w, src_h = source
    if (out_w, out_h) == (src_w - src_w % 2, src_h - src_h % 2) and not (width or height or aspect):
        return Plan(source, (0, 0, out_w, out_h), (out_w, out_h), (0, 0), (out_w, out_h))
    ratio = out_w / out_h
    if fit == "cover":
        crop = cover_window(source, ratio, centre)
        return Plan(source, crop, (out_w, out_h), (0, 0), (out_w, out_h))
    scale = min(out_w / src_w, out_h / src_h)
    inner_w = min(out_w, max(1, round(src_w * scale)))
    inner_h = min(out_h, max(1, round(src_h * scale)))
    offset = ((out_w - inner_w) // 2, (out_h - inner_h) // 2)
    return Plan(source, (0, 0, src_w, src_h), (inner_w, inner_h), offset, (out_w, out_h))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to ``size`` (``width, height``): area averaging to shrink, Lanczos to enlarge."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    shrinking = size[0] <= width and size[1] <= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    return cv2.resize(image, size, interpolation=interpolation)


def apply_plan(image: np.ndarray, plan_: Plan, background: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Crop, scale and pad ``image`` (``(H, W, 3)`` uint8) as ``plan_`` says.

    Returns a new contiguous array of shape ``(size[1], size[0], 3)``, or a view of
    ``image`` when nothing but a crop is needed.
    """
    x, y, win_w, win_h = plan_.crop
    window = image[y : y + win_h, x : x + win_w]
    scaled = resize(window, plan_.inner)
    if plan_.inner == plan_.size:
        return scaled
    out_w, out_h = plan_.size
    canvas = np.empty((out_h, out_w, 3), np.uint8)
    canvas[:] = np.asarray(background, np.uint8)
    ox, oy = plan_.offset
    inner_w, inner_h = plan_.inner
    canvas[oy : oy + inner_h, ox : ox + inner_w] = scaled
    return canvas


def parse_colour(text: str) -> tuple[int, int, int]:
    """``(r, g, b)`` of a ``#rrggbb`` (or ``rrggbb``) colour."""
    digits = text.removeprefix("#")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def ratio_text(ratio: float) -> str:
    """A readable ``W:H`` for ``ratio`` (``0.5625`` -> ``9:16``)."""
    fraction = Fraction(ratio).limit_denominator(100)
    return f"{fraction.numerator}:{fraction.denominator}"
