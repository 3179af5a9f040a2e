"""The three top-level folders install as one package, and every node is registered."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    config = _pyproject()["tool"]["setuptools"]
    mapping = config["package-dir"]
    listed = set(config["packages"])
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *relative.parts])
            assert name in listed, f"{init.parent} is not listed in [tool.setuptools] packages"


def test_version_comes_from_metadata() -> None:
    assert version("focusgraph") == _pyproject()["project"]["version"]


def test_every_node_module_has_an_entry_point() -> None:
    targets = {ep.value.split(":")[0] for ep in entry_points(group="focusgraph.nodes")}
    modules = {
        f"focusgraph.nodes.{path.stem}"
        for path in (ROOT / "nodes").glob("*.py")
        if not path.stem.startswith("_")
    }
    assert modules <= targets, f"nodes without an entry point: {modules - targets}"


def test_presets_ship_as_package_data() -> None:
    from focusgraph.presets import preset_paths

    assert "rack-focus" in preset_paths()
    assert "*.yaml" in _pyproject()["tool"]["setuptools"]["package-data"]["focusgraph.presets"]
