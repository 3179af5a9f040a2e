"""The YAML graph document (format version 1): loading, schema and input binding.

A document looks like this (see ``presets/rack_focus.yaml`` for a full one)::

    version: 1
    name: blur-background
    description: Blur everything but the person.
    inputs:
      image: {type: path, help: The photo.}
      output: {type: path, default: out.mp4, help: Where to write the clip.}
      strength: {type: number, default: 0.03, min: 0, max: 0.2, help: Blur radius.}
    timeline: {fps: 30, duration: 5}
    nodes:
      photo: {type: load, params: {path: $image}}
      ...

A parameter or timeline value written as ``$name`` is replaced by the graph input
``name`` before validation (``$$`` escapes a literal dollar).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from focusgraph.graph.errors import GraphValidationError, Problem

FORMAT_VERSION = 1
_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")

InputType = Literal["path", "string", "number", "integer", "boolean"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InputSpec(_Strict):
    """A named graph parameter that the command line (``-i``, ``-o``, ``--set``) can bind."""

    type: InputType = Field(description="Value type of the input.")
    default: str | float | int | bool | None = Field(
        default=None, description="Value used when the input is not bound; no default = required."
    )
    help: str = Field(default="", description="One line shown by `focusgraph presets` and `--help`.")
    choices: list[str | float | int] | None = Field(default=None, description="Allowed values.")
    min: float | None = Field(default=None, description="Smallest allowed number.")
    max: float | None = Field(default=None, description="Largest allowed number.")


class TimelineSpec(_Strict):
    """Frame rate, length and optional output size; values may reference inputs (``$duration``).

    The values are checked after inputs are substituted (see ``compile``), so they are
    typed loosely here.
    """

    fps: Any = Field(default=30.0, description="Frames per second (1-240), or $input.")
    duration: Any = Field(description="Length in seconds (0 = a single still frame), or $input.")
    size: Any = Field(
        default=None, description="[width, height] of the output, or $input; default: the photo's size."
    )


class NodeSpec(_Strict):
    """One node of the graph."""

    type: str = Field(description="Node type, e.g. `blur` or `acme.vignette`.")
    params: dict[str, Any] = Field(default_factory=dict, description="The node's parameters.")
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Input port -> `node` or `node.port` it is connected to."
    )


class GraphDocument(_Strict):
    """A whole graph document."""

    version: int = Field(description="Format version; this focusgraph reads version 1.")
    name: str = Field(description="Short name of the graph.")
    description: str = Field(default="", description="What the graph does.")
    inputs: dict[str, InputSpec] = Field(default_factory=dict, description="Graph parameters.")
    timeline: TimelineSpec = Field(description="Frame rate, duration and size.")
    nodes: dict[str, NodeSpec] = Field(description="Nodes keyed by id.")

    @model_validator(mode="after")
    def _known_version(self) -> GraphDocument:
        if self.version > FORMAT_VERSION:
            raise ValueError(
                f"graph format version {self.version} is newer than this focusgraph reads "
                f"({FORMAT_VERSION}); upgrade focusgraph"
            )
        if self.version < 1:
            raise ValueError(f"unknown graph format version {self.version}")
        return self


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys and anchors/aliases (no alias bombs)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _refuse_alias(loader: _StrictLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, "YAML anchors and aliases are not supported", node.start_mark
    )


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text strictly, raising :class:`GraphValidationError` with the line."""
    if "*" in text or "&" in text:
        # Cheap pre-check; the event scan below is authoritative.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise GraphValidationError(
                    [Problem(None, None, f"line {line}: YAML anchors and aliases are not supported")],
                    source=source,
                )
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        raise GraphValidationError([Problem(None, None, f"{where}{problem}")], source=source) from None


_UNION_TAGS = {"float", "int", "str", "bool", "Link", "none", "dict", "list"}


