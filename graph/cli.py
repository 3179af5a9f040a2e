"""The ``focusgraph`` command line.

Exit codes: 0 ok, 1 internal error, 2 bad graph or arguments, 3 bad input image,
4 model problem, 5 encode/output problem, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from focusgraph.graph import models
from focusgraph.graph.api import Graph, provision
from focusgraph.graph.batching import (
    DEFAULT_PATTERN,
    BatchReport,
    PhotoResult,
    batch,
    collect_photos,
    dask_client,
)
from focusgraph.graph.document import load_document, parse_value
from focusgraph.graph.errors import FocusgraphError, GraphValidationError, Problem
from focusgraph.graph.node import Link, Node
from focusgraph.graph.preview import contact_sheet, evaluate_frames, write_png
from focusgraph.graph.registry import Registry, build_registry, is_builtin_origin
from focusgraph.graph.store import ENV_VAR as STORE_ENV_VAR
from focusgraph.graph.store import NodeStore
from focusgraph.presets import preset_paths, resolve_graph

EXIT_INTERRUPTED = 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("focusgraph")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "unknown"


def parse_bindings(
    sets: Sequence[str], image: str | None, output: str | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split ``--set`` arguments into graph input values and ``node.param`` overrides."""
    values: dict[str, Any] = {}
    overrides: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for item in sets:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(Problem(None, "--set", f"expected NAME=VALUE, got {item!r}"))
        elif "." in name:
            node_id, _, param = name.partition(".")
            overrides.setdefault(node_id, {})[param] = parse_value(raw, f"--set {name}")
        else:
            values[name] = raw
    if image is not None:
        values["image"] = image
    if output is not None:
        values["output"] = output
    if problems:
        raise GraphValidationError(problems)
    return values, overrides


def _registry(args: argparse.Namespace) -> Registry:
    return build_registry(plugins=not args.no_plugins)


def _load(args: argparse.Namespace) -> Graph:
    path = resolve_graph(args.graph)
    return Graph(load_document(path), str(path), _registry(args))


def _bindings(args: argparse.Namespace, *, output: bool = True) -> dict[str, Any]:
    """``-i``, ``-o`` and ``--set`` as one bindings mapping (see :mod:`focusgraph.graph.api`)."""
    values, overrides = parse_bindings(args.set, args.input, args.output if output else None)
    flat = {f"{node}.{param}": value for node, params in overrides.items() for param, value in params.items()}
    return {**values, **flat}


class _Progress:
    """A tqdm progress bar on stderr with frames/s and ETA."""

    def __init__(self, quiet: bool, desc: str = "rendering", unit: str = "frame") -> None:
        self._bar: Any = None
        self.total = 0
        self._quiet = quiet
        self._desc = desc
        self._unit = unit

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        if self._quiet:
            return
        if self._bar is None:
            from tqdm import tqdm

            # disable=None: a bar on a terminal only, not in logs (the summary line is printed anyway)
            self._bar = tqdm(
                total=total,
                unit=self._unit,
                dynamic_ncols=True,
                file=sys.stderr,
                desc=self._desc,
                disable=None,
            )
        self._bar.update(done - self._bar.n)

    def close(self, *, keep: bool = True) -> None:
        """Finish the bar; ``keep=False`` erases it (a failed render prints only its error)."""
        if self._bar is not None:
            self._bar.leave = keep
            self._bar.close()


def cmd_render(args: argparse.Namespace) -> int:
    graph = _load(args)
    progress = _Progress(args.quiet)
    started = time.perf_counter()
    try:
        written = graph.render(
            _bindings(args), overwrite=args.overwrite, progress=progress, on_message=_say(args)
        )
    except BaseException:
        progress.close(keep=False)
        raise
    progress.close()
    elapsed = time.perf_counter() - started
    if not args.quiet:
        sizes = ", ".join(f"{path.name} {_file_size(path)}" for path in written)
        frames = progress.total
        print(
            f"rendered {frames} frames in {elapsed:.1f} s ({frames / elapsed:.1f} frames/s): {sizes}",
            file=sys.stderr,
        )
    for path in written:
        print(path)
    return 0


def _file_size(path: Path) -> str:
    """Human-readable size of a file, or of all files in a folder (a PNG sequence)."""
    files = [item for item in path.rglob("*") if item.is_file()] if path.is_dir() else [path]
    size = float(sum(item.stat().st_size for item in files))
    if size < 1000:
        return f"{size:.0f} bytes"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


