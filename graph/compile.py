"""Turn a graph document into a validated, ordered, executable graph.

All checks run before any pixel work, and every problem found is reported at once
as ``(node, field, message)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import ValidationError

from focusgraph.graph.document import (
    GraphDocument,
    bind_inputs,
    load_document,
    problems_from_validation,
    substitute,
)
from focusgraph.graph.errors import GraphValidationError, Problem
from focusgraph.graph.node import Link, Node, NodeParams, OutputNode, PortType, Timeline
from focusgraph.graph.registry import Registry, default_registry


@dataclass(frozen=True)
class Ref:
    """One end of an edge: a node id and one of its output ports."""

    node: str
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass
class CompiledNode:
    """A node instance with validated parameters and resolved connections."""

    id: str
    cls: type[Node]
    instance: Node
    params: NodeParams
    inputs: dict[str, Ref] = field(default_factory=dict)
    links: dict[str, Ref] = field(default_factory=dict)
    invariant: bool = True

    @property
    def is_output(self) -> bool:
        return isinstance(self.instance, OutputNode)


@dataclass
class CompiledGraph:
    """A validated graph, ready to render."""

    name: str
    description: str
    timeline: Timeline
    nodes: dict[str, CompiledNode]
    order: list[str]
    source: str | None = None

    @property
    def outputs(self) -> list[CompiledNode]:
        return [self.nodes[node_id] for node_id in self.order if self.nodes[node_id].is_output]


def _dependency_graph(nodes: dict[str, CompiledNode]) -> nx.DiGraph:
    """Directed graph of node ids, edges from producer (input or link) to consumer."""
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    for node in nodes.values():
        for ref in [*node.inputs.values(), *node.links.values()]:
            dag.add_edge(ref.node, node.id)
    return dag


def _parse_ref(text: str) -> tuple[str, str | None]:
    node, _, port = text.partition(".")
    return node, (port or None)


def _resolve_ref(
    text: str,
    nodes: dict[str, tuple[type[Node] | None, Any]],
    owner: str,
    field_name: str,
    want: PortType | None,
    problems: list[Problem],
) -> Ref | None:
    source_id, port = _parse_ref(text)
    if source_id not in nodes:
        known = ", ".join(sorted(nodes))
        problems.append(Problem(owner, field_name, f"refers to missing node {source_id!r} (nodes: {known})"))
        return None
    source_cls = nodes[source_id][0]
    if source_cls is None:
        return None  # its own problem is already reported
    outputs = source_cls.outputs
    if port is None:
        candidates = [name for name, p in outputs.items() if want is None or p.type == want]
        if len(outputs) == 1:
            port = next(iter(outputs))
        elif len(candidates) == 1:
            port = candidates[0]
        else:
            names = ", ".join(outputs) or "none"
            problems.append(
                Problem(
                    owner,
                    field_name,
                    f"{source_id!r} has several outputs ({names}); write {source_id}.PORT",
                )
            )
            return None
    if port not in outputs:
        names = ", ".join(outputs) or "none"
        problems.append(
            Problem(owner, field_name, f"{source_id!r} has no output {port!r} (outputs: {names})")
        )
        return None
    actual = outputs[port].type
    if want is not None and actual != want:
        problems.append(
            Problem(
                owner,
                field_name,
                f"type mismatch: {source_id}.{port} is {actual.value}, expected {want.value}",
            )
        )
        return None
    return Ref(source_id, port)


def _timeline(doc: GraphDocument, bound: dict[str, Any], problems: list[Problem]) -> Timeline | None:
    undefined: list[str] = []
    raw = substitute(doc.timeline.model_dump(), bound, undefined)
    for name in undefined:
        problems.append(Problem(None, "timeline", f"${name} is not a graph input"))
    fps, duration, size = raw["fps"], raw["duration"], raw["size"]
    ok = True
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 1 <= fps <= 240:
        problems.append(Problem(None, "timeline.fps", f"must be a number between 1 and 240, got {fps!r}"))
        ok = False
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration <= 600:
        problems.append(
            Problem(
                None,
                "timeline.duration",
                f"must be a number of seconds between 0 and 600, got {duration!r}",
            )
        )
        ok = False
    if size is not None and not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= 16384 for v in size)
    ):
        problems.append(Problem(None, "timeline.size", f"must be [width, height] in pixels, got {size!r}"))
        ok = False
    if not ok:
        return None
    return Timeline(float(fps), frame_count(float(duration), float(fps)), tuple(size) if size else None)


def compile_graph(
    doc: GraphDocument,
    values: dict[str, Any] | None = None,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    registry: Registry | None = None,
    source: str | None = None,
) -> CompiledGraph:
    """Validate a document with bound inputs and build the executable graph.

    Parameters
    ----------
    doc : GraphDocument
        The parsed document.
    values : dict, optional
        Graph input values (strings from the command line are converted to the input's type).
    overrides : dict, optional
        ``{node_id: {param: value}}`` applied on top of the document (``--set node.param=value``).
    registry : Registry, optional
        Node types to use; defaults to the installed ones.
    source : str, optional
        Name of the graph file, for messages.

    Raises
    ------
    GraphValidationError
        Listing every problem found.
    """
    registry = registry or default_registry()
    problems: list[Problem] = []
    try:
        bound = bind_inputs(doc, values or {})
    except GraphValidationError as exc:
        raise GraphValidationError(exc.problems, source=source) from None
    timeline = _timeline(doc, bound, problems)

    overrides = overrides or {}
    for node_id in overrides:
        if node_id not in doc.nodes:
            problems.append(Problem(node_id, None, "--set names a node that is not in the graph"))

    classes: dict[str, tuple[type[Node] | None, Any]] = {}
    for node_id, spec in doc.nodes.items():
        cls = registry.get(spec.type)
        failure = registry.failure_for(spec.type) if cls is None else None
        if failure is not None:
            problems.append(
                Problem(
                    node_id,
                    "type",
                    f"node type {spec.type!r} comes from the plugin {failure.origin}, which failed to "
                    f"load ({failure.message}); fix or reinstall that package",
                )
            )
        elif cls is None:
            hint = registry.suggest(spec.type)
            suffix = f"; did you mean {hint!r}?" if hint else ""
            problems.append(Problem(node_id, "type", f"unknown node type {spec.type!r}{suffix}"))
        classes[node_id] = (cls, spec)

    compiled: dict[str, CompiledNode] = {}
    for node_id, (cls, spec) in classes.items():
        if cls is None:
            continue
        undefined: list[str] = []
        raw_params = substitute({**spec.params, **overrides.get(node_id, {})}, bound, undefined)
        for name in undefined:
            problems.append(Problem(node_id, "params", f"${name} is not a graph input"))
        try:
            params = cls.Params.model_validate(raw_params)
        except ValidationError as exc:
            problems += problems_from_validation(exc, node_id, "params")
            params = None

        inputs: dict[str, Ref] = {}
        for port_name, text in spec.inputs.items():
            port = cls.inputs.get(port_name)
            if port is None:
                names = ", ".join(cls.inputs) or "none"
                problems.append(
                    Problem(
                        node_id,
                        f"inputs.{port_name}",
                        f"{cls.type_name} has no input {port_name!r} (inputs: {names})",
                    )
                )
                continue
            ref = _resolve_ref(text, classes, node_id, f"inputs.{port_name}", port.type, problems)
            if ref is not None:
                inputs[port_name] = ref
        for port_name, port in cls.inputs.items():
            if not port.optional and port_name not in spec.inputs:
                problems.append(Problem(node_id, f"inputs.{port_name}", "required input is not connected"))

        links: dict[str, Ref] = {}
        if params is not None:
            for field_name in type(params).model_fields:
                value = getattr(params, field_name)
                if isinstance(value, Link):
                    ref = _resolve_ref(
                        value.link,
                        classes,
                        node_id,
                        f"params.{field_name}",
                        PortType.SCALAR,
                        problems,
                    )
                    if ref is not None:
                        links[field_name] = ref
            compiled[node_id] = CompiledNode(node_id, cls, cls(), params, inputs, links)

    if not any(isinstance(cls, type) and issubclass(cls, OutputNode) for cls, _ in classes.values()):
        problems.append(Problem(None, "nodes", "the graph has no output node (e.g. an `encode` node)"))

    dag = _dependency_graph(compiled)
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
        problems.append(Problem(cycle[0][0], None, f"cycle: {path}"))

    if not problems:
        problems += _file_conflicts(compiled)
    if problems or timeline is None:
        raise GraphValidationError(problems, source=source)

    order = list(nx.lexicographical_topological_sort(dag))
    for node_id in order:
        node = compiled[node_id]
        upstream = [ref.node for ref in [*node.inputs.values(), *node.links.values()]]
        node.invariant = (
            not node.cls.varies_per_frame
            and not node.is_output
            and all(compiled[up].invariant for up in upstream)
        )
    return CompiledGraph(doc.name, doc.description, timeline, compiled, order, source)


def _file_identity(path: Path) -> object:
    """Equal for two names of one file: (device, inode) when it exists, else the resolved path.

    Catches ``./x`` vs ``x``, symbolic links and hard links to the same file.
    """
    resolved = path.expanduser().resolve()
    try:
        info = resolved.stat()
    except OSError:
        return resolved
    return (info.st_dev, info.st_ino)


def _file_conflicts(nodes: dict[str, CompiledNode]) -> list[Problem]:
    """An output must never be written over a file the graph reads, nor two outputs to one file."""
    reads: dict[object, tuple[str, Path]] = {}
    for node in nodes.values():
        for path in node.instance.input_files(node.params):
            reads[_file_identity(Path(path))] = (node.id, Path(path))
    problems = []
    writes: dict[object, str] = {}
    for node in nodes.values():
        if isinstance(node.instance, OutputNode):
            target = Path(node.instance.output_path(node.params))
            identity = _file_identity(target)
            if identity in writes:
                problems.append(
                    Problem(node.id, "params.path", f"{target} is also written by {writes[identity]!r}")
                )
            writes[identity] = node.id
            if identity in reads:
                reader, read_path = reads[identity]
                problems.append(
                    Problem(
                        node.id,
                        "params.path",
                        f"'{target}' would overwrite the input file '{read_path}' read by {reader!r}; "
                        "choose another output path",
                    )
                )
    return problems


def load_graph(
    path_or_doc: Path | GraphDocument,
    values: dict[str, Any] | None = None,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    registry: Registry | None = None,
) -> CompiledGraph:
    """Load a graph file (or document) and compile it with bound inputs."""
    if isinstance(path_or_doc, GraphDocument):
        return compile_graph(path_or_doc, values, overrides=overrides, registry=registry)
    doc = load_document(path_or_doc)
    return compile_graph(doc, values, overrides=overrides, registry=registry, source=str(path_or_doc))


def frame_count(duration: float, fps: float) -> int:
    """Frames in a clip of ``duration`` seconds (at least one)."""
    return max(1, math.floor(duration * fps + 0.5))
