"""Evaluate a compiled graph frame by frame and stream the frames to its outputs.

Time-invariant nodes (those that do not vary by themselves and whose inputs do not
vary) run once per render. Every other node is keyed per frame by its type, version,
parameter values at that frame (links resolved) and the keys of its inputs; when a
key equals the one of the previous frame the previous result is reused, so a hold
at the end of a keyframe curve costs nothing. Only the latest result of each node
is kept, so memory does not grow with the length of the clip.

With a :class:`~focusgraph.graph.store.NodeStore`, a time-invariant node that
``persists`` at its parameters is looked up on disk first and stored after it runs, so
re-rendering a photo skips its slow one-off work (segmentation, inpainting).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from focusgraph.graph.compile import CompiledGraph, CompiledNode
from focusgraph.graph.document import problems_from_validation
from focusgraph.graph.errors import FocusgraphError, GraphValidationError, NodeExecutionError, Problem
from focusgraph.graph.node import FrameContext, NodeParams, OutputNode, Writer
from focusgraph.graph.store import NodeStore, node_key

ProgressCallback = Callable[[int, int], None]


@dataclass
class _Result:
    key: str
    outputs: dict[str, Any]


@dataclass
class Evaluator:
    """Computes node outputs for any frame of a compiled graph, with caching.

    Attributes
    ----------
    store : NodeStore, optional
        Where persistent time-invariant nodes' outputs are kept between renders.
    evaluations : Counter
        How many times each node's ``evaluate`` ran (for tests and diagnostics).
    restored : Counter
        How many times a node's outputs came from the store instead.
    """

    graph: CompiledGraph
    store: NodeStore | None = None
    evaluations: Counter[str] = field(default_factory=Counter)
    restored: Counter[str] = field(default_factory=Counter)
    _results: dict[str, _Result] = field(default_factory=dict)

    def resolve_params(self, node: CompiledNode) -> NodeParams:
        """Parameters of ``node`` with every link replaced by its value at the current frame."""
        if not node.links:
            return node.params
        values = {name: getattr(node.params, name) for name in type(node.params).model_fields}
        for name, ref in node.links.items():
            values[name] = float(self._results[ref.node].outputs[ref.port])
        try:
            return node.cls.Params.model_validate(values)
        except ValidationError as exc:
            problem = problems_from_validation(exc, node.id, "params")[0]
            linked = Problem(node.id, problem.field, f"linked value out of range: {problem.message}")
            raise GraphValidationError([linked], source=self.graph.source) from None

    def _key(self, node: CompiledNode, params: NodeParams, ctx: FrameContext) -> str:
        payload = {
            "type": node.cls.type_name,
            "version": node.cls.version,
            "params": params.model_dump(mode="json"),
            "inputs": {
                port: self._results[ref.node].key + ":" + ref.port for port, ref in node.inputs.items()
            },
            "frame": ctx.frame if node.instance.varies_at(params) else None,
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def run(self, ctx: FrameContext) -> dict[str, dict[str, Any]]:
        """Evaluate the non-output nodes for the frame ``ctx`` and return their outputs.

        Nodes see the evaluator's store in ``ctx.store`` (unless ``ctx`` brings one).
        """
        if ctx.store is None and self.store is not None:
            ctx = replace(ctx, store=self.store)
        for node_id in self.graph.order:
            node = self.graph.nodes[node_id]
            if node.is_output:
                continue
            previous = self._results.get(node_id)
            if node.invariant and previous is not None:
                continue
            params = self.resolve_params(node)
            key = self._key(node, params, ctx)
            if previous is not None and previous.key == key:
                continue
            inputs = {port: self._results[ref.node].outputs[ref.port] for port, ref in node.inputs.items()}
            self._results[node_id] = _Result(key, self._evaluate(node, params, inputs, ctx))
        return {node_id: result.outputs for node_id, result in self._results.items()}

    def _evaluate(
        self, node: CompiledNode, params: NodeParams, inputs: dict[str, Any], ctx: FrameContext
    ) -> dict[str, Any]:
        """The node's outputs: from the store when it holds them, else evaluated (and stored)."""
        if self.store is None or not (node.invariant and node.instance.persists(params)):
            self.evaluations[node.id] += 1
            outputs: dict[str, Any] = _guarded(node, ctx.frame, node.instance.evaluate, params, inputs, ctx)
            return outputs
        stored_key = self._store_key(node, params, inputs, ctx)
        found = self.store.get(stored_key)
        if found is not None and set(found[0]) == set(node.cls.outputs):
            outputs, log = found
            for line in log:
                level, name, message = line.split("\t", 2)
                logging.getLogger(name).log(int(level), "%s", message)
            self.restored[node.id] += 1
            return outputs
        self.evaluations[node.id] += 1
        with _Warnings() as warnings:
            outputs = _guarded(node, ctx.frame, node.instance.evaluate, params, inputs, ctx)
        self.store.put_in_background(stored_key, outputs, warnings.lines)
        return outputs

    @staticmethod
    def _store_key(node: CompiledNode, params: NodeParams, inputs: dict[str, Any], ctx: FrameContext) -> str:
        files = []
        for path in node.instance.input_files(params):
            try:
                stat = path.stat()
            except OSError:
                continue  # evaluate reports a missing file
            files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        timeline = {"fps": ctx.fps, "frames": ctx.frame_count, "size": ctx.size, "max_side": ctx.max_side}
        return node_key(
            node.cls.type_name,
            node.cls.version,
            node.cls.__module__,
            {"params": params.model_dump(mode="json"), "files": files, "timeline": timeline},
            inputs,
            [spec.sha256 for spec in node.instance.required_models(params)],
        )

    def output_inputs(self, node: CompiledNode) -> dict[str, Any]:
        """Values arriving at the input ports of an output node for the last evaluated frame."""
        return {port: self._results[ref.node].outputs[ref.port] for port, ref in node.inputs.items()}


