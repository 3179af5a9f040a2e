"""Every bundled preset renders from a single shared photo with its defaults, checked on decoded output.

Clips are shortened to 1 s (``--set duration=1``) to keep the suite fast; everything
else is the preset's default. Regions come from the reference cutouts, with a band
around the edge left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from photos import photo_path
from videoprobe import probe, read_frames

from focusgraph.graph.cli import main

PHOTOS = ["girl-1", "girl-2", "girl-3", "animal-1"]


def reference_alpha(name: str, shape: tuple[int, int]) -> np.ndarray:
    cutout = cv2.imread(str(photo_path(f"{name}.reference-cutout.png")), cv2.IMREAD_UNCHANGED)
    return cutout[: shape[0], : shape[1], 3].astype(np.float32) / 255


def regions(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject interior and the background far from the subject."""
    band = max(3, round(0.03 * max(alpha.shape)))
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    subject = (alpha > 0.5).astype(np.uint8)
    return cv2.erode(subject, element).astype(bool), ~cv2.dilate(subject, element).astype(bool)


def edge_energy(image: np.ndarray, region: np.ndarray) -> float:
    """Mean |Laplacian of Gaussian| (sigma 1.5 px) of the luminance over ``region``."""
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F))[region].mean())


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64))[region] ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def subject_args(name: str) -> list[str]:
    return ["--set", "subject=salient"] if name.startswith("animal") else []


class Rendered:
    """A preset rendered on a shared photo: the photo, its regions and the decoded frames."""

    def __init__(self, preset: str, name: str, folder: Path, extension: str, extra: list[str]) -> None:
        source = photo_path(f"{name}.jpg")
        before = source.read_bytes()
        self.out = folder / f"{preset}-{name}{extension}"
        args = ["-q", "render", preset, "-i", str(source), "-o", str(self.out), *extra, *subject_args(name)]
        assert main(args) == 0
        assert source.read_bytes() == before
        photo = cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB)
        if extension == ".mp4":
            self.frames = list(read_frames(self.out))
        else:
            self.frames = [cv2.cvtColor(cv2.imread(str(self.out)), cv2.COLOR_BGR2RGB)]
        height, width = self.frames[0].shape[:2]
        self.photo = photo[:height, :width]
        assert self.photo.shape == self.frames[0].shape
        self.interior, self.background = regions(reference_alpha(name, (height, width)))

    def sharpness(self, frame: np.ndarray) -> float:
        """Background edge energy relative to the photo's."""
        return edge_energy(frame, self.background) / edge_energy(self.photo, self.background)


def check_rack_focus(clip: Rendered) -> None:
    first, last = clip.sharpness(clip.frames[0]), clip.sharpness(clip.frames[-1])
    assert first < 0.6 < 0.9 < last
    assert min(psnr(frame, clip.photo, clip.interior) for frame in clip.frames) > 35


def check_rack_focus_reverse(clip: Rendered) -> None:
    first, last = clip.sharpness(clip.frames[0]), clip.sharpness(clip.frames[-1])
    assert last < 0.6 < 0.9 < first
    curve = [clip.sharpness(frame) for frame in clip.frames]
    assert all(b <= a + 0.05 for a, b in itertools.pairwise(curve))  # falls away, never back
    assert min(psnr(frame, clip.photo, clip.interior) for frame in clip.frames) > 35


