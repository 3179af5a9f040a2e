"""Render speed against the encode-only floor and an ffmpeg-only peer.

For each input (a generated photo-like image and a shared photo scaled up, at 1080p and
optionally 4K) and each of ``--runs`` rounds, interleaved (render, floor, peer, render,
floor, peer, ...):

* **render**: ``focusgraph render rack-focus`` (5 s at 30 fps, the preset's encoder
  settings) in a fresh process with a new, empty node store, as a first render of a
  photo (segmentation and inpainting run and are written to the store); wall time and
  the peak RSS of its process tree and of the render process alone (the rest is
  ffmpeg's x264, which the floor's tree holds too).
* **re-render**: the same with a node store that one render beforehand filled, as when
  a user re-renders the photo after changing a value: segmentation, the plate and the
  background's blur levels come from the store (``focusgraph.graph.store``).
* **grain-free render**: the render with ``--set grain=0 --set film_grain=0``, the
  same effect as the peer's (which has no grain), to compare the two pipelines on
  equal frames (grain-free frames encode much faster); like the peer, which is handed
  the mask, it finds the mask and the plate in a store, but no blur levels: it blurs
  the background as the peer does.
* **floor**: the very frames that render produces (captured once beforehand into a raw
  file) fed through the same Encode node (same ffmpeg, same settings, same atomic
  output path) with nothing else to do: the time no renderer can beat.
* **peer**: one ffmpeg command a skilled user would write for the same effect given the
  same mask: the photo split, the background blurred with an animated Gaussian strength
  (``sendcmd`` per frame, following the preset's keyframes), the sharp photo overlaid
  through the mask, encoded with the same settings. The command is printed and written
  to the JSON result (``docs/benchmarks.md`` shows it).
* **peer with grain**: the peer plus the preset's grain, as a skilled user would add
  it: one temporal luma ``noise`` over the frame, of the deviation of the preset's two
  grains together (:func:`peer_grain_deviation`). Grainy frames cost x264 far more than
  clean ones, so this is the peer of the preset's whole effect.

Also reported, per input:

* **quality against the exact reference**: the same preset with
  ``--set background.precision=exact`` (the blur's full-resolution exact kernel on every
  frame) captured in process like the render's own frames; the minimum over frames of
  the PSNR between the two (the images reaching the encoder, before encoding) and
  whether every frame is at least 45 dB. Skipped, with a message, if the blur node has
  no ``precision`` parameter.
* **cold start**: wall time of a fresh ``python -c`` that imports focusgraph, compiles
  the preset and evaluates frame 0 (models already provisioned: the capture ran first),
  with an empty and with a filled node store.
* time to first frame (compile, segmentation and inpainting, in process) and frames/s.
* **bounds** (a second table): when each command's encoder started (the Encode node
  starts ffmpeg with the first frame; timed by an ffmpeg wrapper given as
  ``IMAGEIO_FFMPEG_EXE`` to the renders and the floor alike, :func:`encoder_clock`), the
  CPU time of each command's process tree, and from them the least render/floor each
  render could reach: the *start bound*, if every frame after the first cost nothing,
  and the *CPU bound*, if its tree kept every core busy throughout (:func:`bounds`);
  also floor/peer: a floor above the peer means no render of the preset's frames can
  beat the peer.
* with ``--serial``: the render again with the writer thread off
  (``focusgraph.nodes._writers.QUEUE_FRAMES = 0``: compute and pipe writes alternate in
  one thread), interleaved with the others, to measure what the overlap gives.

Once per run of the script: **memory against clip length** (peak RSS of the render's
process tree for ``--set duration=10`` against the default 5 s, on the shared photo at
1080p: within 10%?) when 1080p is among the sizes, and with ``24mp`` among the sizes a
single render of the shared photo scaled to 6000x4000 (wall time, peak RSS).

Medians over the runs; ratios render/floor and render/peer. Writes
``benchmarks/out/render.json`` and ``benchmarks/out/render.md``.

Usage: ``make bench`` (1080p and 4K, 3 runs; 24 MP and the length check once) or
``.venv/bin/python benchmarks/render.py [--sizes 1080p,4k,24mp] [--runs 3] [--serial]
[--no-length-check]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np
from treememory import Measured, run_measured

from focusgraph.graph import Evaluator
from focusgraph.graph.allocator import child_environment
from focusgraph.graph.compile import CompiledGraph, load_graph
from focusgraph.graph.errors import GraphValidationError
from focusgraph.graph.store import ENV_VAR as STORE_ENV_VAR
from focusgraph.nodes._imagefile import fit_cover, read_rgb
from focusgraph.nodes.encode import COLOR_TAGS, VIDEO_FILTER, frame_rate
from focusgraph.nodes.grain import grain_deviation
from focusgraph.presets import find_preset

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "testdata" / "photos"
OUT = ROOT / "benchmarks" / "out"
FOCUSGRAPH = str(Path(sys.executable).with_name("focusgraph"))
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160), "24mp": (6000, 4000)}
#: Sizes rendered once, on the shared photo only, without floor, peer or reference.
SINGLE_RUN_SIZES = frozenset({"24mp"})
DURATION = 5.0
#: The quality target: every frame within this PSNR of the exact reference render.
PSNR_TARGET_DB = 45.0
#: The override that asks the blur for its exact kernel at full resolution on every frame.
EXACT = {"background": {"precision": "exact"}}
#: Memory against clip length: the longer render's peak RSS over the default's must stay below this.
LENGTH_RSS_LIMIT = 1.10


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
        images = [("girl-2 scaled", fit_cover(real, size))]
        if name not in SINGLE_RUN_SIZES:
            images.insert(0, ("generated", generated_photo(size)))
        for label, image in images:
            path = folder / f"{label.replace(' ', '-')}-{name}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            inputs.append((f"{label} {name}", path))
    return inputs


#: Overrides that take the grain out of the preset: the effect the ffmpeg peer makes.
GRAIN_FREE = ("--set", "grain=0", "--set", "film_grain=0")
#: The environment of a command that neither reads nor writes a node store.
NO_STORE = {**os.environ, STORE_ENV_VAR: "off"}
#: The peer's: its ffmpeg keeps freed buffers as the Encode node's ffmpeg does.
PEER_ENV = {**child_environment(), STORE_ENV_VAR: "off"}


def empty_store(folder: Path) -> dict[str, str]:
    """The environment of a first render: a node store of its own, empty."""
    return {**os.environ, STORE_ENV_VAR: tempfile.mkdtemp(prefix="store-", dir=folder)}


def store_read_times(store: Path) -> list[float]:
    """When each entry of a node store was last read (a hit touches its entry)."""
    return sorted(path.stat().st_mtime for path in store.glob("*.npz"))


def timed(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``command``: its wall time, the peak RSS of its tree and of its own process, its tree's CPU."""
    run = run_measured(command, env)
    if run.returncode != 0:
        sys.exit(f"{command[0]} failed: {run.stderr.strip()[-500:]}")
    return run


