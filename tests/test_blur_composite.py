"""Pixel math of Blur, Composite, Feather, Inpaint and Grain."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from focusgraph.graph.errors import GraphValidationError
from focusgraph.graph.node import FrameContext
from focusgraph.nodes import inpaint as inpaint_module
from focusgraph.nodes.blur import (
    Blur,
    aperture_kernel,
    disc_kernel,
    highlight_curve,
    srgb_to_linear,
)
from focusgraph.nodes.composite import Composite, over, replace_background
from focusgraph.nodes.feather import Feather
from focusgraph.nodes.grain import Grain, estimate_noise
from focusgraph.nodes.inpaint import Inpaint, inpaint, nearest_fill

CTX = FrameContext(frame=0, fps=30, frame_count=1)
rng = np.random.default_rng(1)
PHOTO = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)


def blur(
    image: np.ndarray, radius: float, kind: str = "lens", mask: np.ndarray | None = None, **extra: object
) -> np.ndarray:
    inputs = {"image": image} | ({"mask": mask} if mask is not None else {})
    params = Blur.Params(kind=kind, radius=radius, units="px", **extra)
    return Blur().evaluate(params, inputs, CTX)["image"]


@pytest.mark.parametrize("kind", ["lens", "gaussian"])
def test_blur_radius_zero_is_identity(kind: str) -> None:
    assert np.array_equal(blur(PHOTO, 0.0, kind), PHOTO)


@pytest.mark.parametrize("kind", ["lens", "gaussian"])
@pytest.mark.parametrize("radius", [1.5, 6.0, 40.0])
def test_blur_keeps_flat_colour_and_smooths(kind: str, radius: float) -> None:
    flat = np.full((40, 60, 3), (200, 40, 90), np.uint8)
    assert np.abs(blur(flat, radius, kind).astype(int) - flat).max() <= 1
    assert blur(PHOTO, radius, kind).astype(float).std() < PHOTO.astype(float).std()


def radial_profile(image: np.ndarray, centre: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every pixel from ``centre`` and its value in linear light."""
    y, x = np.indices(image.shape[:2])
    return np.hypot(x - centre[0], y - centre[1]), srgb_to_linear(image[..., 0])


@pytest.mark.parametrize("radius", [10.0, 24.0])
def test_bright_pixel_becomes_flat_topped_disc_of_the_radius(radius: float) -> None:
    dark = np.zeros((121, 121, 3), np.uint8)
    dark[60, 60] = 255
    distance, light = radial_profile(blur(dark, radius, "lens"), (60, 60))
    top = light[distance < 0.6 * radius]
    assert top.min() > 0.85 * top.max()  # flat top, not a Gaussian peak
    # Nothing beyond the rim (large radii are finished at a sixth of the radius: a softer rim).
    assert light[distance > radius * (1 + 1 / 6) + 2].max() == 0.0
    # The rim (half of the top's level) lies at the requested radius.
    rim = distance[(light > 0.4 * top.mean()) & (light < 0.6 * top.mean())]
    assert abs(float(np.median(rim)) - radius) <= 1.5


def test_highlight_boost_brightens_bokeh_of_white_only() -> None:
    scene = np.full((81, 81, 3), 40, np.uint8)
    scene[38:43, 38:43] = 255  # a clipped highlight
    scene[10:15, 10:15] = 200  # a bright but unclipped patch
    boosted, plain = (srgb_to_linear(blur(scene, 10.0, "lens", highlights=h)) for h in (2.0, 0.0))

    def excess(light: np.ndarray, y: int, x: int) -> float:
        """Light above the surrounding level within the bokeh around (x, y)."""
        return float((light[y - 12 : y + 13, x - 12 : x + 13] - light[60, 60]).sum())

    assert excess(boosted, 40, 40) == pytest.approx(3.0 * excess(plain, 40, 40), rel=0.1)
    assert excess(boosted, 12, 12) == pytest.approx(excess(plain, 12, 12), rel=0.02)


