"""Tests of core.encode's output formats (WebM, GIF, PNG sequence, WebP) and of size/aspect/fit."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from photos import photo_path
from pydantic import ValidationError
from videoprobe import probe, read_frames

from focusgraph.graph import load_graph, render
from focusgraph.graph.cli import main
from focusgraph.graph.errors import EncodeError, GraphValidationError
from focusgraph.graph.node import Timeline
from focusgraph.nodes import _reframe
from focusgraph.nodes.encode import EXTENSION_FORMATS, FORMATS, Encode, webm_args

W, H = 64, 48


def gradient(width: int = W, height: int = H, shift: int = 0) -> np.ndarray:
    """A smooth colour gradient; ``shift`` moves it so frames differ."""
    x = np.linspace(0, 200, width)[None, :] + shift
    y = np.linspace(20, 220, height)[:, None]
    red, green = np.broadcast_arrays(x % 256, y)
    return np.round(np.stack([red, green, 240 - (red + green) / 3], axis=-1)).astype(np.uint8)


def columns(width: int, height: int) -> np.ndarray:
    """An image whose red channel is the column index and green the row index (both < 256)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x, y, np.full_like(x, 128)]).astype(np.uint8)


def render_frames(
    path: Path | str,
    frames: Sequence[np.ndarray],
    *,
    fps: float = 10.0,
    overwrite: bool = False,
    mask: np.ndarray | None = None,
    **params: Any,
) -> Path:
    """Write ``frames`` through a core.encode writer (``mask`` feeds the optional mask input)."""
    node = Encode()
    timeline = Timeline(fps, len(frames))
    writer = node.open(node.Params(path=str(path), **params), timeline, overwrite)
    for index, frame in enumerate(frames):
        inputs = {"image": frame} if mask is None else {"image": frame, "mask": mask}
        writer.write(inputs, timeline.context(index))
    return writer.commit()


def listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


# WebM --------------------------------------------------------------------------------------


def test_webm_is_vp9_yuv420p_bt709_with_faithful_colours(tmp_path: Path) -> None:
    frames = [gradient(shift=4 * i) for i in range(8)]
    out = render_frames(tmp_path / "clip.webm", frames)
    assert out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML (Matroska/WebM)
    info = probe(out)
    assert (info["codec"], info["pix_fmt"]) == ("vp9", "yuv420p")
    assert (info["width"], info["height"]) == (W, H)
    assert info["color_range"] == "tv"
    assert (info["color_space"], info["color_primaries"], info["color_trc"]) == ("bt709",) * 3
    decoded = list(read_frames(out))
    assert len(decoded) == len(frames)
    for frame, image in zip(frames, decoded, strict=True):
        assert mean_error(image, frame) < 3  # measured 0.9-1.1 at the default crf (24)
    assert listing(tmp_path) == ["clip.webm"]


def test_webm_crf_follows_crf_unless_given() -> None:
    def crf(**params: Any) -> str:
        args = webm_args(Encode.Params(path="a.webm", **params))
        return args[args.index("-crf") + 1]

    assert crf() == "24"
    assert crf(crf=23) == "29"
    assert crf(crf=51) == "57"
    assert crf(crf=18, vp9_crf=40) == "40"
    assert {"-b:v", "-row-mt", "-deadline", "-cpu-used"} <= set(webm_args(Encode.Params(path="a.webm")))


# GIF ---------------------------------------------------------------------------------------


def gif_loop_count(data: bytes) -> int:
    """The loop count of the NETSCAPE2.0 application extension (0 = forever)."""
    match = re.search(rb"NETSCAPE2\.0\x03\x01(..)", data, re.DOTALL)
    assert match, "no looping extension"
    return int.from_bytes(match.group(1), "little")


def test_gif_loops_forever_with_all_frames_close_to_the_rendered_ones(tmp_path: Path) -> None:
    frames = [gradient(shift=6 * i) for i in range(12)]
    out = render_frames(tmp_path / "clip.gif", frames, gif_fps=0)
    data = out.read_bytes()
    assert data[:6] == b"GIF89a"
    assert gif_loop_count(data) == 0
    decoded = list(read_frames(out))
    assert len(decoded) == len(frames)
    assert decoded[0].shape == (H, W, 3)
    for frame, image in zip(frames, decoded, strict=True):
        assert mean_error(image, frame) < 6  # 256 colours, ordered dither (measured 1.5-2.5)
    assert listing(tmp_path) == ["clip.gif"]


