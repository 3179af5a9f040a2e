"""focusgraph's engine: graph documents, validation, the node registry and the scheduler.

The engine knows no specific node type; node types come from the ``focusgraph.nodes``
entry-point group (see :mod:`focusgraph.graph.node` for the base class).
"""

from focusgraph.graph.compile import CompiledGraph, compile_graph, load_graph
from focusgraph.graph.document import GraphDocument, load_document
from focusgraph.graph.errors import (
    EncodeError,
    FocusgraphError,
    GraphValidationError,
    InputImageError,
    ModelError,
    NodeExecutionError,
    PluginError,
    Problem,
)
from focusgraph.graph.node import (
    FrameContext,
    Link,
    Node,
    NodeParams,
    OutputNode,
    Port,
    PortType,
    Timeline,
    Writer,
    animatable,
)
from focusgraph.graph.render import Evaluator, render, render_frame

__all__ = [
    "CompiledGraph",
    "EncodeError",
    "Evaluator",
    "FocusgraphError",
    "FrameContext",
    "GraphDocument",
    "GraphValidationError",
    "InputImageError",
    "Link",
    "ModelError",
    "Node",
    "NodeExecutionError",
    "NodeParams",
    "OutputNode",
    "PluginError",
    "Port",
    "PortType",
    "Problem",
    "Timeline",
    "Writer",
    "animatable",
    "compile_graph",
    "load_document",
    "load_graph",
    "render",
    "render_frame",
]