@pytest.mark.parametrize("radius", [5.0, 30.0])
def test_point_light_takes_the_aperture_shape_upright(radius: float) -> None:
    dark = np.zeros((101, 101, 3), np.uint8)
    dark[50, 50] = 255
    light = srgb_to_linear(blur(dark, radius, "lens", blades=3))[..., 0] > 0
    rows = np.flatnonzero(light.any(axis=1))
    top, bottom = light[rows[0] + 1].sum(), light[rows[-1] - 1].sum()
    assert top < bottom  # a triangle with its vertex at the top, as the kernel is drawn


def test_polygonal_aperture_has_blades_and_rotation() -> None:
    kernel = aperture_kernel(40.0, blades=6)
    centre = kernel.shape[0] // 2
    assert kernel[centre - 38, centre] > 0  # a vertex at the top reaches the radius
    assert kernel[centre, centre + 36] == 0  # a flat side at 40 * cos(30 deg) = 34.6
    turned = aperture_kernel(40.0, blades=6, rotation=30.0)
    assert turned[centre - 38, centre] == 0 and turned[centre, centre + 38] > 0
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="3 and 16"):
        Blur.Params(blades=2)


def test_disc_kernel_is_normalised() -> None:
    for radius in (0.3, 2.0, 7.5):
        assert disc_kernel(radius).sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("gain", [0.0, 2.0, 8.0])
def test_linear_light_round_trip_is_exact_with_and_without_highlight_boost(gain: float) -> None:
    levels = np.arange(256, dtype=np.uint8)
    curve = highlight_curve(gain, 0.9)
    assert np.array_equal(curve.compress_to_srgb(curve.expand(levels)), levels)


def test_holdout_keeps_subject_colour_out_of_background() -> None:
    image = np.full((60, 80, 3), (20, 120, 20), np.uint8)
    mask = np.zeros((60, 80), np.float32)
    image[20:40, 30:50] = (250, 10, 10)
    mask[20:40, 30:50] = 1.0
    plain, held = blur(image, 12.0, mask=None), blur(image, 12.0, mask=mask)
    ring = (slice(14, 19), slice(30, 50))  # just above the red square
    assert plain[ring][..., 0].mean() > 60  # ordinary blur bleeds red (the halo)
    assert held[ring][..., 0].mean() < 25  # holdout blur does not


@settings(max_examples=50)
@given(arrays(np.uint8, (8, 9, 3)), arrays(np.uint8, (8, 9, 3)), st.floats(0, 1))
def test_composite_alpha_identities(fg: np.ndarray, bg: np.ndarray, a: float) -> None:
    ones, zeros = np.ones((8, 9), np.float32), np.zeros((8, 9), np.float32)
    assert np.array_equal(over(fg, bg, ones), fg)
    assert np.array_equal(over(fg, bg, zeros), bg)
    assert np.array_equal(over(fg, fg, np.full((8, 9), a, np.float32)), fg)  # no darkened fringe
    mixed = over(fg, bg, np.full((8, 9), a, np.float32)).astype(float)
    expected = fg * a + bg * (1 - a)
    assert np.abs(mixed - expected).max() <= 1.0


@settings(max_examples=50)
@given(arrays(np.uint8, (6, 7, 3)), arrays(np.uint8, (6, 7, 3)), arrays(np.uint8, (6, 7, 3)), st.floats(0, 1))
def test_decontaminating_composite_identities(
    photo: np.ndarray, plate: np.ndarray, background: np.ndarray, a: float
) -> None:
    alpha = np.full((6, 7), a, np.float32)
    assert np.array_equal(replace_background(photo, plate, plate, alpha), photo)  # background unchanged
    assert np.array_equal(replace_background(photo, plate, background, np.ones((6, 7), np.float32)), photo)
    where_no_subject = replace_background(photo, photo, background, np.zeros((6, 7), np.float32))
    assert np.array_equal(where_no_subject, background)
    expected = np.clip(photo + (1 - a) * (background.astype(float) - plate), 0, 255)
    assert np.abs(replace_background(photo, plate, background, alpha) - expected).max() <= 1.0