def test_gif_frame_rate_is_reduced_and_odd_sizes_are_kept(tmp_path: Path) -> None:
    frames = [gradient(65, 49, shift=i) for i in range(20)]
    out = render_frames(tmp_path / "slow.gif", frames, fps=20.0, gif_fps=10)
    decoded = list(read_frames(out))
    assert len(decoded) == 10
    assert decoded[0].shape == (49, 65, 3)  # no 4:2:0: nothing to crop


def test_rack_focus_gif_at_480px_is_under_4_mb(tmp_path: Path) -> None:
    """The preset's moving film grain is the hard case for GIF compression (5 s, 30 fps timeline)."""
    out = tmp_path / "clip.gif"
    source = photo_path("girl-2.jpg")
    assert main(["-q", "render", "rack-focus", "-i", str(source), "-o", str(out), "--set", "width=480"]) == 0
    size = out.stat().st_size
    assert size < 4_000_000, f"{size / 1e6:.2f} MB"  # measured 1.5 MB
    info = probe(out)
    assert (info["codec"], info["width"], info["height"]) == ("gif", 480, 320)
    assert sum(1 for _ in read_frames(out)) == 75  # 5 s at the default gif_fps of 15
    assert gif_loop_count(out.read_bytes()) == 0


# PNG sequence ------------------------------------------------------------------------------


def test_png_sequence_holds_every_frame_exactly(tmp_path: Path) -> None:
    frames = [gradient(65, 49, shift=3 * i) for i in range(7)]
    out = render_frames(f"{tmp_path}/frames/", frames)
    assert out == tmp_path / "frames"
    assert listing(tmp_path) == ["frames"]
    assert listing(out) == [f"frame-{i:05d}.png" for i in range(7)]
    for index, frame in enumerate(frames):
        assert np.array_equal(read_rgb(out / f"frame-{index:05d}.png"), frame)
    explicit = render_frames(tmp_path / "named", frames[:2], format="png-sequence")
    assert listing(explicit) == ["frame-00000.png", "frame-00001.png"]


def test_png_sequence_abort_leaves_nothing(tmp_path: Path) -> None:
    node = Encode()
    timeline = Timeline(10.0, 5)
    writer = node.open(node.Params(path=f"{tmp_path}/frames/"), timeline, overwrite=False)
    for index in range(3):
        writer.write({"image": gradient()}, timeline.context(index))
    (temp,) = list(tmp_path.iterdir())
    assert temp.name.startswith(".frames.focusgraph-tmp-") and len(listing(temp)) == 3
    writer.abort()
    writer.abort()  # idempotent
    assert listing(tmp_path) == []


