"""Blur levels: an animated blur radius of a still image, as blends of a few cached blurs.

A rack focus blurs the very same image (the time-invariant plate) with a new radius every
frame. Instead of blurring it anew, :class:`Levels` keeps the image blurred (and encoded
to uint8 sRGB) at radii of a fixed ladder, :data:`LADDER`, and makes a frame by blending
the two levels that bracket its radius with :func:`cv2.addWeighted` on uint8 (the scalar
form of ``cv2.blendLinear``: no per-pixel weight arrays). Levels are computed lazily, on
first use; a radius moving monotonically computes each level once. Only the
:data:`CAPACITY` most recently used levels are kept, so memory is bounded (a level is one
full-size uint8 image) whatever the length of the clip. Where a level comes from is the
caller's ``compute``: ``Blur`` reads it from the node store when an earlier render kept it.

The ladder was chosen by measurement (``Blur`` documents the accuracy): blending two
levels in sRGB is accurate where the blur changes smoothly with the radius, so the rungs
are dense just above 0.5 px (a disc blur starts there, and a highlight spread onto a dark
neighbour changes its sRGB level fastest), then geometric with ratio 1.12 up to 12 px and
1.2 beyond (large blurs change slowly relative to their radius).
"""

from __future__ import annotations

import bisect
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

import cv2
import numpy as np

# Below 2.5 px: dense just above 0.5 and a rung on each kink of the disc kernel (where
# the disc's rim reaches the pixels at distance d: r = d - 0.5 for d = 1, sqrt 2, 2, ...).
_FINE: tuple[float, ...] = (
    0.25,
    0.5,
    0.505,
    0.51,
    0.52,
    0.54,
    0.57,
    0.61,
    0.66,
    0.72,
    0.79,
    0.85,
    0.9142,
    0.96,
    1.0,
)
_FINE += (1.1, 1.2, 1.32, 1.5, 1.62, 1.7361, 1.87, 2.0, 2.1, 2.2, 2.3284, 2.5, 2.6623, 2.85, 3.1056, 3.3, 3.5)
_RATIO_SMALL, _SWITCH, _RATIO_LARGE = 1.12, 12.0, 1.2
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
        self._last: list[tuple[float, np.ndarray]] = []  # the previous call's radius and result

    def __len__(self) -> int:
        return len(self._levels)

    def blur(
        self,
        sources: tuple[np.ndarray, ...],
        settings: Hashable,
        radius: float,
        compute: Callable[[float], np.ndarray],
        direct: Callable[[float, bool], np.ndarray],
    ) -> np.ndarray:
        """The sources blurred by ``radius`` px as uint8: two bracketing levels blended.

        Parameters
        ----------
        sources : tuple of ndarray
            The arrays the blur depends on, compared by identity with the previous call's.
        settings : hashable
            Everything else the blur depends on (except the radius), compared by value.
        radius : float
            Blur radius in pixels.
        compute : callable
            ``compute(rung)``: a missing level, the sources blurred by ``rung`` px.
        direct : callable
            ``direct(radius, first)``: the sources blurred without levels, used on the first
            call for these sources (``first``; levels would cost two blurs for what may be
            a single frame) and when neither level is cached and the radius moved by more
            than one rung since the previous call (a fast sweep).

        Returns
        -------
        ndarray
            The blur; the same radius asked again returns the same array. It may be a
            cached level itself: do not modify it.
        """
        if not self._holds(sources, settings):
            self._reset(sources, settings)
            return self._keep(radius, direct(radius, True))
        last = self._last[0][0]
        if radius == last:
            return self._last[0][1]
        lo, hi, weight = bracket(radius)
        if weight <= 1.0 / 512:  # the blend would round to the level itself
            return self._keep(radius, self._level(lo, compute))
        if weight >= 1.0 - 1.0 / 512:
            return self._keep(radius, self._level(hi, compute))
        jumped = abs(_position(radius) - _position(last)) > 1
        if jumped and lo not in self._levels and hi not in self._levels:
            return self._keep(radius, direct(radius, False))
        low = self._level(lo, compute)
        high = self._level(hi, compute)
        return self._keep(radius, cv2.addWeighted(low, 1.0 - weight, high, weight, 0.0))

    def _holds(self, sources: tuple[np.ndarray, ...], settings: Hashable) -> bool:
        """Whether these are the very sources (and equal settings) of the previous call."""
        return (
            bool(self._sources)
            and bool(self._last)
            and len(self._sources) == len(sources)
            and all(kept() is source for kept, source in zip(self._sources, sources, strict=True))
            and self._settings == settings
        )

    def _reset(self, sources: tuple[np.ndarray, ...], settings: Hashable) -> None:
        """Drop every level and remember ``sources`` (weakly) and ``settings`` for the next ones."""
        self._levels.clear()
        self._last.clear()
        levels, last = self._levels, self._last  # the callback must not keep ``self`` alive

        def forget(_: object) -> None:
            levels.clear()
            last.clear()

        self._sources = tuple(weakref.ref(source, forget) for source in sources)
        self._settings = settings

    def _keep(self, radius: float, result: np.ndarray) -> np.ndarray:
        self._last[:] = [(radius, result)]
        return result

    def _level(self, rung: float, compute: Callable[[float], np.ndarray]) -> np.ndarray:
        """The level at ``rung``, computed by ``compute(rung)`` unless cached."""
        found = self._levels.get(rung)
        if found is not None:
            self._levels.move_to_end(rung)
            return found
        while len(self._levels) >= self.capacity:
            self._levels.popitem(last=False)
        made = compute(rung)
        self.computed += 1
        self._levels[rung] = made
        return made


def _position(radius: float) -> int:
    """Index of the ladder's interval holding ``radius``."""
    return bisect.bisect_right(LADDER, radius)


def rung_count(low: float, high: float) -> int:
    """Rungs of :data:`LADDER` within ``[low, high]`` px (levels a sweep over that range computes)."""
    return bisect.bisect_right(LADDER, high) - bisect.bisect_left(LADDER, low)
