"""Grain from windows of a stored field, and the precomputed decontaminating composite.

The grain is checked statistically (deviation, mean, frame-to-frame correlation, seeds,
masks, subject and background alike); the composite is checked for exact equality with
the whole-frame formula, on random images and on a real photo's matte.
"""

from __future__ import annotations

import gc
import itertools
import weakref

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from photos import photo_path

from focusgraph.graph.node import FrameContext
from focusgraph.nodes.composite import (
    BackgroundPlan,
    Composite,
    replace_background,
    replace_background_direct,
)
from focusgraph.nodes.grain import (
    Grain,
    add_grain,
    changes_nothing,
    correlation_reach,
    estimate_noise,
    field_padding,
    grain_field,
    grain_window,
    padded_field,
    window_offset,
)
from focusgraph.nodes.inpaint import Inpaint

GREY = np.full((256, 256, 3), 128, np.uint8)


def grain_of(
    image: np.ndarray,
    frame: int,
    mask: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    **params: object,
) -> np.ndarray:
    """The grain the node adds to ``image`` at ``frame``, as float (output - input)."""
    inputs = {"image": image} | ({"mask": mask} if mask is not None else {})
    inputs |= {"reference": reference} if reference is not None else {}
    out = Grain().evaluate(Grain.Params(**params), inputs, FrameContext(frame, 30, 100))["image"]
    return out.astype(np.float64) - image


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def noisy_reference(sigma: float) -> np.ndarray:
    noise = np.random.default_rng(3).normal(0, sigma, (256, 256, 1))
    return np.clip(128 + np.repeat(noise, 3, axis=2), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- grain


@pytest.mark.parametrize("size", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("monochrome", [True, False])
@pytest.mark.parametrize("amount", [0.5, 1.0, 2.0])
def test_grain_deviation_matches_amount_relative_to_the_reference(
    size: float, monochrome: bool, amount: float
) -> None:
    reference = noisy_reference(5.0)
    expected = amount * estimate_noise(reference)
    image = np.full((512, 512, 3), 128, np.uint8)
    for frame in (0, 1, 7):
        grain = grain_of(image, frame, reference=reference, amount=amount, size=size, monochrome=monochrome)
        assert grain.std() == pytest.approx(expected, rel=0.05)
        assert abs(grain.mean()) < 0.05 * expected  # zero mean
        per_channel = grain.reshape(-1, 3).std(axis=0)
        assert per_channel == pytest.approx([expected] * 3, rel=0.05)  # every channel, colour or not
        if monochrome:
            assert np.array_equal(grain[..., 0], grain[..., 2])
        else:
            assert abs(correlation(grain[..., 0], grain[..., 1])) < 0.05


def test_stored_field_is_zero_mean_unit_deviation_in_every_window() -> None:
    for size in (1.0, 3.0):
        for frame in range(6):
            noise = grain_field((300, 400), size, 5, frame, 1)
            assert noise.shape == (300, 400, 1) and noise.dtype == np.float32
            assert abs(float(noise.mean())) < 0.03
            assert float(noise.std()) == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(("size", "shape"), [(1.0, (256, 256)), (2.0, (256, 256)), (4.0, (480, 640))])
def test_consecutive_frames_are_uncorrelated(size: float, shape: tuple[int, int]) -> None:
    image = np.full((*shape, 3), 128, np.uint8)
    grains = [grain_of(image, frame, amount=6.0, size=size, seed=2)[..., 0] for frame in range(24)]
    for before, after in itertools.pairwise(grains):
        assert abs(correlation(before, after)) < 0.05
        assert not np.array_equal(before, after)


@pytest.mark.parametrize("size", [1.0, 1.5, 2.0, 5.0, 8.0])
def test_consecutive_windows_are_further_apart_than_the_grain(size: float) -> None:
    pad, reach = field_padding(size), correlation_reach(size)
    offsets = [window_offset(size, seed, frame) for seed in (0, 1, 99) for frame in range(400)]
    assert all(0 <= y <= 2 * pad and 0 <= x <= 2 * pad for y, x in offsets)
    for seed in (0, 1, 99):
        for frame in range(399):
            (_, x0), (_, x1) = window_offset(size, seed, frame), window_offset(size, seed, frame + 1)
            assert abs(x1 - x0) >= reach
    assert len(set(offsets)) > 0.9 * len(offsets)  # spread, not a short cycle


def test_grain_is_reproducible_and_seeds_differ() -> None:
    first = grain_of(GREY, 10, amount=4.0, seed=7)
    padded_field.cache_clear()  # drawn again from the seed: the same frames
    assert np.array_equal(first, grain_of(GREY, 10, amount=4.0, seed=7))
    other_seed = grain_of(GREY, 10, amount=4.0, seed=8)
    assert not np.array_equal(first, other_seed)
    assert abs(correlation(first[..., 0], other_seed[..., 0])) < 0.05


def test_subject_and_background_get_grain_alike() -> None:
    image = np.full((256, 256, 3), 170, np.uint8)
    image[64:192, 80:176] = (90, 60, 50)  # a darker "subject"
    grain = grain_of(image, 3, amount=5.0)[..., 1]
    inside = np.zeros((256, 256), bool)
    inside[64:192, 80:176] = True
    assert grain[inside].std() == pytest.approx(grain[~inside].std(), rel=0.1)
    assert grain[inside].std() == pytest.approx(5.0, rel=0.05)


def test_grain_mask_scales_the_grain() -> None:
    mask = np.zeros((256, 256), np.float32)
    mask[:, 128:192] = 0.5
    mask[:, 192:] = 1.0
    grain = grain_of(GREY, 4, mask=mask, amount=6.0)
    assert np.all(grain[:, :128] == 0)
    assert grain[:, 128:192].std() == pytest.approx(3.0, rel=0.08)
    assert grain[:, 192:].std() == pytest.approx(6.0, rel=0.08)
    unmasked = grain_of(GREY, 4, amount=6.0)
    assert np.abs(grain[:, 192:] - unmasked[:, 192:]).max() <= 1  # the same pattern


def test_add_grain_reads_the_strided_window_as_the_formula() -> None:
    image = np.random.default_rng(2).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    window = grain_window((200, 300), 1.0, 4, 3, 3)
    assert not window.flags.c_contiguous and window.base is not None  # a view of the field
    out = add_grain(image, window, 7.0)
    expected = np.clip(np.rint(image + 7.0 * (window.astype(np.float64) - 128) / 32), 0, 255)
    assert np.abs(out - expected).max() <= 1 and np.mean(out != expected) < 1e-3


def test_stored_fields_are_small_bounded_and_read_only() -> None:
    field = padded_field(1080, 1920, 1.0, 0, 1)
    assert field.dtype == np.uint8 and field.shape == (1080 + 128, 1920 + 128, 3)
    assert not field.flags.writeable
    assert padded_field.cache_info().maxsize == 4


# ----------------------------------------------------------------------------- composite


class SparsePlan(BackgroundPlan):
    """A plan that never falls back to the whole-frame formula (to test the band math)."""

    DENSE_SHARE = 1.0


def alpha_values() -> st.SearchStrategy[float]:
    """Alpha values at and near the class boundaries, and anywhere between."""
    near = [0.0, 1.0, 0.49 / 255, 1 - 0.49 / 255, 0.5 / 255, 1 - 0.5 / 255, 1e-9, 1 - 1e-7, 0.5, 0.25]
    return st.one_of(st.sampled_from(near), st.floats(0, 1, width=32))


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.uint8, (6, 7, 3)),
    arrays(np.uint8, (6, 7, 3)),
    arrays(np.uint8, (6, 7, 3)),
    arrays(np.float32, (6, 7), elements=alpha_values()),
    arrays(np.bool_, (6, 7)),
)
def test_plan_equals_the_formula_exactly(
    photo: np.ndarray, plate: np.ndarray, background: np.ndarray, alpha: np.ndarray, same: np.ndarray
) -> None:
    plate[same] = photo[same]  # the plate equals the photo in some pixels, as outside a subject
    expected = replace_background_direct(photo, plate, background, alpha)
    assert np.array_equal(SparsePlan(photo, plate, alpha).apply(photo, background), expected)
    for _ in range(3):  # first the formula, then the cached plan: the same pixels
        assert np.array_equal(replace_background(photo, plate, background, alpha), expected)
    independent = np.rint((background.astype(np.float32) - plate) * (1 - alpha)[..., None])
    assert np.array_equal(expected, np.clip(photo + independent, 0, 255).astype(np.uint8))
    unchanged = replace_background_direct(photo, plate, plate, alpha)  # the plate itself as background
    for _ in range(2):  # the cached plan then returns the photo, NaN alphas aside
        assert np.array_equal(replace_background(photo, plate, plate, alpha), unchanged)