def format_location(loc: tuple[int | str, ...]) -> str:
    """Dotted field path from a pydantic error location, without union-member tags."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in _UNION_TAGS or "[" in item or "-" in item:
            continue  # a union member's tag (e.g. `constrained-float`), not a field
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def problems_from_validation(exc: ValidationError, node: str | None, prefix: str) -> list[Problem]:
    """Turn a pydantic error into one :class:`Problem` per field, with value and range."""
    by_field: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        by_field.setdefault(format_location(error["loc"]), []).append(dict(error))
    problems = []
    for field_path, errors in by_field.items():
        full = ".".join(part for part in (prefix, field_path) if part) or None
        problems.append(Problem(node, full, _describe(errors)))
    return problems


def _describe(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    kinds = {error["type"] for error in errors}
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        return "unknown field"
    if first["type"] == "missing":
        return "required field is missing"
    ranged = [
        e
        for e in errors
        if e["type"] in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
    ]
    if ranged:
        return f"{ranged[0]['msg'].replace('Input should', 'must')}, got {ranged[0]['input']!r}"
    if len(errors) > 1 and ("float_type" in kinds or "int_type" in kinds) and "model_type" in kinds:
        return f"expected a number or {{link: node}}, got {value!r}"
    if first["type"] == "value_error":
        return str(first["ctx"]["error"]) if "ctx" in first else first["msg"]
    message = first["msg"].replace("Input should be", "expected")
    return f"{message}, got {value!r}" if "input" in first and not isinstance(value, dict) else message


def load_document(path_or_text: Path | str, *, source: str | None = None) -> GraphDocument:
    """Read and structurally validate a graph document.

    Parameters
    ----------
    path_or_text : Path or str
        A path to a YAML file, or YAML text (then give ``source`` for messages).
    """
    if isinstance(path_or_text, Path):
        source = source or str(path_or_text)
        try:
            text = path_or_text.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GraphValidationError([Problem(None, None, "no such graph file")], source=source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GraphValidationError([Problem(None, None, f"cannot read: {exc}")], source=source) from None
    else:
        text = path_or_text
    data = parse_yaml(text, source or "<graph>")
    if not isinstance(data, dict):
        raise GraphValidationError(
            [Problem(None, None, "a graph document must be a YAML mapping")], source=source
        )
    try:
        return GraphDocument.model_validate(data)
    except ValidationError as exc:
        problems = []
        for problem in problems_from_validation(exc, None, ""):
            field = problem.field or ""
            if field.startswith("nodes.") and field.count(".") >= 2:
                _, node_id, rest = field.split(".", 2)
                problems.append(Problem(node_id, rest, problem.message))
            else:
                problems.append(problem)
        raise GraphValidationError(problems, source=source) from None


def coerce_input(name: str, spec: InputSpec, raw: Any) -> Any:
    """Convert a bound value (a string from the command line, or a YAML value) to the input's type."""
    value: Any = raw
    try:
        if spec.type == "number":
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
        elif spec.type == "integer":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value = int(raw)
        elif spec.type == "boolean":
            if isinstance(raw, str):
                lowered = raw.strip().lower()
                if lowered not in {"true", "false", "yes", "no", "1", "0", "on", "off"}:
                    raise ValueError
                value = lowered in {"true", "yes", "1", "on"}
            elif not isinstance(raw, bool):
                raise ValueError
        else:
            if not isinstance(raw, str):
                raise ValueError
    except (TypeError, ValueError):
        raise GraphValidationError(
            [Problem(None, f"inputs.{name}", f"expected a {spec.type}, got {raw!r}")]
        ) from None
    if spec.choices is not None and value not in spec.choices:
        choices = ", ".join(str(choice) for choice in spec.choices)
        raise GraphValidationError(
            [Problem(None, f"inputs.{name}", f"must be one of {choices}, got {raw!r}")]
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise GraphValidationError([Problem(None, f"inputs.{name}", f"must be a finite number, got {raw!r}")])
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            raise GraphValidationError(
                [Problem(None, f"inputs.{name}", f"must be >= {spec.min}, got {value!r}")]
            )
        if spec.max is not None and value > spec.max:
            raise GraphValidationError(
                [Problem(None, f"inputs.{name}", f"must be <= {spec.max}, got {value!r}")]
            )
    return value


def bind_inputs(doc: GraphDocument, values: dict[str, Any]) -> dict[str, Any]:
    """Resolve every graph input to a typed value: bound value, else default, else an error."""
    problems: list[Problem] = []
    for name in values:
        if name not in doc.inputs:
            known = ", ".join(doc.inputs) or "none"
            problems.append(
                Problem(None, f"inputs.{name}", f"the graph has no input {name!r} (inputs: {known})")
            )
    bound: dict[str, Any] = {}
    for name, spec in doc.inputs.items():
        raw = values.get(name, spec.default)
        if raw is None:
            problems.append(Problem(None, f"inputs.{name}", f"required input is not set ({spec.help})"))
            continue
        try:
            bound[name] = coerce_input(name, spec, raw)
        except GraphValidationError as exc:
            problems += exc.problems
    if problems:
        raise GraphValidationError(problems)
    return bound


def substitute(value: Any, bound: dict[str, Any], undefined: list[str]) -> Any:
    """Replace ``$name`` strings (recursively) by bound input values."""
    if isinstance(value, str):
        if value.startswith("$$"):
            return value[1:]
        match = _REFERENCE.match(value)
        if match:
            name = match.group(1)
            if name not in bound:
                undefined.append(name)
                return value
            return bound[name]
        return value
    if isinstance(value, list):
        return [substitute(item, bound, undefined) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, bound, undefined) for key, item in value.items()}
    return value
