"""The YAML graph document: loading, version migration, schema and input binding.

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

import copy
import math
import re
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from focusgraph.graph.errors import GraphValidationError, Problem

FORMAT_VERSION = 1
"""The graph format version this focusgraph writes; older documents are migrated on load."""

Migration = Callable[[dict[str, Any]], dict[str, Any]]

MIGRATIONS: dict[int, Migration] = {}
"""Upgrade steps by the version they upgrade from: ``MIGRATIONS[n]`` turns version n into n + 1."""


def migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register a function that upgrades a raw document from ``from_version`` to the next version.

    The function receives a deep copy of the parsed YAML mapping and returns the
    upgraded mapping; the engine sets its ``version``. Bump :data:`FORMAT_VERSION`
    in the same change.

    Examples
    --------
    >>> @migration(1)  # doctest: +SKIP
    ... def _rename_duration(doc):
    ...     doc["timeline"]["length"] = doc["timeline"].pop("duration")
    ...     return doc
    """

    def register(step: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"a migration from graph format version {from_version} is already registered")
        MIGRATIONS[from_version] = step
        return step

    return register


def migrate(data: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Upgrade a parsed document to :data:`FORMAT_VERSION` through the registered migrations.

    A document without an integer ``version`` is returned unchanged (validation
    reports it).

    Raises
    ------
    GraphValidationError
        The document is newer than this focusgraph (upgrade focusgraph), older than
        version 1, or no migration leads from its version.
    """
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        return data
    if version > FORMAT_VERSION:
        message = (
            f"graph format version {version} is newer than this focusgraph reads "
            f"({FORMAT_VERSION}); upgrade focusgraph (pip install --upgrade focusgraph)"
        )
        raise GraphValidationError([Problem(None, "version", message)], source=source)
    if version < 1:
        raise GraphValidationError(
            [Problem(None, "version", f"unknown graph format version {version}")], source=source
        )
    while version < FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            message = f"no migration from graph format version {version} to {version + 1}"
            raise GraphValidationError([Problem(None, "version", message)], source=source)
        data = step(copy.deepcopy(data))
        version += 1
        data["version"] = version
    return data


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

    version: int = Field(description="Format version; older versions are migrated when loaded.")
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


def _construct_mapping(loader: yaml.BaseLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a single value, not a list or mapping", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _construct_text(loader: yaml.BaseLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _strict(loader: type[Any]) -> type[Any]:
    """``loader`` refusing duplicate and non-scalar keys and reading dates as text."""
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    # A graph holds no dates; `2001-13-01` would otherwise fail inside PyYAML's date parser.
    loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
    return loader


@_strict
class _StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate and non-scalar keys and reads dates as text."""


_FAST_LOADERS: tuple[type[Any], type[Any]] | None = None
"""libyaml's safe loader and a strict one on it: (scan, load), if PyYAML has libyaml."""
if yaml.__with_libyaml__:

    @_strict
    class _FastStrictLoader(yaml.CSafeLoader):
        """:class:`_StrictLoader` on libyaml's parser: a preset read in 2 instead of 17 ms."""

    _FAST_LOADERS = (yaml.CSafeLoader, _FastStrictLoader)


MAX_DOCUMENT_BYTES = 1 << 20
"""Largest graph document read (1 MiB; bundled presets are about 5 KB)."""

_TOO_LARGE = f"over {MAX_DOCUMENT_BYTES >> 20} MiB: too large for a graph document"

MAX_NESTING = 64
"""Deepest nesting of YAML collections accepted (a graph needs about 6)."""

MAX_YAML_NODES = 100_000
"""Most YAML scalars and collections accepted in one document."""


def _refuse(source: str, message: str, mark: Any = None) -> GraphValidationError:
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return GraphValidationError([Problem(None, None, f"{where}{message}")], source=source)


def _check_structure(text: str, source: str, loader: type[Any] = yaml.SafeLoader) -> None:
    """Scan the YAML events once, refusing anchors/aliases and absurd nesting or size.

    The scan is iterative, so a 10,000-deep document is refused here rather than
    overflowing the recursive composer.
    """
    depth = 0
    count = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _refuse(source, "YAML anchors and aliases are not supported", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None:  # explicit tags: `!!python/...`, or `!!int x` that PyYAML fails to build
            shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
            raise _refuse(source, f"YAML tags such as {shown!r} are not supported", event.start_mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise _refuse(source, f"nested deeper than {MAX_NESTING} levels", event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            count += 1
            if count > MAX_YAML_NODES:
                raise _refuse(source, f"more than {MAX_YAML_NODES} YAML values", event.start_mark)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text strictly, raising :class:`GraphValidationError` with the line.

    Refused: anchors and aliases (no alias bombs), duplicate keys, explicit tags
    (no ``!!python/...``), text over :data:`MAX_DOCUMENT_BYTES`, nesting deeper
    than :data:`MAX_NESTING` and more than :data:`MAX_YAML_NODES` values.
    """
    try:
        return _load_strict(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        raise _refuse(source, problem, mark) from None


def parse_value(text: str, source: str) -> Any:
    """Parse a command-line value as strict YAML; text that is not valid YAML stays a string."""
    if not text.strip():
        return text
    try:
        return _load_strict(text, source)
    except yaml.YAMLError:
        return text


def _load_strict(text: str, source: str) -> Any:
    if len(text) > MAX_DOCUMENT_BYTES:
        raise _refuse(source, _TOO_LARGE)
    if _FAST_LOADERS is not None:
        scan, load = _FAST_LOADERS
        try:
            _check_structure(text, source, scan)
            return _construct(text, source, load)
        except yaml.YAMLError:
            # libyaml refuses a little that PyYAML reads (a lone surrogate escape such as
            # "\ud800", nesting over 1000 deep): PyYAML decides, and words the refusal.
            pass
    _check_structure(text, source)
    return _construct(text, source, _StrictLoader)


def _construct(text: str, source: str, loader: type[Any]) -> Any:
    try:
        return yaml.load(text, Loader=loader)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # a value PyYAML cannot build
        raise _refuse(source, f"cannot read a value ({type(exc).__name__}: {_short(str(exc))})") from None


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


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters so an error stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        return f"{ranged[0]['msg'].replace('Input should', 'must')}, got {_short(ranged[0]['input'])}"
    if len(errors) > 1 and ("float_type" in kinds or "int_type" in kinds) and "model_type" in kinds:
        return f"expected a number or {{link: node}}, got {_short(value)}"
    if first["type"] == "value_error":
        return str(first["ctx"]["error"]) if "ctx" in first else first["msg"]
    message = first["msg"].replace("Input should be", "expected")
    return f"{message}, got {_short(value)}" if "input" in first and not isinstance(value, dict) else message


def read_text(path: Path, source: str | None = None) -> str:
    """Read a graph file as UTF-8 text, refusing what is not a regular file of at most 1 MiB."""
    source = source or str(path)
    if path.is_dir():
        raise _refuse(source, "is a directory; give the path of a YAML graph file")
    if path.exists() and not path.is_file():  # a FIFO would block forever
        raise _refuse(source, "is not a regular file; give the path of a YAML graph file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise GraphValidationError([Problem(None, None, "no such graph file")], source=source) from None
    except OSError as exc:
        raise _refuse(source, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise _refuse(source, _TOO_LARGE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(source, f"not UTF-8 text (byte {exc.start}); save the graph as UTF-8") from None
    return text


def load_document(path_or_text: Path | str, *, source: str | None = None) -> GraphDocument:
    """Read and structurally validate a graph document.

    Parameters
    ----------
    path_or_text : Path or str
        A path to a YAML file, or YAML text (then give ``source`` for messages).
    """
    if isinstance(path_or_text, Path):
        source = source or str(path_or_text)
        text = read_text(path_or_text, source)
    else:
        text = path_or_text
    data = parse_yaml(text, source or "<graph>")
    if not isinstance(data, dict):
        raise GraphValidationError(
            [Problem(None, None, "a graph document must be a YAML mapping")], source=source
        )
    data = migrate(data, source)
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
            [Problem(None, f"inputs.{name}", f"expected a {spec.type}, got {_short(raw)}")]
        ) from None
    if spec.choices is not None and value not in spec.choices:
        choices = ", ".join(str(choice) for choice in spec.choices)
        raise GraphValidationError(
            [Problem(None, f"inputs.{name}", f"must be one of {choices}, got {_short(raw)}")]
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise GraphValidationError(
            [Problem(None, f"inputs.{name}", f"must be a finite number, got {_short(raw)}")]
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            raise GraphValidationError(
                [Problem(None, f"inputs.{name}", f"must be >= {spec.min}, got {_short(value)}")]
            )
        if spec.max is not None and value > spec.max:
            raise GraphValidationError(
                [Problem(None, f"inputs.{name}", f"must be <= {spec.max}, got {_short(value)}")]
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
