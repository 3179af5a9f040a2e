"""The library API mirrors the command line: load a graph, render it with bindings and a progress callback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from videoprobe import probe, read_frames

from focusgraph.graph import Graph, GraphValidationError, load
from focusgraph.graph.api import split_bindings
from focusgraph.graph.cli import main


def test_split_bindings() -> None:
    values, overrides = split_bindings({"image": Path("a.jpg"), "blur": 0.05, "background.kind": "gaussian"})
    assert values == {"image": "a.jpg", "blur": 0.05}
    assert overrides == {"background": {"kind": "gaussian"}}


def test_load_a_preset_or_a_file(tmp_path: Path) -> None:
    graph = load("rack-focus")
    assert isinstance(graph, Graph) and graph.name == "rack-focus"
    assert "blur" in graph.inputs and graph.inputs["blur"].default == 0.03
    copy = tmp_path / "mine.yaml"
    copy.write_text(Path(graph.source).read_text())
    assert load(copy).document == graph.document
    with pytest.raises(GraphValidationError, match="neither a graph file nor a preset"):
        load("rack-focuss")


def test_render_with_bindings_and_progress_matches_the_cli(small_photo: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    api_out = tmp_path / "api.mp4"
    bindings = {"image": small_photo, "output": api_out, "duration": 0.5, "background.kind": "gaussian"}
    written = load("rack-focus").render(bindings, progress=lambda done, total: calls.append((done, total)))
    assert written == [api_out]
    assert calls == [(frame, 15) for frame in range(16)]
    info = probe(api_out)
    assert (info["frames"], info["width"], info["height"]) == (15, 96, 64)

    cli_out = tmp_path / "cli.mp4"
    args = ["-q", "render", "rack-focus", "-i", str(small_photo), "-o", str(cli_out)]
    assert main([*args, "--set", "duration=0.5", "--set", "background.kind=gaussian"]) == 0
    for ours, theirs in zip(read_frames(api_out), read_frames(cli_out), strict=True):
        assert np.array_equal(ours, theirs)


def test_bad_bindings_name_the_field(small_photo: Path) -> None:
    graph = load("rack-focus")
    with pytest.raises(GraphValidationError) as caught:
        graph.compile({"image": small_photo, "blur": 7})
    assert [(p.node, p.field) for p in caught.value.problems] == [(None, "inputs.blur")]
    with pytest.raises(GraphValidationError) as caught:
        graph.compile({"image": small_photo, "background.radiuss": 1})
    assert [(p.node, p.field) for p in caught.value.problems] == [("background", "params.radiuss")]


def test_frame_and_contact_sheet_are_arrays(small_photo: Path) -> None:
    graph = load("rack-focus")
    frame = graph.frame(4.9, {"image": small_photo})
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    sheet = graph.contact_sheet({"image": small_photo}, frames=3, tile_side=48)
    assert sheet.ndim == 3 and sheet.shape[1] == 4 * (48 + 4) + 4
    assert graph.diagram("dot").startswith('digraph "rack-focus"')