def test_decontamination_removes_the_old_background_from_a_soft_edge() -> None:
    subject, old, new = np.array([200.0, 40, 40]), np.array([20.0, 200, 20]), np.array([30.0, 30, 220])
    alpha = np.full((4, 4), 0.4, np.float32)
    photo = np.round(alpha[..., None] * subject + (1 - alpha[..., None]) * old).astype(np.uint8)
    plate = np.full((4, 4, 3), old, np.uint8)
    background = np.full((4, 4, 3), new, np.uint8)
    truth = alpha[..., None] * subject + (1 - alpha[..., None]) * new
    assert np.abs(replace_background(photo, plate, background, alpha) - truth).max() <= 1.0
    assert np.abs(over(photo, background, alpha) - truth).max() > 40  # plain alpha keeps green


def test_composite_refuses_mismatched_sizes() -> None:
    with pytest.raises(GraphValidationError, match="64x48"):
        Composite().evaluate(
            Composite.Params(),
            {"foreground": PHOTO, "background": PHOTO[:10], "mask": np.zeros((48, 64), np.float32)},
            CTX,
        )


def test_feather_zero_is_identity_and_grow_dilates() -> None:
    mask = np.zeros((50, 50), np.float32)
    mask[20:30, 20:30] = 1
    feather = Feather()
    same = feather.evaluate(Feather.Params(radius=0, grow=0, units="px"), {"mask": mask}, CTX)["mask"]
    assert np.array_equal(same, mask)
    grown = feather.evaluate(Feather.Params(radius=0, grow=3, units="px"), {"mask": mask}, CTX)["mask"]
    shrunk = feather.evaluate(Feather.Params(radius=0, grow=-3, units="px"), {"mask": mask}, CTX)["mask"]
    assert grown.sum() > mask.sum() > shrunk.sum() > 0
    soft = feather.evaluate(Feather.Params(radius=4, units="px"), {"mask": mask}, CTX)["mask"]
    assert 0 < soft[20, 17] < 1 and soft[25, 25] > 0.9 and soft.dtype == np.float32


def test_inpaint_leaves_unmasked_pixels_untouched() -> None:
    image = PHOTO.copy()
    mask = np.zeros((48, 64), np.float32)
    mask[10:30, 20:40] = 1.0
    params = Inpaint.Params(grow=2, units="px")
    out = Inpaint().evaluate(params, {"image": image, "mask": mask}, CTX)
    filled = out["mask"] > 0.5
    assert filled[10:30, 20:40].all() and filled.sum() > mask.sum()
    assert np.array_equal(out["image"][~filled], image[~filled])
    assert np.array_equal(image, PHOTO)  # the input is not modified in place


@pytest.mark.parametrize("method", ["telea", "navier-stokes"])
@pytest.mark.parametrize("work_size", [1280, 32])
def test_inpaint_continues_the_background_and_its_edges(method: str, work_size: int) -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[:32] = (200, 0, 0)  # a horizon: red above, blue below
    image[32:] = (0, 0, 200)
    image[20:44, 20:44] = (0, 255, 0)  # the "subject"
    mask = np.zeros((64, 64), np.float32)
    mask[20:44, 20:44] = 1.0
    params = Inpaint.Params(grow=0, method=method, work_size=work_size)
    out = Inpaint().evaluate(params, {"image": image, "mask": mask}, CTX)["image"].astype(int)
    assert out[20:44, 20:44, 1].max() < 10  # no subject colour left
    # The edge carries on through the hole (a smooth fill would leave purple in the middle).
    upper, lower = out[20:27, 20:44].mean(axis=(0, 1)), out[37:44, 20:44].mean(axis=(0, 1))
    assert upper[0] > 170 and upper[2] < 30
    assert lower[2] > 150 and lower[0] < 50