def encoder_clock(folder: Path) -> tuple[Path, Path]:
    """An ffmpeg that notes when it starts encoding raw frames (a wrapper of imageio-ffmpeg's), and its log.

    The Encode node starts ffmpeg with its first frame, so the note is the moment a
    command's first frame is ready: everything a render does before it, the encoder
    waits for. Given as ``IMAGEIO_FFMPEG_EXE`` to the renders and the floor alike.
    """
    log = folder / "encoder-starts.log"
    wrapper = folder / "ffmpeg-noting-starts"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'case " $* " in *" rawvideo "*) echo "$EPOCHREALTIME" >> {shlex.quote(str(log))} ;; esac\n'
        f'exec {shlex.quote(imageio_ffmpeg.get_ffmpeg_exe())} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, log


def timed_start(
    command: list[str], env: dict[str, str], clock: tuple[Path, Path]
) -> tuple[Measured, float | None]:
    """:func:`timed` through the :func:`encoder_clock`: also the seconds until its encoder started."""
    wrapper, log = clock
    log.unlink(missing_ok=True)
    launched = time.time()
    run = timed(command, {**env, "IMAGEIO_FFMPEG_EXE": str(wrapper)})
    starts = log.read_text().split() if log.exists() else []
    return run, (float(starts[0]) - launched if starts else None)