def _summary(report: BatchReport) -> str:
    """The table printed at the end of a batch."""
    width = max(len(Path(result.photo).name) for result in report.results)
    lines = [f"{'photo':<{width}}  {'status':<7}  {'seconds':>7}  output or error"]
    for result in report.results:
        detail = result.output if result.status != "failed" else (result.error or "")
        lines.append(
            f"{Path(result.photo).name:<{width}}  {result.status:<7}  {result.seconds:>7.1f}  {detail}"
        )
    totals = ", ".join(f"{status} {report.count(status)}" for status in ("done", "skipped", "failed"))
    lines.append(
        f"{totals} in {report.seconds:.1f} s ({report.scheduler}); report: {report.out_dir}/report.json"
    )
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace) -> int:
    values, overrides = parse_bindings(args.set, None, None)
    photos = collect_photos(args.photos)
    progress = _Progress(args.quiet, desc="photos", unit="photo")
    done = 0

    def arrived(result: PhotoResult) -> None:
        nonlocal done
        done += 1
        progress(done, len(photos))

    client, cluster = dask_client(args.scheduler, args.jobs) if args.scheduler or args.dask else (None, None)
    try:
        progress(0, len(photos))
        report = batch(
            args.graph, photos, args.out, client,
            values=values, overrides=overrides, jobs=args.jobs, pattern=args.pattern,
            overwrite=args.overwrite, plugins=not args.no_plugins, on_result=arrived,
            cache=not args.no_cache,
        )  # fmt: skip
    except KeyboardInterrupt:
        progress.close(keep=False)
        print("focusgraph: interrupted; finished outputs are kept, unfinished ones removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    progress.close()
    print(_summary(report))
    failed = report.count("failed")
    if failed:
        print(
            f"focusgraph: error: {failed} of {len(report.results)} photos failed (see the table above)",
            file=sys.stderr,
        )
    return report.exit_code


def _say(args: argparse.Namespace) -> Any:
    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    return say


def cmd_validate(args: argparse.Namespace) -> int:
    graph = _load(args).compile(_bindings(args), placeholders=True)
    invariant = sum(node.invariant for node in graph.nodes.values())
    print(
        f"{graph.source}: ok — {len(graph.nodes)} nodes ({invariant} computed once), "
        f"{graph.timeline.frame_count} frames at {graph.timeline.fps:g} fps"
    )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    graph = _load(args).compile(_bindings(args, output=False))
    provision(graph, _say(args))
    started = time.perf_counter()
    if args.frame is not None:
        frame = graph.timeline.frame_at(args.frame)
        image = evaluate_frames(graph, [frame], None)[0]
        what = f"frame {frame + 1}/{graph.timeline.frame_count} (t = {frame / graph.timeline.fps:.2f} s)"
    else:
        image = contact_sheet(
            graph, frames=args.frames, tile_side=args.size, render_side=args.render_size, mask=args.mask
        )
        what = f"{args.frames} frames and the mask"
    written = write_png(image, Path(args.output), overwrite=args.overwrite)
    if not args.quiet:
        print(
            f"previewed {what} in {time.perf_counter() - started:.1f} s: "
            f"{image.shape[1]}x{image.shape[0]} px",
            file=sys.stderr,
        )
    print(written)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    print(_load(args).diagram(args.format, _bindings(args)), end="")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    for name, path in preset_paths().items():
        doc = load_document(path)
        print(f"{name:<20} {doc.description}")
        if args.verbose:
            for input_name, spec in doc.inputs.items():
                default = "(required)" if spec.default is None else f"= {spec.default}"
                print(f"    {input_name:<14} {spec.type:<8} {default:<18} {spec.help}")
    return 0


def describe_annotation(annotation: Any) -> str:
    """Readable type of a Params field: ``number | {link}``, ``lens | gaussian``, ..."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return describe_annotation(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " | ".join(str(arg) for arg in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_annotation(arg) for arg in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return f"list[{describe_annotation(item)}]"
    if annotation is Link:
        return "{link: node}"
    if annotation is float:
        return "number"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def describe_node(cls: type[Node]) -> str:
    """Reference text of a node type: description, ports, parameters."""
    lines = [
        f"{cls.type_name} (version {cls.version}){' — varies per frame' if cls.varies_per_frame else ''}"
    ]
    if cls.description:
        lines.append(f"  {cls.description}")
    for title, ports in (("inputs", cls.inputs), ("outputs", cls.outputs)):
        if ports:
            lines.append(f"  {title}:")
            for name, port in ports.items():
                optional = ", optional" if port.optional else ""
                lines.append(f"    {name:<14} {port.type.value}{optional}  {port.help}")
    fields = cls.Params.model_fields
    if fields:
        lines.append("  params:")
        for name, info in fields.items():
            default = (
                "required"
                if info.is_required()
                else f"default {info.get_default(call_default_factory=True)!r}"
            )
            lines.append(f"    {name:<14} {describe_annotation(info.annotation)}  ({default})")
            if info.description:
                lines.append(f"    {'':<14} {info.description}")
    return "\n".join(lines)


def cmd_nodes(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.type:
        cls = registry.get(args.type)
        if cls is None:
            hint = registry.suggest(args.type)
            suffix = f"; did you mean {hint!r}?" if hint else ""
            raise GraphValidationError([Problem(None, None, f"unknown node type {args.type!r}{suffix}")])
        print(describe_node(cls))
        return 0
    for name, cls in sorted(registry.types.items()):
        if args.verbose:
            print(describe_node(cls) + "\n")
        else:
            print(f"{name:<18} {cls.description}")
    for failure in registry.failures:
        print(
            f"(plugin {failure.name} from {failure.origin} failed to load: {failure.message})",
            file=sys.stderr,
        )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every node type with the package that provides it, and plugins that failed to load."""
    registry = _registry(args)
    rows = [
        (name, registry.origins[name], "built-in" if is_builtin_origin(registry.origins[name]) else "ok")
        for name in registry.types
    ]
    rows.sort(key=lambda row: (row[2] != "built-in", row[0]))
    rows += [(failure.name, failure.origin, f"failed: {failure.message}") for failure in registry.failures]
    type_width = max(len("type"), *(len(row[0]) for row in rows))
    package_width = max(len("package"), *(len(row[1]) for row in rows))
    print(f"{'type':<{type_width}}  {'package':<{package_width}}  status")
    for name, origin, status in rows:
        print(f"{name:<{type_width}}  {origin:<{package_width}}  {status}")
    if args.no_plugins:
        print("(plugins disabled by --no-plugins)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of graph documents with every loaded node type."""
    import json

    from focusgraph.graph.schema import graph_schema

    print(json.dumps(graph_schema(_registry(args)), indent=2))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    classes = list(_registry(args).types.values())
    if args.action == "fetch":
        models.ensure_for(classes, progress=_say(args))
    for row in models.describe_all(classes):
        print(row)
    return 0


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks")
    parser.add_argument(
        "--no-plugins", action="store_true", default=default, help="load only the built-in nodes"
    )
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress output")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        default=default,
        help="recompute segmentation and inpainting instead of reusing a previous render's",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``focusgraph`` command."""
    parser = argparse.ArgumentParser(
        prog="focusgraph",
        description="Turn a still photo into a clip with cinematic focus effects.",
    )
    parser.add_argument("--version", action="version", version=f"focusgraph {_version()}")
    _common_options(parser, False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The same options after the command (`focusgraph render ... -q`); SUPPRESS keeps a
    # value given before the command from being reset by the subcommand's default.
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, argparse.SUPPRESS)

    def graph_arguments(
        sub: argparse.ArgumentParser, output_help: str = "binds the graph input `output`"
    ) -> None:
        sub.add_argument("graph", metavar="GRAPH_OR_PRESET", help="a graph YAML file or a preset name")
        sub.add_argument("-i", "--input", metavar="PHOTO", help="binds the graph input `image`")
        sub.add_argument("-o", "--output", metavar="OUT", help=output_help)
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="bind a graph input or node.param",
        )

    render_parser = commands.add_parser("render", parents=[common], help="render a graph or preset to a clip")
    graph_arguments(render_parser)
    render_parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    render_parser.set_defaults(func=cmd_render)

    validate_parser = commands.add_parser(
        "validate", parents=[common], help="check a graph without rendering"
    )
    graph_arguments(validate_parser)
    validate_parser.set_defaults(func=cmd_validate)

    preview_parser = commands.add_parser(
        "preview", parents=[common], help="render a contact sheet (or one frame) to a PNG, quickly"
    )
    graph_arguments(preview_parser, "the PNG to write (default preview.png)")
    preview_parser.set_defaults(output="preview.png")
    preview_parser.add_argument(
        "--frame", type=float, metavar="T", help="render only the frame at T seconds, at full size"
    )
    preview_parser.add_argument(
        "--frames", type=_positive_int, default=6, help="frames on the sheet (default %(default)s)"
    )
    preview_parser.add_argument(
        "--size", type=_positive_int, default=360, help="longest side of each frame on the sheet (px)"
    )
    preview_parser.add_argument(
        "--render-size",
        type=_positive_int,
        default=720,
        help="longest side the graph renders at for the sheet (px, default %(default)s)",
    )
    preview_parser.add_argument(
        "--mask", metavar="NODE", help="node whose mask is overlaid (default: the first)"
    )
    preview_parser.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    preview_parser.set_defaults(func=cmd_preview)

    diagram_parser = commands.add_parser(
        "graph", parents=[common], help="print the graph as a Mermaid or DOT diagram"
    )
    graph_arguments(diagram_parser)
    diagram_parser.add_argument("--format", choices=["mermaid", "dot"], default="mermaid")
    diagram_parser.set_defaults(func=cmd_graph)

    batch_parser = commands.add_parser(
        "batch", parents=[common], help="render a graph or preset for many photos (resumable)"
    )
    batch_parser.add_argument("graph", metavar="GRAPH_OR_PRESET", help="a graph YAML file or a preset name")
    batch_parser.add_argument(
        "photos", nargs="+", metavar="PHOTOS", help="photo files, folders or glob patterns"
    )
    batch_parser.add_argument("--out", required=True, metavar="DIR", help="existing folder for the outputs")
    batch_parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="bind a graph input or node.param"
    )
    batch_parser.add_argument(
        "--pattern",
        default=DEFAULT_PATTERN,
        help="output file name: {stem}, {name}, {index} (default %(default)s)",
    )
    batch_parser.add_argument(
        "--jobs", type=_positive_int, default=None, help="worker processes (default: one per core)"
    )
    batch_parser.add_argument(
        "--overwrite", action="store_true", help="replace outputs in DIR that this batch did not make"
    )
    where = batch_parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler (tcp://host:8786)")
    where.add_argument("--dask", action="store_true", help="run on a local Dask cluster (--jobs workers)")
    batch_parser.set_defaults(func=cmd_batch)

    presets_parser = commands.add_parser("presets", parents=[common], help="list bundled presets")
    presets_parser.add_argument("-v", "--verbose", action="store_true", help="also list each preset's inputs")
    presets_parser.set_defaults(func=cmd_presets)

    nodes_parser = commands.add_parser("nodes", parents=[common], help="document node types")
    nodes_parser.add_argument("type", nargs="?", help="one node type to document in full")
    nodes_parser.add_argument("-v", "--verbose", action="store_true", help="document every type in full")
    nodes_parser.set_defaults(func=cmd_nodes)

    plugins_parser = commands.add_parser(
        "plugins", parents=[common], help="list node types by package, and plugins that failed to load"
    )
    plugins_parser.set_defaults(func=cmd_plugins)

    schema_parser = commands.add_parser(
        "schema", parents=[common], help="print the JSON Schema of graph files (for YAML editors)"
    )
    schema_parser.set_defaults(func=cmd_schema)

    models_parser = commands.add_parser("models", parents=[common], help="list or fetch segmentation models")
    models_parser.add_argument("action", choices=["list", "fetch"])
    models_parser.set_defaults(func=cmd_models)

    cache_parser = commands.add_parser(
        "cache",
        parents=[common],
        help="show or clear the stored segmentations and plates that re-renders reuse",
    )
    cache_parser.add_argument("action", choices=["info", "clear"])
    cache_parser.set_defaults(func=cmd_cache)
    return parser


class _Interrupts:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt and remember that one arrived.

    An interrupt that lands while a C extension is being imported can surface as some
    other exception (onnxruntime raises ImportError); the flag still makes it exit 130.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        raise KeyboardInterrupt

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def cmd_cache(args: argparse.Namespace) -> int:
    store = NodeStore.default()
    if store is None:
        print(f"the node store is off (--no-cache, or ${STORE_ENV_VAR}={os.environ.get(STORE_ENV_VAR)})")
        return 0
    if args.action == "clear":
        print(f"removed {store.clear()} entries from {store.folder}")
        return 0
    count, size, limit = len(store.entries()), store.size_bytes() / 2**20, store.limit_bytes / 2**20
    print(f"{store.folder}: {count} entries, {size:.1f} MB (limit {limit:.0f} MB)")
    return 0


@contextlib.contextmanager
def _store_off(off: bool) -> Iterator[None]:
    """With ``off``, no store for this command (nor for the worker processes it starts)."""
    if not off:
        yield
        return
    previous = os.environ.get(STORE_ENV_VAR)
    os.environ[STORE_ENV_VAR] = "off"
    try:
        yield
    finally:
        if previous is None:
            del os.environ[STORE_ENV_VAR]
        else:
            os.environ[STORE_ENV_VAR] = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with _Interrupts() as interrupts, _store_off(args.no_cache):
        try:
            code: int = args.func(args)
            return code
        except BaseException as exc:
            if args.debug:
                raise
            if interrupts.received or isinstance(exc, KeyboardInterrupt):
                print("focusgraph: interrupted; nothing was written", file=sys.stderr)
                return EXIT_INTERRUPTED
            if isinstance(exc, FocusgraphError):
                print(f"focusgraph: error: {exc}", file=sys.stderr)
                return exc.exit_code
            if not isinstance(exc, Exception):
                raise
            print(
                f"focusgraph: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
                file=sys.stderr,
            )
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
