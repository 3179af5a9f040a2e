"""``core.keyframe``: a Scalar that changes over time along eased keys.

Each key has a time and a value; ``ease`` on a key shapes the segment from that key
to the next. Before the first key the value is the first key's, after the last the
last key's. Named easings are the CSS ones (``ease-in`` is ``cubic-bezier(0.42, 0,
1, 1)`` and so on) and ``bezier`` takes the four CSS control numbers.

``space`` chooses what is interpolated between keys:

* ``linear``: the value itself.
* ``log``: ``log(value + log_offset)``; every halving of the value takes as long.
* ``clarity``: ``1 / (1 + (value / clarity_scale)**2)``, for a blur radius: the fine
  detail of a photo blurred by a radius ``r`` survives roughly in that proportion
  (``clarity_scale`` is the radius where half of it is left, about 1.5 px on screen),
  so the image visibly sharpens all through the segment. Interpolating the radius
  itself lingers near-invisibly at large radii and snaps sharp at the very end.

With ``time_units: fraction`` a frame's time is ``frame / frame_count``, so the last
frame of a clip sits at ``(N - 1) / N``: a key at 1.0 marks the end of the clip,
which the last frame approaches but does not reach.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal

from pydantic import Field, model_validator

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType

Ease = Literal["linear", "ease-in", "ease-out", "ease-in-out", "hold", "bezier"]

NAMED_BEZIERS: dict[str, tuple[float, float, float, float]] = {
    "ease-in": (0.42, 0.0, 1.0, 1.0),
    "ease-out": (0.0, 0.0, 0.58, 1.0),
    "ease-in-out": (0.42, 0.0, 0.58, 1.0),
}


class Key(NodeParams):
    """One key of the curve."""

    time: float = Field(ge=0, description="Time of the key, in `time_units`.")
    value: float = Field(description="Value at this key.")
    ease: Ease = Field(default="linear", description="Shape of the segment from this key to the next.")
    bezier: list[float] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="CSS cubic-bezier control points [x1, y1, x2, y2] when ease is `bezier`; x1, x2 in 0..1.",
    )

    @model_validator(mode="after")
    def _bezier_given(self) -> Key:
        if self.ease == "bezier":
            if self.bezier is None:
                raise ValueError("ease `bezier` needs bezier: [x1, y1, x2, y2]")
            if not (0 <= self.bezier[0] <= 1 and 0 <= self.bezier[2] <= 1):
                raise ValueError(f"bezier x1 and x2 must be within 0..1, got {self.bezier}")
        return self


def cubic_bezier(x1: float, y1: float, x2: float, y2: float, x: float) -> float:
    """CSS ``cubic-bezier(x1, y1, x2, y2)`` evaluated at progress ``x`` in [0, 1].

    Solves the curve's x(t) = x by bisection (60 halvings); exact at 0 and 1.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0

    def coordinate(t: float, p1: float, p2: float) -> float:
        return 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3

    low, high = 0.0, 1.0
    t = x
    for _ in range(60):
        value = coordinate(t, x1, x2) - x
        if abs(value) < 1e-12:
            break
        if value > 0:
            high = t
        else:
            low = t
        t = (low + high) / 2
    return coordinate(t, y1, y2)


@lru_cache(maxsize=64)
def _bezier_for(ease: str, control: tuple[float, ...] | None) -> tuple[float, float, float, float]:
    if ease == "bezier" and control is not None:
        return (control[0], control[1], control[2], control[3])
    return NAMED_BEZIERS[ease]


def ease_progress(key: Key, progress: float) -> float:
    """Shape a linear segment progress in [0, 1] by the key's easing."""
    if key.ease == "linear":
        return progress
    if key.ease == "hold":
        return 0.0 if progress < 1.0 else 1.0
    bezier = _bezier_for(key.ease, tuple(key.bezier) if key.bezier else None)
    return cubic_bezier(*bezier, progress)