class _Warnings(logging.Handler):
    """``with _Warnings() as w:`` collects what focusgraph's loggers warn of in this thread.

    Each line is ``level<TAB>logger<TAB>message``, so a node restored from the store
    can warn again exactly as when it ran.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self.lines.append(f"{record.levelno}\t{record.name}\t{record.getMessage()}")

    def __enter__(self) -> _Warnings:
        logging.getLogger("focusgraph").addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger("focusgraph").removeHandler(self)


def _guarded(node: CompiledNode, frame: int | None, call: Callable[..., Any], *args: Any) -> Any:
    """Run ``call(*args)``; turn an unexpected exception into a NodeExecutionError naming the node.

    The message names the node id, its type and the ``frame`` being rendered (if any).
    """
    try:
        return call(*args)
    except FocusgraphError as exc:
        exc.node = exc.node or node.id
        if isinstance(exc, GraphValidationError):
            exc.problems = [Problem(p.node or node.id, p.field, p.message) for p in exc.problems]
        raise
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        at = f" at frame {frame}" if frame is not None else ""
        raise NodeExecutionError(
            f"{node.cls.type_name} failed{at}: {type(exc).__name__}: {exc}", node=node.id
        ) from exc


def render(
    graph: CompiledGraph,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    evaluator: Evaluator | None = None,
    store: NodeStore | None = None,
) -> list[Path]:
    """Render every frame of ``graph`` into its output nodes.

    Outputs appear only when complete: on any error or interrupt every writer is
    aborted, leaving nothing new at the output paths. ``store`` (ignored when an
    ``evaluator`` is given) keeps persistent nodes' outputs between renders.

    Returns
    -------
    list of Path
        The files written, one per output node.
    """
    evaluator = evaluator or Evaluator(graph, store)
    timeline = graph.timeline
    writers: list[tuple[CompiledNode, Writer]] = []
    try:
        for node in graph.outputs:
            assert isinstance(node.instance, OutputNode)
            instance = node.instance
            writers.append((node, _guarded(node, None, instance.open, node.params, timeline, overwrite)))
        if progress is not None:
            progress(0, timeline.frame_count)
        for frame in range(timeline.frame_count):
            ctx = timeline.context(frame)
            evaluator.run(ctx)
            for node, writer in writers:
                inputs = evaluator.output_inputs(node)
                evaluator.evaluations[node.id] += 1
                _guarded(node, frame, writer.write, inputs, ctx)
            if progress is not None:
                progress(frame + 1, timeline.frame_count)
        if evaluator.store is not None:
            evaluator.store.flush()  # long done by now: the entries were written during the frames
        return [_guarded(node, None, writer.commit) for node, writer in writers]
    except BaseException as exc:
        for _, writer in writers:
            writer.abort()
        if isinstance(exc, FocusgraphError):
            exc.source = exc.source or graph.source
        raise


def render_frame(graph: CompiledGraph, frame: int) -> dict[str, dict[str, Any]]:
    """Evaluate one frame without writing anything; return every non-output node's outputs."""
    return Evaluator(graph).run(graph.timeline.context(frame))
