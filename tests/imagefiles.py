"""Builders of image files for tests: hand-made PNGs of any colour type, EXIF blobs, forged headers."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    samples: np.ndarray, color_type: int, *, exif: bytes | None = None, after_idat: bytes = b""
) -> bytes:
    """Encode ``samples`` (H, W[, C], uint8 or uint16) as a PNG by hand, any colour type.

    ``exif`` (raw, see :func:`exif_orientation`) goes into an eXIf chunk before IDAT;
    ``after_idat`` is whole chunks (see :func:`chunk`) to put between IDAT and IEND.
    """
    height, width = samples.shape[:2]
    depth = 16 if samples.dtype == np.uint16 else 8
    raw = samples.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1).tobytes()
    stride = len(raw) // height
    rows = b"".join(b"\x00" + raw[y * stride : (y + 1) * stride] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    chunks = chunk(b"IHDR", ihdr)
    if exif is not None:
        chunks += chunk(b"eXIf", exif)
    chunks += chunk(b"IDAT", zlib.compress(rows)) + after_idat + chunk(b"IEND", b"")
    return PNG_SIGNATURE + chunks


def exif_orientation(orientation: int) -> bytes:
    """Raw TIFF-structured EXIF (no ``Exif\\0\\0`` prefix) holding one orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """Patch the IHDR width/height of a real PNG and recompute the chunk CRC."""
    assert png[12:16] == b"IHDR"
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return png[:8] + chunk(b"IHDR", bytes(ihdr)) + png[33:]


def small_png() -> bytes:
    """An 8x8 grey PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()