def preset_graph(
    photo: Path, folder: Path, overrides: dict[str, dict[str, Any]] | None = None
) -> CompiledGraph:
    """The rack-focus preset compiled on ``photo`` (its output is never written)."""
    preset = find_preset("rack-focus")
    assert preset is not None
    values = {"image": str(photo), "output": str(folder / "unused.mp4")}
    return load_graph(preset, values, overrides=overrides)


def even(image: np.ndarray) -> np.ndarray:
    """``image`` cropped to even sides, as the video writer sends it to ffmpeg."""
    return np.ascontiguousarray(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2])


def evaluated(graph: CompiledGraph) -> Iterator[dict[str, dict[str, Any]]]:
    """The outputs of every node, frame after frame."""
    evaluator = Evaluator(graph)
    for frame in range(graph.timeline.frame_count):
        yield evaluator.run(graph.timeline.context(frame))


def capture(photo: Path, folder: Path) -> dict[str, Any]:
    """Evaluate the preset in process: the frames it encodes (raw file), its mask, radii, first-frame time."""
    started = time.perf_counter()
    graph = preset_graph(photo, folder)
    raw = folder / f"{photo.stem}.rgb"
    first_frame = 0.0
    radii = []
    removed = []
    with raw.open("wb") as frames:
        for frame, outputs in enumerate(evaluated(graph)):
            if frame == 0:
                first_frame = time.perf_counter() - started
            image = even(outputs["film"]["image"])
            frames.write(image.tobytes())
            radii.append(float(outputs["focus"]["value"]) * max(outputs["film"]["image"].shape[:2]))  # px
            removed.append(float(outputs["background"]["noise_removed"]))
    mask = np.asarray(outputs["matte"]["mask"])
    mask_path = folder / f"{photo.stem}-mask.png"
    cv2.imwrite(str(mask_path), np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8))
    height, width = image.shape[:2]
    return {
        "raw": raw,
        "size": (width, height),
        "frames": graph.timeline.frame_count,
        "fps": graph.timeline.fps,
        "mask": mask_path,
        "radii": radii,
        "grain_deviation": peer_grain_deviation(graph, outputs["photo"]["image"], removed, mask),
        "first_frame": first_frame,
        "crf": graph.nodes["clip"].params.crf,
        "preset": graph.nodes["clip"].params.preset,
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (``inf`` if identical)."""
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def exact_reference(photo: Path, folder: Path, captured: dict[str, Any]) -> dict[str, Any]:
    """PSNR of the captured (fast) frames against the exact reference render, frame by frame.

    Returns ``{"skipped": reason}`` if the preset does not accept the exact override.
    """
    try:
        graph = preset_graph(photo, folder, EXACT)
    except GraphValidationError as error:
        return {"skipped": f"no exact reference (--set background.precision=exact refused: {error})"}
    width, height = captured["size"]
    fast = np.memmap(captured["raw"], np.uint8, "r", shape=(captured["frames"], height, width, 3))
    started = time.perf_counter()
    values = [
        psnr(even(outputs["film"]["image"]), fast[frame]) for frame, outputs in enumerate(evaluated(graph))
    ]
    seconds = time.perf_counter() - started
    worst = min(range(len(values)), key=values.__getitem__)
    return {
        "min_psnr_db": values[worst],
        "worst_frame": worst,
        "all_frames_at_least_45_db": all(value >= PSNR_TARGET_DB for value in values),
        "psnr_db": values,
        "seconds": seconds,
    }


def cold_start_command(photo: Path, folder: Path) -> list[str]:
    """A fresh interpreter: import focusgraph, compile the preset, evaluate frame 0, exit.

    The node store is the environment's (``$FOCUSGRAPH_CACHE``), as for a render.
    """
    script = f"""
from focusgraph.graph import Evaluator
from focusgraph.graph.compile import load_graph
from focusgraph.graph.store import NodeStore
from focusgraph.presets import find_preset
values = {{"image": {str(photo)!r}, "output": {str(folder / "unused.mp4")!r}}}
graph = load_graph(find_preset("rack-focus"), values)
Evaluator(graph, NodeStore.default()).run(graph.timeline.context(0))
"""
    return [sys.executable, "-c", script]


def render_command(photo: Path, out: Path, *extra: str, serial: bool = False) -> list[str]:
    """``focusgraph render rack-focus``; with ``serial`` the video writer's thread is off."""
    args = ["-q", "render", "rack-focus", "-i", str(photo), "-o", str(out), "--overwrite", *extra]
    if not serial:
        return [FOCUSGRAPH, *args]
    script = (
        "import sys\n"
        "import focusgraph.nodes._writers as writers\n"
        "writers.QUEUE_FRAMES = 0\n"
        "from focusgraph.graph.entry import run\n"
        f"sys.argv = ['focusgraph', *{args!r}]\n"
        "run()\n"
    )
    return [sys.executable, "-c", script]


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


def peer_grain_deviation(
    graph: CompiledGraph, photo: np.ndarray, removed: list[float], mask: np.ndarray
) -> float:
    """Deviation (8-bit levels) of the preset's two grains together, over the clip: the peer's grain.

    The same energy over the frame: the film grain covers the frame; the background's
    covers the background (its share of the frame, ``1 - mask`` on average) and follows
    the noise its blur removed (its root mean square over the clip: ffmpeg's ``noise``
    takes no per-frame commands).
    """
    film, textured = graph.nodes["film"].params, graph.nodes["textured"].params
    removed_rms = math.sqrt(statistics.fmean(r * r for r in removed))
    background_share = 1.0 - float(np.mean(mask))
    film_deviation = grain_deviation(float(film.amount), film.scale, photo)
    background_deviation = grain_deviation(removed_rms, textured.scale, photo) * math.sqrt(background_share)
    return math.hypot(film_deviation, background_deviation)


#: Luma deviation (limited-range levels) of ffmpeg's ``noise`` per unit of strength,
#: measured on flat grey after the peer's own conversion (``VIDEO_FILTER``) at 1080p:
#: strengths 5, 10 and 20 give deviations of 2.5, 5.4 and 11.2 levels.
NOISE_PER_STRENGTH = 0.54


def peer_command(
    photo: Path, captured: dict[str, Any], folder: Path, out: Path, grain: bool = False
) -> list[str]:
    """The ffmpeg-only rack focus: animated gblur on the photo, sharp photo overlaid through the mask.

    With ``grain``, temporal luma noise over the whole frame (ffmpeg's ``noise``) of the
    preset's grains' deviation (:func:`peer_grain_deviation`): the preset's whole effect.
    """
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
    strength = round(captured["grain_deviation"] * (219 / 255) / NOISE_PER_STRENGTH) if grain else 0
    if strength > 0:
        graph += f",noise=c0s={strength}:c0f=t"
    still = ["-loop", "1", "-framerate", frame_rate(fps), "-t", f"{captured['frames'] / fps}"]
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        *still, "-i", str(photo),
        *still, "-i", str(captured["mask"]),
        "-filter_complex", graph, "-frames:v", str(captured["frames"]),
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(captured["crf"]), "-preset", captured["preset"],
        *COLOR_TAGS, "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip


def bench_input(label: str, photo: Path, folder: Path, runs: int, serial: bool) -> dict[str, Any]:
    """All measurements of one input.

    ``render`` is a first render: a new, empty node store each run (segmentation and
    inpainting run, and their results are written to the store as a user's first render
    does); ``render_warm`` is the re-render of a user iterating on the same photo, which
    finds them, and the blur levels, in a node store filled by one render beforehand
    (each run is checked to have read it). ``render_grain_free`` is the render with both
    grains at 0: the very effect the peer's command makes, whose frames, without grain,
    encode much faster than the preset's; like the peer, which is handed the mask, it
    finds the mask (and plate) in a store holding only those (it blurs the background
    itself, as the peer does).
    """
    captured = capture(photo, folder)
    reference = exact_reference(photo, folder, captured)
    if "skipped" in reference:
        print(f"{label}: {reference['skipped']}", flush=True)
    store = folder / f"store-{photo.stem}"
    warm = {**os.environ, STORE_ENV_VAR: str(store)}
    out = folder / "out.mp4"
    timed(render_command(photo, out), warm)  # fills the store
    # The grain-free render's store: the mask and the plate only (the peer's blur is
    # computed every run, so ours is too: the blur levels it keeps are deleted each run).
    masks = folder / f"store-{photo.stem}-masks"
    masks.mkdir()
    for entry in store.glob("*.npz"):
        shutil.copy2(entry, masks / entry.name)
    masks_only = {**os.environ, STORE_ENV_VAR: str(masks)}
    cold = run_measured(cold_start_command(photo, folder), empty_store(folder))
    warm_start = run_measured(cold_start_command(photo, folder), warm)
    for start in (cold, warm_start):
        if start.returncode != 0:
            sys.exit(f"cold start failed: {start.stderr.strip()[-500:]}")
    commands = {
        "render": (render_command(photo, out), None),  # None: a new empty store each run
        "floor": (floor_command(captured, out), NO_STORE),
        "peer": (peer_command(photo, captured, folder, out), PEER_ENV),
        "peer_grain": (peer_command(photo, captured, folder, out, grain=True), PEER_ENV),
        "render_warm": (render_command(photo, out), warm),
        "render_grain_free": (render_command(photo, out, *GRAIN_FREE), masks_only),
    }
    stores = {"render_warm": store, "render_grain_free": masks}  # each run must read these
    if serial:
        commands["render_serial"] = (render_command(photo, out, serial=True), None)
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    own_peaks: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    starts: dict[str, list[float]] = {name: [] for name in commands}
    clock = encoder_clock(folder)
    for _ in range(runs):
        for name, (command, env) in commands.items():
            read = stores.get(name)
            if read == masks:
                for level in masks.glob("*.npy"):
                    level.unlink()
            if read is not None:
                read_before = store_read_times(read)
            run, encoder_start = timed_start(command, env or empty_store(folder), clock)
            if read is not None and store_read_times(read) == read_before:
                sys.exit(f"{name} did not read the node store {read}")
            times[name].append(run.seconds)
            peaks[name].append(run.peak_total_mb)
            own_peaks[name].append(run.peak_root_mb)
            cpu[name].append(run.cpu_seconds)
            if encoder_start is not None:
                starts[name].append(encoder_start)
    median = {name: statistics.median(values) for name, values in times.items()}
    width, height = captured["size"]
    result = {
        "input": label,
        "size": f"{width}x{height}",
        "frames": captured["frames"],
        "runs": runs,
        "seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
        "median_seconds": {name: round(value, 2) for name, value in median.items()},
        "render_over_floor": round(median["render"] / median["floor"], 2),
        "render_over_peer": round(median["render"] / median["peer"], 2),
        "warm_over_floor": round(median["render_warm"] / median["floor"], 2),
        "warm_over_peer": round(median["render_warm"] / median["peer"], 2),
        "grain_free_over_peer": round(median["render_grain_free"] / median["peer"], 2),
        "render_over_peer_grain": round(median["render"] / median["peer_grain"], 2),
        "warm_over_peer_grain": round(median["render_warm"] / median["peer_grain"], 2),
        "render_frames_per_second": round(captured["frames"] / median["render"], 1),
        "render_peak_rss_mb": round(max(peaks["render"])),
        "render_own_peak_rss_mb": round(max(own_peaks["render"])),
        "floor_peak_rss_mb": round(max(peaks["floor"])),
        "first_frame_seconds": round(captured["first_frame"], 2),
        "cold_start_seconds": round(cold.seconds, 2),
        "warm_start_seconds": round(warm_start.seconds, 2),
        "exact_reference": _rounded(reference),
        "peer_command": commands["peer"][0],
        "peer_grain_command": commands["peer_grain"][0],
    }
    result["bounds"] = bounds(median, cpu, starts)
    if serial:
        result["serial_over_render"] = round(median["render_serial"] / median["render"], 2)
    return result


def bounds(
    median: dict[str, float], cpu: dict[str, list[float]], starts: dict[str, list[float]]
) -> dict[str, Any]:
    """The least render/floor each render could reach, from its start and from its CPU time.

    * start bound: ``(floor + start - floor's start) / floor``, the ratio if every frame
      after the first cost the render nothing (the encoder has nothing to do before it:
      segmentation, the plate, the first blur, the interpreter's start and imports);
    * CPU bound: ``CPU / cores / floor``, the ratio if the render's process tree (ffmpeg
      included) kept every core busy from its first instruction to its last.
    """
    cores = len(os.sched_getaffinity(0))  # the cores this process (and its children) may run on
    start = {name: statistics.median(values) for name, values in starts.items() if values}
    used = {name: statistics.median(values) for name, values in cpu.items()}
    floor = median["floor"]
    result: dict[str, Any] = {
        "cores": cores,
        "encoder_start_seconds": {name: round(value, 2) for name, value in start.items()},
        "cpu_seconds": {name: round(value, 1) for name, value in used.items()},
        "floor_busy_cores": round(used["floor"] / floor, 2),
        "floor_over_peer": round(floor / median["peer"], 2),
        "floor_over_peer_grain": round(floor / median["peer_grain"], 2),
    }
    for name in ("render", "render_warm"):
        if name in start and "floor" in start:
            result[f"{name}_start_bound"] = round((floor + start[name] - start["floor"]) / floor, 2)
        result[f"{name}_cpu_bound"] = round(used[name] / cores / floor, 2)
    return result


def _rounded(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference result for JSON: dB to 0.01, identical frames (infinite PSNR) as null."""

    def db(value: float) -> float | None:
        return None if math.isinf(value) else round(value, 2)

    if "skipped" in reference:
        return reference
    return {
        **reference,
        "min_psnr_db": db(reference["min_psnr_db"]),
        "psnr_db": [db(value) for value in reference["psnr_db"]],
        "seconds": round(reference["seconds"], 1),
    }


def length_check(photo: Path, folder: Path) -> dict[str, Any]:
    """Peak RSS of the render's process tree for a 10 s clip against the default 5 s one."""
    rows = {}
    for seconds in (DURATION, 2 * DURATION):
        out = folder / f"length-{seconds:g}s.mp4"
        run = timed(render_command(photo, out, "--set", f"duration={seconds:g}"), NO_STORE)
        rows[f"{seconds:g}s"] = {
            "seconds": round(run.seconds, 2),
            "peak_rss_mb": round(run.peak_total_mb),
            "own_mb": round(run.peak_root_mb),
        }
    ratio = rows[f"{2 * DURATION:g}s"]["peak_rss_mb"] / rows[f"{DURATION:g}s"]["peak_rss_mb"]
    return {
        "photo": photo.name,
        **rows,
        "ratio": round(ratio, 3),
        "within_10_percent": ratio <= LENGTH_RSS_LIMIT,
    }


def single_run(label: str, photo: Path, folder: Path) -> dict[str, Any]:
    """One render of a large input: wall time and peak RSS of its process tree."""
    height, width = cv2.imread(str(photo), cv2.IMREAD_UNCHANGED).shape[:2]
    run = timed(render_command(photo, folder / "large.mp4"), NO_STORE)
    return {
        "input": label,
        "size": f"{width}x{height}",
        "seconds": round(run.seconds, 2),
        "peak_rss_mb": round(run.peak_total_mb),
        "own_peak_rss_mb": round(run.peak_root_mb),
    }


def _db(reference: dict[str, Any]) -> tuple[str, str]:
    """The min-PSNR and >= 45 dB cells."""
    if "skipped" in reference:
        return "skipped", "-"
    value = reference["min_psnr_db"]
    return ("inf" if value is None else f"{value:.2f}"), (
        "yes" if reference["all_frames_at_least_45_db"] else "no"
    )


def markdown(results: list[dict[str, Any]]) -> str:
    """The results table."""
    serial = any("render_serial" in result["median_seconds"] for result in results)
    header = "| input | render (s) | floor (s) | peer (s) | render/floor | render/peer | frames/s |"
    header += " re-render (s) | re-render/floor | re-render/peer | grain-free render (s) | grain-free/peer |"
    header += " peer with grain (s) | render/peer with grain | re-render/peer with grain |"
    header += " peak RSS: tree / render process / floor tree (MB) | first frame (s) |"
    header += " cold start: empty / filled store (s) | min PSNR vs exact (dB) | all >= 45 dB |"
    if serial:
        header += " serial writer (s) | serial/render |"
    lines = [header, "|" + " --- |" + " ---: |" * (header.count("|") - 2)]
    for result in results:
        median = result["median_seconds"]
        psnr_cell, ok = _db(result["exact_reference"])
        line = (
            f"| {result['input']} ({result['size']}) | {median['render']:.1f} | {median['floor']:.1f} | "
            f"{median['peer']:.1f} | {result['render_over_floor']:.2f} | {result['render_over_peer']:.2f} | "
            f"{result['render_frames_per_second']:.1f} | {median['render_warm']:.1f} | "
            f"{result['warm_over_floor']:.2f} | {result['warm_over_peer']:.2f} | "
            f"{median['render_grain_free']:.1f} | {result['grain_free_over_peer']:.2f} | "
            f"{median['peer_grain']:.1f} | {result['render_over_peer_grain']:.2f} | "
            f"{result['warm_over_peer_grain']:.2f} | "
            f"{result['render_peak_rss_mb']} / {result['render_own_peak_rss_mb']} / "
            f"{result['floor_peak_rss_mb']} | "
            f"{result['first_frame_seconds']:.2f} | {result['cold_start_seconds']:.2f} / "
            f"{result['warm_start_seconds']:.2f} | {psnr_cell} | {ok} |"
        )
        if serial:
            if "render_serial" in median:
                line += f" {median['render_serial']:.1f} | {result['serial_over_render']:.2f} |"
            else:
                line += " - | - |"
        lines.append(line)
    return "\n".join(lines)


def bounds_markdown(results: list[dict[str, Any]]) -> str:
    """The table of what each render could reach at best (see :func:`bounds`)."""
    header = (
        "| input | encoder start: render / re-render / floor (s) | CPU: render / re-render / floor "
        "(core-s) | floor's busy cores | render/floor: measured / start bound / CPU bound | "
        "re-render/floor: measured / start bound / CPU bound | floor/peer | floor/peer with grain |"
    )
    lines = [header, "|" + " --- |" + " ---: |" * (header.count("|") - 2)]

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for result in results:
        bound = result["bounds"]
        start, cpu = bound["encoder_start_seconds"], bound["cpu_seconds"]
        lines.append(
            f"| {result['input']} ({result['size']}) | "
            f"{cell(start.get('render'))} / {cell(start.get('render_warm'))} / {cell(start.get('floor'))} | "
            f"{cpu['render']:.1f} / {cpu['render_warm']:.1f} / {cpu['floor']:.1f} | "
            f"{bound['floor_busy_cores']:.2f} of {bound['cores']} | "
            f"{result['render_over_floor']:.2f} / {cell(bound.get('render_start_bound'))} / "
            f"{bound['render_cpu_bound']:.2f} | "
            f"{result['warm_over_floor']:.2f} / {cell(bound.get('render_warm_start_bound'))} / "
            f"{bound['render_warm_cpu_bound']:.2f} | "
            f"{bound['floor_over_peer']:.2f} | {bound['floor_over_peer_grain']:.2f} |"
        )
    return "\n".join(lines)


def extra_markdown(length: dict[str, Any] | None, large: list[dict[str, Any]]) -> str:
    """The tables of the once-per-run checks (memory against length, 24 MP)."""
    parts = []
    if length is not None:
        short, long = f"{DURATION:g}s", f"{2 * DURATION:g}s"
        parts.append(
            f"Memory against clip length ({length['photo']}):\n\n"
            "| clip | render (s) | peak RSS: tree / render process (MB) |\n| --- | ---: | ---: |\n"
            + "".join(
                f"| {clip} | {length[clip]['seconds']:.1f} | {length[clip]['peak_rss_mb']} / "
                f"{length[clip]['own_mb']} |\n"
                for clip in (short, long)
            )
            + "\n"
            f"{long}/{short} peak RSS: {length['ratio']:.3f} "
            f"({'within' if length['within_10_percent'] else 'NOT within'} 10%)"
        )
    if large:
        rows = "\n".join(
            f"| {run['input']} ({run['size']}) | {run['seconds']:.1f} | "
            f"{run['peak_rss_mb']} / {run['own_peak_rss_mb']} |"
            for run in large
        )
        header = "| input | render (s) | peak RSS: tree / render process (MB) |\n| --- | ---: | ---: |\n"
        parts.append("One run:\n\n" + header + rows)
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1080p,4k,24mp", help="comma-separated: 1080p, 4k, 24mp (one run)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per input (median)")
    parser.add_argument(
        "--serial", action="store_true", help="also time the render without the writer thread"
    )
    parser.add_argument("--no-length-check", action="store_true", help="skip the 10 s vs 5 s memory check")
    args = parser.parse_args()
    sizes = [name.strip().lower() for name in args.sizes.split(",") if name.strip()]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        parser.error(f"unknown size {', '.join(unknown)}; known: {', '.join(SIZES)}")
    results: list[dict[str, Any]] = []
    large: list[dict[str, Any]] = []
    length: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="focusgraph-bench-render-") as tmp:
        folder = Path(tmp)
        inputs = make_inputs(folder, sizes)
        for label, photo in inputs:
            if label.split()[-1] in SINGLE_RUN_SIZES:
                large.append(single_run(label, photo, folder))
                print(
                    f"{label}: {large[-1]['seconds']:.1f} s, peak RSS {large[-1]['peak_rss_mb']} MB "
                    f"(render process {large[-1]['own_peak_rss_mb']} MB)",
                    flush=True,
                )
                continue
            result = bench_input(label, photo, folder, args.runs, args.serial)
            results.append(result)
            print(markdown([result]).splitlines()[-1], flush=True)
            print(bounds_markdown([result]).splitlines()[-1], flush=True)
        if "1080p" in sizes and not args.no_length_check:
            length = length_check(dict(inputs)["girl-2 scaled 1080p"], folder)
    table = markdown(results) if results else ""
    limits = bounds_markdown(results) if results else ""
    extra = extra_markdown(length, large)
    report = "\n\n".join(part for part in (table, limits, extra) if part)
    print("\n" + report)
    if results:
        print("\npeer command (last input):\n" + " ".join(results[-1]["peer_command"]))
        print("\npeer with grain (last input):\n" + " ".join(results[-1]["peer_grain_command"]))
    OUT.mkdir(parents=True, exist_ok=True)
    document = {"inputs": results, "length_check": length, "single_runs": large}
    (OUT / "render.json").write_text(json.dumps(document, indent=2) + "\n")
    (OUT / "render.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
