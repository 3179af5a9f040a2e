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


def resolve_graph(name_or_path: str) -> Path:
    """A graph file by path (anything ending in ``.yaml``/``.yml`` or existing), else a preset by name.

    Raises
    ------
    GraphValidationError
        Neither a graph file nor a preset name.
    """
    from focusgraph.graph.errors import GraphValidationError, Problem

    path = Path(name_or_path).expanduser()
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    preset = find_preset(name_or_path)
    if preset is None:
        names = ", ".join(preset_paths())
        message = f"{name_or_path!r} is neither a graph file nor a preset (presets: {names})"
        raise GraphValidationError([Problem(None, None, message)])
    return preset