def test_png_sequence_overwrite_replaces_a_previous_sequence_only(tmp_path: Path) -> None:
    target = f"{tmp_path}/frames/"
    render_frames(target, [gradient(shift=i) for i in range(5)])
    with pytest.raises(EncodeError, match="exists; pass --overwrite") as info:
        render_frames(target, [gradient()] * 2)
    assert info.value.field == "params.path"
    new = [gradient(shift=100 + i) for i in range(3)]
    out = render_frames(target, new, overwrite=True)
    assert listing(out) == [f"frame-{i:05d}.png" for i in range(3)]  # none of the old 5 left
    assert np.array_equal(read_rgb(out / "frame-00002.png"), new[2])
    assert listing(tmp_path) == ["frames"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(EncodeError, match=r"holds more than a PNG sequence \(notes.txt\)"):
        render_frames(target, new, overwrite=True)
    (tmp_path / "file").write_text("a file")
    with pytest.raises(EncodeError, match="not a folder"):
        render_frames(f"{tmp_path}/file/", new, overwrite=True)
    assert listing(tmp_path) == ["file", "frames"]
    assert len(listing(out)) == 4
    for nameless in ("/", "./", f"{tmp_path}/../"):
        with pytest.raises(EncodeError, match="names no new folder"):
            render_frames(nameless, new, overwrite=True)


def test_png_sequence_through_the_cli(tmp_path: Path, small_photo: Path) -> None:
    graph = tmp_path / "copy.yaml"
    graph.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: copy
            inputs:
              image: {type: path}
              output: {type: path, default: out/}
            timeline: {fps: 10, duration: 0.4}
            nodes:
              photo: {type: load, params: {path: $image}}
              clip: {type: encode, inputs: {image: photo}, params: {path: $output}}
            """
        )
    )
    out = tmp_path / "seq"
    assert main(["-q", "render", str(graph), "-i", str(small_photo), "-o", f"{out}/"]) == 0
    assert listing(out) == [f"frame-{i:05d}.png" for i in range(4)]
    assert np.array_equal(read_rgb(out / "frame-00003.png"), read_rgb(small_photo))


# stills ------------------------------------------------------------------------------------


def test_webp_still_honours_quality(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 2)
    high = render_frames(tmp_path / "high.webp", [image], quality=95)
    low = render_frames(tmp_path / "low.webp", [image], quality=20)
    for out in (high, low):
        data = out.read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert low.stat().st_size < high.stat().st_size
    assert mean_error(read_rgb(high), image) < mean_error(read_rgb(low), image)
    assert mean_error(read_rgb(high), image) < 3
    assert listing(tmp_path) == ["high.webp", "low.webp"]


def test_unknown_extension_lists_every_format(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="extension") as info:
        render_frames(tmp_path / "clip.avi", [gradient()] * 2)
    assert info.value.field == "params.path"
    message = str(info.value)
    for name in [*EXTENSION_FORMATS, *FORMATS, "ending in /"]:
        assert name in message, name
    assert listing(tmp_path) == []


# size, aspect and fit ----------------------------------------------------------------------


def disc_mask(width: int, height: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    cv2.circle(mask, centre, radius, 1.0, -1)
    return mask


def test_cover_to_9_16_is_centred_on_the_mask(tmp_path: Path) -> None:
    image = columns(160, 90)  # 16:9
    mask = disc_mask(160, 90, (120, 45), 8)  # subject right of centre
    out = render_frames(tmp_path / "tall.png", [image], mask=mask, aspect="9:16")
    kept = read_rgb(out)
    assert kept.shape == (90, 51, 3)  # 90 * 9/16 = 50.6, native pixels (no scaling)
    # the window is centred on the disc (column 120.5): columns 95..145, not the frame's 55..105
    assert kept[0, 0, 0] == 95 and kept[0, -1, 0] == 145
    assert np.array_equal(kept, image[:, 95:146])
    # near the edge the window is clamped inside the frame
    edge = render_frames(tmp_path / "edge.png", [image], mask=disc_mask(160, 90, (155, 45), 3), aspect="9:16")
    assert read_rgb(edge)[0, -1, 0] == 159
    # no mask: the frame's centre
    centred = render_frames(tmp_path / "centred.png", [image], aspect="9:16")
    assert read_rgb(centred)[0, 0, 0] == round(80 - 51 / 2)


def test_cover_follows_the_mask_in_a_compiled_graph(tmp_path: Path) -> None:
    """load -> segment (a mask file) -> encode.mask, the way the rack-focus preset is wired."""
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(columns(160, 90), cv2.COLOR_RGB2BGR))
    mask_file = tmp_path / "mask.png"
    cv2.imwrite(str(mask_file), (disc_mask(160, 90, (30, 45), 10) * 255).astype(np.uint8))
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: reframe
            inputs:
              image: {type: path}
              mask: {type: path}
              output: {type: path}
            timeline: {fps: 10, duration: 0.5}
            nodes:
              photo: {type: load, params: {path: $image}}
              subject: {type: segment, inputs: {image: photo}, params: {mask: $mask}}
              clip:
                type: encode
                inputs: {image: photo, mask: subject}
                params: {path: $output, aspect: "9:16", height: 180, crf: 0, preset: ultrafast}
            """
        )
    )
    out = tmp_path / "tall.mp4"
    compiled = load_graph(graph, {"image": str(photo), "mask": str(mask_file), "output": str(out)})
    assert render(compiled) == [out]
    info = probe(out)
    assert (info["width"], info["height"]) == (102, 180)  # 180 * 9/16 = 101.25 -> even
    frames = list(read_frames(out))
    assert len(frames) == 5
    # the window spans source columns 5..55 (centred on 30.5), scaled x2: red runs ~5 -> ~55
    red = frames[0][90, :, 0].astype(float)
    assert abs(red[2] - 6) < 3 and abs(red[-3] - 55) < 3


