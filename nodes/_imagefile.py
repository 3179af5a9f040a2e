"""Strict reading of image files, shared by every node that reads a photo or a mask.

Everything here either returns the *whole* image, decoded and upright, or raises
:class:`~focusgraph.graph.errors.InputImageError` with a one-line message that names
the file and says what to do. Nothing is ever half-decoded: truncated files are
refused (Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never touched), and the
pixel count is checked from the header before any pixel is decoded.

Decoding rules
--------------
* Any format Pillow reads (JPEG, PNG, WebP, TIFF, GIF, BMP, ...), except EPS, which
  would run Ghostscript on the file. Multi-frame files give their first frame.
* The EXIF orientation tag is applied exactly once.
* Grayscale, palette, CMYK, YCbCr and premultiplied modes become RGB (plus alpha
  when the file has any transparency data: an alpha channel, a palette with alpha
  or a transparent colour).
* 16-bit samples are scaled to 8 bit by the full range (``round(v * 255 / 65535)``),
  never truncated. Pillow keeps only the high byte of 16-bit RGB(A) and gray+alpha
  samples, so those are decoded again with OpenCV at full depth. 32-bit integer
  gray is read as 16-bit range (clipped), floating-point gray as ``0..1`` (clipped).

Public functions
----------------
:func:`read_rgb`, :func:`read_gray`, :func:`fit_cover` and
:func:`to_rgb8` (the same conversion to 8-bit RGB for an array already in memory).
"""

from __future__ import annotations

import math
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from focusgraph.graph.errors import InputImageError

AlphaRule = Literal["white", "black", "ignore"]
"""How transparent pixels become RGB: composited over white or black, or alpha dropped."""

DEFAULT_MAX_PIXELS = 100_000_000
"""Default pixel cap (width x height, 100 megapixels) checked from the header."""

# EPS is decoded by running Ghostscript on the file: not something to do to a photo.
_EXCLUDED_FORMATS = frozenset({"EPS"})

# File signatures, to tell "not an image" from "an image whose header is damaged".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)

# numpy equivalents of PIL.ImageOps.exif_transpose, for arrays decoded by OpenCV.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, k=1),
}

_EXIF_ORIENTATION = 0x0112

Samples = NDArray[Any]
"""Decoded samples: uint8, or uint16 for 16-bit files."""

_ArrayT = TypeVar("_ArrayT", bound=np.generic)


@dataclass(frozen=True)
class _Pixels:
    """A decoded, upright image: ``color`` is (H, W) or (H, W, 3); ``alpha`` is (H, W)."""

    color: Samples
    alpha: Samples | None


def _fail(path: Path, what: str) -> InputImageError:
    return InputImageError(f"{path}: {what}")


def _open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading (a seam for tests)."""
    return path.open("rb")


# Tried first: Pillow registers them without importing its ~40 other format plugins
# (Image.init: 60 ms of every render's start).
_COMMON_FORMATS = ("JPEG", "PNG")


def _formats() -> list[str]:
    Image.init()
    return [name for name in Image.OPEN if name not in _EXCLUDED_FORMATS]


def _pillow_open(stream: IO[bytes]) -> ImageFile.ImageFile:
    """``Image.open`` trying JPEG and PNG first, then every format but the excluded ones.

    (``Image.open`` reads from the stream's start and registers JPEG and PNG itself.)
    """
    try:
        return Image.open(stream, formats=_COMMON_FORMATS)
    except UnidentifiedImageError:
        return Image.open(stream, formats=_formats())


def _check_file(path: Path) -> None:
    """Refuse missing, non-regular and empty files before handing them to a decoder."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _fail(path, "no such file; check the path and its spelling") from None
    except PermissionError:
        raise _fail(path, "permission denied while looking up the file; make its folder readable") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc}); check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise _fail(path, "is a directory, not an image file; give the path of a photo inside it")
    if not stat.S_ISREG(info.st_mode):
        raise _fail(path, "is not a regular file; give the path of a photo saved on disk")
    if info.st_size == 0:
        raise _fail(path, "the file is empty (0 bytes); export or download the photo again")


