"""The library API: what the command line does, as Python calls (for scripts and notebooks).

>>> from focusgraph.graph import load
>>> graph = load("rack-focus")                                   # a preset name or a YAML path
>>> graph.render({"image": "friend.jpg", "output": "clip.mp4", "blur": 0.05})  # doctest: +SKIP
[PosixPath('clip.mp4')]

Bindings are one mapping, like the command line's ``-i``/``-o``/``--set``: a plain
key binds a graph input (``"blur": 0.05``), a dotted key overrides one node
parameter (``"background.kind": "gaussian"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focusgraph.graph import models
from focusgraph.graph.compile import CompiledGraph, compile_graph
from focusgraph.graph.diagram import DiagramFormat, diagram
from focusgraph.graph.document import GraphDocument, InputSpec, load_document
from focusgraph.graph.preview import contact_sheet, evaluate_frames
from focusgraph.graph.registry import Registry, build_registry, default_registry
from focusgraph.graph.scheduler import ProgressCallback, render
from focusgraph.graph.store import NodeStore

Bindings = Mapping[str, Any]


def split_bindings(bindings: Bindings | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split a bindings mapping into graph input values and ``{node: {param: value}}`` overrides."""
    values: dict[str, Any] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for name, value in (bindings or {}).items():
        plain = str(value) if isinstance(value, Path) else value
        if "." in name:
            node_id, _, param = name.partition(".")
            overrides.setdefault(node_id, {})[param] = plain
        else:
            values[name] = plain
    return values, overrides


def stand_ins(doc: GraphDocument) -> dict[str, Any]:
    """Values for required inputs, so a graph's structure can be checked without a photo."""
    typed: dict[str, Any] = {"number": 0, "integer": 0, "boolean": False}
    return {  # a distinct stand-in per path, so an image and an output never collide
        name: spec.choices[0]
        if spec.choices
        else (spec.min if spec.min is not None else typed.get(spec.type, f"<{name}>"))
        for name, spec in doc.inputs.items()
        if spec.default is None
    }


@dataclass
class Graph:
    """A loaded graph document, ready to compile with bindings, render or preview.

    Attributes
    ----------
    document : GraphDocument
        The parsed (and migrated) document.
    source : str
        The file it came from, for messages.
    registry : Registry
        The node types it is compiled against.
    """

    document: GraphDocument
    source: str
    registry: Registry

    @property
    def name(self) -> str:
        """The document's ``name``."""
        return self.document.name

    @property
    def inputs(self) -> dict[str, InputSpec]:
        """The graph inputs that bindings can set, with their types, defaults and help."""
        return dict(self.document.inputs)

    def compile(self, bindings: Bindings | None = None, *, placeholders: bool = False) -> CompiledGraph:
        """Validate the graph with ``bindings``; ``placeholders`` fills required inputs for a dry check.

        Raises
        ------
        GraphValidationError
            Listing every problem, each naming its node and field.
        """
        values, overrides = split_bindings(bindings)
        if placeholders:
            values = {**stand_ins(self.document), **values}
        return compile_graph(
            self.document, values, overrides=overrides, registry=self.registry, source=self.source
        )

    def render(
        self,
        bindings: Bindings | None = None,
        *,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        on_message: Callable[[str], None] | None = None,
        cache: bool = True,
    ) -> list[Path]:
        """Render the graph to its outputs, fetching missing models first.

        Parameters
        ----------
        bindings : mapping, optional
            Graph inputs and ``node.param`` overrides.
        overwrite : bool
            Replace existing output files.
        progress : callable, optional
            Called as ``progress(done, total)`` after every frame (and once with 0).
        on_message : callable, optional
            Receives model-provisioning messages (a first render downloads models).
        cache : bool
            Keep slow time-invariant results (segmentation, inpainting) on disk and reuse
            them when the same photo is rendered again (:mod:`focusgraph.graph.store`).

        Returns
        -------
        list of Path
            The files written.
        """
        compiled = self.compile(bindings)
        provision(compiled, on_message)
        store = NodeStore.default() if cache else None
        return render(compiled, overwrite=overwrite, progress=progress, store=store)

    def frame(
        self, seconds: float, bindings: Bindings | None = None, *, max_side: int | None = None
    ) -> np.ndarray:
        """The frame shown at ``seconds`` as an ``(H, W, 3)`` uint8 RGB array (nothing is written)."""
        compiled = self.compile(bindings)
        provision(compiled, None)
        return evaluate_frames(compiled, [compiled.timeline.frame_at(seconds)], max_side)[0]

    def contact_sheet(
        self,
        bindings: Bindings | None = None,
        *,
        frames: int = 6,
        tile_side: int = 360,
        render_side: int = 720,
    ) -> np.ndarray:
        """A preview sheet: the mask overlay and ``frames`` labelled frames across the timeline.

        The graph renders with the photo shrunk to ``render_side``; tiles are ``tile_side`` long.
        """
        compiled = self.compile(bindings)
        provision(compiled, None)
        return contact_sheet(compiled, frames=frames, tile_side=tile_side, render_side=render_side)

    def diagram(self, fmt: DiagramFormat = "mermaid", bindings: Bindings | None = None) -> str:
        """The graph as a Mermaid or DOT diagram, time-invariant nodes marked."""
        return diagram(self.compile(bindings, placeholders=True), fmt)


def provision(graph: CompiledGraph, on_message: Callable[[str], None] | None) -> None:
    """Make sure every model the compiled graph's nodes need is present (fetching it if not)."""
    needed = [spec for node in graph.nodes.values() for spec in node.instance.required_models(node.params)]
    models.ensure_all(needed, progress=on_message)


def load(graph: str | Path, *, plugins: bool = True) -> Graph:
    """Load a graph by preset name (``"rack-focus"``) or YAML path.

    Parameters
    ----------
    graph : str or Path
        A bundled preset's name or a graph file.
    plugins : bool
        Load third-party node types (``False`` is ``--no-plugins``).

    Raises
    ------
    GraphValidationError
        The file is missing or not a valid graph document.
    """
    from focusgraph.presets import resolve_graph

    path = resolve_graph(str(graph))
    registry = default_registry() if plugins else build_registry(plugins=False)
    return Graph(load_document(path), str(path), registry)