def test_contain_pads_with_bars_of_the_right_thickness(tmp_path: Path) -> None:
    image = np.full((90, 160, 3), 200, np.uint8)  # 16:9 -> 1:1 at 100 px: 100x56 inside
    out = render_frames(tmp_path / "box.png", [image], aspect="1:1", width=100, fit="contain")
    boxed = read_rgb(out)
    assert boxed.shape == (100, 100, 3)
    rows = boxed.mean(axis=(1, 2))
    assert np.all(rows[:22] == 0) and np.all(rows[78:] == 0)  # (100 - 56) / 2 = 22 each
    assert np.all(rows[22:78] == 200)
    red = render_frames(tmp_path / "red.png", [image], aspect="1:1", fit="contain", background="#ff0000")
    assert read_rgb(red).shape == (160, 160, 3)  # no size: the padded frame at native pixels
    assert tuple(read_rgb(red)[0, 0]) == (255, 0, 0) and tuple(read_rgb(red)[80, 80]) == (200, 200, 200)
    tall = read_rgb(render_frames(tmp_path / "tall.png", [image], aspect="4:5", height=100, fit="contain"))
    assert tall.shape == (100, 80, 3)  # 80x45 inside: bars of 27 and 28 rows, none at the sides
    rows = tall.mean(axis=(1, 2))
    assert np.all(rows[:27] == 0) and np.all(rows[27:72] == 200) and np.all(rows[72:] == 0)


def test_video_sizes_are_rounded_to_even(tmp_path: Path) -> None:
    frames = [gradient(160, 90)] * 2
    out = render_frames(tmp_path / "a.mp4", frames, width=101, preset="ultrafast")
    assert (probe(out)["width"], probe(out)["height"]) == (100, 56)  # 101 -> 100; 56.8 -> 56
    out = render_frames(tmp_path / "b.webm", frames, aspect="1:1", width=75)
    assert (probe(out)["width"], probe(out)["height"]) == (74, 74)
    out = render_frames(tmp_path / "c.mp4", frames, height=45, preset="ultrafast")
    assert (probe(out)["width"], probe(out)["height"]) == (78, 44)  # 45 -> 44; 44 * 16/9 = 78.2 -> 78
    still = render_frames(tmp_path / "d.png", frames[:1], width=101)
    assert read_rgb(still).shape == (57, 101, 3)  # stills keep odd sizes


def test_reframed_frames_must_keep_their_size(tmp_path: Path) -> None:
    node = Encode()
    timeline = Timeline(10.0, 2)
    writer = node.open(node.Params(path=str(tmp_path / "a.mp4"), width=32), timeline, overwrite=False)
    writer.write({"image": gradient()}, timeline.context(0))
    with pytest.raises(EncodeError, match="frame 1 is 32x48 but the first frame was 64x48"):
        writer.write({"image": gradient(32, 48)}, timeline.context(1))
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"aspect": "9x16"}, "aspect", "W:H"),
        ({"aspect": "0:1"}, "aspect", "positive"),
        ({"aspect": "100:1"}, "aspect", "extreme"),
        ({"aspect": "9:16", "width": 1080, "height": 1080}, "aspect", "disagrees"),
        ({"width": -1}, "width", "greater than or equal"),
        ({"height": 20000}, "height", "less than or equal"),
        ({"fit": "stretch"}, "fit", "cover"),
        ({"background": "black"}, "background", "pattern"),
        ({"vp9_crf": 64}, "vp9_crf", "63"),
        ({"gif_fps": 60}, "gif_fps", "50"),
    ],
)
def test_size_params_are_validated(params: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Encode.Params(path="a.mp4", **params)
    (error,) = info.value.errors()
    assert error["loc"][0] == field and text in error["msg"], error


def test_bad_aspect_is_reported_with_its_field_by_the_compiler(tmp_path: Path) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "version: 1\nname: g\ntimeline: {fps: 10, duration: 0}\nnodes:\n"
        "  photo: {type: load, params: {path: p.png}}\n"
        "  clip: {type: encode, inputs: {image: photo}, params: {path: a.mp4, aspect: wide}}\n"
    )
    with pytest.raises(GraphValidationError) as info:
        load_graph(graph)
    assert "node clip.params.aspect:" in str(info.value)
    assert Encode.Params(path="a.mp4", aspect="1.85:1", width=185, height=100).aspect == "1.85:1"


