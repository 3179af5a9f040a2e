"""Blur kinds `motion`, `zoom` and `spin`: streak lengths and directions, flat images, noise."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from focusgraph.graph.node import FrameContext
from focusgraph.nodes._kernels import motion_blur, motion_kernel, radial_blur
from focusgraph.nodes.blur import Blur, srgb_to_linear

CTX = FrameContext(frame=0, fps=30, frame_count=1)


def blur(image: np.ndarray, kind: str, radius: float, **extra: object) -> dict[str, object]:
    params = Blur.Params(kind=kind, radius=radius, units="px", highlights=0.0, **extra)  # type: ignore[arg-type]
    return Blur().evaluate(params, {"image": image}, CTX)


def streak(light: np.ndarray) -> tuple[float, float, float]:
    """Length (a uniform line of length L has variance L**2 / 12), width and angle (deg, CCW) of a streak."""
    y, x = np.indices(light.shape)
    weight = light / light.sum()
    mx, my = (weight * x).sum(), (weight * y).sum()
    dx, dy = x - mx, -(y - my)  # y up, so angles are counter-clockwise on screen
    cov = np.array(
        [
            [(weight * dx * dx).sum(), (weight * dx * dy).sum()],
            [(weight * dx * dy).sum(), (weight * dy * dy).sum()],
        ]
    )
    values, vectors = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1])) % 180.0
    return math.sqrt(12 * values[1]), math.sqrt(12 * values[0]), angle


@pytest.mark.parametrize("angle", [0.0, 45.0, 90.0, 30.0, 135.0])
def test_motion_turns_a_point_into_a_line_of_the_length_and_angle(angle: float) -> None:
    dark = np.zeros((121, 121, 3), np.uint8)
    dark[60, 60] = 255
    out = blur(dark, "motion", 20.0, angle=angle)["image"]
    assert isinstance(out, np.ndarray)
    light = srgb_to_linear(out[..., 0])
    length, width, direction = streak(light)
    assert length == pytest.approx(41.0, abs=1.5)  # 2 * radius, plus the point itself
    assert width < (1.2 if angle % 90 == 0 else 2.5)  # turned images are resampled twice
    assert min(abs(direction - angle), 180 - abs(direction - angle)) < 1.0
    spot = np.zeros(
        (121, 121), np.float32
    )  # energy is kept within 2% (before 8 bits) for a spot not aliased by
    spot[60, 60] = 1.0  # the turns (a single pixel comes back 3-14% brighter or darker)
    spot = cv2.GaussianBlur(spot, (0, 0), 1.0)
    assert motion_blur(spot, 20.0, angle).sum() == pytest.approx(1.0, rel=0.02)
    y, x = np.indices(light.shape)
    assert (light * x).sum() / light.sum() == pytest.approx(60, abs=0.3)  # centred on the point
    assert (light * y).sum() / light.sum() == pytest.approx(60, abs=0.3)


def test_motion_kernel_is_a_normalised_centred_line() -> None:
    for half, angle in [(0.0, 0.0), (3.3, 0.0), (10.0, 60.0)]:
        kernel = motion_kernel(half, angle)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.allclose(kernel, kernel[::-1, ::-1])  # symmetric: correlation equals convolution


def dots() -> np.ndarray:
    """Points 40 px apart on a 241 px square, one at the centre (120, 120)."""
    image = np.zeros((241, 241, 3), np.uint8)
    image[40:201:40, 40:201:40] = 255
    return image


@pytest.mark.parametrize("kind", ["zoom", "spin"])
def test_zoom_and_spin_streak_with_distance_from_the_centre(kind: str) -> None:
    image = dots()
    out = blur(image, kind, 30.0)["image"]
    assert isinstance(out, np.ndarray)
    light = srgb_to_linear(out[..., 1])
    centre = 120
    corner = math.hypot(120.5, 120.5)
    found = []
    for y in range(40, 201, 40):
        for x in range(40, 201, 40):
            window = light[y - 20 : y + 21, x - 20 : x + 21]  # the dots' streaks do not reach 20 px
            length, width, direction = streak(window)
            distance = math.hypot(x - centre, y - centre)
            radial = math.degrees(math.atan2(-(y - centre), x - centre)) % 180.0
            expected = radial if kind == "zoom" else (radial + 90.0) % 180.0
            found.append((distance, length))
            assert length == pytest.approx(2 * 30.0 * distance / corner + 1, rel=0.15, abs=1.0)
            assert width < 3.0  # a diagonal streak is rasterised about 2 px wide
            if length > 8:
                assert min(abs(direction - expected), 180 - abs(direction - expected)) < 3.0
    found.sort()
    assert all(a[1] < b[1] + 1.0 for a, b in itertools.pairwise(found))  # longer farther out
    centre_window = light[centre - 3 : centre + 4, centre - 3 : centre + 4]
    assert centre_window[3, 3] > 0.8 * centre_window.sum()  # the centre stays sharp


def test_zoom_centre_can_move() -> None:
    image = dots()
    out = blur(image, "zoom", 30.0, center=[40.5 / 241, 40.5 / 241])["image"]  # on the top-left dot
    assert isinstance(out, np.ndarray)
    light = srgb_to_linear(out[..., 1])
    assert light[40, 40] > 0.8 * light[37:44, 37:44].sum()
    assert streak(light[180:221, 180:221])[0] > 35  # the dot farthest from it streaks the most


def test_doubling_matches_averaging_every_copy() -> None:
    """Recursive doubling against the average of 2**k separately zoomed copies."""
    y, x = np.mgrid[0:160, 0:200]
    image = np.dstack([np.sin(x / 5.0) * np.cos(y / 7.0), np.sin((x + y) / 9.0), x / 200.0]).astype(
        np.float32
    )
    fast = radial_blur(image, "zoom", 12.0, (0.5, 0.5))
    span = math.asinh(12.0 / math.hypot(100, 80))
    copies = 32  # 2 * 12 + 1 rounded up to a power of two, as radial_blur does
    exact = np.zeros_like(image)
    for scale in np.linspace(-span, span, copies):
        matrix = np.array([[math.exp(scale), 0, 0], [0, math.exp(scale), 0]])
        matrix[:, 2] = np.array([99.5, 79.5]) * (1 - math.exp(scale))
        exact += cv2.warpAffine(
            image,
            matrix,
            (200, 160),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
    exact /= copies
    # Away from the borders (where reflected copies of copies differ from reflected copies).
    error = np.abs(fast - exact)[30:-30, 30:-30]
    assert error.mean() < 0.01 and error.max() < 0.03


@pytest.mark.parametrize("kind", ["motion", "zoom", "spin"])
@pytest.mark.parametrize("radius", [0.7, 5.0, 40.0])
def test_flat_images_stay_flat(kind: str, radius: float) -> None:
    flat = np.full((60, 90, 3), (200, 40, 90), np.uint8)
    out = blur(flat, kind, radius, angle=33.0)["image"]
    assert isinstance(out, np.ndarray)
    assert np.abs(out.astype(int) - flat).max() <= 1


@pytest.mark.parametrize("kind", ["motion", "zoom", "spin"])
def test_noise_removed_stays_in_range_and_grows_with_the_radius(kind: str) -> None:
    noisy = np.random.default_rng(2).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    removed = [blur(noisy, kind, radius)["noise_removed"] for radius in (0.0, 1.0, 5.0, 40.0)]
    assert removed[0] == 0.0
    assert all(isinstance(r, float) and 0.0 <= r <= 1.0 for r in removed)
    assert removed[1] < removed[2] < removed[3]


def test_motion_noise_removed_matches_white_noise() -> None:
    noisy = np.clip(128 + np.random.default_rng(5).normal(0, 20, (256, 256, 1)), 0, 255).astype(np.uint8)
    noisy = np.repeat(noisy, 3, axis=2)
    out = blur(noisy, "motion", 8.0)
    assert isinstance(out["image"], np.ndarray)
    before = noisy[64:-64, 64:-64, 1].astype(float).std()
    after = out["image"][64:-64, 64:-64, 1].astype(float).std()
    kept = np.sqrt(max(after**2 - 1 / 12, 0.0))
    assert np.sqrt(1 - (kept / before) ** 2) == pytest.approx(out["noise_removed"], abs=0.03)


@pytest.mark.parametrize("kind", ["motion", "zoom"])
def test_radius_zero_is_identity_and_holdout_works(kind: str) -> None:
    image = np.full((60, 80, 3), (20, 120, 20), np.uint8)
    image[20:40, 30:50] = (250, 10, 10)
    assert np.array_equal(blur(image, kind, 0.0)["image"], image)
    mask = np.zeros((60, 80), np.float32)
    mask[20:40, 30:50] = 1.0
    params = Blur.Params(kind=kind, radius=12.0, units="px")
    held = Blur().evaluate(params, {"image": image, "mask": mask}, CTX)["image"]
    assert held[20:40, 15:28, 0].mean() < 25  # left of the red square: no red smeared into it


@pytest.mark.parametrize("kind", ["motion", "zoom", "spin"])
def test_directional_kinds_work_with_depth(kind: str) -> None:
    image = np.random.default_rng(4).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    depth = np.repeat(np.linspace(0, 1, 90, dtype=np.float32)[None], 60, axis=0)
    params = Blur.Params(kind=kind, focus=0.0, aperture=10.0, units="px")
    out = Blur().evaluate(params, {"image": image, "depth": depth}, CTX)
    far, near = (slice(None), slice(-20, None)), (slice(None), slice(0, 5))
    assert out["image"][far].std() < 0.8 * image[far].std()
    assert (
        np.abs(out["image"][near].astype(int) - image[near]).mean()
        < np.abs(out["image"][far].astype(int) - image[far]).mean()
    )
