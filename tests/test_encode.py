"""Tests of core.encode: stream properties, colour, cropping, stills and atomic writes."""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from videoprobe import probe, read_frames, read_yuv420

from focusgraph.graph.errors import EncodeError
from focusgraph.graph.node import Timeline
from focusgraph.nodes import encode
from focusgraph.nodes.encode import Encode, VideoWriter, frame_rate

W, H = 64, 48


def solid(rgb: Sequence[int], width: int = W, height: int = H) -> np.ndarray:
    return np.full((height, width, 3), rgb, np.uint8)


def gradient(width: int = W, height: int = H) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    red, green = np.broadcast_arrays(x, y)
    image = np.stack([red, green, 255 - (red + green) / 2], axis=-1)
    return np.round(image).astype(np.uint8)


def render(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: float = 24.0,
    overwrite: bool = False,
    **params: Any,
) -> Path:
    node = Encode()
    timeline = Timeline(fps, len(frames))
    writer = node.open(node.Params(path=str(path), **params), timeline, overwrite)
    for index, frame in enumerate(frames):
        writer.write({"image": frame}, timeline.context(index))
    return writer.commit()


def listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def test_mp4_stream_properties(tmp_path: Path) -> None:
    frames = [solid((i * 25, 100, 200 - i * 20)) for i in range(10)]
    out = render(tmp_path / "clip.mp4", frames, fps=24.0, preset="ultrafast")
    assert out == tmp_path / "clip.mp4"
    info = probe(out)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (W, H)
    assert info["fps"] == 24.0
    assert info["frames"] == 10
    assert info["duration"] == pytest.approx(10 / 24, abs=0.02)
    # the colour tags, in the H.264 stream as ffmpeg reports them and in the MP4 colr box
    assert info["color_range"] == "tv"
    assert (info["color_space"], info["color_primaries"], info["color_trc"]) == ("bt709",) * 3
    assert info["colr"] == {"primaries": 1, "transfer": 1, "matrix": 1, "full_range": False}
    assert info["faststart"], info["boxes"]
    decoded = list(read_frames(out))
    assert len(decoded) == 10
    assert decoded[0].shape == (H, W, 3)
    assert listing(tmp_path) == ["clip.mp4"]


def test_without_faststart_moov_comes_last(tmp_path: Path) -> None:
    out = render(tmp_path / "slow.mp4", [solid((9, 9, 9))] * 3, faststart=False)
    info = probe(out)
    assert not info["faststart"]
    assert info["boxes"].index("mdat") < info["boxes"].index("moov")


def test_ntsc_frame_rate(tmp_path: Path) -> None:
    assert frame_rate(24.0) == "24/1"
    assert frame_rate(29.97) == "30000/1001"
    assert frame_rate(23.976) == "24000/1001"
    assert frame_rate(12.5) == "25/2"
    out = render(tmp_path / "ntsc.mp4", [solid((50, 60, 70))] * 4, fps=29.97, preset="ultrafast")
    assert probe(out)["fps"] == 29.97


COLOURS = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (128, 128, 128),
    (255, 255, 255),
    (0, 0, 0),
    (230, 180, 40),
    (20, 200, 230),
]


def test_colours_round_trip(tmp_path: Path) -> None:
    frames = [solid(colour) for colour in COLOURS] + [gradient()]
    out = render(tmp_path / "colours.mp4", frames)  # default crf 18
    decoded = list(read_frames(out))
    assert len(decoded) == len(frames)
    for colour, image in zip(COLOURS, decoded, strict=False):
        error = np.abs(image.reshape(-1, 3).mean(axis=0) - np.array(colour))
        assert error.max() < 2, (colour, error)  # measured <= 1
    # a steep gradient survives 4:2:0 subsampling with small per-pixel errors (measured 1.5)
    error = np.abs(decoded[-1].astype(float) - frames[-1].astype(float)).mean(axis=(0, 1))
    assert error.max() < 2.5, error


# BT.709 limited range: Y = 16 + 219 Y', Cb = 128 + 224 (B' - Y') / 1.8556,
# Cr = 128 + 224 (R' - Y') / 1.5748 with Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'.
# BT.601 would give Y = 82 for red, 145 for green, 41 for blue.
BT709_YUV = {
    (255, 0, 0): (63, 102, 240),
    (0, 255, 0): (173, 42, 26),
    (0, 0, 255): (32, 240, 118),
    (128, 128, 128): (126, 128, 128),
}


