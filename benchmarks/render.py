"""Render speed against the encode-only floor and an ffmpeg-only peer.

For each input (a generated photo-like image and a shared photo scaled up, at 1080p and
optionally 4K) and each of ``--runs`` rounds, interleaved (render, floor, peer, render,
floor, peer, ...):

* **render**: ``focusgraph render rack-focus`` (5 s at 30 fps, the preset's encoder
  settings) in a fresh process; wall time and the peak RSS of its process tree.
* **floor**: the very frames that render produces (captured once beforehand into a raw
  file) fed through the same Encode node (same ffmpeg, same settings, same atomic
  output path) with nothing else to do: the time no renderer can beat.
* **peer**: one ffmpeg command a skilled user would write for the same effect given the
  same mask: the photo split, the background blurred with an animated Gaussian strength
  (``sendcmd`` per frame, following the preset's keyframes), the sharp photo overlaid
  through the mask, encoded with the same settings. The command is printed and written
  to the JSON result (``docs/benchmarks.md`` shows it).

Also reported: time to first frame (compile, segmentation and inpainting, in process) and
frames/s. Medians over the runs; ratios render/floor and render/peer. Writes
``benchmarks/out/render.json`` and ``benchmarks/out/render.md``.

Usage: ``make bench`` or ``.venv/bin/python benchmarks/render.py [--sizes 1080p,4k] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np
from treememory import run_measured

from focusgraph.graph import Evaluator
from focusgraph.graph.compile import load_graph
from focusgraph.nodes._imagefile import fit_cover, read_rgb
from focusgraph.nodes.encode import COLOR_TAGS, VIDEO_FILTER, frame_rate
from focusgraph.presets import find_preset

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "testdata" / "photos"
OUT = ROOT / "benchmarks" / "out"
FOCUSGRAPH = str(Path(sys.executable).with_name("focusgraph"))
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
DURATION = 5.0


def generated_photo(size: tuple[int, int], seed: int = 7) -> np.ndarray:
    """A photo-like test image: smooth gradients, shapes with hard edges, highlights, sensor noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.dstack([90 + 80 * x / width, 110 + 60 * y / height, 150 - 50 * x / width]).astype(np.float32)
    for _ in range(40):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(float(c) for c in rng.integers(30, 230, 3))
        radius = int(rng.integers(height // 40, height // 6))
        cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA)
    for _ in range(25):
        highlight = (int(rng.integers(0, width)), int(rng.integers(0, height // 2)))
        cv2.circle(image, highlight, 3, (255, 250, 240), -1)
    figure = np.zeros((height, width), np.uint8)  # a person-sized figure in the middle
    cv2.ellipse(figure, (width // 2, height // 3), (height // 10, height // 8), 0, 0, 360, 255, -1)
    body = ((width // 2 - height // 7, height // 3 + height // 10), (width // 2 + height // 7, height))
    cv2.rectangle(figure, *body, 255, -1)
    image[figure > 0] = (200, 150, 120)
    image += rng.normal(0, 3, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_inputs(folder: Path, size_names: list[str]) -> list[tuple[str, Path]]:
    """(label, path) of each input image, written as PNG."""
    inputs = []
    real = read_rgb(PHOTOS / "girl-2.jpg")
    for name in size_names:
        size = SIZES[name]
        for label, image in (("generated", generated_photo(size)), ("girl-2 scaled", fit_cover(real, size))):
            path = folder / f"{label.replace(' ', '-')}-{name}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            inputs.append((f"{label} {name}", path))
    return inputs


def timed(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return (seconds, peak RSS of its process tree in MB)."""
    run = run_measured(command)
    if run.returncode != 0:
        sys.exit(f"{command[0]} failed: {run.stderr.strip()[-500:]}")
    return run.seconds, run.peak_total_mb


def capture(photo: Path, folder: Path) -> dict[str, Any]:
    """Evaluate the preset in process: the frames it encodes (raw file), its mask, radii, first-frame time."""
    started = time.perf_counter()
    preset = find_preset("rack-focus")
    assert preset is not None
    graph = load_graph(preset, {"image": str(photo), "output": str(folder / "unused.mp4")})
    evaluator = Evaluator(graph)
    raw = folder / f"{photo.stem}.rgb"
    first_frame = 0.0
    radii = []
    with raw.open("wb") as frames:
        for frame in range(graph.timeline.frame_count):
            outputs = evaluator.run(graph.timeline.context(frame))
            if frame == 0:
                first_frame = time.perf_counter() - started
            image = np.ascontiguousarray(outputs["film"]["image"])
            frames.write(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2].tobytes())
            radii.append(float(outputs["focus"]["value"]) * max(image.shape[:2]))  # relative -> px
    mask = np.asarray(outputs["matte"]["mask"])
    mask_path = folder / f"{photo.stem}-mask.png"
    cv2.imwrite(str(mask_path), np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))
    height, width = image.shape[:2]
    return {
        "raw": raw,
        "size": (width // 2 * 2, height // 2 * 2),
        "frames": graph.timeline.frame_count,
        "fps": graph.timeline.fps,
        "mask": mask_path,
        "radii": radii,
        "first_frame": first_frame,
        "crf": graph.nodes["clip"].params.crf,
        "preset": graph.nodes["clip"].params.preset,
    }


def floor_command(captured: dict[str, Any], out: Path) -> list[str]:
    """Encode the captured frames through the Encode node's own writer, nothing else."""
    width, height = captured["size"]
    script = f"""
import sys
import numpy as np
from focusgraph.graph import Timeline
from focusgraph.nodes.encode import Encode
timeline = Timeline({captured["fps"]!r}, {captured["frames"]}, None)
node = Encode()
params = Encode.Params(path={str(out)!r}, crf={captured["crf"]}, preset={captured["preset"]!r})
writer = node.open(params, timeline, True)
frame_bytes = {width * height * 3}
with open({str(captured["raw"])!r}, "rb") as frames:
    for index in range({captured["frames"]}):
        image = np.frombuffer(frames.read(frame_bytes), np.uint8).reshape({height}, {width}, 3)
        writer.write({{"image": image}}, timeline.context(index))
writer.commit()
"""
    return [sys.executable, "-c", script]


def peer_command(photo: Path, captured: dict[str, Any], folder: Path, out: Path) -> list[str]:
    """The ffmpeg-only rack focus: animated gblur on the photo, sharp photo overlaid through the mask."""
    width, height = captured["size"]
    fps = captured["fps"]
    # gblur's sigma for a blur of the preset's radius: a disc of radius r has standard deviation r/2.
    commands = folder / f"{photo.stem}-sigma.cmd"
    lines = [
        f"{i / fps:.6f} [enter] gblur sigma {max(r / 2, 0.01):.4f};\n"
        for i, r in enumerate(captured["radii"])
    ]
    commands.write_text("".join(lines))
    graph = (
        f"[0:v]crop={width}:{height}:0:0,format=gbrp,split[photo][background];"
        f"[background]sendcmd=f='{commands}',gblur=sigma=1[blurred];"
        f"[1:v]crop={width}:{height}:0:0,format=gray[mask];"
        f"[photo][mask]alphamerge[subject];"
        f"[blurred][subject]overlay=format=gbrp,{VIDEO_FILTER}"
    )
    still = ["-loop", "1", "-framerate", frame_rate(fps), "-t", f"{captured['frames'] / fps}"]
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        *still, "-i", str(photo),
        *still, "-i", str(captured["mask"]),
        "-filter_complex", graph, "-frames:v", str(captured["frames"]),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(captured["crf"]), "-preset", captured["preset"],
        *COLOR_TAGS, "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip


def bench_input(label: str, photo: Path, folder: Path, runs: int) -> dict[str, Any]:
    """All measurements of one input."""
    captured = capture(photo, folder)
    out = folder / "out.mp4"
    render = [FOCUSGRAPH, "-q", "render", "rack-focus", "-i", str(photo), "-o", str(out), "--overwrite"]
    commands = {
        "render": render,
        "floor": floor_command(captured, out),
        "peer": peer_command(photo, captured, folder, out),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            seconds, peak = timed(command)
            times[name].append(seconds)
            peaks[name].append(peak)
    median = {name: statistics.median(values) for name, values in times.items()}
    width, height = captured["size"]
    return {
        "input": label,
        "size": f"{width}x{height}",
        "frames": captured["frames"],
        "runs": runs,
        "seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
        "median_seconds": {name: round(value, 2) for name, value in median.items()},
        "render_over_floor": round(median["render"] / median["floor"], 2),
        "render_over_peer": round(median["render"] / median["peer"], 2),
        "render_frames_per_second": round(captured["frames"] / median["render"], 1),
        "render_peak_rss_mb": round(max(peaks["render"])),
        "first_frame_seconds": round(captured["first_frame"], 2),
        "peer_command": commands["peer"],
    }


def markdown(results: list[dict[str, Any]]) -> str:
    """The results table."""
    header = "| input | render (s) | floor (s) | peer (s) | render/floor | render/peer | frames/s |"
    lines = [
        header + " peak RSS (MB) | first frame (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        median = result["median_seconds"]
        lines.append(
            f"| {result['input']} ({result['size']}) | {median['render']:.1f} | {median['floor']:.1f} | "
            f"{median['peer']:.1f} | {result['render_over_floor']:.2f} | {result['render_over_peer']:.2f} | "
            f"{result['render_frames_per_second']:.1f} | {result['render_peak_rss_mb']} | "
            f"{result['first_frame_seconds']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1080p,4k", help="comma-separated: 1080p, 4k")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per input (median)")
    args = parser.parse_args()
    sizes = [name.strip().lower() for name in args.sizes.split(",") if name.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="focusgraph-bench-render-") as tmp:
        folder = Path(tmp)
        for label, photo in make_inputs(folder, sizes):
            result = bench_input(label, photo, folder, args.runs)
            results.append(result)
            print(markdown([result]).splitlines()[-1], flush=True)
    table = markdown(results)
    print("\n" + table)
    print("\npeer command (last input):\n" + " ".join(results[-1]["peer_command"]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "render.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "render.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
