"""``core.transform``: exact geometry, no shimmer when zooming out, masks that follow, parallax layers."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusgraph.graph import Evaluator, load_document
from focusgraph.graph.compile import compile_graph
from focusgraph.graph.errors import GraphValidationError
from focusgraph.graph.node import FrameContext
from focusgraph.nodes.keyframe import NAMED_BEZIERS, cubic_bezier
from focusgraph.nodes.transform import Transform, cover_zoom, transform_matrix

CTX = FrameContext(frame=0, fps=30, frame_count=1)
rng = np.random.default_rng(7)
PHOTO = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
FLAGS = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "linear": cv2.INTER_LINEAR}
BORDERS = {"reflect": cv2.BORDER_REFLECT, "replicate": cv2.BORDER_REPLICATE, "black": cv2.BORDER_CONSTANT}


def transform(image: np.ndarray, mask: np.ndarray | None = None, **params: Any) -> dict[str, np.ndarray]:
    inputs = {"image": image} | ({"mask": mask} if mask is not None else {})
    return Transform().evaluate(Transform.Params(**params), inputs, CTX)


def disc_mask(height: int, width: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """An anti-aliased disc (float32 in [0, 1]) drawn at sub-pixel precision."""
    canvas = np.zeros((height, width), np.uint8)
    scale = 16
    cv2.circle(
        canvas,
        (round(centre[0] * scale), round(centre[1] * scale)),
        round(radius * scale),
        255,
        -1,
        cv2.LINE_AA,
        shift=4,
    )
    return canvas.astype(np.float32) / 255


def test_zoom_one_is_the_input_itself() -> None:
    mask = rng.random((48, 64), dtype=np.float32)
    out = transform(PHOTO, mask, zoom=1.0, pan_x=0.0, pan_y=0.0, rotation=0.0)
    assert out["image"] is PHOTO and out["mask"] is mask
    alone = transform(PHOTO, cover=True)
    assert alone["image"] is PHOTO and np.array_equal(alone["mask"], np.ones((48, 64), np.float32))
    assert np.array_equal(transform_matrix(64, 48, 1.0), np.eye(2, 3))


@pytest.mark.parametrize("interpolation", ["cubic", "lanczos", "linear"])
@pytest.mark.parametrize("edges", ["replicate", "reflect", "black"])
def test_zoom_matches_opencv_reference(interpolation: str, edges: str) -> None:
    image = PHOTO
    height, width = image.shape[:2]
    centre = ((width - 1) / 2, (height - 1) / 2)
    reference = cv2.warpAffine(
        image,
        cv2.getRotationMatrix2D(centre, 0, 1.05),
        (width, height),
        flags=FLAGS[interpolation],
        borderMode=BORDERS[edges],
    )
    out = transform(image, zoom=1.05, interpolation=interpolation, edges=edges)["image"]
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - reference).max() <= 1


@pytest.mark.parametrize(("pan_x", "pan_y"), [(0.5, 0.0), (0.0, 0.25), (-1.5, 2.75)])
def test_pan_moves_content_by_the_exact_sub_pixel_amount(pan_x: float, pan_y: float) -> None:
    height, width = PHOTO.shape[:2]
    # A view moved right (down) by p pixels shows the content moved left (up) by p.
    shift = np.array([[1.0, 0.0, -pan_x], [0.0, 1.0, -pan_y]])
    reference = cv2.warpAffine(
        PHOTO, shift, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    out = transform(PHOTO, pan_x=pan_x / width, pan_y=pan_y / height)["image"]
    assert np.abs(out.astype(int) - reference).max() <= 1
    assert not np.array_equal(out, PHOTO)


def test_rotation_turns_counter_clockwise_and_quarter_turns_are_exact() -> None:
    square = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert np.array_equal(transform(square, rotation=90)["image"], np.rot90(square))
    assert np.array_equal(transform(square, rotation=-90)["image"], np.rot90(square, -1))
    assert np.array_equal(transform(square, rotation=180)["image"], np.rot90(square, 2))
    reference = cv2.warpAffine(
        square,
        cv2.getRotationMatrix2D((19.5, 19.5), 30, 1.2),
        (40, 40),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    out = transform(square, rotation=30, zoom=1.2)["image"]
    assert np.abs(out.astype(int) - reference).max() <= 1


def test_zoom_turns_about_the_given_centre() -> None:
    mask = disc_mask(60, 80, (20.0, 15.0), 5.0)
    out = transform(np.zeros((60, 80, 3), np.uint8), mask, zoom=2.0, center=[0.25, 0.25])["mask"]
    y, x = np.indices(out.shape)
    # The disc sits near the centre's pixel coordinate (19.5, 14.5), so it stays put and doubles.
    centroid = ((x * out).sum() / out.sum(), (y * out).sum() / out.sum())
    assert centroid == pytest.approx((19.5 + 2 * 0.5, 14.5 + 2 * 0.5), abs=0.05)
    assert out.sum() == pytest.approx(4 * mask.sum(), rel=0.02)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0.5, 2.0),
    st.floats(-0.3, 0.3),
    st.floats(-0.3, 0.3),
    st.floats(-180, 180),
    st.sampled_from(["cubic", "lanczos", "linear"]),
)
def test_cover_never_shows_the_border(
    zoom: float, pan_x: float, pan_y: float, rotation: float, interpolation: str
) -> None:
    bright = cv2.GaussianBlur(rng.integers(120, 256, (36, 52, 3), dtype=np.uint8), (0, 0), 1.0)
    params: dict[str, Any] = {"zoom": zoom, "pan_x": pan_x, "pan_y": pan_y, "rotation": rotation}
    covered = transform(bright, edges="black", cover=True, interpolation=interpolation, **params)
    assert covered["image"].min() > 60  # no black pixel, not even a dark fringe
    assert np.array_equal(covered["mask"], np.ones((36, 52), np.float32))  # every pixel shows the photo
    # The extra zoom is the smallest one: a little less uncovers something.
    matrix = transform_matrix(52, 36, zoom, (pan_x, pan_y), rotation)
    needed = cover_zoom(matrix, 52, 36, (0.5, 0.5))
    if needed > 1.02:
        bare = transform(bright, edges="black", cover=False, interpolation="linear", **params)
        assert bare["mask"].min() < 1.0  # without cover, some pixel mixes in the black border
        slightly_less = transform_matrix(52, 36, zoom * needed * 0.98, (pan_x, pan_y), rotation)
        assert cover_zoom(slightly_less, 52, 36, (0.5, 0.5)) > 1.0


@pytest.mark.parametrize(
    "params",
    [
        {"zoom": 1.3, "pan_x": 0.07, "rotation": 12.5},
        {"zoom": 0.7, "pan_y": -0.11, "rotation": -40.0},
        {"zoom": 0.2, "pan_x": 0.02},  # through the integer reduction
    ],
)
def test_mask_follows_the_image(params: dict[str, float]) -> None:
    mask = disc_mask(90, 120, (70.3, 41.8), 17.0)
    image = np.repeat(np.round(mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    out = transform(image, mask, interpolation="linear", edges="black", **params)
    assert out["mask"].dtype == np.float32 and out["mask"].min() >= 0.0 and out["mask"].max() <= 1.0
    assert np.abs(out["image"][..., 0] / 255 - out["mask"]).max() < 0.01
    assert out["mask"].sum() == pytest.approx(mask.sum() * params["zoom"] ** 2, rel=0.03)


def test_without_mask_the_mask_output_marks_what_the_photo_covers() -> None:
    out = transform(PHOTO, zoom=0.5, edges="black")["mask"]
    assert out.shape == (48, 64)
    assert out[24, 32] == 1.0 and out[2, 2] == 0.0 and out[:, 16:48].max() == 1.0
    assert out.sum() == pytest.approx(64 * 48 / 4, rel=0.05)
    assert np.array_equal(transform(PHOTO, zoom=1.2, rotation=3)["mask"], np.ones((48, 64), np.float32))


def test_mismatched_mask_is_refused() -> None:
    with pytest.raises(GraphValidationError, match="64x48"):
        transform(PHOTO, np.zeros((10, 10), np.float32), zoom=1.1)


def temporal_change(frames: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change (grey levels) away from the frame's border."""
    inner = (slice(24, -24), slice(24, -24))
    return float(np.mean([np.abs(b[inner] - a[inner]).mean() for a, b in itertools.pairwise(frames)]))


