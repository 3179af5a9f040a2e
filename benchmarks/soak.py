"""Soak: memory must not grow over many renders in one process.

Renders the rack-focus preset N times (default 20) in one process through the library
API (``load_graph`` + ``render``, the same calls as ``focusgraph render``) on a shared
test photo, a short clip each (default 2 s at 30 fps), written to a temporary folder.
After every render it collects garbage and records:

* the process's current resident set size (RSS, from ``/proc/self/statm``);
* the same after ``malloc_trim(0)`` (glibc), which returns freed heap pages to the
  system: RSS that stays high only before the trim is allocator retention, not a leak;
* the Python heap, as ``sys.getallocatedblocks()`` (live pymalloc blocks) and the
  number of objects tracked by the garbage collector.

Verdict: RSS growth per render from render 5 to the last one (the first renders load
the segmentation model and warm caches) must be below **2 MB per render**
(``THRESHOLD_MB_PER_RENDER``). It is the least-squares slope of RSS over those renders:
RSS after a render swings by about +-10 MB with where the allocator's arenas happen to
end, so the plain difference of two renders (also printed) is too noisy to judge by.
The trim after each sample lowers later RSS readings a little; a leak grows both. With ``--tracemalloc``
two more renders run under tracemalloc and the ten source lines whose allocations grew
most between them are printed (slow: tracing costs several times the render).

The table goes to stdout and everything to ``benchmarks/out/soak.json``. The exit
status is 1 when the verdict fails.

Usage: ``make bench-soak`` or ``.venv/bin/python benchmarks/soak.py [--renders 20]
[--duration 2] [--fps 30] [--photo PATH] [--tracemalloc]``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from focusgraph.graph import models
from focusgraph.graph.compile import load_graph
from focusgraph.graph.scheduler import render
from focusgraph.presets import find_preset

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "testdata" / "photos" / "girl-2.jpg"
OUT = ROOT / "benchmarks" / "out"
PRESET = "rack-focus"
THRESHOLD_MB_PER_RENDER = 2.0
BASELINE_RENDER = 5  # 1-based: growth is measured from after this render to after the last
MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    """Memory after one render (and a full garbage collection)."""

    render: int
    seconds: float
    rss_mb: float
    rss_trimmed_mb: float | None
    allocated_blocks: int
    gc_objects: int


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / MB


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def malloc_trim() -> bool:
    """Return freed C heap pages to the system (glibc only); ``False`` when unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def render_once(photo: Path, folder: Path, duration: float, fps: float) -> float:
    """Compile and render the preset once; return the seconds it took."""
    preset = find_preset(PRESET)
    if preset is None:
        raise SystemExit(f"preset {PRESET!r} not found")
    output = folder / "soak.mp4"
    values: dict[str, Any] = {"image": str(photo), "output": str(output), "duration": duration, "fps": fps}
    started = time.perf_counter()
    graph = load_graph(preset, values)
    needed = [spec for node in graph.nodes.values() for spec in node.instance.required_models(node.params)]
    models.ensure_all(needed)
    render(graph, overwrite=True)
    elapsed = time.perf_counter() - started
    output.unlink()
    return elapsed


def measure(index: int, seconds: float) -> Sample:
    """Collect garbage and sample memory after render ``index``."""
    gc.collect()
    rss = rss_mb()
    trimmed = rss_mb() if malloc_trim() else None
    return Sample(index, seconds, rss, trimmed, sys.getallocatedblocks(), len(gc.get_objects()))


