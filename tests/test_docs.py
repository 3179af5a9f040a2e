"""The presets gallery (docs/presets.md, made by `make docs`) covers every bundled preset."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

from focusgraph.presets import preset_paths

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(preset_paths()))
def test_every_preset_has_a_section_with_its_contact_sheet(name: str) -> None:
    text = (DOCS / "presets.md").read_text()
    section = text.split(f"\n## {name}\n", 1)
    assert len(section) == 2, f"docs/presets.md has no section for {name}: run `make docs`"
    body = section[1].split("\n## ", 1)[0]
    image = re.search(r"!\[[^\]]*\]\((images/[^)]+\.png)\)", body)
    assert image, f"the {name} section shows no contact sheet"
    sheet = cv2.imread(str(DOCS / image.group(1)))
    assert sheet is not None and min(sheet.shape[:2]) > 200
    assert "```mermaid" in body