def high_band(frames: list[np.ndarray]) -> float:
    """Mean absolute high-frequency band (image minus its Gaussian blur of sigma 2)."""
    return float(np.mean([np.abs(f - cv2.GaussianBlur(f, (0, 0), 2.0)).mean() for f in frames]))


@pytest.mark.parametrize(("texture", "at_most"), [("checkerboard", 0.35), ("noise", 0.6)])
def test_zooming_out_does_not_shimmer(texture: str, at_most: float) -> None:
    size = 128
    y, x = np.indices((size, size))
    if texture == "checkerboard":
        plane = ((x + y) % 2 * 255).astype(np.uint8)
    else:
        plane = np.random.default_rng(3).integers(0, 256, (size, size), dtype=np.uint8)
    image = np.repeat(plane[..., None], 3, axis=2)
    zooms = np.linspace(1.0, 0.8, 41)  # a slow zoom-out
    filtered = [transform(image, zoom=float(z), edges="reflect")["image"].astype(np.float32) for z in zooms]
    plain = [
        cv2.warpAffine(
            image,
            transform_matrix(size, size, float(z)),
            (size, size),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REFLECT,
        ).astype(np.float32)
        for z in zooms
    ]
    with_filter, without = temporal_change(filtered), temporal_change(plain)
    # Past the prefilter's ramp-in (zoom 0.95, frame 10) it is fully on.
    band, plain_band = high_band(filtered[10:]), high_band(plain[10:])
    steady = [temporal_change(filtered[i : i + 2]) for i in range(10, 40)]
    print(
        f"{texture}: frame-to-frame change {with_filter:.1f} vs {without:.1f} without prefilter "
        f"({temporal_change(filtered[10:]):.1f} vs {temporal_change(plain[10:]):.1f} past the ramp, "
        f"at most {max(steady):.1f}); high band {band:.1f} vs {plain_band:.1f}"
    )
    assert with_filter < at_most * without
    assert band < at_most * plain_band
    assert max(steady) < at_most * without  # and it stays low from frame to frame


