"""Catalogue item 8: missing and tampered model files, and model paths that escape their folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from contract import Outcome, Workspace

from focusgraph.graph import models
from focusgraph.graph.models import models_dir
from focusgraph.nodes import _segmentation as seg

Refuses = Callable[..., tuple[Outcome, dict[str, str]]]
DEFAULT_MODELS = (seg.MEDIAPIPE_SELFIE, seg.U2NETP)


def _rack_focus(workspace: Workspace, *extra: str) -> tuple[str | Path, ...]:
    photo = workspace.photo()
    return (
        "render",
        "rack-focus",
        "-i",
        photo,
        "-o",
        workspace.outputs / "clip.mp4",
        "--set",
        "duration=0.2",
        *extra,
    )


@pytest.fixture
def real_models() -> dict[str, Path]:
    """The verified default model files of this machine (fetched by `make models`)."""
    return {spec.filename: models.ensure(spec) for spec in DEFAULT_MODELS}


def test_08_missing_model_while_offline(workspace: Workspace, refuses: Refuses, offline: Path) -> None:
    outcome, _ = refuses(*_rack_focus(workspace))
    outcome.refused("model", "focusgraph models fetch", str(offline))


def test_08_model_with_the_wrong_checksum_is_never_used(
    real_models: dict[str, Path], workspace: Workspace, refuses: Refuses, offline: Path
) -> None:
    offline.mkdir(parents=True)
    for name, path in real_models.items():
        shutil.copyfile(path, offline / name)
    tampered = offline / seg.U2NETP.filename
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    tampered.write_bytes(bytes(data))
    outcome, _ = refuses(*_rack_focus(workspace))
    outcome.refused("model", "u2netp", "sha256")


def test_08_model_name_with_dot_dot_is_refused_before_use(workspace: Workspace, refuses: Refuses) -> None:
    outcome, _ = refuses(*_rack_focus(workspace, "--set", "subject.model=../../outside/u2netp"))
    outcome.refused("graph", "node subject.params.model", "not a path", "'../../outside/u2netp'")


@pytest.mark.parametrize("model", [None, "isnet-general-use"], ids=["default-model", "rembg-model"])
def test_08_model_symlink_out_of_the_folder_is_refused_before_use(
    workspace: Workspace,
    refuses: Refuses,
    monkeypatch: pytest.MonkeyPatch,
    real_models: dict[str, Path],
    model: str | None,
) -> None:
    folder = workspace.root / "models"
    folder.mkdir()
    monkeypatch.setenv("FOCUSGRAPH_MODELS", str(folder))
    outside = workspace.root / "elsewhere"
    outside.mkdir()
    for name, path in real_models.items():  # genuine files, so only the link itself is wrong
        shutil.copyfile(path, outside / name)
        (folder / name).symlink_to(outside / name)
    extra: tuple[str, ...] = ()
    if model is not None:
        for name in real_models:  # the default models are fine here; the rembg one is a link
            (folder / name).unlink()
            shutil.copyfile(outside / name, folder / name)
        (outside / f"{model}.onnx").write_bytes(b"not what it claims")
        (folder / f"{model}.onnx").symlink_to(outside / f"{model}.onnx")
        extra = ("--set", f"subject.model={model}")
    assert models_dir() == folder
    outcome, _ = refuses(*_rack_focus(workspace, *extra))
    outcome.refused("model", "leads outside the model folder", str(folder))
