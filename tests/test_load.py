"""Tests of the Load node and the strict image reading helpers in nodes/_imagefile.py."""

from __future__ import annotations

import io
import os
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydantic
import pytest
from imagefiles import exif_orientation, png_bytes, small_png, with_ihdr_size
from photos import PHOTOS
from PIL import Image, ImageFile, ImageOps

from focusgraph.graph.errors import InputImageError
from focusgraph.graph.node import FrameContext
from focusgraph.nodes import _imagefile
from focusgraph.nodes._imagefile import fit_cover, read_gray, read_rgb
from focusgraph.nodes.load import Load

GIRL2 = PHOTOS / "girl-2.jpg"


# --------------------------------------------------------------------------- helpers


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _save(path: Path, image: Image.Image, **kwargs: Any) -> Path:
    image.save(path, **kwargs)
    return path


def _refused(path: Path | str, *fragments: str, **kwargs: Any) -> str:
    with pytest.raises(InputImageError) as info:
        read_rgb(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    return message


def _ctx(size: tuple[int, int] | None = None) -> FrameContext:
    return FrameContext(frame=0, fps=24.0, frame_count=1, size=size)


def _load(path: Path, size: tuple[int, int] | None = None, **params: Any) -> np.ndarray:
    node = Load()
    out = node.evaluate(Load.Params(path=str(path), **params), {}, _ctx(size))
    assert set(out) == {"image"}
    image: np.ndarray = out["image"]
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3
    return image


# --------------------------------------------------------------------------- the real photo


def test_real_jpeg_matches_opencv_decode() -> None:
    image = _load(GIRL2)
    assert image.shape == (478, 718, 3)
    assert image.flags.c_contiguous
    assert not image.flags.writeable  # shared by every frame
    assert not _load(GIRL2, size=(100, 100)).flags.writeable
    reference = cv2.cvtColor(cv2.imread(str(GIRL2)), cv2.COLOR_BGR2RGB)
    assert np.abs(image.astype(int) - reference.astype(int)).mean() < 1.0


def test_load_is_time_invariant_and_declares_its_file(tmp_path: Path) -> None:
    assert Load.type_name == "core.load"
    assert Load.varies_per_frame is False
    assert Load.inputs == {}
    assert set(Load.outputs) == {"image"}
    params = Load.Params(path=str(GIRL2))
    assert params.max_pixels == 100_000_000
    assert params.alpha == "white"
    assert Load().input_files(params) == [GIRL2]
    assert Load().input_files(Load.Params(path="~/x.jpg")) == [Path.home() / "x.jpg"]
    for name, info in Load.Params.model_fields.items():
        assert info.description, name


@pytest.mark.parametrize(
    "bad",
    [{"alpha": "grey"}, {"max_pixels": 0}, {"max_pixels": "5"}, {"path": ""}, {"colour": 1}],
)
def test_params_are_strict(bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Load.Params.model_validate({"path": "x.jpg", **bad})


# --------------------------------------------------------------------------- conversions


def test_16bit_rgb_png_is_scaled_by_full_range(tmp_path: Path) -> None:
    values = np.array([[[65535, 32896, 0], [200, 65279, 128]]], dtype=np.uint16)
    path = _write(tmp_path / "deep.png", png_bytes(values, 2))
    # Pillow alone keeps the high byte: 200 -> 0 rather than 1, so this proves the full-depth path.
    assert np.asarray(Image.open(path).convert("RGB"))[0, 1, 0] == 0
    image = read_rgb(path)
    assert image.tolist() == [[[255, 128, 0], [1, 254, 0]]]


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[65535, 32896, 200, 0]], dtype=np.uint16)
    path = _write(tmp_path / "gray16.png", png_bytes(values, 0))
    image = read_rgb(path)
    assert image[0, :, 0].tolist() == [255, 128, 1, 0]
    assert (image == image[:, :, :1]).all()
    gray = read_gray(path)
    assert gray.dtype == np.float32
    np.testing.assert_allclose(gray[0], values[0] / 65535.0, atol=1e-7)


