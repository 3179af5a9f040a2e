"""Text diagrams of a compiled graph: Mermaid flowcharts and Graphviz DOT.

Solid edges carry images and masks into input ports; dashed edges are parameter
links (``{link: node}``). Time-invariant nodes, computed once per render, are
marked ``once`` and drawn in grey; output nodes are drawn with a double border.
"""

from __future__ import annotations

import json
from typing import Literal

from focusgraph.graph.compile import CompiledGraph, CompiledNode

DiagramFormat = Literal["mermaid", "dot"]


def _label(node: CompiledNode) -> str:
    timing = "once" if node.invariant else ("output" if node.is_output else "per frame")
    return f"{node.id}\\n{node.cls.type_name} · {timing}"


def _edges(graph: CompiledGraph) -> list[tuple[str, str, str, bool]]:
    """``(source, target, label, is_link)`` for every connection, in evaluation order."""
    edges = []
    for node_id in graph.order:
        node = graph.nodes[node_id]
        for port, ref in node.inputs.items():
            edges.append((ref.node, node_id, port if ref.port == port else f"{ref.port} → {port}", False))
        for param, ref in node.links.items():
            edges.append((ref.node, node_id, param, True))
    return edges


def to_mermaid(graph: CompiledGraph) -> str:
    """A Mermaid ``flowchart LR`` of ``graph`` (paste into Markdown on GitHub or mermaid.live)."""
    lines = ["flowchart LR"]
    for node_id in graph.order:
        node = graph.nodes[node_id]
        text = _label(node).replace("\\n", "<br/>")
        shape = f'[["{text}"]]' if node.is_output else f'["{text}"]'
        lines.append(f"    {node_id}{shape}")
    for source, target, label, is_link in _edges(graph):
        arrow = "-.->" if is_link else "-->"
        lines.append(f"    {source} {arrow}|{label}| {target}")
    once = [node_id for node_id in graph.order if graph.nodes[node_id].invariant]
    lines.append("    classDef once fill:#e8e8e8,stroke:#888,color:#333")
    if once:
        lines.append(f"    class {','.join(once)} once")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A DOT string literal (Graphviz reads UTF-8, not ``\\u`` escapes)."""
    return json.dumps(text, ensure_ascii=False)


def to_dot(graph: CompiledGraph) -> str:
    """A Graphviz DOT digraph of ``graph`` (``dot -Tsvg``)."""
    lines = [
        f"digraph {_quote(graph.name)} {{",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica"];',
    ]
    for node_id in graph.order:
        node = graph.nodes[node_id]
        attributes = [f'label="{_label(node)}"']
        if node.invariant:
            attributes.append("fillcolor=gray90")
        if node.is_output:
            attributes.append("peripheries=2")
        lines.append(f"    {_quote(node_id)} [{', '.join(attributes)}];")
    for source, target, label, is_link in _edges(graph):
        style = ", style=dashed" if is_link else ""
        lines.append(f"    {_quote(source)} -> {_quote(target)} [label={_quote(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def diagram(graph: CompiledGraph, fmt: DiagramFormat = "mermaid") -> str:
    """The diagram of ``graph`` in ``fmt``."""
    return to_mermaid(graph) if fmt == "mermaid" else to_dot(graph)
