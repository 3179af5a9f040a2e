"""Keyframe curves hit their keys exactly and are monotone where they should be."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusgraph.graph.node import FrameContext
from focusgraph.nodes.keyframe import Key, Keyframe, Space, clarity_space, cubic_bezier, log_space, value_at

EASES = ["linear", "ease-in", "ease-out", "ease-in-out", "hold"]
values = st.floats(min_value=-1000, max_value=1000, allow_nan=False)


@given(st.sampled_from(EASES), values, values, st.floats(min_value=0.01, max_value=100))
def test_keys_are_hit_exactly(ease: str, first: float, second: float, span: float) -> None:
    keys = [Key(time=1.0, value=first, ease=ease), Key(time=1.0 + span, value=second)]
    assert value_at(keys, 1.0) == first
    assert value_at(keys, 1.0 + span) == second
    assert value_at(keys, 0.0) == first
    assert value_at(keys, 1000.0) == second


@given(st.sampled_from(EASES), values, values, st.lists(st.floats(0, 1), min_size=2, max_size=20))
def test_segments_are_monotone(ease: str, first: float, second: float, times: list[float]) -> None:
    keys = [Key(time=0.0, value=first, ease=ease), Key(time=1.0, value=second)]
    samples = [value_at(keys, t) for t in sorted(times)]
    low, high = min(first, second), max(first, second)
    assert all(low - 1e-9 <= v <= high + 1e-9 for v in samples)
    steps = [b - a for a, b in pairwise(samples)]
    sign = 1 if second >= first else -1
    assert all(sign * step >= -1e-9 for step in steps)


@pytest.mark.parametrize("space", [log_space(1.0), clarity_space(0.002), clarity_space(1.5)])
@given(values, values, st.lists(st.floats(0, 1), min_size=2, max_size=20))
def test_value_spaces_are_monotone_and_hit_keys(
    space: Space, first: float, second: float, times: list[float]
) -> None:
    first, second = abs(first), abs(second)
    keys = [Key(time=0.0, value=first, ease="ease-in-out"), Key(time=1.0, value=second)]
    samples = [value_at(keys, t, space) for t in sorted(times)]
    sign = 1 if second >= first else -1
    assert all(sign * (b - a) >= -1e-9 * max(first, second, 1.0) for a, b in pairwise(samples))
    assert value_at(keys, 0.0, space) == first and value_at(keys, 1.0, space) == second


def test_clarity_space_spends_the_segment_on_the_radii_that_show() -> None:
    """From 20 px to 0: the clarity 1 / (1 + (r / 1.5)^2) rises evenly; the radius does not."""
    keys = [Key(time=0.0, value=20.0), Key(time=1.0, value=0.0)]
    space = clarity_space(1.5)
    clarity = [space.forward(value_at(keys, t / 10, space)) for t in range(11)]
    steps = [b - a for a, b in pairwise(clarity)]
    assert max(steps) - min(steps) < 1e-9  # even steps of clarity
    assert value_at(keys, 0.5, space) == pytest.approx(1.5 * math.sqrt(1 / 0.5028 - 1), rel=0.01)
    assert value_at(keys, 0.5, space) < 2.0  # half-way in time, the radius is already small


def test_css_easings_match_reference_values() -> None:
    # Symmetric ease-in-out passes through the middle; ease-in starts slow, ease-out fast.
    assert cubic_bezier(0.42, 0, 0.58, 1, 0.5) == pytest.approx(0.5, abs=1e-9)
    assert cubic_bezier(0.42, 0, 1, 1, 0.5) == pytest.approx(0.3153, abs=1e-3)
    assert cubic_bezier(0, 0, 0.58, 1, 0.5) == pytest.approx(0.6847, abs=1e-3)
    assert cubic_bezier(0.25, 0.1, 0.25, 1, 0.0) == 0.0 and cubic_bezier(0.25, 0.1, 0.25, 1, 1.0) == 1.0


def test_hold_and_custom_bezier() -> None:
    keys = [Key(time=0, value=10, ease="hold"), Key(time=1, value=20)]
    assert value_at(keys, 0.999) == 10 and value_at(keys, 1.0) == 20
    overshoot = [
        Key(time=0, value=0, ease="bezier", bezier=[0.3, 1.5, 0.7, 1.0]),
        Key(time=1, value=1),
    ]
    assert max(value_at(overshoot, t / 100) for t in range(101)) > 1.0
    with pytest.raises(ValueError, match="bezier"):
        Key(time=0, value=0, ease="bezier")


def test_node_uses_fraction_of_clip() -> None:
    params = Keyframe.Params(
        keys=[Key(time=0.5, value=8.0, ease="linear"), Key(time=1.0, value=0.0)],
        time_units="fraction",
    )
    node = Keyframe()
    at = [node.evaluate(params, {}, FrameContext(frame, 10, 20))["value"] for frame in (0, 10, 15, 19)]
    assert at[0] == 8.0 and at[1] == 8.0 and at[2] == pytest.approx(4.0) and 0 < at[3] < 4.0


def test_keys_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="must not decrease"):
        Keyframe.Params(keys=[Key(time=1, value=0), Key(time=0, value=1)])


def test_overshooting_bezier_in_clarity_space_stays_between_the_keys() -> None:
    keys = [Key(time=0, value=0.0, ease="bezier", bezier=[0.3, 0.0, 0.7, 1.3]), Key(time=1, value=0.03)]
    samples = [value_at(keys, t / 40, clarity_space(0.0015)) for t in range(41)]
    assert all(0.0 <= value <= 0.03 for value in samples)
    assert all(b >= a - 1e-12 for a, b in pairwise(samples))  # no snap back to sharp mid-way