def test_grain_amount_and_determinism() -> None:
    grey = np.full((128, 128, 3), 128, np.uint8)
    grain = Grain()
    params = Grain.Params(amount=4.0)
    first = grain.evaluate(params, {"image": grey}, FrameContext(0, 30, 10))["image"]
    again = grain.evaluate(params, {"image": grey}, FrameContext(0, 30, 10))["image"]
    other = grain.evaluate(params, {"image": grey}, FrameContext(1, 30, 10))["image"]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.astype(float).std() == pytest.approx(4.0, rel=0.1)
    assert np.array_equal(grain.evaluate(Grain.Params(amount=0.0), {"image": grey}, CTX)["image"], grey)


def test_noise_estimate_ignores_texture() -> None:
    y, x = np.mgrid[0:256, 0:256]
    texture = np.repeat((128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0))[..., None], 3, axis=2)
    clean = texture.astype(np.uint8)
    noisy = np.clip(texture + np.random.default_rng(4).normal(0, 4, (256, 256, 1)), 0, 255).astype(np.uint8)
    assert estimate_noise(clean) < 0.6
    assert estimate_noise(noisy) == pytest.approx(4.0, rel=0.25)


@pytest.mark.parametrize(
    ("kind", "radius"), [("lens", 2.0), ("lens", 8.0), ("gaussian", 3.0), ("lens", 40.0)]
)
def test_noise_removed_is_what_the_blur_takes_from_white_noise(kind: str, radius: float) -> None:
    noisy = np.clip(128 + np.random.default_rng(5).normal(0, 20, (256, 256, 1)), 0, 255).astype(np.uint8)
    noisy = np.repeat(noisy, 3, axis=2)
    params = Blur.Params(kind=kind, radius=radius, units="px", highlights=0.0)
    out = Blur().evaluate(params, {"image": noisy}, CTX)
    before = noisy[64:-64, 64:-64, 1].astype(float).std()
    after = out["image"][64:-64, 64:-64, 1].astype(float).std()
    kept = np.sqrt(max(after**2 - 1 / 12, 0.0))  # less the 8-bit rounding
    assert np.sqrt(1 - (kept / before) ** 2) == pytest.approx(out["noise_removed"], abs=0.03)
    grain = Grain().evaluate(
        Grain.Params(amount=out["noise_removed"], scale=2.0), {"image": out["image"]}, CTX
    )
    assert (grain["image"].astype(float) - out["image"]).std() == pytest.approx(
        2.0 * out["noise_removed"], rel=0.15
    )


def test_inpaint_rim_follows_the_nearest_visible_pixels_at_full_resolution() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    image[:, ::2] = (240, 200, 30)  # one-pixel stripes: lost by any reduced-size fill
    hole = np.zeros((200, 200), bool)
    hole[50:150, 60:140] = True
    out = inpaint(image, hole, "telea", work_size=64).astype(int)
    assert np.array_equal(out[~hole], image[~hole])

    def stripes(row: int) -> float:
        return float(np.abs(out[row, 70:130:2, 0] - out[row, 71:131:2, 0]).mean())

    # Right inside the edge the stripes carry on; deeper, the smooth fill takes over.
    assert stripes(50) > 0.7 * 240 and stripes(50) > stripes(52) > stripes(60)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    shape=st.tuples(st.integers(100, 200), st.integers(100, 200)),
    blobs=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.05, 0.6)), min_size=1, max_size=4),
)
def test_inpaint_fill_from_the_holes_box_is_the_whole_photos(
    seed: int, shape: tuple[int, int], blobs: list[tuple[float, float, float]]
) -> None:
    # inpaint() runs the nearest-pixel fill on the hole's box (plus the distance
    # transform's reach): it must give what the whole photo gives, holes at the border too.
    height, width = shape
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    hole = np.zeros(shape, bool)
    for cy, cx, r in blobs:
        hole |= np.hypot((y - cy * height) / height, (x - cx * width) / width) < r
    if hole.all() or not hole.any():
        return
    telea = cv2.inpaint(image, hole.astype(np.uint8), inpaint_module._NEIGHBOURHOOD, cv2.INPAINT_TELEA)
    nearest, depth = nearest_fill(image, hole)  # on the whole photo
    rim = inpaint_module._RIM * max(shape)
    assert rim > 1.5  # so the nearest fill shows in the rim
    expected = over(telea, nearest, np.clip(depth / rim, 0.0, 1.0))
    out = inpaint(image, hole, "telea", work_size=256)
    assert np.array_equal(out[~hole], image[~hole])
    assert np.array_equal(out[hole], expected[hole])