def test_matrix_is_bt709_limited_range(tmp_path: Path) -> None:
    out = render(tmp_path / "matrix.mp4", [solid(colour) for colour in BT709_YUV], crf=0)
    planes = list(read_yuv420(out))
    assert len(planes) == len(BT709_YUV)
    for expected, (y, u, v) in zip(BT709_YUV.values(), planes, strict=True):
        got = (y.mean(), u.mean(), v.mean())
        assert np.allclose(got, expected, atol=1.5), (expected, got)


def test_odd_size_is_cropped_not_scaled(tmp_path: Path) -> None:
    base = gradient(65, 49)
    base[:, -1] = (255, 0, 255)  # the column and row that must be dropped
    base[-1, :] = (255, 0, 255)
    out = render(tmp_path / "odd.mp4", [base] * 3, crf=0)
    info = probe(out)
    assert (info["width"], info["height"]) == (64, 48)
    decoded = next(read_frames(out)).astype(float)
    # a crop keeps every remaining pixel in place (measured 0.5); scaling to 64x48
    # (7.6) or dropping the first column and row instead (10) would not
    error = np.abs(decoded - base[:48, :64].astype(float)).mean()
    assert error < 1.5, error


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (40, 1)])
def test_too_small_image_is_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    with pytest.raises(EncodeError, match="too small"):
        render(tmp_path / "tiny.mp4", [solid((1, 2, 3), width, height)] * 2)
    assert listing(tmp_path) == []


def test_abort_leaves_nothing_and_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous render")
    node = Encode()
    timeline = Timeline(24.0, 10)
    writer = node.open(node.Params(path=str(target)), timeline, overwrite=True)
    for index in range(5):
        writer.write({"image": gradient()}, timeline.context(index))
    assert isinstance(writer, VideoWriter)
    process = writer.process
    assert process is not None and process.poll() is None
    assert len(listing(tmp_path)) == 2  # the target and the hidden temporary file
    writer.abort()
    assert process.poll() is not None  # no orphan ffmpeg
    writer.abort()  # idempotent
    assert listing(tmp_path) == ["clip.mp4"]
    assert target.read_bytes() == b"previous render"


def test_dropped_writer_is_cleaned_up(tmp_path: Path) -> None:
    node = Encode()
    timeline = Timeline(24.0, 10)
    writer = node.open(node.Params(path=str(tmp_path / "clip.mp4")), timeline, overwrite=False)
    writer.write({"image": gradient()}, timeline.context(0))
    assert isinstance(writer, VideoWriter) and writer.process is not None
    process = writer.process
    del writer
    gc.collect()
    assert process.poll() is not None
    assert listing(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"keep me")
    with pytest.raises(EncodeError, match="exists; pass --overwrite") as info:
        render(target, [solid((1, 2, 3))] * 2)
    assert info.value.field == "params.path"
    assert target.read_bytes() == b"keep me"
    assert listing(tmp_path) == ["clip.mp4"]
    render(target, [solid((1, 2, 3))] * 2, overwrite=True)
    assert probe(target)["frames"] == 2
    assert listing(tmp_path) == ["clip.mp4"]


def test_output_appearing_during_render_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    node = Encode()
    timeline = Timeline(24.0, 2)
    writer = node.open(node.Params(path=str(target)), timeline, overwrite=False)
    for index in range(2):
        writer.write({"image": solid((5, 5, 5))}, timeline.context(index))
    target.write_bytes(b"someone else's")
    with pytest.raises(EncodeError, match="exists"):
        writer.commit()
    assert target.read_bytes() == b"someone else's"
    assert listing(tmp_path) == ["clip.mp4"]


def test_output_permissions_follow_umask(tmp_path: Path) -> None:
    out = render(tmp_path / "clip.mp4", [solid((1, 2, 3))] * 2)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_png_still_is_lossless_and_keeps_odd_size(tmp_path: Path) -> None:
    image = gradient(65, 49)
    out = render(tmp_path / "still.png", [image])
    read = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert read is not None
    assert np.array_equal(cv2.cvtColor(read, cv2.COLOR_BGR2RGB), image)
    assert listing(tmp_path) == ["still.png"]


