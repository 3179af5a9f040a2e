"""Bundled graph presets, addressed by name (``rack-focus`` is ``rack_focus.yaml``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def preset_paths() -> dict[str, Path]:
    """Bundled presets by name."""
    folder = Path(str(files(__name__)))
    return {path.stem.replace("_", "-"): path for path in sorted(folder.glob("*.yaml"))}


def find_preset(name: str) -> Path | None:
    """Path of the bundled preset ``name``, or ``None``."""
    return preset_paths().get(name.replace("_", "-"))