def test_16bit_rgba_and_gray_alpha_pngs_keep_depth(tmp_path: Path) -> None:
    rgba = np.array([[[65535, 32896, 0, 65535], [0, 0, 0, 0], [65535, 0, 0, 32896]]], np.uint16)
    path = _write(tmp_path / "rgba16.png", png_bytes(rgba, 6))
    assert read_rgb(path).tolist() == [[[255, 128, 0], [255, 255, 255], [255, 127, 127]]]
    assert read_rgb(path, alpha="black").tolist() == [[[255, 128, 0], [0, 0, 0], [128, 0, 0]]]
    assert read_rgb(path, alpha="ignore").tolist() == [[[255, 128, 0], [0, 0, 0], [255, 0, 0]]]
    np.testing.assert_allclose(read_gray(path)[0], [1.0, 0.0, 32896 / 65535], atol=1e-7)

    la = np.array([[[200, 65535], [65535, 0]]], dtype=np.uint16)
    path = _write(tmp_path / "la16.png", png_bytes(la, 4))
    assert read_rgb(path, alpha="ignore").tolist() == [[[1, 1, 1], [255, 255, 255]]]
    assert read_rgb(path, alpha="black").tolist() == [[[1, 1, 1], [0, 0, 0]]]
    np.testing.assert_allclose(read_gray(path)[0], [1.0, 0.0])


def test_grayscale_gives_equal_channels(tmp_path: Path) -> None:
    values = np.array([[0, 17, 128, 255]], dtype=np.uint8)
    for name in ("g.png", "g.tif", "g.webp"):
        kwargs = {"lossless": True} if name.endswith("webp") else {}
        path = _save(tmp_path / name, Image.fromarray(values, "L"), **kwargs)
        image = read_rgb(path)
        assert image.shape == (1, 4, 3), name
        assert (image == values[:, :, None]).all(), name
    bilevel = _save(tmp_path / "b.png", Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1"))
    assert read_rgb(bilevel).tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_gray_alpha_is_composited(tmp_path: Path) -> None:
    la = np.array([[[0, 255], [0, 0], [100, 128]]], dtype=np.uint8)
    path = _save(tmp_path / "la.png", Image.fromarray(la, "LA"))
    assert read_rgb(path).tolist() == [[[0, 0, 0], [255, 255, 255], [177, 177, 177]]]
    np.testing.assert_allclose(read_gray(path)[0], [1.0, 0.0, 128 / 255], atol=1e-7)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.putdata([0, 1, 2])
    plain = _save(tmp_path / "p.png", palette)
    assert Image.open(plain).mode == "P"
    assert read_rgb(plain).tolist() == [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]

    clear = _save(tmp_path / "pt.png", palette, transparency=1)
    assert read_rgb(clear).tolist() == [[[255, 0, 0], [255, 255, 255], [0, 0, 255]]]
    assert read_rgb(clear, alpha="black").tolist() == [[[255, 0, 0], [0, 0, 0], [0, 0, 255]]]
    assert read_gray(clear)[0].tolist() == [1.0, 0.0, 1.0]

    gif = _save(tmp_path / "pt.gif", palette, transparency=2)
    assert read_rgb(gif).tolist() == [[[255, 0, 0], [0, 255, 0], [255, 255, 255]]]


def test_rgb_with_transparent_colour_key(tmp_path: Path) -> None:
    rgb = Image.fromarray(np.array([[[10, 20, 30], [1, 2, 3]]], np.uint8))
    path = _save(tmp_path / "trns.png", rgb, transparency=(1, 2, 3))
    assert read_rgb(path).tolist() == [[[10, 20, 30], [255, 255, 255]]]


def test_cmyk_jpeg_has_roughly_right_colours(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (64, 16))
    for i, ink in enumerate([(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255)]):
        cmyk.paste(ink, (i * 16, 0, i * 16 + 16, 16))
    path = _save(tmp_path / "cmyk.jpg", cmyk, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = read_rgb(path).astype(int)
    centres = [image[8, i * 16 + 8] for i in range(4)]
    expected = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0)]
    for got, want in zip(centres, expected, strict=True):
        assert np.abs(got - np.array(want)).max() < 20, (got, want)


def test_rgba_composited_over_documented_background(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [0, 0, 0, 128], [1, 1, 1, 128]]], np.uint8)
    path = _save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA"))
    white = _load(path)  # rounded: 1 * 128/255 + 255 * 127/255 = 128.0
    assert white.tolist() == [[[200, 100, 50], [255, 255, 255], [127, 127, 127], [128] * 3]]
    black = _load(path, alpha="black")
    assert black.tolist() == [[[200, 100, 50], [0, 0, 0], [0, 0, 0], [1, 1, 1]]]
    ignore = _load(path, alpha="ignore")
    assert ignore.tolist() == [[[200, 100, 50], [200, 100, 50], [0, 0, 0], [1, 1, 1]]]
    webp = _save(tmp_path / "rgba.webp", Image.fromarray(rgba, "RGBA"), lossless=True, exact=True)
    assert read_rgb(webp).tolist() == white.tolist()


def _marked(width: int = 40, height: int = 20) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:4, :4] = (255, 0, 0)  # red marker in the top-left corner
    return image


