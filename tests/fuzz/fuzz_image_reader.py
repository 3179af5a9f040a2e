"""Atheris fuzz target: any bytes as an image file -> ``read_rgb``, ``read_gray``.

Run (libFuzzer flags pass through; a missing or empty corpus directory is seeded)::

    .venv/bin/pip install 'atheris>=2.3'
    .venv/bin/python tests/fuzz/fuzz_image_reader.py -max_total_time=600 /tmp/focusgraph-fuzz/image-corpus

Extra options (taken out before libFuzzer sees the arguments):

``--make-corpus DIR``
    Write the seed corpus (small PNG, JPEG, WebP, TIFF, GIF, BMP, ... files made
    with Pillow and OpenCV) into ``DIR`` and exit.
``--allow NAME:TEXT``
    Also accept exceptions of class ``NAME`` whose message, or innermost
    ``file.py:function``, contains ``TEXT`` (repeatable), to keep fuzzing past a
    finding that is already reported.

Each input is written to one scratch file per process (its extension, the alpha
rule and ``prefer_alpha`` vary with a hash of the input) and read with
``max_pixels=MAX_PIXELS``. Only :class:`InputImageError` may come out. The results
must also keep the documented contract: ``read_rgb`` gives C-contiguous uint8
``(H, W, 3)``, ``read_gray`` float32 ``(H, W)`` in ``[0, 1]`` of the same size, both
succeed or fail together. Anything else, or an input slower than ``TIME_BUDGET`` seconds, is a finding.
:func:`check` runs one input without atheris (see ``test_fuzz_targets_smoke.py``).
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from harness import WORK_DIR, allowed, check_time, fuzz

# As a script only tests/fuzz is on sys.path; seed_inputs() imports imagefiles from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_PIXELS = 4_000_000
TIME_BUDGET = 5.0
"""Seconds one input may take (soft limit, checked afterwards; libFuzzer's -timeout is the hard one)."""

MAX_LEN = 32768
"""Default libFuzzer ``-max_len``, in bytes."""

SUFFIXES = (".jpg", ".png", ".jpeg", ".webp", ".tif", ".gif", ".bmp", ".PNG", "")
ALPHA_RULES = ("white", "black", "ignore")

_T = TypeVar("_T")

_scratch_dir: Path | None = None


class ContractError(AssertionError):
    """A reader returned something its docstring rules out."""


def _scratch(suffix: str) -> Path:
    """The per-process scratch file for ``suffix``, in ``WORK_DIR/scratch/PID``.

    libFuzzer ends the process without running ``atexit``, so directories of processes
    that are gone are removed here, on first use, as well as at a normal exit.
    """
    global _scratch_dir
    if _scratch_dir is None:
        root = WORK_DIR / "scratch"
        for old in root.glob("*"):
            if old.name.isdigit() and not _alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
        _scratch_dir = root / str(os.getpid())
        _scratch_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(shutil.rmtree, _scratch_dir, ignore_errors=True)
    return _scratch_dir / f"input{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _expect(condition: bool, message: str) -> None:
    if not condition:
        error = ContractError(message)
        if not allowed(error):
            raise error


def check(data: bytes) -> None:
    """Read one fuzz input as an image file; raise if the reader breaks its contract.

    Raises
    ------
    Exception
        Anything but :class:`InputImageError`, a :class:`ContractError` or a
        :class:`harness.SlowInputError`.
    """
    # Imported here, not at the top, so that main() can instrument them first.
    import numpy as np

    from focusgraph.graph.errors import InputImageError
    from focusgraph.nodes._imagefile import read_gray, read_rgb

    salt = zlib.crc32(data)
    path = _scratch(SUFFIXES[salt % len(SUFFIXES)])
    path.write_bytes(data)
    rule: Any = ALPHA_RULES[(salt >> 8) % len(ALPHA_RULES)]
    prefer_alpha = bool(salt >> 12 & 1)

    def attempt(read: Callable[[], _T]) -> _T | None:
        try:
            return read()
        except InputImageError as exc:
            str(exc)  # the CLI prints it
            return None
        except Exception as exc:
            if allowed(exc):
                return None
            raise

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about every oddity of a damaged file
        rgb = attempt(lambda: read_rgb(path, max_pixels=MAX_PIXELS, alpha=rule))
        gray = attempt(lambda: read_gray(path, max_pixels=MAX_PIXELS, prefer_alpha=prefer_alpha))
    check_time(started, TIME_BUDGET)

    _expect((rgb is None) == (gray is None), f"read_rgb gave {rgb is not None}, read_gray {gray is not None}")
    if rgb is None or gray is None:
        return
    height, width = rgb.shape[:2]
    _expect(rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, f"read_rgb gave {rgb.shape}")
    _expect(bool(rgb.flags.c_contiguous), "read_rgb gave a non-contiguous array")
    _expect(0 < width * height <= MAX_PIXELS, f"read_rgb gave {width}x{height} over max_pixels")
    _expect(gray.dtype == np.float32 and gray.shape == (height, width), f"read_gray gave {gray.shape}")
    _expect(bool(gray.flags.writeable), "read_gray gave a read-only array")
    lo, hi = float(gray.min()), float(gray.max())
    _expect(0.0 <= lo <= hi <= 1.0, f"read_gray gave values in [{lo}, {hi}]")  # also false for NaN


def seed_inputs() -> dict[str, bytes]:
    """Small valid image files of many formats and modes, keyed by file name."""
    import cv2
    import numpy as np
    from imagefiles import chunk, exif_orientation, png_bytes
    from PIL import Image

    y, x = np.mgrid[0:7, 0:13]  # 13x7: a transposed result cannot pass for the original
    rgb = np.dstack([x * 19, y * 36, (x + y) * 12]).astype(np.uint8)
    alpha = ((x * 20 + y * 5) % 256).astype(np.uint8)
    deep = rgb.astype(np.uint16) * 257 + np.uint16(3)
    deep_alpha = alpha.astype(np.uint16) * 257
    image = Image.fromarray(rgb)
    rgba = Image.fromarray(np.dstack([rgb, alpha]))
    gray = image.convert("L")
    palette = image.quantize(8)
    raw_exif = exif_orientation(6)

    def exif(orientation: int) -> bytes:  # as Pillow's save(exif=...) takes it: with its APP1 header
        return b"Exif\x00\x00" + exif_orientation(orientation)

    def pillow(img: Any, fmt: str, **options: Any) -> Callable[[], bytes]:
        def build() -> bytes:
            out = io.BytesIO()
            img.save(out, fmt, **options)
            return out.getvalue()

        return build

    def opencv(ext: str, array: Any) -> Callable[[], bytes]:
        def build() -> bytes:
            ok, encoded = cv2.imencode(ext, array)
            if not ok:
                raise ValueError(f"cv2 cannot write {ext}")
            return bytes(encoded.tobytes())

        return build

    float_gray = Image.fromarray((x / 6.0 - 0.5).astype(np.float32))
    frames = [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    builders: dict[str, Callable[[], bytes]] = {
        "rgb.png": pillow(image, "PNG"),
        "rgba.png": pillow(rgba, "PNG"),
        "la.png": pillow(rgba.convert("LA"), "PNG"),
        "gray.png": pillow(gray, "PNG"),
        "bilevel.png": pillow(gray.convert("1"), "PNG"),
        "palette.png": pillow(palette, "PNG"),
        "palette-trns.png": pillow(palette, "PNG", transparency=2),
        "rgb-trns.png": pillow(image, "PNG", transparency=tuple(int(v) for v in rgb[0, 0])),
        "gray-trns.png": pillow(gray, "PNG", transparency=int(np.asarray(gray)[0, 0])),
        "gray16.png": pillow(Image.fromarray(deep[:, :, 0]), "PNG"),
        "rgb16.png": opencv(".png", deep[:, :, ::-1]),
        "rgba16.png": opencv(".png", np.dstack([deep[:, :, ::-1], deep_alpha])),
        "la16.png": lambda: png_bytes(np.dstack([deep[:, :, 0], deep_alpha]), 4),
        "rgb16-exif6.png": lambda: png_bytes(deep, 2, exif=raw_exif),
        "rgb-exif6-after-idat.png": lambda: png_bytes(rgb, 2, after_idat=chunk(b"eXIf", raw_exif)),
        "rgb-exif8.png": pillow(image, "PNG", exif=exif(8)),
        "rgb.jpg": pillow(image, "JPEG", quality=90),
        "gray.jpg": pillow(gray, "JPEG"),
        "cmyk.jpg": pillow(image.convert("CMYK"), "JPEG"),
        "progressive.jpg": pillow(image, "JPEG", progressive=True, subsampling=2),
        **{f"exif{o}.jpg": pillow(image, "JPEG", exif=exif(o)) for o in (2, 3, 5, 6, 7, 8)},
        "lossy.webp": pillow(image, "WEBP", quality=80),
        "lossless-rgba.webp": pillow(rgba, "WEBP", lossless=True),
        "exif6.webp": pillow(image, "WEBP", exif=exif(6)),
        "animated.webp": pillow(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "rgb.tif": pillow(image, "TIFF"),
        "lzw.tif": pillow(image, "TIFF", compression="tiff_lzw"),
        "rgba-deflate.tif": pillow(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "gray16.tif": pillow(Image.fromarray(deep[:, :, 0]), "TIFF"),
        "float.tif": pillow(float_gray, "TIFF"),
        "int32.tif": pillow(Image.fromarray((x * 9000 - 20000).astype(np.int32)), "TIFF"),
        "cmyk.tif": pillow(image.convert("CMYK"), "TIFF"),
        "orient6.tif": pillow(image, "TIFF", tiffinfo={0x0112: 6}),
        "multipage.tif": pillow(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "rgb16.tif": opencv(".tif", deep[:, :, ::-1]),
        "jpeg.tif": pillow(image, "TIFF", compression="jpeg"),
        "still.gif": pillow(image, "GIF"),
        "animated-trns.gif": pillow(
            frames[0], "GIF", save_all=True, append_images=frames[1:], transparency=0
        ),
        "rgb.bmp": pillow(image, "BMP"),
        "palette.bmp": pillow(palette, "BMP"),
        "bilevel.bmp": pillow(gray.convert("1"), "BMP"),
        "rgba.bmp": pillow(rgba, "BMP"),
        "rgb.ppm": pillow(image, "PPM"),
        "gray16.pgm": opencv(".pgm", deep[:, :, 0]),
        "rgba.tga": pillow(rgba, "TGA", compression="tga_rle"),
        "rgba.ico": pillow(rgba, "ICO", sizes=[(13, 7)]),
        "rgb.pcx": pillow(image, "PCX"),
        "rgba.qoi": pillow(rgba, "QOI"),
        "rgb.sgi": pillow(image, "SGI"),
        "rgb.jp2": pillow(image, "JPEG2000"),
        "rgb.dds": pillow(rgba, "DDS"),
        "bilevel.xbm": pillow(gray.convert("1"), "XBM"),
    }
    seeds: dict[str, bytes] = {}
    for name, build in builders.items():
        try:
            seeds[name] = build()
        except (OSError, ValueError, KeyError):
            continue  # an encoder this Pillow/OpenCV build lacks
    return seeds


def _load() -> None:
    """Import what is fuzzed (inside atheris's instrumentation)."""
    from PIL import Image

    from focusgraph.nodes import _imagefile  # noqa: F401

    Image.init()  # imports every format plugin inside the instrumentation


def main() -> None:
    """Run the fuzzer with libFuzzer's command line (see the module docstring)."""
    fuzz(sys.argv, "image", check, seed_inputs, load=_load, include=["focusgraph", "PIL"], max_len=MAX_LEN)


if __name__ == "__main__":
    main()