class Keyframe(Node):
    """A Scalar animated along eased keys; link it to any animatable parameter."""

    type_name = "core.keyframe"
    description = "A value animated over time along eased keys (drives animatable parameters)."

    class Params(NodeParams):
        keys: list[Key] = Field(min_length=1, description="Keys in increasing time order.")
        time_units: Literal["seconds", "fraction"] = Field(
            default="seconds",
            description="Key times in seconds, or as a fraction (0..1) of the clip.",
        )
        space: Literal["linear", "log", "clarity"] = Field(
            default="linear",
            description="Interpolate the value, log(value + log_offset), or the clarity "
            "1 / (1 + (value / clarity_scale)^2) of a blur radius (even perceived clearing).",
        )
        log_offset: float = Field(
            default=1.0,
            gt=0,
            description="Offset added before taking the log in space `log` (values' units).",
        )
        clarity_scale: float = Field(
            default=1.5,
            gt=0,
            description="Radius at which half the detail is left, in space `clarity` (values' units).",
        )

        @model_validator(mode="after")
        def _ordered(self) -> Any:
            times = [key.time for key in self.keys]
            if any(later < earlier for earlier, later in pairwise(times)):
                raise ValueError(f"key times must not decrease, got {times}")
            if self.space == "log" and any(key.value + self.log_offset <= 0 for key in self.keys):
                raise ValueError("space `log` needs every value + log_offset > 0")
            if self.space == "clarity" and any(key.value < 0 for key in self.keys):
                raise ValueError("space `clarity` needs values >= 0 (blur radii)")
            return self

    outputs = {"value": Port(PortType.SCALAR, "The curve's value at the current frame.")}
    varies_per_frame = True

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        scale = ctx.duration if params.time_units == "fraction" else 1.0
        time = ctx.time / scale if scale else 0.0
        return {"value": value_at(params.keys, time, value_space(params))}


@dataclass(frozen=True)
class Space:
    """A monotone map of values in which keys are interpolated, with its inverse.

    ``bounded`` spaces cannot overshoot their keys (an overshooting bezier is clipped):
    past a key of radius 0 there is no clarity to reach.
    """

    forward: Callable[[float], float]
    inverse: Callable[[float], float]
    bounded: bool = False


LINEAR = Space(lambda value: value, lambda mapped: mapped)


def log_space(offset: float) -> Space:
    """``log(value + offset)``."""
    return Space(lambda value: math.log(value + offset), lambda mapped: math.exp(mapped) - offset)


def clarity_space(scale: float) -> Space:
    """``1 / (1 + (value / scale)**2)`` for values >= 0: 1 at 0, falling towards 0."""
    return Space(
        lambda value: 1.0 / (1.0 + (value / scale) ** 2),
        lambda mapped: scale * math.sqrt(max(1.0 / mapped - 1.0, 0.0)),
        bounded=True,
    )


def value_space(params: Any) -> Space:
    """The :class:`Space` chosen by a keyframe's parameters."""
    if params.space == "log":
        return log_space(params.log_offset)
    if params.space == "clarity":
        return clarity_space(params.clarity_scale)
    return LINEAR


def value_at(keys: list[Key], time: float, space: Space = LINEAR) -> float:
    """Value of the curve through ``keys`` at ``time`` (in the keys' time units).

    Segments are interpolated in ``space`` (default: the values themselves).
    """
    if time <= keys[0].time:
        return keys[0].value
    for start, end in pairwise(keys):
        if time < end.time:
            span = end.time - start.time
            eased = ease_progress(start, (time - start.time) / span)
            if eased <= 0.0:
                return start.value
            if space.bounded:
                eased = min(eased, 1.0)
            if eased == 1.0:
                return end.value
            low, high = space.forward(start.value), space.forward(end.value)
            value = space.inverse(low + (high - low) * eased)
            if space.bounded:  # the mapping loses digits near its ends: stay between the keys
                value = min(max(value, min(start.value, end.value)), max(start.value, end.value))
            return value
    return keys[-1].value
