"""The shared real photos beside the repository (``../shared/testdata/photos``)."""

from __future__ import annotations

from pathlib import Path

import pytest

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "photos"


def photo_path(name: str) -> Path:
    """Path of a shared test photo such as ``girl-2.jpg``; skips if the folder is absent."""
    path = PHOTOS / name
    if not path.exists():
        pytest.skip(f"shared test photo {path} not found")
    return path
