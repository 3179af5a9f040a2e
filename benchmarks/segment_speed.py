"""Time to a mask: the ``core.segment`` node on a shared photo scaled to 1080p and 4K.

Each run is a fresh process (models loaded from the cache, as on a render's first
frame): the segment node on ``girl-2`` (person) and ``animal-1`` (salient) scaled to
cover the size. Reported per size and photo, as medians over the runs: wall seconds,
CPU seconds (all threads; steadier than wall time on a loaded machine) and the
process's peak RSS above what it held before the node ran.

Usage: ``.venv/bin/python benchmarks/segment_speed.py [--runs 5] [--sizes 1080p,4k]
[--photos girl-2,animal-1]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "testdata" / "photos"
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
SUBJECTS = {"girl-1": "person", "girl-2": "person", "girl-3": "person", "animal-1": "salient"}

# Runs in the child: loads and scales the photo, then times the node alone.
CHILD = """
import json, resource, sys, time
import cv2
from focusgraph.graph.node import FrameContext
from focusgraph.nodes._imagefile import fit_cover
from focusgraph.nodes.segment import Segment

path, width, height, subject = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
image = fit_cover(cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), (width, height))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
Segment().evaluate(Segment.Params(subject=subject), {"image": image}, FrameContext(0, 30.0, 1))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak / 1024, "added_mb": (peak - before) / 1024}))
"""


def run_once(photo: Path, size: tuple[int, int], subject: str) -> dict[str, float]:
    """One fresh process segmenting ``photo`` scaled to ``size``."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(photo), str(size[0]), str(size[1]), subject],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Print a table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1080p,4k")
    parser.add_argument("--photos", default="girl-2,animal-1")
    args = parser.parse_args()
    print("| size  | photo    | subject | wall s (median) | cpu s | peak RSS MB | added by segment MB |")
    print("| ----- | -------- | ------- | --------------- | ----- | ----------- | ------------------- |")
    for size in args.sizes.split(","):
        for name in args.photos.split(","):
            photo = PHOTOS / f"{name}.jpg"
            if not photo.exists():
                raise SystemExit(f"shared photo {photo} not found")
            runs = [run_once(photo, SIZES[size], SUBJECTS[name]) for _ in range(args.runs)]

            def median(key: str, values: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in values)

            print(
                f"| {size:5s} | {name:8s} | {SUBJECTS[name]:7s} | {median('wall'):15.2f} | "
                f"{median('cpu'):5.2f} | {median('peak_mb'):11.0f} | {median('added_mb'):19.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