def test_inpaint_full_at_mixes_the_fill_into_a_soft_tail() -> None:
    image = np.zeros((32, 64, 3), np.uint8)
    image[..., 0] = np.arange(64)[None, :] * 4  # a texture that a fill would not reproduce
    mask = np.repeat(np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :], 32, axis=0)
    params = Inpaint.Params(threshold=0.01, full_at=0.3, grow=0)
    out = Inpaint().evaluate(params, {"image": image, "mask": mask}, CTX)
    weight = out["mask"]
    assert weight[0, 0] == 0 and weight[0, -1] == 1 and 0 < weight[0, 10] < 1
    assert np.all(np.diff(weight[0]) >= 0)
    assert np.array_equal(out["image"][:, :1], image[:, :1])  # below the threshold: the photo


@pytest.mark.parametrize("full_at", [None, 0.3])
@pytest.mark.parametrize("grow", [0.0, 2.0])
def test_inpaint_mask_output_is_the_share_of_the_fill(full_at: float | None, grow: float) -> None:
    # bench-quality swaps the fill for the true background through this mask (its true-plate
    # reference): the plate must be exactly the fill over the photo through it.
    image = np.random.default_rng(4).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    y, x = np.mgrid[0:40, 0:56]
    mask = np.clip(1.2 - np.hypot(y - 20, x - 28) / 12, 0, 1).astype(np.float32)  # soft disc
    params = Inpaint.Params(threshold=0.01, full_at=full_at, grow=grow, units="px")
    out = Inpaint().evaluate(params, {"image": image, "mask": mask}, CTX)
    hole = out["mask"] > 0
    assert hole.any() and not hole.all()
    if grow:
        assert hole.sum() > (mask > 0.01).sum()  # the grown ring is filled too
    fill = inpaint(image, hole, params.method, params.work_size)
    assert np.array_equal(out["image"], over(fill, image, out["mask"]))


def test_grain_matches_reference_noise() -> None:
    luminance_noise = np.random.default_rng(3).normal(0, 5, (128, 128, 1))
    noisy = np.clip(128 + np.repeat(luminance_noise, 3, axis=2), 0, 255).astype(np.uint8)
    assert estimate_noise(noisy) == pytest.approx(5.0, rel=0.2)
    grey = np.full((128, 128, 3), 128, np.uint8)
    out = Grain().evaluate(Grain.Params(amount=1.0), {"image": grey, "reference": noisy}, CTX)["image"]
    assert out.astype(float).std() == pytest.approx(estimate_noise(noisy), rel=0.15)


@pytest.mark.parametrize("radius", [12.0, 30.0, 60.0])
def test_reduced_size_lens_blur_matches_full_resolution(radius: float) -> None:
    import cv2

    y, x = np.mgrid[0:240, 0:320]
    channels = [128 + 100 * np.sin(x / 7.0), 128 + 90 * np.cos(y / 11.0), (x * y) % 255]
    photo = np.dstack(channels).astype(np.uint8)
    curve = highlight_curve(2.0, 0.9)
    exact = curve.compress_to_srgb(
        cv2.filter2D(curve.expand(photo), -1, disc_kernel(radius), borderType=cv2.BORDER_REFLECT)
    )
    fast = blur(photo, radius, "lens")
    mse = float(((fast.astype(float) - exact) ** 2)[40:-40, 40:-40].mean())
    assert 10 * np.log10(255**2 / mse) > 45