def test_a_tie_rounds_the_change_not_the_sum() -> None:
    # photo 1 + change (3 - 1) * 0.75 = 1.5: the change rounds (half to even) to 2, giving 3,
    # whatever the OpenCV version (5's mixed-type add would round the sum 2.5 to 2).
    photo = np.full((4, 4, 3), 1, np.uint8)
    background = np.full((4, 4, 3), 3, np.uint8)
    alpha = np.full((4, 4), 0.25, np.float32)
    assert (replace_background_direct(photo, photo, background, alpha) == 3).all()
    assert (SparsePlan(photo, photo, alpha).apply(photo, background) == 3).all()


def test_the_plate_itself_as_the_background_gives_back_the_photo_object() -> None:
    rng = np.random.default_rng(2)
    photo, plate = (rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(2))
    alpha = np.zeros((30, 40), np.float32)
    alpha[8:20, 10:30] = 1.0
    alpha[7, 10:30] = 0.5
    replace_background(photo, plate, plate.copy(), alpha)  # the first call builds no plan
    out = replace_background(photo, plate, plate, alpha)
    assert out is photo and np.array_equal(out, replace_background_direct(photo, plate, plate, alpha))
    nan_alpha = alpha.copy()  # a NaN alpha gives 0 there by the formula, not the photo
    nan_alpha[0, 0] = np.nan
    replace_background(photo, plate, plate, nan_alpha)
    nan_out = replace_background(photo, plate, plate, nan_alpha)
    assert nan_out is not photo
    assert np.array_equal(nan_out, replace_background_direct(photo, plate, plate, nan_alpha))