# properties of the geometry helper ---------------------------------------------------------

SIDES = st.integers(1, 4000)
ASPECTS = st.sampled_from([None, 9 / 16, 1.0, 16 / 9, 4 / 5, 2.39, 1 / 20, 20.0])
CENTRES = st.none() | st.tuples(st.floats(0, 1), st.floats(0, 1))


@settings(max_examples=400, deadline=None)
@given(
    source=st.tuples(SIDES, SIDES),
    width=st.integers(0, 4000),
    height=st.integers(0, 4000),
    aspect=ASPECTS,
    fit=st.sampled_from(["cover", "contain"]),
    centre=CENTRES,
    even_sides=st.booleans(),
)
def test_plan_properties(
    source: tuple[int, int],
    width: int,
    height: int,
    aspect: float | None,
    fit: _reframe.Fit,
    centre: tuple[float, float] | None,
    even_sides: bool,
) -> None:
    plan = _reframe.plan(
        source, width=width, height=height, aspect=aspect, fit=fit, centre=centre, even_sides=even_sides
    )
    out_w, out_h = plan.size
    # the requested sides exactly (video: an odd one less one pixel)
    for asked, got in ((width, out_w), (height, out_h)):
        if asked:
            assert got == (max(2, asked - asked % 2) if even_sides else asked)
    if even_sides:
        assert out_w % 2 == 0 and out_h % 2 == 0
    assert out_w >= 1 and out_h >= 1
    # the crop window lies inside the frame, the scaled window inside the canvas
    x, y, win_w, win_h = plan.crop
    assert min(x, y) >= 0 and win_w >= 1 and win_h >= 1
    assert x + win_w <= source[0] and y + win_h <= source[1]
    ox, oy = plan.offset
    assert min(ox, oy) >= 0 and ox + plan.inner[0] <= out_w and oy + plan.inner[1] <= out_h
    if fit == "cover":
        assert plan.inner == plan.size and plan.bars == (0, 0, 0, 0)
        if centre is not None:  # the window contains the subject's centre
            cx, cy = centre[0] * source[0], centre[1] * source[1]
            assert x - 0.5 <= cx <= x + win_w + 0.5 and y - 0.5 <= cy <= y + win_h + 0.5
        if width and height and min(win_w, win_h) > 20:  # the window has the output's shape
            assert win_w / win_h == pytest.approx(out_w / out_h, rel=0.06)
    else:
        assert plan.crop == (0, 0, *source)
        left, top, right, bottom = plan.bars
        assert abs(left - right) <= 1 and abs(top - bottom) <= 1
        assert left + right == 0 or top + bottom == 0 or min(plan.inner) <= 2  # bars on one axis


@settings(max_examples=150, deadline=None)
@given(
    source=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    width=st.integers(0, 64),
    height=st.integers(0, 64),
    aspect=ASPECTS,
    fit=st.sampled_from(["cover", "contain"]),
    centre=CENTRES,
)
def test_apply_plan_gives_exactly_the_planned_size(
    source: tuple[int, int],
    width: int,
    height: int,
    aspect: float | None,
    fit: _reframe.Fit,
    centre: tuple[float, float] | None,
) -> None:
    image = np.random.default_rng(0).integers(0, 256, (source[1], source[0], 3), dtype=np.uint8)
    plan = _reframe.plan(source, width=width, height=height, aspect=aspect, fit=fit, centre=centre)
    out = _reframe.apply_plan(image, plan, (1, 2, 3))
    assert out.shape == (plan.size[1], plan.size[0], 3) and out.dtype == np.uint8


@settings(max_examples=100, deadline=None)
@given(width=st.integers(1, 200), height=st.integers(1, 200), data=st.data())
def test_mask_centroid_of_one_pixel_is_its_centre(width: int, height: int, data: st.DataObject) -> None:
    col, row = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
    mask = np.zeros((height, width), np.float32)
    assert _reframe.mask_centroid(mask) is None
    mask[row, col] = 0.7
    cx, cy = _reframe.mask_centroid(mask) or (-1.0, -1.0)
    assert cx == pytest.approx((col + 0.5) / width) and cy == pytest.approx((row + 0.5) / height)