PARALLAX = """\
version: 1
name: parallax-test
inputs:
  photo: {type: path}
  plate: {type: path}
  matte: {type: path}
  output: {type: path}
timeline: {fps: 10, duration: 1}
nodes:
  photo: {type: load, params: {path: $photo}}
  plate: {type: load, params: {path: $plate}}
  subject: {type: segment, inputs: {image: photo}, params: {mask: $matte}}
  near:           # the subject's push-in
    type: keyframe
    params: {keys: [{time: 0, value: 1.0, ease: ease-in-out}, {time: 0.9, value: 1.10}]}
  far:            # the background moves less
    type: keyframe
    params: {keys: [{time: 0, value: 1.0, ease: ease-in-out}, {time: 0.9, value: 1.04}]}
  front: {type: transform, inputs: {image: photo, mask: subject}, params: {zoom: {link: near}}}
  back: {type: transform, inputs: {image: plate}, params: {zoom: {link: far}}}
  final: {type: composite, inputs: {foreground: front.image, background: back.image, mask: front.mask}}
  clip: {type: encode, inputs: {image: final}, params: {path: $output}}
"""

RED = np.array([230, 30, 30])


def red_pixels(image: np.ndarray) -> np.ndarray:
    return (image[..., 0] > 150) & (image[..., 1] < 100) & (image[..., 2] < 100)


