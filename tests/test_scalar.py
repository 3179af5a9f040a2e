"""``core.scalar``: value * scale + offset, from a literal, a graph input or a linked curve."""

from __future__ import annotations

from pathlib import Path

import pytest

from focusgraph.graph import Evaluator, GraphValidationError, load_document
from focusgraph.graph.compile import compile_graph

GRAPH = """\
version: 1
name: scalar
inputs:
  image: {type: path}
  strength: {type: number, default: 0.25}
timeline: {fps: 10, duration: 1}
nodes:
  photo: {type: load, params: {path: $image}}
  curve: {type: keyframe, params: {keys: [{time: 0, value: 0}, {time: 1, value: 10}]}}
  fixed: {type: scalar, params: {value: $strength, scale: 0.07}}
  follows: {type: scalar, params: {value: {link: curve}, scale: -0.002, offset: 0.03}}
  soft: {type: blur, inputs: {image: photo}, params: {radius: {link: follows}}}
  sharper: {type: blur, inputs: {image: soft.image}, params: {radius: {link: fixed}}}
  clip: {type: encode, inputs: {image: sharper.image}, params: {path: out.mp4}}
"""


def test_scaled_literal_and_linked_curve(small_photo: Path) -> None:
    graph = compile_graph(load_document(GRAPH), {"image": str(small_photo), "strength": 0.5})
    assert graph.nodes["fixed"].invariant and not graph.nodes["follows"].invariant
    evaluator = Evaluator(graph)
    for frame in (0, 5, 9):
        outputs = evaluator.run(graph.timeline.context(frame))
        assert outputs["fixed"]["value"] == pytest.approx(0.035)
        assert outputs["follows"]["value"] == pytest.approx(0.03 - 0.002 * 10 * frame / 10)
    assert evaluator.evaluations["fixed"] == 1 and evaluator.evaluations["follows"] == 3


def test_a_linked_value_still_meets_the_consumers_range(small_photo: Path) -> None:
    graph = compile_graph(
        load_document(GRAPH.replace("scale: 0.07", "scale: -1")), {"image": str(small_photo)}
    )
    with pytest.raises(GraphValidationError, match="linked value out of range") as caught:
        Evaluator(graph).run(graph.timeline.context(0))
    assert [(p.node, p.field) for p in caught.value.problems] == [("sharper", "params.radius")]
