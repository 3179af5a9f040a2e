"""Batch throughput: the same 1080p photos rendered with ``--jobs 1`` and ``--jobs 2``.

Makes N photos (default 12) at 1920x1080 from the shared test photos (each scaled to
cover 1080p and shifted, so no two are identical), then runs
``focusgraph batch rack-focus PHOTOS --out DIR --jobs J`` for each J, alternating
(1, 2, 1, 2, ... for ``--rounds``), each into a fresh folder. Measured per run: wall time,
photos per minute, and peak memory of the whole process tree (the batch process and its
workers with their ffmpeg processes, sampled every 0.1 s), summed and per process.

Usage: ``make bench-batch`` or ``.venv/bin/python benchmarks/batch.py [--photos 12]
[--duration 5] [--rounds 1]``. Writes ``benchmarks/out/batch.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from treememory import run_measured

from focusgraph.nodes._imagefile import fit_cover, read_rgb

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "testdata" / "photos"
OUT = ROOT / "benchmarks" / "out"
FOCUSGRAPH = str(Path(sys.executable).with_name("focusgraph"))
SIZE = (1920, 1080)


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` different 1080p JPEGs made from the shared photos."""
    sources = [read_rgb(path) for path in sorted(PHOTOS.glob("*.jpg"))]
    if not sources:
        sys.exit(f"no shared photos in {PHOTOS}")
    paths = []
    for index in range(count):
        base = sources[index % len(sources)]
        big = fit_cover(base, (SIZE[0] + 64, SIZE[1] + 36))
        dx, dy = (index * 7) % 64, (index * 5) % 36
        path = folder / f"photo-{index:02d}.jpg"
        Image.fromarray(np.ascontiguousarray(big[dy : dy + SIZE[1], dx : dx + SIZE[0]])).save(
            path, quality=92
        )
        paths.append(path)
    return paths


def run_batch(photos: list[Path], jobs: int, duration: float, out: Path) -> dict[str, Any]:
    """One timed ``focusgraph batch`` run; returns its measurements."""
    # --no-cache: every run segments every photo (a later run would find them in the node store)
    command = [FOCUSGRAPH, "-q", "--no-cache", "batch", "rack-focus", *map(str, photos), "--out", str(out)]
    command += ["--jobs", str(jobs), "--set", f"duration={duration}"]
    run = run_measured(command)
    report = json.loads((out / "report.json").read_text())
    if run.returncode != 0 or report["totals"]["done"] != len(photos):
        sys.exit(f"batch failed (exit {run.returncode}): {run.stderr.strip()}")
    per_photo = [entry["seconds"] for entry in report["photos"]]
    return {
        "jobs": jobs,
        "seconds": round(run.seconds, 2),
        "photos_per_minute": round(len(photos) * 60 / run.seconds, 2),
        "median_photo_seconds": round(statistics.median(per_photo), 2),
        "peak_tree_rss_mb": round(run.peak_total_mb),
        "peak_process_rss_mb": round(run.peak_single_mb),
    }


def describe(result: dict[str, Any]) -> str:
    """One line of the results table."""
    return (
        f"jobs {result['jobs']}: {result['seconds']:7.1f} s  {result['photos_per_minute']:5.2f} photos/min  "
        f"median {result['median_photo_seconds']:5.1f} s/photo  peak RSS {result['peak_tree_rss_mb']} MB "
        f"(largest process {result['peak_process_rss_mb']} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--duration", type=float, default=5.0, help="clip length in seconds")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs per job count")
    args = parser.parse_args()
    subprocess.run([FOCUSGRAPH, "-q", "models", "fetch"], check=True, stdout=subprocess.DEVNULL)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="focusgraph-bench-batch-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        photos = make_photos(folder / "in", args.photos)
        for round_index in range(args.rounds):
            for jobs in (1, 2):
                out = folder / f"out-{round_index}-{jobs}"
                out.mkdir()
                result = run_batch(photos, jobs, args.duration, out)
                runs.append(result)
                print(describe(result), flush=True)
    best = {jobs: min(r["seconds"] for r in runs if r["jobs"] == jobs) for jobs in (1, 2)}
    speedup = best[1] / best[2]
    clips = f"{args.photos} photos at {SIZE[0]}x{SIZE[1]}, {args.duration:g} s clips"
    print(f"\n{clips}: jobs 2 is {speedup:.2f}x as fast as jobs 1")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "photos": args.photos,
        "size": SIZE,
        "duration": args.duration,
        "runs": runs,
        "speedup": speedup,
    }
    (OUT / "batch.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
