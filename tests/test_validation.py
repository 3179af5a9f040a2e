"""Every validation error names the node and field, and all problems are reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from focusgraph.graph import GraphValidationError, document, load_document
from focusgraph.graph.compile import compile_graph
from focusgraph.presets import preset_paths

HEADER = """\
version: 1
name: test
inputs:
  image: {type: path, default: photo.png}
  output: {type: path, default: out.mp4}
timeline: {fps: 10, duration: 1}
nodes:
"""

VALID_NODES = """\
  photo: {type: load, params: {path: $image}}
  curve: {type: keyframe, params: {keys: [{time: 0, value: 0.02}, {time: 1, value: 0}]}}
  soft: {type: blur, inputs: {image: photo}, params: {radius: {link: curve}}}
  clip: {type: encode, inputs: {image: soft}, params: {path: $output}}
"""


def problems_of(
    nodes_yaml: str, header: str = HEADER, **values: str
) -> list[tuple[str | None, str | None, str]]:
    text = header + textwrap.indent(textwrap.dedent(nodes_yaml), "  ")
    with pytest.raises(GraphValidationError) as caught:
        compile_graph(load_document(text, source="test.yaml"), values, source="test.yaml")
    assert "test.yaml" in str(caught.value)
    return [(p.node, p.field, p.message) for p in caught.value.problems]


def only(problems: list[tuple[str | None, str | None, str]]) -> tuple[str | None, str | None, str]:
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_graph_compiles() -> None:
    graph = compile_graph(load_document(HEADER + VALID_NODES))
    assert graph.order.index("photo") < graph.order.index("soft") < graph.order.index("clip")
    assert graph.nodes["photo"].invariant and not graph.nodes["soft"].invariant
    assert graph.timeline.frame_count == 10


def test_unknown_type_suggests_the_closest() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("type: blur", "type: blurr")))
    assert (node, field) == ("soft", "type")
    assert "did you mean 'blur'" in message


def test_wrong_param_type_names_the_field() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("{link: curve}", '"big"')))
    assert (node, field) == ("soft", "params.radius")
    assert "'big'" in message and "number" in message


def test_numeric_string_is_rejected() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("{link: curve}", '"5"')))
    assert (node, field) == ("soft", "params.radius")
    assert "'5'" in message


def test_unknown_field_is_rejected() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("radius:", "raduis:")))
    assert (node, field) == ("soft", "params.raduis")
    assert "unknown field" in message


def test_out_of_range_value_says_range_and_value() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("{link: curve}", "-3")))
    assert (node, field) == ("soft", "params.radius")
    assert "greater than or equal to 0" in message and "-3" in message


def test_missing_required_input_port() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("inputs: {image: photo}, ", "")))
    assert (node, field) == ("soft", "inputs.image")
    assert "not connected" in message


def test_unknown_port() -> None:
    node, field, message = only(
        problems_of(VALID_NODES.replace("{image: photo}", "{image: photo, imag: photo}"))
    )
    assert (node, field) == ("soft", "inputs.imag")
    assert "no input 'imag'" in message


def test_reference_to_missing_node() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("{image: photo}", "{image: fotos}")))
    assert (node, field) == ("soft", "inputs.image")
    assert "missing node 'fotos'" in message


def test_type_mismatch() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("{link: curve}", "{link: photo}")))
    assert (node, field) == ("soft", "params.radius")
    assert "type mismatch" in message and "image" in message and "scalar" in message


def test_missing_port_on_source() -> None:
    node, field, message = only(problems_of(VALID_NODES.replace("{image: photo}", "{image: photo.pixels}")))
    assert (node, field) == ("soft", "inputs.image")
    assert "no output 'pixels'" in message


def test_cycle_names_the_path() -> None:
    nodes = """\
    photo: {type: load, params: {path: $image}}
    a: {type: composite, inputs: {foreground: photo, background: b, mask: m}}
    b: {type: blur, inputs: {image: a}}
    m: {type: feather, inputs: {mask: m2}}
    m2: {type: feather, inputs: {mask: m}}
    clip: {type: encode, inputs: {image: b}, params: {path: $output}}
    """
    problems = problems_of(nodes)
    messages = [message for _, _, message in problems]
    assert any("cycle:" in m and "a" in m and "b" in m for m in messages), messages


def test_missing_output_node() -> None:
    _node, field, message = only(
        problems_of(
            VALID_NODES.replace(
                "  clip: {type: encode, inputs: {image: soft}, params: {path: $output}}\n", ""
            )
        )
    )
    assert field == "nodes" and "no output node" in message


def test_all_problems_reported_at_once() -> None:
    broken = VALID_NODES.replace("type: blur", "type: blurr").replace("{image: soft}", "{image: nowhere}")
    broken = broken.replace("{path: $image}", "{path: $image, colour: red}")
    problems = problems_of(broken)
    assert {(node, field) for node, field, _ in problems} >= {
        ("soft", "type"),
        ("clip", "inputs.image"),
        ("photo", "params.colour"),
    }


def test_output_over_input_is_refused(tmp_path: Path) -> None:
    node, field, message = only(problems_of(VALID_NODES, image="same.png", output="same.png"))
    assert (node, field) == ("clip", "params.path")
    assert "overwrite the input" in message


def test_two_outputs_to_one_file_are_refused() -> None:
    nodes = VALID_NODES + "  again: {type: encode, inputs: {image: photo}, params: {path: $output}}\n"
    node, field, message = only(problems_of(nodes))
    assert (node, field) == ("clip", "params.path") or (node, field) == ("again", "params.path")
    assert "also written by" in message


def test_timeline_size_must_be_integers() -> None:
    header = HEADER.replace("duration: 1}", "duration: 1, size: [true, 4]}")
    assert only(problems_of(VALID_NODES, header))[1] == "timeline.size"


def test_unknown_document_field_and_newer_version() -> None:
    with pytest.raises(GraphValidationError, match="nodez"):
        load_document(HEADER.replace("nodes:", "nodez:") + VALID_NODES)
    with pytest.raises(GraphValidationError, match="upgrade focusgraph"):
        load_document(HEADER.replace("version: 1", "version: 7") + VALID_NODES)


def test_duplicate_keys_and_aliases_are_refused() -> None:
    with pytest.raises(GraphValidationError, match="duplicate key 'photo'"):
        load_document(HEADER + VALID_NODES + "  photo: {type: load, params: {path: x}}\n")
    bomb = HEADER + "  a: &a [x, x]\n  b: [*a, *a]\n"
    with pytest.raises(GraphValidationError, match="anchors and aliases"):
        load_document(bomb)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(GraphValidationError, match="line"):
        load_document(HEADER + "  photo: {type: load\n")


def test_graph_inputs_are_typed_and_ranged() -> None:
    header = HEADER.replace(
        "timeline:", "  strength: {type: number, default: 0.02, min: 0, max: 0.1}\ntimeline:"
    )
    nodes = VALID_NODES.replace("{link: curve}", "$strength")
    assert only(problems_of(nodes, header, strength="lots"))[1] == "inputs.strength"
    _node, field, message = only(problems_of(nodes, header, strength="0.5"))
    assert field == "inputs.strength" and "0.1" in message and "0.5" in message
    assert "no input 'colour'" in only(problems_of(nodes, header, colour="red"))[2]


def test_undefined_input_reference() -> None:
    node, _field, message = only(problems_of(VALID_NODES.replace("$output", "$outptu")))
    assert node == "clip" and "$outptu is not a graph input" in message


def test_bad_timeline() -> None:
    _, field, _message = only(problems_of(VALID_NODES, HEADER.replace("fps: 10", "fps: 0")))
    assert field == "timeline.fps"


PRESETS = list(preset_paths().values())


@pytest.mark.parametrize("preset", PRESETS, ids=[path.stem for path in PRESETS])
def test_libyaml_and_pyyaml_read_every_preset_alike(preset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphs are read with libyaml's parser when PyYAML has it; the pure-Python one must agree."""
    if document._FAST_LOADERS is None:
        pytest.skip("PyYAML without libyaml")
    text = preset.read_text()
    fast = document.parse_yaml(text, preset.name)
    monkeypatch.setattr(document, "_FAST_LOADERS", None)
    assert document.parse_yaml(text, preset.name) == fast


def test_text_libyaml_refuses_is_read_as_pyyaml_reads_it() -> None:
    """A lone surrogate escape is refused by libyaml but read by PyYAML (and so by focusgraph)."""
    assert document.parse_yaml('description: "\\ud800"', "x.yaml") == {"description": "\ud800"}
    with pytest.raises(GraphValidationError, match="nested deeper than 64 levels"):
        document.parse_yaml("[" * 2000 + "]" * 2000, "deep.yaml")
