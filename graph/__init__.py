"""focusgraph's engine: graph documents, validation, the node registry and the scheduler.

The engine knows no specific node type; node types come from the ``focusgraph.nodes``
entry-point group (see :mod:`focusgraph.graph.node` for the base class).
"""

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562), so that `focusgraph` starts, and installs
# its Ctrl-C handling, before the heavier modules (networkx, pydantic) load.
_EXPORTS = {
    "Graph": "api",
    "load": "api",
    "BatchReport": "batching",
    "PhotoResult": "batching",
    "batch": "batching",
    "CompiledGraph": "compile",
    "compile_graph": "compile",
    "load_graph": "compile",
    "GraphDocument": "document",
    "load_document": "document",
    "EncodeError": "errors",
    "FocusgraphError": "errors",
    "GraphValidationError": "errors",
    "InputImageError": "errors",
    "ModelError": "errors",
    "NodeExecutionError": "errors",
    "PluginError": "errors",
    "Problem": "errors",
    "FilePath": "node",
    "FrameContext": "node",
    "Link": "node",
    "Node": "node",
    "NodeParams": "node",
    "OutputNode": "node",
    "Port": "node",
    "PortType": "node",
    "Timeline": "node",
    "Writer": "node",
    "animatable": "node",
    "Evaluator": "scheduler",
    "render": "scheduler",
    "render_frame": "scheduler",
}

if TYPE_CHECKING:
    from focusgraph.graph.api import Graph, load
    from focusgraph.graph.batching import BatchReport, PhotoResult, batch
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
        FilePath,
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
    from focusgraph.graph.scheduler import Evaluator, render, render_frame


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "BatchReport",
    "CompiledGraph",
    "EncodeError",
    "Evaluator",
    "FilePath",
    "FocusgraphError",
    "FrameContext",
    "Graph",
    "GraphDocument",
    "GraphValidationError",
    "InputImageError",
    "Link",
    "ModelError",
    "Node",
    "NodeExecutionError",
    "NodeParams",
    "OutputNode",
    "PhotoResult",
    "PluginError",
    "Port",
    "PortType",
    "Problem",
    "Timeline",
    "Writer",
    "animatable",
    "batch",
    "compile_graph",
    "load",
    "load_document",
    "load_graph",
    "render",
    "render_frame",
]