@pytest.mark.parametrize("name", ["still.jpg", "still.JPEG"])
def test_jpeg_still(tmp_path: Path, name: str) -> None:
    image = gradient()
    out = render(tmp_path / name, [image], quality=95)
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    bgr = cv2.imread(str(out))
    assert bgr is not None
    assert np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(float) - image).mean() < 3
    low = render(tmp_path / "low.jpg", [image], quality=10)
    assert low.stat().st_size < out.stat().st_size


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    out = render(tmp_path / "clip.bin", [solid((1, 2, 3))] * 3, format="mp4")
    assert probe(out)["codec"] == "h264"
    still = render(tmp_path / "frame.img", [solid((1, 2, 3))], format="png")
    assert still.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_many_frames_to_still_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match=r"still image.*3 frames.*\.mp4") as info:
        render(tmp_path / "frames.png", [solid((1, 2, 3))] * 3)
    assert info.value.field == "params.path"
    assert listing(tmp_path) == []


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="extension") as info:
        render(tmp_path / "clip.avi", [solid((1, 2, 3))] * 2)
    assert info.value.field == "params.path"
    assert listing(tmp_path) == []


def test_directory_and_missing_parent_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(EncodeError, match="is a directory"):
        render(tmp_path / "dir.mp4", [solid((1, 2, 3))] * 2, overwrite=True)
    with pytest.raises(EncodeError, match="does not exist"):
        render(tmp_path / "missing" / "clip.mp4", [solid((1, 2, 3))] * 2)
    assert listing(tmp_path) == ["dir.mp4"]


@pytest.mark.parametrize(
    ("frames", "width", "height"),
    [(2, W, H), (30, 640, 480)],  # fails at commit (frames fit the pipe) / while writing
)
def test_ffmpeg_failure_reports_stderr_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: int, width: int, height: int
) -> None:
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous")
    monkeypatch.setattr(encode, "VIDEO_FILTER", "nosuchfilter")
    with pytest.raises(EncodeError, match="ffmpeg") as info:
        render(target, [solid((1, 2, 3), width, height)] * frames, overwrite=True)
    assert "No such filter: 'nosuchfilter'" in str(info.value)
    assert "\n" not in str(info.value)
    assert listing(tmp_path) == ["clip.mp4"]
    assert target.read_bytes() == b"previous"


def test_ffmpeg_dying_mid_stream(tmp_path: Path) -> None:
    node = Encode()
    timeline = Timeline(24.0, 10)
    writer = node.open(node.Params(path=str(tmp_path / "clip.mp4")), timeline, overwrite=False)
    writer.write({"image": gradient()}, timeline.context(0))
    assert isinstance(writer, VideoWriter) and writer.process is not None
    writer.process.kill()
    writer.process.wait()
    with pytest.raises(EncodeError, match="ffmpeg stopped"):
        for index in range(1, 10):
            writer.write({"image": gradient()}, timeline.context(index))
    assert listing(tmp_path) == []


def test_frame_size_change_is_refused(tmp_path: Path) -> None:
    node = Encode()
    timeline = Timeline(24.0, 3)
    writer = node.open(node.Params(path=str(tmp_path / "clip.mp4")), timeline, overwrite=False)
    writer.write({"image": solid((1, 2, 3))}, timeline.context(0))
    assert isinstance(writer, VideoWriter)
    process = writer.process
    with pytest.raises(EncodeError, match=r"frame 1 is 32x48 but the clip is 64x48"):
        writer.write({"image": solid((1, 2, 3), 32, 48)}, timeline.context(1))
    assert process is not None and process.poll() is not None
    assert listing(tmp_path) == []


def test_bad_frame_and_empty_render(tmp_path: Path) -> None:
    node = Encode()
    timeline = Timeline(24.0, 2)
    params = node.Params(path=str(tmp_path / "clip.mp4"))
    writer = node.open(params, timeline, overwrite=False)
    with pytest.raises(EncodeError, match="uint8"):
        writer.write({"image": np.zeros((H, W, 3), np.float32)}, timeline.context(0))
    assert listing(tmp_path) == []
    writer = node.open(params, timeline, overwrite=False)
    with pytest.raises(EncodeError, match="no frames"):
        writer.commit()
    assert listing(tmp_path) == []


def test_params_are_validated() -> None:
    assert Encode.Params(path="a.mp4").crf == 18
    assert Encode().output_path(Encode.Params(path="out/a.mp4")) == Path("out/a.mp4")
    for bad in ({"crf": 52}, {"preset": "turbo"}, {"format": "avi"}, {"quality": 0}, {"fps": 3}):
        with pytest.raises(ValidationError):
            Encode.Params(path="a.mp4", **bad)
    for name, field in Encode.Params.model_fields.items():
        assert field.description, name