def zoomed(image: np.ndarray, zoom: float) -> np.ndarray:
    """``image`` scaled by ``zoom`` about its centre (OpenCV's reference warp)."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), 0, zoom)
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def check_focus_pull_push_in(clip: Rendered) -> None:
    assert clip.sharpness(clip.frames[0]) < 0.6
    # the last frame is the sharp photo pushed in by 6%, not the photo itself
    everywhere = np.ones(clip.photo.shape[:2], bool)
    pushed = psnr(clip.frames[-1], zoomed(clip.photo, 1.06), everywhere)
    assert pushed > 30 and pushed > psnr(clip.frames[-1], clip.photo, everywhere) + 5
    assert psnr(clip.frames[0], clip.photo, clip.interior) > 35


def moved_to(
    photo: np.ndarray, frame: np.ndarray, region: np.ndarray, zoom: float, pan: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where a patch from deep inside ``region`` is in ``frame``, and where a layer moved by
    ``zoom`` and ``pan`` (as core.transform: x' = c + zoom * (x - c - pan * width)) would put it.

    The patch is searched for within 6% of the frame's width around the prediction.
    """
    height, width = photo.shape[:2]
    side = max(24, min(height, width) // 8)
    half = side // 2
    inside = np.zeros(region.shape, np.uint8)
    inside[half:-half, half:-half] = region[half:-half, half:-half]
    # the region's point farthest from its border: the patch shows only that layer
    y, x = np.unravel_index(np.argmax(cv2.distanceTransform(inside, cv2.DIST_L2, 5)), region.shape)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    predicted = centre + zoom * (np.array([x, y], float) - centre - np.array([pan * width, 0.0]))
    patch = cv2.resize(photo[y - half : y + half, x - half : x + half], None, fx=zoom, fy=zoom)
    margin = round(0.06 * width)
    left = int(np.clip(predicted[0] - patch.shape[1] / 2 - margin, 0, width - patch.shape[1]))
    top = int(np.clip(predicted[1] - patch.shape[0] / 2 - margin, 0, height - patch.shape[0]))
    window = frame[top : top + patch.shape[0] + 2 * margin, left : left + patch.shape[1] + 2 * margin]
    scores = cv2.matchTemplate(
        cv2.cvtColor(window, cv2.COLOR_RGB2GRAY),
        cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY),
        cv2.TM_CCOEFF_NORMED,
    )
    _, _, _, (best_x, best_y) = cv2.minMaxLoc(scores)
    found = np.array([left + best_x + patch.shape[1] / 2, top + best_y + patch.shape[0] / 2])
    return found, predicted


def check_parallax_reveal(clip: Rendered) -> None:
    assert clip.sharpness(clip.frames[0]) < 0.6 < 0.85 < clip.sharpness(clip.frames[-1])
    last, width = clip.frames[-1], clip.photo.shape[1]
    near, near_predicted = moved_to(clip.photo, last, clip.interior, 1.08, 0.035)
    far, far_predicted = moved_to(clip.photo, last, clip.background, 1.03, 0.015)
    # the subject layer moved as the subject's transform says, the background as its own
    assert np.hypot(*(near - near_predicted)) < 0.01 * width + 2
    assert np.hypot(*(far - far_predicted)) < 0.01 * width + 2
    # and the two differ: the subject did not move with the background (parallax)
    subject_if_flat = moved_to(clip.photo, last, clip.interior, 1.03, 0.015)[1]
    assert np.hypot(*(near_predicted - subject_if_flat)) > 0.015 * width
    assert np.hypot(*(near - subject_if_flat)) > 0.01 * width


def check_portrait_bokeh(clip: Rendered) -> None:
    (still,) = clip.frames
    assert still.shape == clip.photo.shape  # a still keeps odd sizes
    assert clip.sharpness(still) < 0.8
    assert psnr(still, clip.photo, clip.interior) > 33  # JPEG at quality 95


CHECKS: dict[str, tuple[str, list[str], Callable[[Rendered], None]]] = {
    "portrait-bokeh": (".jpg", [], check_portrait_bokeh),
    "focus-pull-push-in": (".mp4", ["--set", "duration=1"], check_focus_pull_push_in),
    "parallax-reveal": (".mp4", ["--set", "duration=1"], check_parallax_reveal),
    "rack-focus": (".mp4", ["--set", "duration=1"], check_rack_focus),
    "rack-focus-reverse": (".mp4", ["--set", "duration=1"], check_rack_focus_reverse),
}


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("preset", sorted(CHECKS))
def test_preset_renders_on_every_shared_photo(preset: str, name: str, tmp_path: Path) -> None:
    extension, extra, check = CHECKS[preset]
    clip = Rendered(preset, name, tmp_path, extension, extra)
    if extension == ".mp4":
        info = probe(clip.out)
        assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", 30)
    check(clip)


def test_every_bundled_preset_is_checked() -> None:
    from focusgraph.presets import preset_paths

    assert set(preset_paths()) == set(CHECKS)