def centroid(weights: np.ndarray) -> tuple[float, float]:
    y, x = np.indices(weights.shape)
    total = float(weights.sum())
    return float((x * weights).sum() / total), float((y * weights).sum() / total)


def test_parallax_layers_composite_with_the_matte_following_the_subject(tmp_path: Path) -> None:
    height, width = 120, 160
    y, x = np.indices((height, width))
    plate = np.dstack([x * 0.2 + 20, 90 + y * 0.8, 140 + x * 0.5]).astype(np.uint8)  # never red
    plate[20:30, 20:30] = (250, 250, 250)  # a white marker in the background, off-centre
    disc_centre, radius = (135.0, 62.0), 12.0
    matte = disc_mask(height, width, disc_centre, radius)
    photo = np.round(matte[..., None] * RED + (1 - matte[..., None]) * plate).astype(np.uint8)
    paths = {}
    for name, array in {"photo": photo, "plate": plate}.items():
        paths[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(paths[name]), cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
    paths["matte"] = tmp_path / "matte.png"
    cv2.imwrite(str(paths["matte"]), np.round(matte * 255).astype(np.uint8))
    values = {name: str(path) for name, path in paths.items()} | {"output": str(tmp_path / "clip.mp4")}
    graph = compile_graph(load_document(PARALLAX), values)
    evaluator = Evaluator(graph)

    centre = ((width - 1) / 2, (height - 1) / 2)
    marker = centroid((plate == 250).all(axis=2).astype(np.float32))
    ease = NAMED_BEZIERS["ease-in-out"]
    seen = []
    for frame in range(graph.timeline.frame_count):
        outputs = evaluator.run(graph.timeline.context(frame))
        progress = cubic_bezier(*ease, frame / 10 / 0.9)
        near, far = outputs["near"]["value"], outputs["far"]["value"]
        assert near == pytest.approx(1.0 + 0.10 * progress, abs=1e-9)
        assert far == pytest.approx(1.0 + 0.04 * progress, abs=1e-9)
        seen.append(near)
        final = outputs["final"]["image"]
        # The subject: centre and size scale by the subject's zoom about the frame's centre.
        disc = red_pixels(final)
        expected = [c + near * (d - c) for c, d in zip(centre, disc_centre, strict=True)]
        assert centroid(disc.astype(np.float32)) == pytest.approx(expected, abs=0.3)
        assert disc.sum() == pytest.approx(matte.sum() * near**2, rel=0.1)  # thresholded: edges vary
        assert outputs["front"]["mask"].sum() == pytest.approx(matte.sum() * near**2, rel=0.005)
        assert centroid(outputs["front"]["mask"]) == pytest.approx(expected, abs=0.05)
        # The background moves less: its marker scales by the background's zoom.
        white = np.maximum(final[:60, :60].min(axis=2).astype(np.float32) - 60, 0)  # the plate is darker
        moved_marker = [c + far * (m - c) for c, m in zip(centre, marker, strict=True)]
        assert centroid(white) == pytest.approx(moved_marker, abs=0.1)
        # Where the subject moved away (its old left edge), the plate shows, not red.
        if near > 1.07:
            uncovered = (matte > 0.99) & (outputs["front"]["mask"] == 0.0)
            assert uncovered.sum() > 10
            assert not red_pixels(final)[uncovered].any()
            assert np.abs(final[uncovered].astype(int) - outputs["back"]["image"][uncovered]).max() <= 1
    # Eased: slow at both ends, fastest in the middle, symmetric about it.
    steps = np.diff(seen)
    assert steps[0] < steps[4] > steps[-1] and steps[0] == pytest.approx(steps[-1], rel=1e-6)
    assert seen[0] == 1.0 and seen[-1] == pytest.approx(1.10)
