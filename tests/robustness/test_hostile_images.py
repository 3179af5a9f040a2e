"""Catalogue items 1-5: hostile and unusual input images, through the command line."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from contract import PEAK_MB_SOURCE, Outcome, Workspace
from imagefiles import PNG_SIGNATURE, chunk, exif_orientation, png_bytes, small_png, with_ihdr_size
from PIL import Image
from videoprobe import probe, read_frames

from focusgraph.nodes import _imagefile
from focusgraph.nodes._imagefile import DEFAULT_MAX_PIXELS

Refuses = Callable[..., tuple[Outcome, dict[str, str]]]


def _still(workspace: Workspace, photo: Path, *extra: str) -> tuple[str, ...]:
    out = workspace.outputs / "still.png"
    return ("render", workspace.still_graph, "-i", photo, "-o", out, *extra)


def _jpeg_bytes(image: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


# 1 -------------------------------------------------------------------------------------------


def test_01_jpeg_truncated_at_half_is_refused_as_truncated(workspace: Workspace, refuses: Refuses) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    data = _jpeg_bytes(noise)
    half = workspace.write("half.jpg", data[: len(data) // 2])
    outcome, _ = refuses(*_still(workspace, half))
    outcome.refused("image", str(workspace.still_graph), "photo.params.path", str(half), "truncated")


# 2 -------------------------------------------------------------------------------------------


def test_02_unusable_files_get_distinct_messages(
    workspace: Workspace, refuses: Refuses, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    locked = workspace.write("locked.png", workspace.photo().read_bytes())
    cases = {
        "empty": workspace.write("empty.jpg", b""),
        "random bytes": workspace.write("junk.jpg", junk),
        "missing": workspace.inputs / "nowhere.jpg",
        "directory": workspace.inputs,
        "unreadable": locked,
    }
    if os.geteuid() == 0:  # root reads any file: make this one unreadable for the reader alone
        real_open = _imagefile._open_binary

        def deny(path: Path) -> object:
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path)

        monkeypatch.setattr(_imagefile, "_open_binary", deny)
    else:
        locked.chmod(0)
    messages = {}
    for case, path in cases.items():
        outcome, _ = refuses(*_still(workspace, path))
        line = outcome.refused("image", "photo.params.path", str(path))
        messages[case] = line.replace(str(path), "PATH")
    assert "empty" in messages["empty"]
    assert "not an image" in messages["random bytes"]
    assert "no such file" in messages["missing"]
    assert "directory" in messages["directory"]
    assert "permission denied" in messages["unreadable"].lower()
    assert len(set(messages.values())) == len(cases), messages
    locked.chmod(0o644)


# 3 -------------------------------------------------------------------------------------------


def _valid_png_of_size(path: Path, width: int, height: int) -> Path:
    """A real, fully valid, black RGB PNG of any size, streamed so it costs no memory."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(width * 3)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


_PEAK_RSS = (
    PEAK_MB_SOURCE
    + """
import sys
from focusgraph.graph.cli import main
code = main(sys.argv[1:])
print(peak_mb())
sys.exit(code)
"""
)


@pytest.mark.parametrize("size", [(20000, 20000), (12000, 12000)], ids=["forged-header", "valid-12000"])
def test_03_oversized_images_are_refused_from_the_header(workspace: Workspace, size: tuple[int, int]) -> None:
    width, height = size
    name = f"big-{width}.png"
    if size == (20000, 20000):
        photo = workspace.write(name, with_ihdr_size(small_png(), width, height))
    else:
        photo = _valid_png_of_size(workspace.inputs / name, width, height)
        with warnings.catch_warnings():  # the file really is a complete 12000x12000 image
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(photo) as opened:
                assert opened.size == size
                opened.verify()
    assert photo.stat().st_size < 1_000_000
    before = workspace.snapshot()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *_still(workspace, photo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outcome = Outcome(result.returncode, result.stdout, result.stderr)
    megapixels = f"{width * height / 1e6:.1f} megapixels"
    outcome.refused("image", str(photo), megapixels, f"max_pixels={DEFAULT_MAX_PIXELS}", "raise max_pixels")
    peak_mb = int(result.stdout.strip().splitlines()[-1])
    assert peak_mb < 300, f"peak RSS {peak_mb} MB"
    assert workspace.snapshot() == before


def test_03_pixel_cap_is_configurable(
    workspace: Workspace, refuses: Refuses, cli: Callable[..., Outcome]
) -> None:
    photo = workspace.photo(size=(96, 64))
    outcome, _ = refuses(*_still(workspace, photo, "--set", "photo.max_pixels=6000"))
    outcome.refused("image", "96x64", "max_pixels=6000")
    assert cli(*_still(workspace, photo, "--set", "photo.max_pixels=6144")).code == 0


# 4 -------------------------------------------------------------------------------------------


def _rgba_case() -> tuple[bytes, np.ndarray]:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[..., 3] = 255
    rgba[:, 3:, 3] = 0  # right half transparent: white, as a viewer shows it on a page
    rgba[0, 0, 3] = 128  # half covered: composited over white
    expected = np.full((4, 6, 3), 200, np.uint8)
    expected[...] = (200, 40, 10)
    expected[:, 3:] = 255
    expected[0, 0] = np.round(np.array([200, 40, 10]) * 128 / 255 + 255 * 127 / 255)
    return png_bytes(rgba, 6), expected


def _palette_case() -> tuple[bytes, np.ndarray]:
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    colours = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
    return buffer.getvalue(), colours[indices]


def _sixteen_bit_case() -> tuple[bytes, np.ndarray]:
    values = np.array([[0, 257, 32896], [65535, 65280, 128]], np.uint16)
    deep = np.dstack([values, values[::-1], np.full_like(values, 65535)])
    # Scaled by 255/65535, not truncated to the high byte (65280 -> 254, 128 -> 0 or 1 is fine)
    return png_bytes(deep, 2), np.round(deep / 257).astype(np.uint8)


def _gray_case() -> tuple[bytes, np.ndarray]:
    gray = np.array([[0, 100, 255], [30, 60, 90]], np.uint8)
    return png_bytes(gray, 0), np.dstack([gray] * 3)


def _gray_alpha_case() -> tuple[bytes, np.ndarray]:
    gray_alpha = np.array([[[50, 255], [50, 0]], [[200, 255], [200, 0]]], np.uint8)
    return png_bytes(gray_alpha, 4), np.array([[[50] * 3, [255] * 3], [[200] * 3, [255] * 3]], np.uint8)


def _cmyk_case() -> tuple[bytes, np.ndarray]:
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, :16] = (255, 0, 0, 0)  # pure cyan ink
    cmyk[:, 16:] = (0, 0, 0, 128)  # half black ink
    buffer = io.BytesIO()
    Image.fromarray(cmyk, mode="CMYK").save(buffer, "JPEG", quality=100)
    expected = np.zeros((16, 32, 3), np.uint8)
    expected[:, :16] = (0, 255, 255)
    expected[:, 16:] = 127
    return buffer.getvalue(), expected


