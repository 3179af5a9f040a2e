"""Render one graph over many photos: worker processes on this machine, or a Dask cluster.

Each photo is one task: the graph document (as text), the bound values, the photo's
path and the output path. A task compiles and renders in a worker process, which loads
its segmentation models once and keeps them for every later photo it gets. Only a small
:class:`PhotoResult` travels back; frames stream to the encoder inside the worker.

A manifest in the output folder (``.focusgraph-batch.json``) records, per output, the
photo's sha256, the graph's sha256 (document, bound values and overrides) and the result.
A later run skips an output whose photo and graph are unchanged and whose file is still
the one recorded (same size and sha256), so re-running after an interruption or a crash does only what is
missing. ``report.json`` describes the last run.
"""

from __future__ import annotations

import concurrent.futures
import glob
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from focusgraph.graph import models
from focusgraph.graph.allocator import keep_freed_memory, release_freed_memory
from focusgraph.graph.compile import compile_graph
from focusgraph.graph.document import load_document, read_text
from focusgraph.graph.errors import FocusgraphError, GraphValidationError, ModelError, Problem
from focusgraph.graph.registry import build_registry
from focusgraph.graph.scheduler import render
from focusgraph.graph.store import NodeStore
from focusgraph.presets import resolve_graph

MANIFEST_NAME = ".focusgraph-batch.json"
REPORT_NAME = "report.json"
DEFAULT_PATTERN = "{stem}.mp4"
ABORT_WAIT_SECONDS = 10.0
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
"""Files taken from a folder given as a photo source (other files there are ignored)."""

Status = Literal["done", "skipped", "failed"]
ResultCallback = Callable[["PhotoResult"], None]


@dataclass(frozen=True)
class BatchGraph:
    """The graph every photo is rendered with, in a form that travels to any worker."""

    text: str
    source: str
    values: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    plugins: bool = True
    cache: bool = True  # use the worker's node store (``--no-cache``: not)

    @property
    def sha256(self) -> str:
        """Identity of the rendering recipe: document text, bound values and overrides."""
        recipe = {"text": self.text, "values": self.values, "overrides": self.overrides}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class PhotoTask:
    """One photo to render into one output file."""

    photo: str
    output: str
    graph: BatchGraph
    overwrite: bool
    input_sha256: str


@dataclass
class PhotoResult:
    """What happened to one photo (small: this is all that travels back from a worker)."""

    photo: str
    output: str
    status: Status
    seconds: float = 0.0
    error: str | None = None
    exit_code: int = 0
    worker: str | None = None
    input_sha256: str | None = None
    graph_sha256: str | None = None
    output_size: int | None = None
    output_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    """Keeps the warnings of one render for its result instead of printing them."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@dataclass
class BatchReport:
    """The outcome of a batch: one result per photo, in the order the photos were given."""

    graph: str
    out_dir: str
    scheduler: str
    results: list[PhotoResult]
    seconds: float
    started: str

    def count(self, status: Status) -> int:
        """Number of photos with ``status``."""
        return sum(result.status == status for result in self.results)

    @property
    def exit_code(self) -> int:
        """0 when no photo failed; the failures' exit code when they share one; else 1."""
        codes = {result.exit_code for result in self.results if result.status == "failed"}
        if not codes:
            return 0
        return codes.pop() if len(codes) == 1 else 1

    def to_json(self) -> dict[str, Any]:
        """The content of ``report.json``."""
        return {
            "graph": self.graph,
            "out_dir": self.out_dir,
            "scheduler": self.scheduler,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "totals": {status: self.count(status) for status in ("done", "skipped", "failed")},
            "exit_code": self.exit_code,
            "photos": [asdict(result) for result in self.results],
        }


# --------------------------------------------------------------------------- inputs


def collect_photos(sources: Iterable[str | Path]) -> list[Path]:
    """Expand files, folders (their photos, not recursively) and glob patterns, in order.

    A path that does not exist and is not a matching pattern is kept, so that it is
    reported as that photo's failure; a pattern matching nothing is an error.
    """
    photos: list[Path] = []
    problems: list[Problem] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            photos += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        elif not path.exists() and glob.has_magic(str(source)):
            matches = sorted(Path(match) for match in glob.glob(str(path)))
            if not matches:
                problems.append(Problem(None, "PHOTOS", f"{source!r} matches no file"))
            photos += matches
        else:
            photos.append(path)
    if problems:
        raise GraphValidationError(problems)
    unique = list(dict.fromkeys(photos))
    if not unique:
        raise GraphValidationError([Problem(None, "PHOTOS", "no photos to render")])
    return unique