def _sniff(head: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} megapixels"


def _too_large(path: Path, width: int, height: int, max_pixels: int) -> InputImageError:
    return _fail(
        path,
        f"image is {width}x{height} ({_megapixels(width * height)}), over the limit of "
        f"max_pixels={max_pixels}; downscale the photo or raise max_pixels",
    )


def _open_image(path: Path, stream: IO[bytes], max_pixels: int) -> ImageFile.ImageFile:
    """Read the header only, refusing what is not an image or has too many pixels."""
    try:
        with warnings.catch_warnings():
            # The pixel cap is ours (checked below); Pillow's own warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = _pillow_open(stream)
    except Image.DecompressionBombError as exc:
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(match.group(1)) if match else 0
        if pixels > max_pixels:
            limit = f"over the limit of max_pixels={max_pixels}; downscale the photo or raise max_pixels"
        else:  # max_pixels was raised above Pillow's own hard limit, which still holds
            limit = f"beyond the decoder's safety limit ({_megapixels(2 * (Image.MAX_IMAGE_PIXELS or 0))})"
            limit += "; downscale the photo"
        size = f" ({_megapixels(pixels)})" if pixels else ""
        raise _fail(path, f"image header claims too many pixels{size}, {limit}") from None
    except UnidentifiedImageError:
        stream.seek(0)
        kind = _sniff(stream.read(16))
        if kind is not None:
            raise _fail(
                path,
                f"looks like a {kind} file but its header is damaged or cut short; "
                "export or download the photo again",
            ) from None
        raise _fail(path, "not an image file (unknown format); save it as JPEG, PNG, WebP or TIFF") from None
    except MemoryError:
        raise
    except EOFError:
        raise _truncated(path) from None
    except Exception as exc:  # Pillow plugins raise many types on a damaged header.
        if "truncated" in str(exc).lower():
            raise _truncated(path) from None
        raise _fail(
            path,
            f"the image header is damaged ({exc}); export or download the photo again",
        ) from None
    if not isinstance(opened, ImageFile.ImageFile):  # Image.open always gives one
        raise _fail(path, "cannot be read as an image file")
    image = opened
    width, height = image.size
    if width <= 0 or height <= 0:
        raise _fail(path, f"image has no pixels ({width}x{height}); export the photo again")
    if width * height > max_pixels:
        raise _too_large(path, width, height, max_pixels)
    return image


def _load(path: Path, image: ImageFile.ImageFile) -> None:
    """Decode every pixel, refusing truncated or corrupt data."""
    try:
        image.load()
    except Image.DecompressionBombError:
        width, height = image.size
        raise _fail(
            path,
            f"image is {width}x{height}, beyond the decoder's safety limit; downscale the photo",
        ) from None
    except MemoryError:
        raise
    except EOFError:
        raise _truncated(path) from None
    except Exception as exc:
        if "truncated" in str(exc).lower():
            raise _truncated(path) from None
        raise _fail(
            path,
            f"the image data is corrupt or truncated and cannot be decoded ({exc}); "
            "export or download the photo again",
        ) from None


def _truncated(path: Path) -> InputImageError:
    return _fail(
        path,
        "image file is truncated (the file ends before the image data does); "
        "copy, export or download it again",
    )


def _rawmode(image: ImageFile.ImageFile) -> str:
    """The sample layout Pillow decodes from, e.g. ``"RGB;16B"`` (read before loading)."""
    if not image.tile:
        return ""
    args = image.tile[0].args
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _orientation(path: Path, image: ImageFile.ImageFile) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as exc:
        raise _fail(
            path, f"its EXIF metadata is corrupt ({exc}); re-save the photo without metadata"
        ) from None
    return value if isinstance(value, int) else 1