def test_plan_on_a_real_photo_matte_equals_the_formula() -> None:
    photo = cv2.cvtColor(cv2.imread(str(photo_path("girl-2.jpg"))), cv2.COLOR_BGR2RGB)
    cutout = cv2.imread(str(photo_path("girl-2.reference-cutout.png")), cv2.IMREAD_UNCHANGED)
    rng = np.random.default_rng(8)
    for alpha in (
        cutout[..., 3].astype(np.float32) / 255,
        cv2.GaussianBlur(cutout[..., 3].astype(np.float32) / 255, (0, 0), 2.0),  # feathered, never 1
    ):
        params = Inpaint.Params(threshold=0.01, full_at=0.3, grow=0)
        plate = Inpaint().evaluate(params, {"image": photo, "mask": alpha}, FrameContext(0, 30, 1))["image"]
        plan = BackgroundPlan(photo, plate, alpha)
        assert not plan.dense and plan.band_share < 0.15
        for radius in (0.0, 3.0, 12.0):
            blurred = cv2.GaussianBlur(plate, (0, 0), radius) if radius else plate
            noise = rng.normal(0, 3, blurred.shape)
            background = np.clip(blurred + noise, 0, 255).astype(np.uint8)
            expected = replace_background_direct(photo, plate, background, alpha)
            assert np.array_equal(plan.apply(photo, background), expected)
        assert np.array_equal(plan.apply(photo, plate), photo)  # the cleared frame is the photo


def test_dense_band_uses_the_formula() -> None:
    rng = np.random.default_rng(1)
    photo, plate, background = (rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(3))
    alpha = rng.random((40, 50), dtype=np.float32)
    plan = BackgroundPlan(photo, plate, alpha)
    assert plan.dense
    with pytest.raises(ValueError, match="dense"):
        plan.apply(photo, background)
    expected = replace_background_direct(photo, plate, background, alpha)
    for _ in range(2):
        assert np.array_equal(replace_background(photo, plate, background, alpha), expected)


def test_composite_node_across_frames_and_the_cache_keeps_nothing_alive() -> None:
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    alpha = np.zeros((64, 80), np.float32)
    alpha[16:48, 20:60] = 1.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2.0)
    alpha[alpha < 1e-3] = 0
    plate = photo.copy()
    plate[alpha > 0] = (40, 90, 200)
    node, params = Composite(), Composite.Params()
    for frame in range(4):
        background = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
        inputs = {"foreground": photo, "background": background, "mask": alpha, "plate": plate}
        out = node.evaluate(params, inputs, FrameContext(frame, 30, 4))["image"]
        assert np.array_equal(out, replace_background_direct(photo, plate, background, alpha))
    alive = weakref.ref(photo)
    del photo, inputs
    gc.collect()
    assert alive() is None


def test_grain_under_half_a_level_everywhere_is_skipped_and_changes_nothing() -> None:
    # Every 8-bit value against the stored field's extreme levels (1 and 255) and its centre.
    image = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    window = np.choose(np.arange(256).reshape(16, 16, 1) % 3, [1, 128, 255]).astype(np.uint8).repeat(3, 2)
    mask = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(16, 16)
    largest = 0.5 * 32 / 127 * 0.99  # its largest offset, 127 / 32 deviations, is just under 0.5
    assert changes_nothing(largest) and changes_nothing(0.01)
    assert np.array_equal(add_grain(image, window, largest), image)
    assert np.array_equal(add_grain(image, window, largest, np.ones((16, 16), np.float32)), image)
    assert np.array_equal(add_grain(image, window, largest, mask), image)
    just_visible = 0.5 * 32 / 127 * 1.01
    assert not changes_nothing(just_visible)
    assert not np.array_equal(add_grain(image, window, just_visible), image)
    noise = np.random.default_rng(5).normal(0.0, 2.0, (128, 128, 1)).repeat(3, axis=2)
    reference = np.clip(128 + noise, 0, 255).astype(np.uint8)
    ctx = FrameContext(frame=3, fps=30, frame_count=10)
    deviation = 0.02 * estimate_noise(reference)
    assert changes_nothing(deviation) and deviation > 0.01
    node = Grain().evaluate(Grain.Params(amount=0.02), {"image": image, "reference": reference}, ctx)
    assert node["image"] is image  # skipped: the very input comes back
    seen = Grain().evaluate(Grain.Params(amount=1.0), {"image": image, "reference": reference}, ctx)
    assert not np.array_equal(seen["image"], image)
