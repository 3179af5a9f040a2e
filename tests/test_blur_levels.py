"""Blur levels: an animated lens/gaussian radius blends cached blurs, within 45 dB of the exact blur."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from photos import photo_path

from focusgraph.graph import Evaluator, load
from focusgraph.graph.node import FrameContext
from focusgraph.graph.store import NodeStore
from focusgraph.nodes import _levels, blur
from focusgraph.nodes.blur import Blur

CTX = FrameContext(frame=0, fps=30, frame_count=150)
BOUND_DB = 45.0
# Swept down as a rack focus does, slowly enough (4% a step) that every frame is a blend of
# levels; every fourth radius (30 of them) is compared with the exact blur.
RADII = np.geomspace(40.0, 0.3, 120)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def params(kind: str, radius: float, precision: str = "fast") -> Any:
    return Blur.Params(kind=kind, radius=float(radius), units="px", precision=precision)


def run(node: Blur, image: np.ndarray, kind: str, radius: float, precision: str = "fast") -> np.ndarray:
    out: np.ndarray = node.evaluate(params(kind, radius, precision), {"image": image}, CTX)["image"]
    return out


def girl() -> np.ndarray:
    photo = cv2.cvtColor(cv2.imread(str(photo_path("girl-2.jpg"))), cv2.COLOR_BGR2RGB)
    scale = 1280 / photo.shape[1]
    size = (1280, round(photo.shape[0] * scale))
    return cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)


def noise() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (360, 480, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["lens", "gaussian"])
@pytest.mark.parametrize("source", [girl, noise], ids=["girl-2", "noise"])
def test_fast_is_within_45_db_of_exact_over_a_dense_sweep(kind: str, source: Any) -> None:
    image = source()
    node = Blur()
    run(node, image, kind, float(RADII[0]))  # the first call blurs directly; levels follow
    worst = (math.inf, 0.0)
    for index, radius in enumerate(RADII[1:]):
        fast = run(node, image, kind, float(radius))
        if index % 4 == 0:
            worst = min(worst, (psnr(fast, run(Blur(), image, kind, float(radius), "exact")), float(radius)))
    print(f"{source.__name__} {kind}: worst {worst[0]:.2f} dB at {worst[1]:.2f} px")
    assert worst[0] >= BOUND_DB
    assert node.levels.computed <= _levels.rung_count(RADII[-1], RADII[0]) + 2


def test_level_cache_stays_bounded_sweeping_down_and_up() -> None:
    image = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    node = Blur()
    sweep = np.concatenate([np.geomspace(50.0, 0.3, 100), np.geomspace(0.3, 50.0, 100)])
    for radius in sweep:
        run(node, image, "lens", float(radius))
        assert len(node.levels) <= _levels.CAPACITY
    assert 0 < node.levels.computed <= 2 * _levels.rung_count(0.3, 50.0) + 4


def test_another_image_does_not_reuse_the_levels_of_the_first() -> None:
    first = np.random.default_rng(4).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    second = np.ascontiguousarray(first[::-1])
    node = Blur()
    for radius in (9.0, 8.0, 7.5):
        run(node, first, "lens", radius)
    computed = node.levels.computed
    assert computed > 0
    for radius in (7.5, 7.2):
        out = run(node, second, "lens", radius)
        assert psnr(out, run(Blur(), second, "lens", radius, "exact")) >= BOUND_DB
        assert psnr(out, run(Blur(), first, "lens", radius, "exact")) < 30
    assert node.levels.computed > computed  # levels of its own


def test_levels_kept_in_the_store_come_back_identical_without_blurring(
    tmp_path: Path, level_rungs: list[float]
) -> None:
    store = NodeStore(tmp_path / "store")
    ctx = dataclasses.replace(CTX, store=store)
    rungs = level_rungs

    def sweep(image: np.ndarray, radii: np.ndarray, highlights: float = 2.0) -> list[np.ndarray]:
        node = Blur()  # a new render's node: no levels of its own yet
        settings = Blur.Params(kind="lens", units="px", highlights=highlights)
        frames = []
        for radius in radii:
            kept = settings.model_copy(update={"radius": float(radius)})
            frames.append(node.evaluate(kept, {"image": image}, ctx)["image"])
        store.flush()
        return frames

    image = noise()
    first = sweep(image, RADII[::3])
    computed = len(rungs)
    assert computed > 10 and len(store.entries()) == len({r for r in rungs if r > 0.5})
    # The next render of the same image reads every level, also with another timing.
    assert all(np.array_equal(a, b) for a, b in zip(first, sweep(image.copy(), RADII[::3]), strict=True))
    sweep(image, RADII[1::5])
    assert len(rungs) == computed
    # Another image, or other lens settings, are other levels.
    sweep(np.ascontiguousarray(image[::-1]), RADII[::3])
    assert len(rungs) == 2 * computed
    sweep(image, RADII[::3], highlights=0.5)
    assert len(rungs) == 3 * computed


def test_same_radius_twice_gives_identical_output() -> None:
    image = noise()
    node = Blur()
    run(node, image, "lens", 12.0)
    for radius in (7.3, 3.2, 0.7):
        assert np.array_equal(run(node, image, "lens", radius), run(node, image, "lens", radius))


def test_lens_up_to_half_a_pixel_is_the_image_and_below_the_threshold_untouched() -> None:
    image = noise()
    node = Blur()
    run(node, image, "lens", 3.0)
    assert np.array_equal(run(node, image, "lens", 0.4), image)
    assert run(node, image, "lens", 0.1) is image


def test_rack_focus_renders_with_few_level_blurs_within_45_db_of_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []  # levels computed
    blurs: list[float] = []  # every full blur of the image (levels and direct frames)
    level, direct = blur.blur_level, blur.blur_direct

    def counted_level(image: np.ndarray, holdout: np.ndarray | None, params: Any, rung: float) -> np.ndarray:
        calls.append(rung)
        return level(image, holdout, params, rung)

    def counted_direct(
        image: np.ndarray, holdout: np.ndarray | None, params: Any, radius: float, *args: Any, **kw: Any
    ) -> np.ndarray:
        if params.precision == "fast":
            blurs.append(radius)
        return direct(image, holdout, params, radius, *args, **kw)

    monkeypatch.setattr(blur, "blur_level", counted_level)
    monkeypatch.setattr(blur, "blur_direct", counted_direct)
    graph = load("rack-focus")
    bindings = {"image": str(photo_path("girl-2.jpg")), "output": str(tmp_path / "x.mp4")}
    bindings |= {"duration": 2, "fps": 15}
    fast = graph.compile(bindings)
    exact = graph.compile(bindings | {"background.precision": "exact"})
    fast_run, exact_run = Evaluator(fast), Evaluator(exact)
    worst = math.inf
    for frame in range(fast.timeline.frame_count):
        ctx = fast.timeline.context(frame)
        a = fast_run.run(ctx)["background"]["image"]
        b = exact_run.run(ctx)["background"]["image"]
        worst = min(worst, psnr(a, b))
    frames = fast_run.evaluations["background"]
    print(
        f"rack-focus background: worst {worst:.2f} dB; {frames} frames, "
        f"{len(calls)} levels, {len(blurs)} blurs"
    )
    assert worst >= BOUND_DB
    longer = max(fast_run.run(fast.timeline.context(0))["plate"]["image"].shape[:2])
    assert 0 < len(calls) <= _levels.rung_count(0.25, 0.03 * longer) + 1
    assert len(blurs) <= frames + 2  # never more than about one blur per frame


@pytest.mark.parametrize("channels", [0, 3, 4])
@pytest.mark.parametrize("radius", [4.9, 8.7, 12.4])
def test_the_cached_spectrum_correlates_exactly_as_filter2d(channels: int, radius: float) -> None:
    rng = np.random.default_rng(int(radius * 10) + channels)
    shape = (97, 130) if channels == 0 else (97, 130, channels)
    values = rng.random(shape, dtype=np.float32)
    kernel = np.ascontiguousarray(blur.aperture_kernel(radius, 5, 20.0)[::-1, ::-1])  # asymmetric
    expected = cv2.filter2D(values, -1, kernel, borderType=cv2.BORDER_REFLECT)
    got = blur.correlate_spectral(values, kernel)
    assert got.shape == values.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-6)
    again = blur.correlate_spectral(values, kernel)  # from the cached spectra
    np.testing.assert_array_equal(again, got)
    wider = np.ascontiguousarray(blur.aperture_kernel(20.0)[::-1, ::-1])  # beyond the padding: plain filter2D
    np.testing.assert_allclose(
        blur.correlate_spectral(values, wider),
        cv2.filter2D(values, -1, wider, borderType=cv2.BORDER_REFLECT),
        atol=2e-6,
    )