def _red_corner(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    corners = {"tl": image[1, 1], "tr": image[1, w - 2], "bl": image[h - 2, 1]}
    corners["br"] = image[h - 2, w - 2]
    red = [name for name, px in corners.items() if px[0] > 200 and px[1] < 60 and px[2] < 60]
    assert len(red) == 1, corners
    return red[0]


def test_exif_orientation_6_applied_exactly_once(tmp_path: Path) -> None:
    source = Image.fromarray(_marked())
    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("o6.jpg", "o6.png"):
        path = _save(tmp_path / name, source, exif=exif.tobytes(), quality=95)
        image = _load(path)
        assert image.shape == (40, 20, 3), name  # rotated 90 degrees clockwise: shape swapped
        assert _red_corner(image) == "tr", name


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_path_orients_like_pillow(tmp_path: Path, orientation: int) -> None:
    marked = _marked(6, 4)
    marked[0, 1] = (0, 255, 0)  # asymmetric so every orientation differs
    expected = np.asarray(ImageOps.exif_transpose(_with_exif(Image.fromarray(marked), orientation)))
    deep = marked.astype(np.uint16) * 257
    path = _write(tmp_path / "o.png", png_bytes(deep, 2, exif=exif_orientation(orientation)))
    assert Image.open(path).getexif().get(0x0112) == orientation
    assert read_rgb(path).tolist() == expected.tolist()


def _with_exif(image: Image.Image, orientation: int) -> Image.Image:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(buffer, "PNG", exif=exif.tobytes())
    return Image.open(io.BytesIO(buffer.getvalue()))


# --------------------------------------------------------------------------- refusals


def test_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.jpg", "no such file")
    _refused(tmp_path / "nope" / "deeper.jpg", "no such file")


def test_directory(tmp_path: Path) -> None:
    _refused(tmp_path, "is a directory")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "locked.jpg", GIRL2.read_bytes())

    def deny(_: Path) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_imagefile, "_open_binary", deny)
    _refused(path, "permission denied", "readable")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_for_real(tmp_path: Path) -> None:
    path = _write(tmp_path / "locked.jpg", GIRL2.read_bytes())
    path.chmod(0)
    _refused(path, "permission denied")


def test_empty_file(tmp_path: Path) -> None:
    _refused(_write(tmp_path / "empty.jpg", b""), "empty (0 bytes)")


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    junk = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    _refused(_write(tmp_path / "junk.jpg", junk), "not an image file")
    _refused(_write(tmp_path / "notes.png", b"hello, world\n"), "not an image file")


