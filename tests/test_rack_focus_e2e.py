"""End to end: the rack-focus preset on the shared real photos, checked on decoded frames."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
from photos import photo_path
from videoprobe import probe, read_frames

from focusgraph.graph.cli import main

# (photo, extra --set arguments)
CASES = [
    ("girl-2", []),
    ("girl-1", []),
    ("girl-3", []),
    ("animal-1", ["--set", "subject=salient"]),
]


def reference_alpha(name: str, shape: tuple[int, int]) -> np.ndarray:
    cutout = cv2.imread(str(photo_path(f"{name}.reference-cutout.png")), cv2.IMREAD_UNCHANGED)
    return cutout[: shape[0], : shape[1], 3].astype(np.float32) / 255


def edge_energy(image: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute Laplacian of Gaussian (sigma 1.5 px) of the luminance over ``region``.

    The pre-smoothing keeps the metric on image structure: without it, the
    +-1 level rounding noise of RGB -> YUV 4:2:0 -> RGB alone scores about half of a
    smooth photo's energy, whatever the blur.
    """
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F))[region].mean())


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    error = (a.astype(np.float64) - b.astype(np.float64))[region]
    mse = float((error**2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def regions(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject interior and background far from the subject (edge bands excluded)."""
    band = max(3, round(0.02 * max(alpha.shape)))
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    subject = alpha > 0.5
    interior = cv2.erode(subject.astype(np.uint8), element).astype(bool)
    background = ~cv2.dilate(subject.astype(np.uint8), element).astype(bool)
    return interior, background


@pytest.mark.parametrize(("name", "extra"), CASES, ids=[case[0] for case in CASES])
def test_rack_focus_clip(name: str, extra: list[str], tmp_path: Path) -> None:
    source = photo_path(f"{name}.jpg")
    before = source.read_bytes()
    out = tmp_path / f"{name}.mp4"
    assert main(["-q", "render", "rack-focus", "-i", str(source), "-o", str(out), *extra]) == 0

    photo = cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB)
    height, width = photo.shape[0] // 2 * 2, photo.shape[1] // 2 * 2
    photo = photo[:height, :width]
    info = probe(out)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert (info["width"], info["height"]) == (width, height)
    assert info["fps"] == 30 and info["faststart"]

    interior, background = regions(reference_alpha(name, (height, width)))
    assert interior.sum() > 1000 and background.sum() > 1000
    photo_energy = edge_energy(photo, background)
    sharpness, interior_psnr = [], []
    last = photo
    for frame in read_frames(out):
        sharpness.append(edge_energy(frame, background) / photo_energy)
        interior_psnr.append(psnr(frame, photo, interior))
        last = frame
    assert len(sharpness) == 150

    # The blurred background is not flat: the photo's noise is put back as grain (and film
    # grain covers the frame); on girl-1's hazy background that alone scores about 0.1.
    assert sharpness[0] <= 0.4, f"frame 0 background edge energy {sharpness[0]:.2f} of the photo's"
    assert psnr(last, photo, background) >= 35.0
    assert min(interior_psnr) >= 35.0, f"subject interior PSNR dropped to {min(interior_psnr):.1f} dB"
    # Sharpness rises monotonically (tolerance: encoder and grain noise, 2% of the range).
    tolerance = 0.02 * (max(sharpness) - min(sharpness))
    drops = [b - a for a, b in pairwise(sharpness) if b - a < -tolerance]
    assert not drops, f"background sharpness fell by {min(drops):.3f}"
    assert sharpness[-1] > 0.9
    assert source.read_bytes() == before


def test_cleared_frame_is_the_photo() -> None:
    """In the sharp hold the composite (before film grain) is the photo itself, soft edges included."""
    from focusgraph.graph import load_graph, render_frame
    from focusgraph.presets import find_preset

    source = photo_path("girl-2.jpg")
    graph = load_graph(find_preset("rack-focus"), {"image": str(source), "output": "unused.mp4"})
    outputs = render_frame(graph, graph.timeline.frame_count - 1)
    photo, final = outputs["photo"]["image"], outputs["final"]["image"]
    matte = outputs["matte"]["mask"]
    assert ((matte > 0.02) & (matte < 0.98)).sum() > 1000  # a soft edge that was decontaminated
    assert np.abs(final.astype(int) - photo.astype(int)).max() <= 1


def test_grain_matches_the_photo_and_moves_alike_on_subject_and_background(tmp_path: Path) -> None:
    """Film grain: scaled to the photo's own noise, the same on subject and background, new each frame."""
    from focusgraph.graph import load_graph
    from focusgraph.graph.scheduler import Evaluator
    from focusgraph.presets import find_preset

    clean = cv2.imread(str(photo_path("girl-2.jpg")))
    noise = np.random.default_rng(7).normal(0.0, 4.0, clean.shape[:2])[..., None]
    grainy_path = tmp_path / "grainy.png"
    cv2.imwrite(str(grainy_path), np.clip(clean + noise, 0, 255).astype(np.uint8))

    def film_grain(source: Path, frame: int) -> tuple[np.ndarray, np.ndarray]:
        graph = load_graph(find_preset("rack-focus"), {"image": str(source), "output": "unused.mp4"})
        outputs = Evaluator(graph).run(graph.timeline.context(frame))
        added = outputs["film"]["image"].astype(float) - outputs["final"]["image"]
        return added, outputs["matte"]["mask"]

    first, matte = film_grain(grainy_path, 10)
    assert np.array_equal(first, film_grain(grainy_path, 10)[0])  # reproducible
    assert not np.array_equal(first, film_grain(grainy_path, 11)[0])  # a new pattern every frame
    subject, background = first[matte > 0.99], first[matte < 0.01]
    assert subject.std() == pytest.approx(background.std(), rel=0.1)  # the same grain on both
    assert background.std() == pytest.approx(0.5 * 4.0, rel=0.25)  # film_grain 0.5 x the photo's noise
    assert film_grain(photo_path("girl-2.jpg"), 10)[0].std() < 0.25 * background.std()  # clean: little


def test_background_clears_evenly() -> None:
    """The background's fine detail returns all through the transition, not in a snap at its end.

    Sharpness = mean |Laplacian| of the luminance over the background, per frame. At least
    40% of the transition's frames lie between 20% and 80% of the curve's range with the
    preset's clarity easing; easing the radius itself (linear space) leaves far fewer.
    """
    from focusgraph.graph import load_graph
    from focusgraph.graph.scheduler import Evaluator
    from focusgraph.presets import find_preset

    source = photo_path("girl-2.jpg")
    values = {"image": str(source), "output": "unused.mp4", "duration": 3, "fps": 30}

    def in_band_fraction(overrides: dict[str, dict[str, object]]) -> float:
        graph = load_graph(find_preset("rack-focus"), values, overrides=overrides)
        evaluator = Evaluator(graph)
        count = graph.timeline.frame_count
        curve, transition = [], []
        for index in range(count):
            outputs = evaluator.run(graph.timeline.context(index))
            if index == 0:
                background = regions(outputs["matte"]["mask"])[1]
            gray = cv2.cvtColor(outputs["film"]["image"], cv2.COLOR_RGB2GRAY).astype(np.float32)
            curve.append(float(np.abs(cv2.Laplacian(gray, cv2.CV_32F))[background].mean()))
            transition.append(0.1 <= index / count <= 0.8)
        low, high = min(curve), max(curve)
        inside = [low + 0.2 * (high - low) <= s <= low + 0.8 * (high - low) for s in curve]
        return sum(i for i, t in zip(inside, transition, strict=True) if t) / sum(transition)

    assert in_band_fraction({}) >= 0.4
    assert in_band_fraction({"focus": {"space": "linear"}}) < 0.25