def _decode_deep(path: Path, stream: IO[bytes], image: ImageFile.ImageFile) -> _Pixels | None:
    """Decode 16-bit RGB(A)/gray+alpha with OpenCV at full depth; ``None`` if it cannot."""
    stream.seek(0)
    data = np.frombuffer(stream.read(), dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    width, height = image.size
    if (
        decoded is None
        or decoded.dtype != np.uint16
        or decoded.shape[:2] != (height, width)
        or decoded.ndim not in (2, 3)
    ):
        return None
    orient = _ORIENT.get(_orientation(path, image))
    if orient is not None:  # IMREAD_UNCHANGED ignores EXIF orientation: apply it once here
        decoded = orient(decoded)
    decoded = np.ascontiguousarray(decoded)
    if decoded.ndim == 2:
        return _Pixels(decoded, None)
    channels = decoded.shape[2]
    if channels == 1:
        return _Pixels(np.ascontiguousarray(decoded[:, :, 0]), None)
    if channels == 2:
        return _Pixels(np.ascontiguousarray(decoded[:, :, 0]), decoded[:, :, 1].copy())
    color = np.ascontiguousarray(decoded[:, :, 2::-1])
    alpha = decoded[:, :, 3].copy() if channels == 4 else None
    return _Pixels(color, alpha)


def _from_pillow(path: Path, image: ImageFile.ImageFile) -> _Pixels:
    """Turn a loaded, upright Pillow image of any mode into 8- or 16-bit samples."""
    mode = image.mode
    try:
        if mode.startswith("I;16"):
            return _Pixels(np.asarray(image).astype(np.uint16), None)  # may be big-endian
        if mode == "I":
            return _Pixels(np.clip(np.asarray(image), 0, 65535).astype(np.uint16), None)
        if mode == "F":
            values = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
            return _Pixels(np.rint(values * 65535.0).astype(np.uint16), None)
        if image.has_transparency_data:
            gray = mode in ("1", "L", "LA", "La")
            converted = image.convert("LA" if gray else "RGBA")
            samples = np.asarray(converted, dtype=np.uint8)
            color = samples[:, :, 0] if gray else samples[:, :, :3]
            return _Pixels(np.ascontiguousarray(color), np.ascontiguousarray(samples[:, :, -1]))
        if mode in ("1", "L"):
            luma = image if mode == "L" else image.convert("L")
            return _Pixels(np.asarray(luma, dtype=np.uint8), None)
        rgb = image if mode == "RGB" else image.convert("RGB")
        return _Pixels(np.asarray(rgb, dtype=np.uint8), None)
    except MemoryError:
        raise
    except Exception as exc:
        raise _fail(
            path, f"image mode {mode} cannot be converted to RGB ({exc}); save it as 8-bit RGB"
        ) from None


def _decode(path: str | os.PathLike[str], max_pixels: int) -> _Pixels:
    """Decode ``path`` fully and upright, or raise :class:`InputImageError`."""
    file = Path(path).expanduser()
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    _check_file(file)
    try:
        stream = _open_binary(file)
    except PermissionError:
        raise _fail(
            file, "permission denied; make the file readable (chmod +r) or copy it elsewhere"
        ) from None
    except IsADirectoryError:
        raise _fail(file, "is a directory, not an image file") from None
    except OSError as exc:
        raise _fail(file, f"cannot be read ({exc.strerror or exc}); check the file") from None
    with stream, _open_image(file, stream, max_pixels) as image:
        deep = image.mode in ("RGB", "RGBA", "LA") and ";16" in _rawmode(image)
        _load(file, image)  # always: the full decode is what proves the file is complete
        if deep:
            pixels = _decode_deep(file, stream, image)
            if pixels is not None:
                return pixels
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except MemoryError:
            raise
        except Exception as exc:
            raise _fail(
                file, f"its EXIF metadata is corrupt ({exc}); re-save the photo without metadata"
            ) from None
        return _from_pillow(file, image)


def _to_8bit(samples: Samples) -> NDArray[np.uint8]:
    if samples.dtype == np.uint8:
        return np.asarray(samples, dtype=np.uint8)
    wide = samples.astype(np.uint32)
    return np.asarray((wide * 255 + 32767) // 65535, dtype=np.uint8)


def _composite(color: Samples, alpha: Samples, background: int) -> NDArray[np.uint8]:
    """Blend straight-alpha ``color`` (H, W, 3) over a flat 8-bit ``background``."""
    if color.dtype == np.uint8 and alpha.dtype == np.uint8:
        a = alpha.astype(np.uint16)[:, :, None]
        mixed = color.astype(np.uint16) * a + np.uint16(background) * (255 - a) + 127
        return (mixed // 255).astype(np.uint8)
    scale_c = 1.0 / float(np.iinfo(color.dtype).max)
    scale_a = 1.0 / float(np.iinfo(alpha.dtype).max)
    a32 = alpha.astype(np.float32)[:, :, None] * np.float32(scale_a)
    c32 = color.astype(np.float32) * np.float32(scale_c * 255.0)
    out = c32 * a32 + np.float32(background) * (1.0 - a32)
    return np.asarray(np.clip(np.rint(out), 0, 255), dtype=np.uint8)


def _rgb8(color: Samples, alpha: Samples | None, rule: AlphaRule) -> NDArray[np.uint8]:
    """8-bit RGB from uint8/uint16 ``color`` (H, W) or (H, W, 3) and optional ``alpha`` (H, W).

    The one conversion behind :func:`read_rgb` and :func:`to_rgb8`.
    """
    if color.ndim == 2:
        color = np.repeat(color[:, :, None], 3, axis=2)
    if alpha is not None and rule != "ignore":
        rgb = _composite(color, alpha, 255 if rule == "white" else 0)
    else:
        rgb = _to_8bit(color)
    return np.ascontiguousarray(rgb)


def read_rgb(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha: AlphaRule = "white",
) -> NDArray[np.uint8]:
    """Read an image file as upright 8-bit RGB.

    Parameters
    ----------
    path : str or path-like
        The file to read.
    max_pixels : int
        Refuse (from the header, before decoding) images with more pixels than this.
    alpha : {"white", "black", "ignore"}
        Transparent pixels are composited over white or black, or the alpha channel
        is dropped and the stored colours are kept as they are.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8, C-contiguous; it may be read-only, so copy it before
        editing it in place.

    Raises
    ------
    InputImageError
        The file is missing, unreadable, empty, not an image, truncated, corrupt or
        too large.
    """
    pixels = _decode(path, max_pixels)
    return _rgb8(pixels.color, pixels.alpha, alpha)


def read_gray(
    path: str | os.PathLike[str],
    *,
    prefer_alpha: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> NDArray[np.float32]:
    """Read an image file as an upright single-channel float mask in ``[0, 1]``.

    Parameters
    ----------
    path : str or path-like
        The file to read.
    prefer_alpha : bool
        When ``True`` and the file has an alpha channel that is not fully opaque,
        the alpha channel is the mask (a cut-out PNG). Otherwise the mask is the
        luminance ``0.299 R + 0.587 G + 0.114 B`` (a black-and-white mask image).
    max_pixels : int
        Refuse (from the header, before decoding) images with more pixels than this.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 in ``[0, 1]``, writable; 16-bit files keep their full precision.

    Raises
    ------
    InputImageError
        As :func:`read_rgb`.
    """
    pixels = _decode(path, max_pixels)
    alpha = pixels.alpha
    if prefer_alpha and alpha is not None:
        top = np.iinfo(alpha.dtype).max
        if bool((alpha < top).any()):
            return (alpha.astype(np.float32) * np.float32(1.0 / top)).astype(np.float32)
    color = pixels.color
    scale = np.float32(1.0 / np.iinfo(color.dtype).max)
    if color.ndim == 2:
        return color.astype(np.float32) * scale
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32) * scale
    luma = color.astype(np.float32) @ weights
    return np.clip(luma, 0.0, 1.0).astype(np.float32)


def fit_cover(array: NDArray[_ArrayT], size: tuple[int, int]) -> NDArray[_ArrayT]:
    """Scale ``array`` to cover ``size`` and crop its centre to exactly that size.

    The largest centred region of the source with the target's aspect ratio is
    resized to ``size`` with ``cv2.INTER_AREA`` when shrinking and Lanczos when
    enlarging; float arrays are clipped to their input range afterwards so
    Lanczos overshoot cannot leave it (masks stay in ``[0, 1]``).

    Parameters
    ----------
    array : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` image or mask (uint8, uint16 or float32).
    size : tuple of int
        Target ``(width, height)``, both positive.

    Returns
    -------
    numpy.ndarray
        ``(height, width[, C])``, same dtype; ``array`` itself when it already has that size.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {size}")
    src_h, src_w = array.shape[:2]
    if (src_w, src_h) == (width, height):
        return array
    # Largest centred crop with the target aspect ratio, in source pixels.
    if src_w * height > width * src_h:  # source is wider than the target
        crop_w, crop_h = max(1, min(src_w, round(src_h * width / height))), src_h
    else:
        crop_w, crop_h = src_w, max(1, min(src_h, round(src_w * height / width)))
    x0 = (src_w - crop_w) // 2
    y0 = (src_h - crop_h) // 2
    crop = array[y0 : y0 + crop_h, x0 : x0 + crop_w]
    if (crop_w, crop_h) == (width, height):
        return np.ascontiguousarray(crop)
    shrinking = crop_w * crop_h >= width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    out = cast(
        "NDArray[_ArrayT]",
        cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=interpolation),
    )
    if array.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing single channel
        out = out.reshape(height, width, 1)
    if np.issubdtype(array.dtype, np.floating) and not shrinking:
        lo, hi = float(crop.min()), float(crop.max())
        if math.isfinite(lo) and math.isfinite(hi):
            np.clip(out, lo, hi, out=out)
    return out


def to_rgb8(array: NDArray[Any], *, alpha: AlphaRule = "white") -> NDArray[np.uint8]:
    """Convert an in-memory image to 8-bit RGB by the same rules as :func:`read_rgb`.

    * uint8 is kept; uint16 is scaled by the full range, ``round(v * 255 / 65535)``;
      floating point is read as ``0..1`` and clipped, NaN becoming 0 (via 16-bit
      samples, like a floating-point gray file).
    * By channel count: 1 (or a 2-D array) is gray, 2 is gray + alpha, 3 is RGB,
      4 is RGBA; alpha is straight (not premultiplied).

    Parameters
    ----------
    array : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` with ``C`` in 1-4; uint8, uint16 or floating point.
    alpha : {"white", "black", "ignore"}
        As in :func:`read_rgb`: composite over white or black, or drop the alpha channel.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8, C-contiguous, never a view of ``array``.

    Raises
    ------
    ValueError
        The shape or the dtype is not one of the above.
    """
    samples = np.asarray(array)
    if samples.ndim == 2:
        samples = samples[:, :, None]
    if samples.ndim != 3 or not 1 <= samples.shape[2] <= 4:
        raise ValueError(f"expected an (H, W) or (H, W, 1-4) image, got shape {samples.shape}")
    if np.issubdtype(samples.dtype, np.floating):
        unit = np.clip(np.nan_to_num(samples.astype(np.float32), nan=0.0), 0.0, 1.0)
        samples = np.rint(unit * np.float32(65535.0)).astype(np.uint16)
    elif samples.dtype.kind == "u" and samples.dtype.itemsize in (1, 2):
        samples = samples.astype(np.uint8 if samples.dtype.itemsize == 1 else np.uint16, copy=False)
    else:
        raise ValueError(f"expected a uint8, uint16 or floating-point image, got dtype {samples.dtype}")
    channels = samples.shape[2]
    color = samples[:, :, 0] if channels <= 2 else samples[:, :, :3]
    matte = samples[:, :, -1] if channels in (2, 4) else None
    rgb = _rgb8(color, matte, alpha)
    return rgb.copy() if np.may_share_memory(rgb, array) else rgb