def _exif_rotated_case() -> tuple[bytes, np.ndarray]:
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:16, :32] = (255, 0, 0)  # stored top-left red
    stored[:16, 32:] = (0, 255, 0)
    stored[16:, :32] = (0, 0, 255)
    stored[16:, 32:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    data = _jpeg_bytes(stored, exif=exif.tobytes(), subsampling=0)
    return data, np.rot90(stored, k=-1)


def _exif_rotated_png_case() -> tuple[bytes, np.ndarray]:
    stored = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
    return png_bytes(stored, 2, exif=exif_orientation(6)), np.rot90(stored, k=-1)


@pytest.mark.parametrize(
    ("name", "build", "tolerance"),
    [
        ("deep.png", _sixteen_bit_case, 0),
        ("gray.png", _gray_case, 0),
        ("gray-alpha.png", _gray_alpha_case, 0),
        ("palette.png", _palette_case, 0),
        ("cmyk.jpg", _cmyk_case, 6),
        ("rgba.png", _rgba_case, 1),
        ("rotated.jpg", _exif_rotated_case, 12),
        ("rotated.png", _exif_rotated_png_case, 0),
    ],
)
def test_04_unusual_formats_become_correct_8bit_rgb(
    workspace: Workspace,
    cli: Callable[..., Outcome],
    name: str,
    build: Callable[[], tuple[bytes, np.ndarray]],
    tolerance: int,
) -> None:
    data, expected = build()
    photo = workspace.write(name, data)
    outcome = cli(*_still(workspace, photo))
    assert outcome.code == 0, outcome.err
    with Image.open(workspace.outputs / "still.png") as written:
        assert written.mode == "RGB"
        pixels = np.asarray(written)
    assert pixels.shape == expected.shape
    error = np.abs(pixels.astype(int) - expected.astype(int))
    # the JPEG cases sit away from block edges only where the colour changes
    assert np.median(error) <= tolerance and error.max() <= max(tolerance * 4, 1), error.max()
    assert photo.read_bytes() == data


# 5 -------------------------------------------------------------------------------------------


def test_05_odd_size_is_cropped_to_the_documented_even_size(
    workspace: Workspace, cli: Callable[..., Outcome]
) -> None:
    photo = workspace.photo("odd.png", size=(641, 481))
    out = workspace.outputs / "odd.mp4"
    outcome = cli("render", workspace.clip_graph, "-i", photo, "-o", out, "--set", "duration=0.2")
    assert outcome.code == 0, outcome.err
    info = probe(out)
    assert (info["width"], info["height"]) == (640, 480)  # the last column and row dropped, never padded
    first = next(read_frames(out)).astype(float)
    source = np.asarray(Image.open(photo), dtype=float)[:480, :640]
    assert np.abs(first - source).mean() < 8  # cropped in place (blur 8 px + grain), not scaled or shifted


def test_05_one_pixel_photo_is_refused_with_the_minimum_size(workspace: Workspace, refuses: Refuses) -> None:
    photo = workspace.photo("dot.png", size=(1, 1))
    out = workspace.outputs / "dot.mp4"
    outcome, _ = refuses("render", workspace.clip_graph, "-i", photo, "-o", out, "--set", "duration=0.2")
    outcome.refused("output", "clip", "1x1", "too small", "2x2")
