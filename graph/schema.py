"""JSON Schema of the graph document format, with every installed node type's ``Params``.

``focusgraph schema > focusgraph.schema.json`` writes it; a YAML editor that reads
JSON Schema (VS Code's YAML extension, via a ``# yaml-language-server: $schema=...``
line) then completes node types, parameter names and values and marks mistakes
inline. Nodes are discriminated on ``type``: once a node says ``type: blur``, its
``params`` are checked against the blur node's ``Params`` and its ``inputs`` against
its ports.

Wherever the document accepts a literal, it also accepts a graph-input reference
(``$name``), which is substituted before the engine validates the value.
"""

from __future__ import annotations

import copy
from typing import Any

from focusgraph.graph.document import FORMAT_VERSION, GraphDocument
from focusgraph.graph.node import Node
from focusgraph.graph.registry import DEFAULT_NAMESPACE, Registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://focusgraph.dev/schema/graph.json"

INPUT_REFERENCE: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\$[A-Za-z_][A-Za-z0-9_]*$",
    "description": "A graph input, substituted before validation: `$name`.",
}


def _rename_refs(schema: Any, prefix: str) -> Any:
    """Copy of ``schema`` with local ``#/$defs/X`` references renamed to ``#/$defs/{prefix}X``."""
    if isinstance(schema, dict):
        out = {key: _rename_refs(value, prefix) for key, value in schema.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/$defs/" + prefix + ref.removeprefix("#/$defs/")
        return out
    if isinstance(schema, list):
        return [_rename_refs(item, prefix) for item in schema]
    return schema


def _allow_references(schema: Any) -> Any:
    """Let every object property (at any depth) also take a ``$name`` input reference."""
    if isinstance(schema, list):
        return [_allow_references(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _allow_references(value) for key, value in schema.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _or_reference(prop) for name, prop in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _or_reference(out["items"])
    return out


def _or_reference(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` or an input reference; keeps description and default where editors show them."""
    shown: dict[str, Any] = {key: prop[key] for key in ("title", "description", "default") if key in prop}
    body = {key: value for key, value in prop.items() if key not in shown}
    return {**shown, "anyOf": [body, {"$ref": "#/$defs/InputReference"}]}


def type_names(cls: type[Node]) -> list[str]:
    """The names a document may use for ``cls``: ``core.blur`` and its shorthand ``blur``."""
    names = [cls.type_name]
    namespace, _, short = cls.type_name.partition(".")
    if namespace == DEFAULT_NAMESPACE:
        names.append(short)
    return names


def node_schema(cls: type[Node], defs: dict[str, Any]) -> dict[str, Any]:
    """Schema of one node entry of type ``cls``; its ``Params`` definitions are added to ``defs``."""
    prefix = cls.type_name + "."
    params = _rename_refs(cls.Params.model_json_schema(), prefix)
    for name, definition in params.pop("$defs", {}).items():
        defs[prefix + name] = _allow_references(definition)
    params = _allow_references(params)
    params["description"] = f"Parameters of {cls.type_name}."
    ports = {
        name: {
            "type": "string",
            "description": f"{port.type.value}{' (optional)' if port.optional else ''}: "
            f"`node` or `node.port`. {port.help}".strip(),
        }
        for name, port in cls.inputs.items()
    }
    required_ports = [name for name, port in cls.inputs.items() if not port.optional]
    inputs: dict[str, Any] = {"type": "object", "properties": ports, "additionalProperties": False}
    if required_ports:
        inputs["required"] = required_ports
    return {
        "type": "object",
        "description": cls.description or cls.type_name,
        "properties": {"type": {"enum": type_names(cls)}, "params": params, "inputs": inputs},
        "required": ["type", *(["params"] if params.get("required") else [])],
        "additionalProperties": False,
    }


def graph_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a graph document using the types in ``registry``.

    Parameters
    ----------
    registry : Registry
        Node types to include (built-ins and loaded plugins).

    Returns
    -------
    dict
        A JSON-serialisable schema.
    """
    schema = copy.deepcopy(GraphDocument.model_json_schema())
    defs: dict[str, Any] = schema.pop("$defs", {})
    defs["InputReference"] = INPUT_REFERENCE
    classes = [registry.types[name] for name in sorted(registry.types)]
    dispatch = []
    for cls in classes:
        key = "node." + cls.type_name
        defs[key] = node_schema(cls, defs)
        dispatch.append(
            {
                "if": {"properties": {"type": {"enum": type_names(cls)}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/{key}"},
            }
        )
    all_names = [name for cls in classes for name in type_names(cls)]
    defs["NodeSpec"] = {
        "type": "object",
        "description": defs.get("NodeSpec", {}).get("description", "One node of the graph."),
        "properties": {
            "type": {"enum": all_names, "description": "Node type, e.g. `blur` or `acme.vignette`."},
            "params": {"type": "object"},
            "inputs": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["type"],
        "additionalProperties": False,
        "allOf": dispatch,
    }
    defs["TimelineSpec"] = _timeline_schema(defs.get("TimelineSpec", {}))
    schema["properties"]["version"] = {
        "type": "integer",
        "minimum": 1,
        "maximum": FORMAT_VERSION,
        "description": f"Format version; this focusgraph reads versions 1 to {FORMAT_VERSION}.",
    }
    return {"$schema": DIALECT, "$id": SCHEMA_ID, **schema, "$defs": defs}


def _timeline_schema(generated: dict[str, Any]) -> dict[str, Any]:
    """The timeline's fields are loosely typed in the model (they may be ``$name``); be exact here."""
    reference = {"$ref": "#/$defs/InputReference"}
    return {
        "type": "object",
        "description": generated.get("description", "Frame rate, length and size."),
        "properties": {
            "fps": {
                "description": "Frames per second (1-240), or $input.",
                "default": 30,
                "anyOf": [{"type": "number", "minimum": 1, "maximum": 240}, reference],
            },
            "duration": {
                "description": "Length in seconds (0 = a single still frame), or $input.",
                "anyOf": [{"type": "number", "minimum": 0, "maximum": 600}, reference],
            },
            "size": {
                "description": "[width, height] of the output, or $input; default: the photo's size.",
                "anyOf": [
                    {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 2, "maximum": 16384},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    {"type": "null"},
                    reference,
                ],
            },
        },
        "required": ["duration"],
        "additionalProperties": False,
    }