def test_truncated_jpeg_is_refused_as_truncated(tmp_path: Path) -> None:
    data = GIRL2.read_bytes()
    path = _write(tmp_path / "half.jpg", data[: len(data) // 2])
    message = _refused(path, "truncated")
    assert "download" in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_and_corrupt_png(tmp_path: Path) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    data = buffer.getvalue()
    _refused(_write(tmp_path / "cut.png", data[: len(data) * 3 // 4]), "truncated")
    broken = bytearray(data)
    broken[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    _refused(_write(tmp_path / "broken.png", bytes(broken)), "corrupt")
    _refused(_write(tmp_path / "header.png", data[:20]), "truncated")
    garbled = data[:8] + bytes(range(200))
    _refused(_write(tmp_path / "garbled.png", garbled), "looks like a PNG", "damaged")


def test_truncated_16bit_png_is_refused(tmp_path: Path) -> None:
    deep = np.random.default_rng(3).integers(0, 65536, (32, 32, 3), dtype=np.uint16)
    data = png_bytes(deep, 2)
    _refused(_write(tmp_path / "cut16.png", data[: len(data) // 2]), "truncated")


def test_pixel_cap_is_configurable(tmp_path: Path) -> None:
    message = _refused(GIRL2, "718x478", "max_pixels=100000", max_pixels=100_000)
    assert "0.3 megapixels" in message
    with pytest.raises(InputImageError, match="max_pixels"):
        _load(GIRL2, max_pixels=100_000)
    assert read_rgb(GIRL2, max_pixels=718 * 478).shape == (478, 718, 3)


def test_huge_header_refused_quickly_without_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "bomb.png", with_ihdr_size(small_png(), 20000, 20000))
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _refused(path, "too many pixels", "400.0 megapixels")
        _refused(path, "too many pixels", "safety limit", max_pixels=10**12)  # Pillow's own limit holds
    assert time.perf_counter() - start < 0.5


def test_header_over_our_cap_but_under_pillows_is_refused_quietly(tmp_path: Path) -> None:
    # 12000 x 9000 = 108 MP: over our default cap and over Pillow's warning threshold.
    path = _write(tmp_path / "big.png", with_ihdr_size(small_png(), 12000, 9000))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        _refused(path, "12000x9000", "108.0 megapixels", "raise max_pixels")
    assert time.perf_counter() - start < 0.5
    # Under the cap, the bogus header leads to a decode attempt which is refused as broken.
    _refused(_write(tmp_path / "mid.png", with_ihdr_size(small_png(), 300, 200)), "truncated")


# --------------------------------------------------------------------------- sizing


def test_timeline_size_shrinks_and_crops_centre() -> None:
    photo = read_rgb(GIRL2)
    image = _load(GIRL2, size=(320, 320))
    assert image.shape == (320, 320, 3)
    centre = photo[:, 120:598]  # the centred 478x478 square of the 718x478 photo
    expected = cv2.resize(centre, (320, 320), interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1


def test_timeline_size_enlarges_to_cover() -> None:
    image = _load(GIRL2, size=(1280, 1280))
    assert image.shape == (1280, 1280, 3)
    wide = _load(GIRL2, size=(1436, 956))  # exactly twice the photo: nothing cropped
    assert wide.shape == (956, 1436, 3)
    half = cv2.resize(wide, (718, 478), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - read_rgb(GIRL2).astype(int)).mean() < 3.0


def test_cover_crop_geometry() -> None:
    stripes = np.zeros((100, 400, 3), np.uint8)
    stripes[:, :150] = 255  # left band, entirely outside the centred square
    stripes[:, 250:] = 128  # right band, likewise
    stripes[40:60, 190:210] = (0, 0, 255)
    square = fit_cover(stripes, (100, 100))
    assert np.array_equal(square, stripes[:, 150:250])
    small = fit_cover(stripes, (50, 50))
    assert small.shape == (50, 50, 3)
    assert small[:, :, 0].max() == 0  # no bleed from the cropped bands
    assert tuple(small[25, 25]) == (0, 0, 255)
    tall = fit_cover(stripes, (40, 100))  # portrait target: narrow centre column
    assert tall.shape == (100, 40, 3)
    assert np.array_equal(tall, stripes[:, 180:220])
    assert fit_cover(stripes, (400, 100)) is stripes


def test_cover_keeps_masks_in_range() -> None:
    mask = np.zeros((10, 10), np.float32)
    mask[:, 5:] = 1.0
    big = fit_cover(mask, (97, 61))
    assert big.shape == (61, 97)
    assert big.dtype == np.float32
    assert big.min() >= 0.0
    assert big.max() <= 1.0
    assert fit_cover(mask[:, :, None], (20, 20)).shape == (20, 20, 1)
    with pytest.raises(ValueError):
        fit_cover(mask, (0, 10))


def test_without_timeline_size_photo_keeps_its_size(tmp_path: Path) -> None:
    path = _save(tmp_path / "odd.png", Image.fromarray(_marked(37, 23)))
    assert _load(path).shape == (23, 37, 3)
    assert _load(path, size=(37, 23)).tolist() == _marked(37, 23).tolist()


# --------------------------------------------------------------------------- masks


def test_read_gray_prefers_alpha_only_when_it_carries_something(tmp_path: Path) -> None:
    opaque = np.array([[[255, 255, 255, 255], [0, 0, 0, 255]]], np.uint8)
    path = _save(tmp_path / "opaque.png", Image.fromarray(opaque, "RGBA"))
    assert read_gray(path).tolist() == [[1.0, 0.0]]  # opaque alpha: luminance is the mask
    cutout = np.array([[[0, 0, 0, 255], [255, 255, 255, 0]]], np.uint8)
    path = _save(tmp_path / "cutout.png", Image.fromarray(cutout, "RGBA"))
    assert read_gray(path).tolist() == [[1.0, 0.0]]
    assert read_gray(path, prefer_alpha=False).tolist() == [[0.0, 1.0]]
    rgb = _save(tmp_path / "rgb.png", Image.fromarray(np.array([[[255, 0, 0]]], np.uint8)))
    np.testing.assert_allclose(read_gray(rgb), [[0.299]], atol=1e-6)


def test_read_gray_of_reference_cutout_matches_its_alpha() -> None:
    path = PHOTOS / "girl-2.reference-cutout.png"
    mask = read_gray(path)
    alpha = np.asarray(Image.open(path).getchannel("A"), dtype=np.float32) / 255.0
    assert mask.shape == (478, 718)
    np.testing.assert_allclose(mask, alpha, atol=1e-6)
