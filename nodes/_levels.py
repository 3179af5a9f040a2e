"""Blur levels: an animated blur radius of a still image, as blends of a few cached blurs.

A rack focus blurs the very same image (the time-invariant plate) with a new radius every
frame. Instead of blurring it anew, :class:`Levels` keeps the image blurred (and encoded
to uint8 sRGB) at radii of a fixed ladder, :data:`LADDER`, and makes a frame by blending
the two levels that bracket its radius with :func:`cv2.addWeighted` on uint8 (the scalar
form of ``cv2.blendLinear``: no per-pixel weight arrays). Levels are computed lazily, on
first use; a radius moving monotonically computes each level once. Only the
:data:`CAPACITY` most recently used levels are kept, so memory is bounded (a level is one
full-size uint8 image) whatever the length of the clip.

The ladder was chosen by measurement (``Blur`` documents the accuracy): blending two
levels in sRGB is accurate where the blur changes smoothly with the radius, so the rungs
are dense just above 0.5 px (a disc blur starts there, and a highlight spread onto a dark
neighbour changes its sRGB level fastest), then geometric with ratio 1.15 up to 12 px and
1.3 beyond (large blurs change slowly relative to their radius).
"""

from __future__ import annotations

import bisect
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

import cv2
import numpy as np

_FINE = (0.25, 0.5, 0.51, 0.52, 0.54, 0.57, 0.61, 0.66, 0.72, 0.79, 0.87, 0.94, 1.0)
_RATIO_SMALL, _SWITCH, _RATIO_LARGE = 1.15, 12.0, 1.3
_TOP = 4000.0  # beyond any radius a Blur accepts (2000 px, or a fraction of a side)


def _build_ladder() -> tuple[float, ...]:
    rungs = list(_FINE)
    while rungs[-1] < _TOP:
        ratio = _RATIO_SMALL if rungs[-1] < _SWITCH else _RATIO_LARGE
        rungs.append(round(rungs[-1] * ratio, 4))
    return tuple(rungs)


LADDER: tuple[float, ...] = _build_ladder()
"""Radii (px) of the blur levels, increasing."""

CAPACITY = 4
"""Most levels kept at once: the two bracketing the current radius and the two before."""


def bracket(radius: float) -> tuple[float, float, float]:
    """The rungs ``lo <= radius <= hi`` of :data:`LADDER` and the weight of ``hi`` in the blend.

    A radius on a rung (or outside the ladder) gives that rung (or the nearest) with
    ``lo == hi``.
    """
    index = bisect.bisect_right(LADDER, radius) - 1
    if index < 0:
        return LADDER[0], LADDER[0], 0.0
    lo = LADDER[index]
    if lo == radius or index == len(LADDER) - 1:
        return lo, lo, 0.0
    hi = LADDER[index + 1]
    return lo, hi, (radius - lo) / (hi - lo)


class Levels:
    """Cached blurs of one source (image arrays, by identity) with one set of settings.

    The sources are held by weak references only; when one is freed, its levels go too.

    Attributes
    ----------
    computed : int
        How many levels have been computed (for tests and diagnostics).
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.computed = 0
        self._sources: tuple[weakref.ref[np.ndarray], ...] = ()
        self._settings: Hashable = None
        self._levels: OrderedDict[float, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._levels)

    def holds(self, sources: tuple[np.ndarray, ...], settings: Hashable) -> bool:
        """Whether these are the very sources (and equal settings) the levels were made for."""
        return (
            bool(self._sources)
            and len(self._sources) == len(sources)
            and all(kept() is source for kept, source in zip(self._sources, sources, strict=True))
            and self._settings == settings
        )

    def reset(self, sources: tuple[np.ndarray, ...], settings: Hashable) -> None:
        """Drop every level and remember ``sources`` (weakly) and ``settings`` for the next ones."""
        self._levels.clear()
        levels = self._levels  # the callback must not keep ``self`` (or a source) alive
        self._sources = tuple(weakref.ref(source, lambda _: levels.clear()) for source in sources)
        self._settings = settings

    def level(self, radius: float, compute: Callable[[float], np.ndarray]) -> np.ndarray:
        """The level at rung ``radius``, computed by ``compute(radius)`` unless cached."""
        found = self._levels.get(radius)
        if found is not None:
            self._levels.move_to_end(radius)
            return found
        while len(self._levels) >= self.capacity:
            self._levels.popitem(last=False)
        made = compute(radius)
        self.computed += 1
        self._levels[radius] = made
        return made

    def blend(self, radius: float, compute: Callable[[float], np.ndarray]) -> np.ndarray:
        """The image blurred by ``radius``: the two bracketing levels blended (uint8).

        ``compute(rung)`` makes a missing level: the source blurred by ``rung`` as uint8.
        The result may be a cached level itself (a radius on a rung): do not modify it.
        """
        lo, hi, weight = bracket(radius)
        if weight <= 1.0 / 512:  # the blend would round to the level itself
            return self.level(lo, compute)
        if weight >= 1.0 - 1.0 / 512:
            return self.level(hi, compute)
        low = self.level(lo, compute)
        high = self.level(hi, compute)
        return cv2.addWeighted(low, 1.0 - weight, high, weight, 0.0)


def rung_count(low: float, high: float) -> int:
    """Rungs of :data:`LADDER` within ``[low, high]`` px (levels a sweep over that range computes)."""
    return bisect.bisect_right(LADDER, high) - bisect.bisect_left(LADDER, low)
