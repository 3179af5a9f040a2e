"""The JSON Schema of graph documents: presets validate, mistakes are caught where editors show them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml

from focusgraph.graph import FrameContext, Node, NodeParams, Port, PortType, animatable
from focusgraph.graph.cli import main
from focusgraph.graph.registry import build_registry
from focusgraph.graph.schema import graph_schema
from focusgraph.presets import preset_paths

SCHEMA_LINE = "# yaml-language-server: $schema="


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = graph_schema(build_registry(plugins=False))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def rack_focus() -> dict[str, Any]:
    return yaml.safe_load(preset_paths()["rack-focus"].read_text())


def error_paths(validator: jsonschema.Draft202012Validator, doc: dict[str, Any]) -> list[str]:
    return [".".join(str(part) for part in error.absolute_path) for error in validator.iter_errors(doc)]


@pytest.mark.parametrize("name", sorted(preset_paths()))
def test_every_preset_validates(validator: jsonschema.Draft202012Validator, name: str) -> None:
    doc = yaml.safe_load(preset_paths()[name].read_text())
    assert error_paths(validator, doc) == []


@pytest.mark.parametrize("name", sorted(preset_paths()))
def test_presets_point_editors_at_the_bundled_schema(name: str) -> None:
    path = preset_paths()[name]
    first = path.read_text().splitlines()[0]
    assert first.startswith(SCHEMA_LINE)
    assert (path.parent / first.removeprefix(SCHEMA_LINE)).is_file()


def test_bundled_schema_is_up_to_date() -> None:
    bundled = next(iter(preset_paths().values())).parent / "focusgraph.schema.json"
    current = graph_schema(build_registry(plugins=False))
    assert json.loads(bundled.read_text()) == current, "stale presets/focusgraph.schema.json: run `make docs`"


def test_typo_in_a_parameter_is_rejected_at_that_parameter(
    validator: jsonschema.Draft202012Validator,
) -> None:
    doc = rack_focus()
    doc["nodes"]["background"]["params"]["raduis"] = 0.02
    errors = list(validator.iter_errors(doc))
    assert [list(error.absolute_path) for error in errors] == [["nodes", "background", "params"]]
    assert "'raduis' was unexpected" in errors[0].message


def test_wrong_values_types_and_ports_are_rejected(validator: jsonschema.Draft202012Validator) -> None:
    doc = rack_focus()
    doc["nodes"]["background"]["params"]["kind"] = "lenz"
    doc["nodes"]["matte"]["type"] = "feathr"
    doc["nodes"]["final"]["inputs"]["maks"] = "matte"
    doc["nodes"]["clip"]["params"]["crf"] = 99
    doc["timeline"]["fps"] = 0
    assert sorted(error_paths(validator, doc)) == [
        "nodes.background.params.kind",
        "nodes.clip.params.crf",
        "nodes.final.inputs",
        "nodes.matte.type",
        "timeline.fps",
    ]


def test_input_references_are_allowed_anywhere_but_only_as_references(
    validator: jsonschema.Draft202012Validator,
) -> None:
    doc = rack_focus()
    doc["nodes"]["background"]["params"]["blades"] = "$blades"
    doc["nodes"]["focus"]["params"]["keys"][1]["value"] = "$end"
    assert error_paths(validator, doc) == []
    doc["nodes"]["background"]["params"]["blades"] = "six"
    assert error_paths(validator, doc) == ["nodes.background.params.blades"]


def test_short_and_full_type_names_pick_the_same_params(validator: jsonschema.Draft202012Validator) -> None:
    doc = rack_focus()
    doc["nodes"]["background"]["type"] = "core.blur"
    doc["nodes"]["background"]["params"]["sigma"] = 3
    assert error_paths(validator, doc) == ["nodes.background.params"]


class Vignette(Node):
    """A plugin node type defined here, as a third-party package would."""

    type_name = "acme.vignette"

    class Params(NodeParams):
        strength: animatable(ge=0, le=1) = 0.5  # type: ignore[valid-type]

    inputs: ClassVar[dict[str, Port]] = {"image": Port(PortType.IMAGE)}
    outputs: ClassVar[dict[str, Port]] = {"image": Port(PortType.IMAGE)}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        return {"image": inputs["image"]}


def test_plugin_nodes_are_in_the_schema() -> None:
    registry = build_registry(plugins=False)
    registry.add(Vignette, "acme-plugins 1.0")
    validator = jsonschema.Draft202012Validator(graph_schema(registry))
    doc = rack_focus()
    doc["nodes"]["vignette"] = {"type": "acme.vignette", "inputs": {"image": "film"}, "params": {}}
    assert error_paths(validator, doc) == []
    doc["nodes"]["vignette"]["params"] = {"strength": 2}
    assert error_paths(validator, doc) == ["nodes.vignette.params.strength"]
    doc["nodes"]["vignette"]["params"] = {"strength": {"link": "focus"}}
    assert error_paths(validator, doc) == []


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--no-plugins", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == graph_schema(build_registry(plugins=False))