def output_names(photos: Sequence[Path], pattern: str) -> list[str]:
    """The output file name of each photo from ``pattern`` (``{stem}``, ``{name}``, ``{index}``)."""
    names = []
    for index, photo in enumerate(photos, 1):
        try:
            name = pattern.format(stem=photo.stem, name=photo.name, index=index)
        except (KeyError, IndexError, ValueError) as exc:
            raise GraphValidationError(
                [
                    Problem(
                        None,
                        "--pattern",
                        f"{pattern!r} is not a valid pattern ({exc}); use {{stem}}, {{name}}, {{index}}",
                    )
                ]
            ) from None
        if not name or name in {".", ".."} or os.sep in name or (os.altsep and os.altsep in name):
            raise GraphValidationError(
                [Problem(None, "--pattern", f"{pattern!r} gives {name!r} for {photo}, not a file name")]
            )
        names.append(name)
    seen: dict[str, Path] = {}
    for photo, name in zip(photos, names, strict=True):
        if name in seen:
            raise GraphValidationError(
                [
                    Problem(
                        None,
                        "--pattern",
                        f"{seen[name]} and {photo} would both be written to {name!r}; "
                        "use a pattern with {index} or rename one",
                    )
                ]
            )
        seen[name] = photo
    return names


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- one photo


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{os.uname().nodename} pid {os.getpid()}"


def render_photo(task: PhotoTask) -> PhotoResult:
    """Render one photo; every focusgraph error becomes a failed result, never an exception.

    Runs in a worker process (local or Dask). Models are not fetched here: a missing
    model fails the task with an error naming the worker.
    """
    global _rendering
    started = time.perf_counter()
    worker = _worker_name()
    result = PhotoResult(
        task.photo, task.output, "failed", worker=worker,
        input_sha256=task.input_sha256, graph_sha256=task.graph.sha256,
    )  # fmt: skip
    if _stopping:
        result.error, result.exit_code = "interrupted", 130
        return result
    collector = _Collect(result.warnings)
    logging.getLogger("focusgraph").addHandler(collector)
    _rendering = True
    try:
        doc = load_document(task.graph.text, source=task.graph.source)
        values = {**task.graph.values, "image": task.photo, "output": task.output}
        registry = build_registry(plugins=task.graph.plugins)
        graph = compile_graph(
            doc, values, overrides=task.graph.overrides, registry=registry, source=task.graph.source
        )
        for node in graph.nodes.values():
            for spec in node.instance.required_models(node.params):
                if not models.is_present(spec):
                    raise ModelError(
                        f"model '{spec.name}' is missing on worker {worker} (looked in "
                        f"{models.model_path(spec)}); run `focusgraph models fetch` on that worker"
                    )
        render(graph, overwrite=task.overwrite, store=NodeStore.default() if task.graph.cache else None)
        result.status = "done"
        result.output_size = Path(task.output).stat().st_size
        result.output_sha256 = file_sha256(Path(task.output))
    except FocusgraphError as exc:
        result.error = str(exc)
        result.exit_code = exc.exit_code
    except Exception as exc:  # a bug: keep the batch going, and say so
        result.error = f"internal error: {type(exc).__name__}: {exc}"
        result.exit_code = 1
    except KeyboardInterrupt:
        if not _stopping:
            raise
        result.error, result.exit_code = "interrupted", 130  # the render removed its partial file
    finally:
        _rendering = False
        logging.getLogger("focusgraph").removeHandler(collector)
        release_freed_memory()  # the next photo may be smaller: do not keep this one's peak
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- manifest