def traced_growth(photo: Path, folder: Path, duration: float, fps: float, top: int = 10) -> list[str]:
    """Source lines whose live allocations grew most from one traced render to the next."""
    tracemalloc.start(1)
    try:
        render_once(photo, folder, duration, fps)
        gc.collect()
        before = tracemalloc.take_snapshot()
        render_once(photo, folder, duration, fps)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    stats = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
    return [str(stat) for stat in stats[:top]]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def growth(samples: list[Sample], key: str) -> dict[str, float] | None:
    """Growth of ``key`` (an MB field) from the baseline render to the last one.

    ``growth_mb`` and ``per_render_mb`` compare the two renders; ``slope_mb_per_render``
    is fitted to every render in between.
    """
    tail = [s for s in samples if s.render >= BASELINE_RENDER]
    values = [getattr(s, key) for s in tail]
    if any(value is None for value in values):
        return None
    renders = tail[-1].render - tail[0].render
    return {
        "growth_mb": values[-1] - values[0],
        "per_render_mb": (values[-1] - values[0]) / renders,
        "slope_mb_per_render": slope([float(s.render) for s in tail], values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20, help="renders in the process (>= 7)")
    parser.add_argument("--duration", type=float, default=2.0, help="clip length in seconds")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="the photo to render")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace two extra renders")
    args = parser.parse_args()
    if args.renders < BASELINE_RENDER + 2:
        parser.error(f"--renders must be at least {BASELINE_RENDER + 2}")
    if not args.photo.exists():
        raise SystemExit(f"photo {args.photo} not found")

    samples: list[Sample] = []
    start_rss = rss_mb()
    clip = f"{args.duration:g} s at {args.fps:g} fps"
    print(f"soak: {args.renders} renders of {PRESET} on {args.photo.name}, {clip}")
    print(f"RSS before the first render: {start_rss:.1f} MB\n")
    print("| render | time (s) | RSS (MB) | RSS after trim (MB) | pymalloc blocks | gc objects |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    growth_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="focusgraph-soak-") as temp:
        folder = Path(temp)
        for index in range(1, args.renders + 1):
            sample = measure(index, render_once(args.photo, folder, args.duration, args.fps))
            samples.append(sample)
            trimmed = f"{sample.rss_trimmed_mb:.1f}" if sample.rss_trimmed_mb is not None else "n/a"
            print(
                f"| {index} | {sample.seconds:.1f} | {sample.rss_mb:.1f} | {trimmed} "
                f"| {sample.allocated_blocks} | {sample.gc_objects} |",
                flush=True,
            )
        if args.tracemalloc:
            growth_lines = traced_growth(args.photo, folder, args.duration, args.fps)

    rss = growth(samples, "rss_mb")
    trimmed_growth = growth(samples, "rss_trimmed_mb")
    assert rss is not None
    base = samples[BASELINE_RENDER - 1]
    blocks_per_render = (samples[-1].allocated_blocks - base.allocated_blocks) / (
        samples[-1].render - base.render
    )
    ok = rss["slope_mb_per_render"] < THRESHOLD_MB_PER_RENDER
    span = f"render {BASELINE_RENDER} -> {samples[-1].render}"
    print(f"\npeak RSS {peak_rss_mb():.1f} MB")
    for label, numbers in (("RSS", rss), ("RSS after malloc_trim", trimmed_growth)):
        if numbers is not None:
            print(
                f"{label} growth {span}: {numbers['growth_mb']:+.1f} MB ({numbers['per_render_mb']:+.2f} "
                f"MB/render); fitted slope {numbers['slope_mb_per_render']:+.2f} MB/render"
            )
    print(f"pymalloc blocks {span}: {blocks_per_render:+.0f} per render")
    if growth_lines:
        print("\ntracemalloc, largest growth from one render to the next:")
        for line in growth_lines:
            print(f"  {line}")
    print(
        f"\nverdict: {'PASS' if ok else 'FAIL'} "
        f"(fitted RSS slope {rss['slope_mb_per_render']:+.2f} MB/render, "
        f"threshold < {THRESHOLD_MB_PER_RENDER} MB/render)"
    )

    OUT.mkdir(parents=True, exist_ok=True)
    report = {
        "preset": PRESET,
        "photo": str(args.photo),
        "duration": args.duration,
        "fps": args.fps,
        "renders": args.renders,
        "python": platform.python_version(),
        "rss_before_mb": start_rss,
        "peak_rss_mb": peak_rss_mb(),
        "samples": [asdict(sample) for sample in samples],
        "baseline_render": BASELINE_RENDER,
        "rss_growth": rss,
        "rss_trimmed_growth": trimmed_growth,
        "allocated_blocks_per_render": blocks_per_render,
        "tracemalloc_top_growth": growth_lines,
        "threshold_mb_per_render": THRESHOLD_MB_PER_RENDER,
        "pass": ok,
    }
    path = OUT / "soak.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
