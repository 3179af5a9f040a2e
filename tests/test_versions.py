"""Versioned graph documents: older versions are migrated on load, newer ones refused clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from focusgraph.graph import GraphValidationError, load_document
from focusgraph.graph import document as document_module
from focusgraph.graph.cli import main

DOCUMENT = """\
version: {version}
name: versions
timeline: {timeline}
nodes:
  photo: {{type: load, params: {{path: photo.png}}}}
  clip: {{type: encode, inputs: {{image: photo}}, params: {{path: out.mp4}}}}
"""


@pytest.fixture
def format_three(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pretend the format is at version 3, where version 1's ``timeline.length`` became ``duration``
    (version 2) and version 2's ``name`` gained a ``v3-`` prefix rule (version 3).

    Returns the versions each migration saw, in order.
    """
    seen: list[int] = []

    def rename_length(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(doc["version"])
        doc["timeline"]["duration"] = doc["timeline"].pop("length")
        return doc

    def prefix_name(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(doc["version"])
        doc["name"] = "v3-" + doc["name"]
        return doc

    monkeypatch.setattr(document_module, "FORMAT_VERSION", 3)
    monkeypatch.setattr(document_module, "MIGRATIONS", {})
    document_module.migration(1)(rename_length)
    document_module.migration(2)(prefix_name)
    return seen


def test_old_documents_are_migrated_step_by_step(format_three: list[int]) -> None:
    doc = load_document(DOCUMENT.format(version=1, timeline="{length: 2}"))
    assert (doc.version, doc.timeline.duration, doc.name) == (3, 2, "v3-versions")
    assert format_three == [1, 2]
    doc = load_document(DOCUMENT.format(version=2, timeline="{duration: 4}"))
    assert (doc.version, doc.timeline.duration, doc.name) == (3, 4, "v3-versions")


def test_current_documents_are_not_migrated(format_three: list[int]) -> None:
    doc = load_document(DOCUMENT.format(version=3, timeline="{duration: 1}"))
    assert (doc.version, doc.name) == (3, "versions") and format_three == []


def test_a_missing_migration_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document_module, "FORMAT_VERSION", 2)
    monkeypatch.setattr(document_module, "MIGRATIONS", {})
    with pytest.raises(GraphValidationError, match="no migration from graph format version 1 to 2"):
        load_document(DOCUMENT.format(version=1, timeline="{duration: 1}"))


def test_a_migration_cannot_be_registered_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document_module, "MIGRATIONS", {})
    document_module.migration(1)(lambda doc: doc)
    with pytest.raises(ValueError, match="already registered"):
        document_module.migration(1)(lambda doc: doc)


def test_newer_documents_say_upgrade_focusgraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = tmp_path / "future.yaml"
    graph.write_text(DOCUMENT.format(version=2, timeline="{duration: 1}") + "  extra: {type: warp-drive}\n")
    assert main(["validate", str(graph)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "future.yaml" in err[0] and "version" in err[0] and "upgrade focusgraph" in err[0]
    assert "warp-drive" not in err[0]  # the version is checked before anything else


def test_version_zero_is_unknown() -> None:
    with pytest.raises(GraphValidationError, match="unknown graph format version 0"):
        load_document(DOCUMENT.format(version=0, timeline="{duration: 1}"))