class Manifest:
    """The record of what earlier runs produced in an output folder."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("outputs"), dict):
                self.entries = data["outputs"]
        except (OSError, ValueError):
            pass  # no manifest yet, or a damaged one: everything is rendered again

    def is_current(self, output: Path, input_sha256: str, graph_sha256: str) -> bool:
        """True if ``output`` is the file an earlier run made from this photo and graph."""
        entry = self.entries.get(output.name)
        if not entry or entry.get("status") != "done":
            return False
        if entry.get("input_sha256") != input_sha256 or entry.get("graph_sha256") != graph_sha256:
            return False
        try:  # the size first: the file is hashed only when it may be unchanged
            if output.stat().st_size != entry.get("output_size"):
                return False
            return file_sha256(output) == entry.get("output_sha256")
        except OSError:
            return False

    def owns(self, output: Path) -> bool:
        """True if an earlier run of a batch wrote ``output`` (so it may be replaced)."""
        return self.entries.get(output.name, {}).get("status") == "done"

    def record(self, result: PhotoResult) -> None:
        """Remember ``result`` and save the manifest atomically."""
        if result.status == "skipped":
            return
        if result.status == "failed" and self.owns(Path(result.output)):
            return  # the previous good output is still there and still recorded
        self.entries[Path(result.output).name] = asdict(result)
        write_json_atomically(self.path, {"version": 1, "outputs": self.entries})


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- running


_rendering = False  # whether this (worker) process is inside render_photo
_stopping = False  # set by SIGTERM: tasks still queued to this worker are not started


def _worker_terminated(signum: int, frame: Any) -> None:
    """SIGTERM in a worker: abort a render in progress (its writer cleans up), else just exit."""
    global _stopping
    _stopping = True
    if _rendering:
        raise KeyboardInterrupt
    os._exit(128 + signum)


def _worker_init(threads: int) -> None:
    """Worker process set-up: share the cores; Ctrl-C is handled by the parent, which sends SIGTERM."""
    import cv2

    keep_freed_memory()
    cv2.setNumThreads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_terminated)


def _run_local(tasks: list[PhotoTask], jobs: int, on_result: ResultCallback) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_worker_init, initargs=(threads,)
    )
    try:
        futures = [executor.submit(render_photo, task) for task in tasks]
        for future in concurrent.futures.as_completed(futures):
            on_result(future.result())
    except BaseException:
        # Ctrl-C or an error: stop the workers now; each aborts its render, which removes
        # its partial output (SIGTERM becomes KeyboardInterrupt in a render).
        # (The executor has no public list of its processes; shutdown() forgets them.)
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(ABORT_WAIT_SECONDS)
            if process.is_alive():
                process.kill()
        raise
    executor.shutdown(wait=True)


def _run_dask(tasks: list[PhotoTask], client: Any, on_result: ResultCallback) -> None:
    from distributed import as_completed

    futures = client.map(render_photo, tasks, pure=False)
    try:
        for future in as_completed(futures):
            on_result(future.result())
    except BaseException:
        client.cancel(futures)
        raise


def dask_client(scheduler: str | None, workers: int | None = None) -> tuple[Any, Any]:
    """A Dask ``Client`` for the scheduler at ``scheduler``, or for a new local cluster.

    Parameters
    ----------
    scheduler : str or None
        Address such as ``tcp://host:8786``; ``None`` starts a ``distributed.LocalCluster``
        of ``workers`` processes (default: one per core) with one thread each.

    Returns
    -------
    (Client, LocalCluster or None)
        Close both when done.

    Raises
    ------
    GraphValidationError
        ``distributed`` is not installed, or the scheduler cannot be reached.
    """
    option = "--scheduler" if scheduler else "--dask"
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        message = "needs the 'distributed' package: pip install 'focusgraph[dask]'"
        raise GraphValidationError([Problem(None, option, message)]) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            message = f"cannot reach the Dask scheduler at {scheduler} ({exc})"
            raise GraphValidationError([Problem(None, option, message)]) from None
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


def batch(
    graph: str | Path,
    photos: Iterable[str | Path],
    out_dir: str | Path,
    client: Any = None,
    *,
    values: dict[str, Any] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    jobs: int | None = None,
    pattern: str = DEFAULT_PATTERN,
    overwrite: bool = False,
    plugins: bool = True,
    on_result: ResultCallback | None = None,
    cache: bool = True,
) -> BatchReport:
    """Render ``graph`` once per photo into ``out_dir``, skipping what is already done.

    Parameters
    ----------
    graph : str or Path
        A graph YAML file or a preset name.
    photos : iterable of str or Path
        Photo files, folders (their photos) and glob patterns.
    out_dir : str or Path
        Existing folder for the outputs, ``report.json`` and the manifest. With Dask it
        must be a path every worker can write to (a shared file system).
    client : distributed.Client, optional
        Run one task per photo on this Dask cluster instead of local processes.
    values, overrides : dict, optional
        Graph input values and ``{node: {param: value}}`` overrides, as ``--set``.
    jobs : int, optional
        Local worker processes (default: the number of cores). Ignored with ``client``.
    pattern : str
        Output file name; ``{stem}``, ``{name}`` and ``{index}`` are replaced.
    overwrite : bool
        Replace outputs that exist but were not made by an earlier batch run.
    on_result : callable, optional
        Called in this process with each :class:`PhotoResult` as it arrives.
    cache : bool
        Workers reuse segmentation and plates from their node store
        (:mod:`focusgraph.graph.store`) and keep theirs there.

    Returns
    -------
    BatchReport
        Also written to ``out_dir/report.json``.

    Raises
    ------
    GraphValidationError
        The graph, the bindings, the photo list or the pattern is invalid (before any
        photo is rendered). Failures of single photos are recorded, not raised.
    ModelError
        A local batch needs a model that cannot be provisioned.
    """
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    graph_path = resolve_graph(str(graph))
    folder = Path(out_dir).expanduser()
    if not folder.is_dir():
        raise GraphValidationError(
            [Problem(None, "--out", f"folder '{folder}' does not exist; create it first")]
        )
    bound = {key: value for key, value in (values or {}).items() if key not in {"image", "output"}}
    recipe = BatchGraph(read_text(graph_path), str(graph_path), bound, overrides or {}, plugins, cache)
    photo_paths = collect_photos(photos)
    outputs = [folder / name for name in output_names(photo_paths, pattern)]
    needed = _check_graph(recipe, photo_paths[0], outputs[0])
    if client is None:
        models.ensure_all(needed)

    manifest = Manifest(folder)
    notify = on_result or (lambda _result: None)
    results: dict[str, PhotoResult] = {}

    def arrived(result: PhotoResult) -> None:
        results[result.output] = result
        manifest.record(result)
        notify(result)

    tasks = _plan(recipe, photo_paths, outputs, manifest, overwrite, arrived)
    scheduler = "local"
    try:
        if tasks and client is not None:
            scheduler = f"dask {getattr(client.scheduler, 'address', client)}"
            _run_dask(tasks, client, arrived)
        elif tasks:
            workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
            scheduler = f"local, {workers} worker process{'es' if workers > 1 else ''}"
            _run_local(tasks, workers, arrived)
    finally:
        for task in tasks:  # only after an interrupt or an error are some still missing
            if task.output not in results:
                results[task.output] = PhotoResult(
                    task.photo, task.output, "failed", error="interrupted", exit_code=130
                )
        ordered = [results[str(output)] for output in outputs]
        report = BatchReport(
            str(graph_path), str(folder), scheduler, ordered, time.perf_counter() - started, started_at
        )
        write_json_atomically(folder / REPORT_NAME, report.to_json())
    return report


def _check_graph(recipe: BatchGraph, photo: Path, output: Path) -> list[models.ModelSpec]:
    """Compile the graph for one photo, so a bad graph stops the batch; return the models it needs."""
    doc = load_document(recipe.text, source=recipe.source)
    values = {**recipe.values, "image": str(photo), "output": str(output)}
    registry = build_registry(plugins=recipe.plugins)
    graph = compile_graph(doc, values, overrides=recipe.overrides, registry=registry, source=recipe.source)
    return [spec for node in graph.nodes.values() for spec in node.instance.required_models(node.params)]


def _plan(
    recipe: BatchGraph,
    photos: Sequence[Path],
    outputs: Sequence[Path],
    manifest: Manifest,
    overwrite: bool,
    report: ResultCallback,
) -> list[PhotoTask]:
    """The photos still to render; unreadable and already rendered ones are reported at once."""
    tasks = []
    for photo, output in zip(photos, outputs, strict=True):
        try:
            input_sha256 = file_sha256(photo)
        except OSError as exc:
            error = f"{photo}: cannot be read ({exc.strerror or exc}); check the path"
            report(PhotoResult(str(photo), str(output), "failed", error=error, exit_code=3))
            continue
        if manifest.is_current(output, input_sha256, recipe.sha256):
            report(
                PhotoResult(
                    str(photo), str(output), "skipped", input_sha256=input_sha256,
                    graph_sha256=recipe.sha256, output_size=output.stat().st_size,
                )
            )  # fmt: skip
            continue
        replace = overwrite or manifest.owns(output)
        tasks.append(PhotoTask(str(photo), str(output), recipe, replace, input_sha256))
    return tasks
