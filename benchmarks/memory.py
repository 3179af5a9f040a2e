"""Peak memory of a render must not grow with clip length.

Renders the rack-focus preset on a 1920x1080 photo (a shared test photo scaled to
cover 1080p) for 5 s and for 10 s, each in a fresh process, and prints the peak
resident set size (RSS) of each and their ratio. Frames stream to the encoder, so
the 10 s render should stay within 25% of the 5 s one.

Usage: ``make bench-memory`` (or ``.venv/bin/python benchmarks/memory.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "testdata" / "photos" / "girl-3.jpg"
FOCUSGRAPH = Path(sys.executable).with_name("focusgraph")


def make_1080p(folder: Path) -> Path:
    """The shared photo scaled to cover 1920x1080 and centre-cropped."""
    image = cv2.imread(str(PHOTO))
    scale = max(1920 / image.shape[1], 1080 / image.shape[0])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    top, left = (resized.shape[0] - 1080) // 2, (resized.shape[1] - 1920) // 2
    path = folder / "photo-1080p.png"
    cv2.imwrite(str(path), resized[top : top + 1080, left : left + 1920])
    return path


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return (peak RSS in MB of that process tree's largest process, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"render failed: {process.stderr.read().decode() if process.stderr else ''}")
    return usage.ru_maxrss / 1024, elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        photo = make_1080p(Path(folder))
        rows = []
        for seconds in (5, 10):
            out = Path(folder) / f"clip-{seconds}s.mp4"
            # --no-cache: both renders segment the photo (the second would find it in the node store)
            command = [str(FOCUSGRAPH), "-q", "--no-cache", "render", "rack-focus", "-i", str(photo)]
            command += ["-o", str(out)]
            command += ["--set", f"duration={seconds}", "--overwrite"]
            rss, elapsed = peak_rss_mb(command)
            rows.append((seconds, rss, elapsed))
    print("| clip | frames | peak RSS (MB) | time (s) |")
    print("| --- | --- | --- | --- |")
    for seconds, rss, elapsed in rows:
        print(f"| 1920x1080, {seconds} s | {seconds * 30} | {rss:.0f} | {elapsed:.1f} |")
    ratio = rows[1][1] / rows[0][1]
    print(f"\npeak RSS 10 s / 5 s = {ratio:.3f} (target <= 1.25): {'ok' if ratio <= 1.25 else 'FAIL'}")
    sys.exit(0 if ratio <= 1.25 else 1)


if __name__ == "__main__":
    main()
