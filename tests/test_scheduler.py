"""The scheduler runs time-invariant nodes once and reuses results for equal keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from focusgraph.graph import (
    Evaluator,
    FrameContext,
    Node,
    NodeParams,
    Port,
    PortType,
    load_document,
    render,
)
from focusgraph.graph.compile import compile_graph
from focusgraph.graph.errors import GraphValidationError, NodeExecutionError
from focusgraph.graph.registry import build_registry


class Disc(Node):
    """Test node: a centred disc mask the size of its input image."""

    type_name = "test.disc"

    class Params(NodeParams):
        fraction: float = 0.3

    inputs = {"image": Port(PortType.IMAGE)}
    outputs = {"mask": Port(PortType.MASK)}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        height, width = inputs["image"].shape[:2]
        y, x = np.mgrid[0:height, 0:width]
        radius = params.fraction * min(height, width)
        return {"mask": (np.hypot(x - width / 2, y - height / 2) < radius).astype(np.float32)}


class Explode(Node):
    """Test node that fails at frame 3."""

    type_name = "test.explode"
    inputs = {"image": Port(PortType.IMAGE)}
    outputs = {"image": Port(PortType.IMAGE)}
    varies_per_frame = True

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        if ctx.frame == 3:
            raise RuntimeError("boom")
        return {"image": inputs["image"]}


GRAPH = """\
version: 1
name: scheduler-test
inputs:
  image: {type: path}
  output: {type: path}
timeline: {fps: 10, duration: 2}
nodes:
  photo: {type: load, params: {path: $image}}
  subject: {type: test.disc, inputs: {image: photo}}
  matte: {type: feather, inputs: {mask: subject}, params: {radius: 2, units: px}}
  plate: {type: inpaint, inputs: {image: photo, mask: subject}}
  focus:
    type: keyframe
    params: {keys: [{time: 0, value: 6}, {time: 0.5, value: 6, ease: ease-in-out}, {time: 1.0, value: 0}]}
  background:
    type: blur
    inputs: {image: plate.image, mask: matte}
    params: {radius: {link: focus}, units: px}
  grain_amount: {type: keyframe, params: {keys: [{time: 0.5, value: 2}, {time: 1.0, value: 0}]}}
  textured: {type: grain, inputs: {image: background}, params: {amount: {link: grain_amount}}}
  final: {type: composite, inputs: {foreground: photo, background: textured, mask: matte}}
  clip: {type: encode, inputs: {image: final}, params: {path: $output}}
"""


def registry() -> Any:
    reg = build_registry()
    reg.add(Disc, "tests")
    reg.add(Explode, "tests")
    return reg


def test_invariant_nodes_run_once_and_holds_reuse_the_cache(small_photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    graph = compile_graph(
        load_document(GRAPH), {"image": str(small_photo), "output": str(out)}, registry=registry()
    )
    assert {n for n, node in graph.nodes.items() if node.invariant} == {
        "photo",
        "subject",
        "matte",
        "plate",
    }
    evaluator = Evaluator(graph)
    assert render(graph, evaluator=evaluator) == [out]
    counts = evaluator.evaluations
    assert counts["photo"] == counts["subject"] == counts["matte"] == counts["plate"] == 1
    assert counts["focus"] == 20 and counts["clip"] == 20
    # Frames 0-5 share radius 6 and frames 10-19 radius 0: blur runs once for each run of equal values.
    assert counts["background"] == 1 + 4 + 1
    # Grain changes every frame while its amount is above 0, then (amount 0) is reused too.
    assert counts["textured"] == 10 + 1
    assert counts["final"] == counts["textured"]


def test_linked_values_are_range_checked_each_frame(small_photo: Path, tmp_path: Path) -> None:
    text = GRAPH.replace("value: 6}, {time: 0.5", "value: -6}, {time: 0.5")
    graph = compile_graph(
        load_document(text),
        {"image": str(small_photo), "output": str(tmp_path / "c.mp4")},
        registry=registry(),
    )
    with pytest.raises(GraphValidationError) as caught:
        render(graph)
    assert caught.value.exit_code == 2
    assert caught.value.node == "background" and "params.radius" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["small.png"]


def test_a_failing_node_is_named_and_nothing_is_written(small_photo: Path, tmp_path: Path) -> None:
    text = (
        GRAPH.replace("{image: final}", "{image: bang}")
        + "  bang: {type: test.explode, inputs: {image: final}}\n"
    )
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous render")
    graph = compile_graph(
        load_document(text), {"image": str(small_photo), "output": str(out)}, registry=registry()
    )
    with pytest.raises(NodeExecutionError, match="boom") as caught:
        render(graph, overwrite=True)
    assert caught.value.node == "bang"
    assert out.read_bytes() == b"previous render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "small.png"]
