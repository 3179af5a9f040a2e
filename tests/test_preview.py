"""`focusgraph preview` (contact sheet, one frame) and `focusgraph graph` (Mermaid, DOT)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from photos import photo_path

from focusgraph.graph import load
from focusgraph.graph.cli import main
from focusgraph.graph.preview import GAP, LABEL_HEIGHT, SHEET_COLUMNS, sheet_frames


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def sharpness(image: np.ndarray) -> float:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F)).mean())


def tiles(sheet: np.ndarray, width: int, height: int, count: int) -> list[np.ndarray]:
    """The image part of each tile of a sheet (label strips cut off)."""
    found = []
    for index in range(count):
        row, column = divmod(index, SHEET_COLUMNS)
        top = GAP + row * (height + LABEL_HEIGHT + GAP)
        left = GAP + column * (width + GAP)
        found.append(sheet[top : top + height, left : left + width])
    return found


def test_sheet_frames_span_the_timeline() -> None:
    assert sheet_frames(150, 6) == [0, 30, 60, 89, 119, 149]
    assert sheet_frames(1, 6) == [0]
    assert sheet_frames(3, 6) == [0, 1, 2]


def test_contact_sheet_shows_mask_and_the_clearing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = photo_path("girl-2.jpg")  # 718 x 478
    out = tmp_path / "sheet.png"
    assert main(["preview", "rack-focus", "-i", str(photo), "-o", str(out), "--size", "240"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    sheet = read_rgb(out)
    width, height = 240, round(478 * 240 / 718)
    assert sheet.shape == (2 * (height + LABEL_HEIGHT + GAP) + GAP, 4 * (width + GAP) + GAP, 3)
    mask, *frames = tiles(sheet, width, height, 7)
    # the mask tile is the photo tinted red on the subject and darkened elsewhere
    assert mask[..., 0].mean() > mask[..., 2].mean() + 10
    # frames run from blurred to sharp: the first is far softer than the last
    assert sharpness(frames[0]) < 0.8 * sharpness(frames[-1])
    assert all(sharpness(a) <= sharpness(b) * 1.05 for a, b in itertools.pairwise(frames))
    # the last frame is the photo, shrunk
    small = cv2.resize(read_rgb(photo), (width, height), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[-1].astype(int) - small).mean() < 4


def test_one_frame_at_full_size_matches_the_library(tmp_path: Path) -> None:
    photo = photo_path("girl-2.jpg")
    out = tmp_path / "frame.png"
    assert main(["-q", "preview", "rack-focus", "-i", str(photo), "-o", str(out), "--frame", "1"]) == 0
    image = read_rgb(out)
    assert image.shape == (478, 718, 3)
    direct = load("rack-focus").frame(1.0, {"image": photo})
    assert np.array_equal(image, direct)
    # and it is the frame the render makes at t = 1 s: partly cleared
    first = load("rack-focus").frame(0.0, {"image": photo})
    last = load("rack-focus").frame(5.0, {"image": photo})
    assert sharpness(first) < sharpness(image) < sharpness(last)


def test_preview_never_replaces_a_file_without_overwrite(tmp_path: Path, small_photo: Path) -> None:
    out = tmp_path / "sheet.png"
    out.write_bytes(b"keep")
    assert main(["-q", "preview", "rack-focus", "-i", str(small_photo), "-o", str(out)]) == 5
    assert out.read_bytes() == b"keep"
    assert main(["-q", "preview", "rack-focus", "-i", str(small_photo), "-o", str(tmp_path / "x.jpg")]) == 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sheet.png", "small.png"]


def test_mermaid_marks_the_time_invariant_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "rack-focus"]) == 0
    text = capsys.readouterr().out
    compiled = load("rack-focus").compile(placeholders=True)
    invariant = {node_id for node_id, node in compiled.nodes.items() if node.invariant}
    assert invariant == {"photo", "subject", "matte", "plate"}
    marked = re.search(r"^    class (\S+) once$", text, re.MULTILINE)
    assert marked and set(marked.group(1).split(",")) == invariant
    assert text.startswith("flowchart LR\n")
    assert "    focus -.->|radius| background" in text  # a parameter link
    assert "    photo -->|image → foreground| final" in text  # a port connection
    assert '    clip[["clip<br/>core.encode · output"]]' in text
    edges = sum(len(node.inputs) + len(node.links) for node in compiled.nodes.values())
    assert len(re.findall(r"-->|-\.->", text)) == edges


def test_dot_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "rack-focus", "--format", "dot"]) == 0
    text = capsys.readouterr().out
    assert text.startswith('digraph "rack-focus" {') and text.rstrip().endswith("}")
    assert '"plate" [label="plate\\ncore.inpaint · once", fillcolor=gray90];' in text
    assert '"focus" -> "background" [label="radius", style=dashed];' in text
    compiled = load("rack-focus").compile(placeholders=True)
    assert text.count("->") == sum(len(node.inputs) + len(node.links) for node in compiled.nodes.values())
    assert "\\u" not in text
