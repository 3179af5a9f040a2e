"""Quality of the rack-focus preset: masks, halo, colour at the edge and the clearing curve.

Runs the preset in process (no encoding) on

* the shared test photos (``../shared/testdata/photos``, skipped when absent), whose
  reference cutouts give the true matte, and
* composite scenes built here: a cutout of each shared photo (foreground colour F and
  true alpha) in front of a synthetic wall with a framed painting (scikit-image's
  ``chelsea``, ``coffee`` and ``astronaut``), so the clean background B and alpha are
  known exactly: scene = alpha * F + (1 - alpha) * B.

Sections (targets in brackets):

1. Masks on the shared photos: IoU of the segment output with the reference alpha
   (both > 0.5) [>= 0.95] and the mean absolute alpha error in a band of half-width
   2% of the longer side around the reference's 0.5 contour [<= 0.05].
2. Scenes: mask IoU [>= 0.92]; halo on the first (most blurred) frame = mean error
   in a ring 3-40 px outside the subject over the mean error far (> 80 px) from it
   [<= 1.3], errors taken against the best-fitting blur of B (the preset's blur node on
   B at the radius, within 0.5-1.5x the preset's, closest to the frame far from the
   subject and from the preset's own mask); minimum subject-interior PSNR over the
   frames and background PSNR of the last frame [>= 35 dB, as the end-to-end test];
   mean error in the soft edge against alpha * F + (1 - alpha) * blur(B). Three
   references calibrate the first-frame numbers: *true mask* (the preset with the true
   alpha instead of its segmentation), *naive* (the whole scene blurred) and *oracle*
   (the scene over the blurred B through the true alpha); naive and oracle go through
   the preset's own grain nodes (same parameters and pattern) so their noise matches.
   Two more split the halo between the plate's guess and the mask: *true plate* (the
   preset's own mask, with the inpaint node's fill replaced by B, mixed into the photo
   by the node's own weights) and *true mask + plate* (both); the nodes after the plate
   are evaluated again on fresh instances with the first frame's parameters.
3. Clearing curve: background sharpness (mean absolute Laplacian) per frame relative
   to the photo's; the fraction of the transition's frames whose sharpness lies
   within 20-80% of its range [>= 0.40], and the same for a linear-in-radius easing.
4. Contact sheets (first, middle, last frame and the mask) in ``benchmarks/out``.

All numbers go to ``benchmarks/out/quality.json``. The exit status is 0 whatever the
numbers: this is a report.

Usage: ``make bench-quality`` or ``.venv/bin/python benchmarks/quality.py [--quick]
[--fps 30] [--duration 5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data

from focusgraph.graph.compile import CompiledGraph, CompiledNode, Ref, load_graph
from focusgraph.graph.document import bind_inputs, load_document
from focusgraph.graph.errors import FocusgraphError
from focusgraph.graph.node import FrameContext, NodeParams
from focusgraph.graph.scheduler import Evaluator
from focusgraph.nodes.composite import over
from focusgraph.presets import find_preset

# The halo metric is shared with the blur tests (tests/metrics.py), so both measure alike.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from metrics import abs_error, halo_errors, halo_regions

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "testdata" / "photos"
OUT = ROOT / "benchmarks" / "out"
PRESET = "rack-focus"

# Shared photo -> the preset's `subject` for it.
SUBJECTS = {"girl-1": "person", "girl-2": "person", "girl-3": "person", "animal-1": "salient"}

SCENE_SIZE = (960, 640)  # width, height
SUBJECT_HEIGHTS = (0.9, 0.6, 1 / 3)  # of the frame height
POSITIONS = ("centre", "left", "right")
PAINTINGS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": data.chelsea,
    "coffee": data.coffee,
    "astronaut": data.astronaut,
}

TARGETS = {
    "photo_iou": 0.95,
    "band_error": 0.05,
    "scene_iou": 0.92,
    "halo": 1.3,
    "psnr": 35.0,
    "clearing": 0.40,
}
BAND = 0.02  # edge band half-width, interior erosion and background dilation: fraction of the longer side


# --------------------------------------------------------------------------- masks and regions


def disc(radius: int) -> np.ndarray:
    """Round structuring element of ``radius`` pixels."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def band_width(shape: tuple[int, ...]) -> int:
    """``BAND`` of the longer side of ``shape``, in pixels (at least 1)."""
    return max(1, round(BAND * max(shape[:2])))


def iou(mask: np.ndarray, reference: np.ndarray) -> float:
    """Intersection over union of ``mask > 0.5`` and ``reference > 0.5``."""
    a, b = mask > 0.5, reference > 0.5
    return float((a & b).sum() / max(int((a | b).sum()), 1))


def edge_band(reference: np.ndarray) -> np.ndarray:
    """Pixels within ``BAND`` of the longer side of the reference's 0.5 contour."""
    inside = (reference > 0.5).astype(np.uint8)
    element = disc(band_width(reference.shape))
    return cv2.dilate(inside, element).astype(bool) & ~cv2.erode(inside, element).astype(bool)


def band_error(mask: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute alpha error in :func:`edge_band` of the reference."""
    band = edge_band(reference)
    return float(np.abs(mask - reference)[band].mean())


@dataclass
class Regions:
    """Where a clip is measured, from its true (or reference) alpha."""

    interior: np.ndarray  # erode(alpha > 0.5, BAND)
    background: np.ndarray  # ~dilate(alpha > 0.5, BAND)
    photo_sharpness: float  # sharpness of the input photo over `background`

    @classmethod
    def of(cls, alpha: np.ndarray, photo: np.ndarray) -> Regions:
        inside = (alpha > 0.5).astype(np.uint8)
        element = disc(band_width(alpha.shape))
        interior = cv2.erode(inside, element).astype(bool)
        background = ~cv2.dilate(inside, element).astype(bool)
        return cls(interior, background, sharpness(photo, background))


# --------------------------------------------------------------------------- image metrics


def luminance(image: np.ndarray) -> np.ndarray:
    """Float32 luminance of a uint8 RGB image."""
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)


def sharpness(image: np.ndarray, region: np.ndarray) -> float:
    """Mean absolute Laplacian (3x3) of the luminance over ``region``."""
    laplacian = cv2.Laplacian(luminance(image), cv2.CV_32F, ksize=3)
    return float(np.abs(laplacian)[region].mean())


def psnr(image: np.ndarray, reference: np.ndarray, region: np.ndarray) -> float:
    """PSNR in dB of ``image`` against ``reference`` over ``region`` (inf when identical)."""
    error = (image.astype(np.float64) - reference.astype(np.float64))[region]
    mse = float((error**2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def in_range_fraction(values: list[float], transition: list[bool]) -> float:
    """Fraction of the transition's frames whose value lies within 20-80% of the values' range."""
    low, high = min(values), max(values)
    lower, upper = low + 0.2 * (high - low), low + 0.8 * (high - low)
    inside = [lower <= v <= upper for v, t in zip(values, transition, strict=True) if t]
    return sum(inside) / max(len(inside), 1)


# --------------------------------------------------------------------------- rendering


def node_of_type(graph: CompiledGraph, type_name: str) -> CompiledNode | None:
    """The first node (in evaluation order) of ``type_name``."""
    return next((graph.nodes[i] for i in graph.order if graph.nodes[i].cls.type_name == type_name), None)


@dataclass
class Stage:
    """One of the preset's image nodes as configured for the first frame, to replay on other images."""

    node: CompiledNode
    params: NodeParams
    inputs: dict[str, Any]  # its other inputs at the first frame (the grain's reference photo, ...)
    ctx: FrameContext

    def __call__(self, image: np.ndarray, **params: Any) -> np.ndarray:
        """The node's output for ``image`` (``params`` override its parameters)."""
        settings = self.params.model_copy(update=params) if params else self.params
        result: np.ndarray = self.node.instance.evaluate(settings, {**self.inputs, "image": image}, self.ctx)[
            "image"
        ]
        return result


def replay(stages: list[Stage], image: np.ndarray) -> np.ndarray:
    """``image`` through ``stages`` in order."""
    for stage in stages:
        image = stage(image)
    return image


@dataclass
class Render:
    """What one in-process render of the preset produced and measured."""

    frames: dict[str, np.ndarray]  # first / middle / last, as the encoder would receive them
    mask: np.ndarray  # the segment node's output
    matte: np.ndarray | None  # the mask the final composite uses
    sharpness: list[float]  # background sharpness per frame / the photo's
    interior_psnr: list[float]  # per frame, against the photo
    transition: list[bool]  # frame time within [clear_start, clear_end]
    blur_radius: float  # of the first frame, in pixels
    seconds: float
    true_plate: np.ndarray | None = None  # the first frame with the plate's fill replaced by the truth
    blur: Stage | None = None  # the background blur, without its holdout mask
    before: list[Stage] = field(default_factory=list)  # after the blur, before the composite (grain)
    after: list[Stage] = field(default_factory=list)  # after the composite (film grain)


@dataclass(frozen=True)
class Settings:
    """Clip length used for every render."""

    fps: float
    duration: float


def preset_path() -> Path:
    """The rack-focus preset's YAML file."""
    path = find_preset(PRESET)
    if path is None:
        raise SystemExit(f"preset {PRESET!r} not found")
    return path


def compile_preset(
    photo: Path, subject: str, settings: Settings, overrides: dict[str, dict[str, Any]] | None = None
) -> tuple[CompiledGraph, dict[str, Any]]:
    """Compile the preset for ``photo``; return the graph and its bound inputs."""
    values: dict[str, Any] = {
        "image": str(photo),
        "output": str(Path(tempfile.gettempdir()) / "focusgraph-quality-unused.mp4"),
        "fps": settings.fps,
        "duration": settings.duration,
        "subject": subject,
    }
    graph = load_graph(preset_path(), values, overrides=overrides)
    return graph, bind_inputs(load_document(preset_path()), values)


def radius_keyframe(graph: CompiledGraph) -> str | None:
    """Id of the node driving the blur radius (the `focus` keyframe)."""
    blur = node_of_type(graph, "core.blur")
    link = blur.links.get("radius") if blur else None
    return link.node if link else None


def image_chain(graph: CompiledGraph, start: Ref | None, stop: CompiledNode | None) -> list[CompiledNode]:
    """Nodes met walking up the ``image`` inputs from ``start`` to ``stop`` (excluded), upstream first.

    Empty when ``stop`` is not on that path.
    """
    chain = []
    while start is not None and stop is not None and start.node != stop.id:
        node = graph.nodes[start.node]
        chain.append(node)
        start = node.inputs.get("image")
    return list(reversed(chain)) if start is not None and stop is not None else []


def stages(
    evaluator: Evaluator, outputs: dict[str, dict[str, Any]], ctx: FrameContext, nodes: list[CompiledNode]
) -> list[Stage]:
    """``nodes`` as stages with their parameters and other inputs of the current frame."""
    result = []
    for node in nodes:
        others = {port: outputs[ref.node][ref.port] for port, ref in node.inputs.items() if port != "image"}
        result.append(Stage(node, evaluator.resolve_params(node), others, ctx))
    return result


def render(
    photo_path: Path,
    photo: np.ndarray,
    subject: str,
    regions: Regions,
    settings: Settings,
    overrides: dict[str, dict[str, Any]] | None = None,
    background: np.ndarray | None = None,
) -> Render:
    """Evaluate every frame of the preset on ``photo_path`` and measure it on the fly.

    With the true ``background`` (a scene's B), :attr:`Render.true_plate` is the first frame
    again with the plate's fill replaced by it (see :func:`with_true_plate`).
    """
    started = time.perf_counter()
    graph, bound = compile_preset(photo_path, subject, settings, overrides)
    evaluator = Evaluator(graph)
    output = graph.outputs[0]
    segment = node_of_type(graph, "core.segment")
    composite = node_of_type(graph, "core.composite")
    blur = node_of_type(graph, "core.blur")
    count = graph.timeline.frame_count
    keep = {"first": 0, "middle": count // 2, "last": count - 1}
    frames: dict[str, np.ndarray] = {}
    curve, interior, transition = [], [], []
    first: dict[str, Any] = {}
    first_outputs: dict[str, dict[str, Any]] = {}
    for index in range(count):
        ctx = graph.timeline.context(index)
        outputs = evaluator.run(ctx)
        frame = evaluator.output_inputs(output)["image"]
        if index == 0:
            first = first_frame_details(evaluator, outputs, ctx, segment, composite, blur)
            first_outputs = {node: dict(values) for node, values in outputs.items()}
        for position, kept in keep.items():
            if kept == index:
                frames[position] = frame.copy()
        curve.append(sharpness(frame, regions.background) / regions.photo_sharpness)
        interior.append(psnr(frame, photo, regions.interior))
        fraction = index / count  # the keyframe node's time in `fraction` units
        transition.append(bound["clear_start"] <= fraction <= bound["clear_end"])
    blur_radius = 0.0
    if first["blur"] is not None:
        params = first["blur"].params
        blur_radius = params.radius * (max(photo.shape[:2]) if params.units == "relative" else 1.0)
    seconds = time.perf_counter() - started
    true_plate = None
    if background is not None:
        true_plate = with_true_plate(graph, first_outputs, graph.timeline.context(0), background)
    return Render(
        frames=frames,
        sharpness=curve,
        interior_psnr=interior,
        transition=transition,
        blur_radius=float(blur_radius),
        seconds=seconds,
        true_plate=true_plate,
        **first,
    )


def first_frame_details(
    evaluator: Evaluator,
    outputs: dict[str, dict[str, Any]],
    ctx: FrameContext,
    segment: CompiledNode | None,
    composite: CompiledNode | None,
    blur: CompiledNode | None,
) -> dict[str, Any]:
    """Masks and the background/finishing stages of the first frame (see :class:`Render`)."""
    graph = evaluator.graph
    if segment is None or composite is None:
        raise SystemExit("the preset has no core.segment or no core.composite node: nothing to measure")
    matte = composite.inputs["mask"]
    blur_stage = None
    if blur is not None:
        blur_stage = stages(evaluator, outputs, ctx, [blur])[0]
        blur_stage.inputs.pop("mask", None)  # the true background has no subject to hold out
    finishing = image_chain(graph, graph.outputs[0].inputs.get("image"), composite)
    return {
        "mask": outputs[segment.id]["mask"].copy(),
        "matte": outputs[matte.node][matte.port].copy(),
        "blur": blur_stage,
        "before": stages(evaluator, outputs, ctx, image_chain(graph, composite.inputs["background"], blur)),
        "after": stages(evaluator, outputs, ctx, finishing),
    }


def linear_clearing(
    photo_path: Path, photo: np.ndarray, subject: str, regions: Regions, settings: Settings
) -> float | None:
    """In-range fraction of the clearing curve with the radius keyframe interpolated linearly."""
    graph, _ = compile_preset(photo_path, subject, settings)
    keyframe = radius_keyframe(graph)
    if keyframe is None:
        return None
    linear = render(photo_path, photo, subject, regions, settings, {keyframe: {"space": "linear"}})
    return in_range_fraction(linear.sharpness, linear.transition)


def with_true_plate(
    graph: CompiledGraph, outputs: dict[str, dict[str, Any]], ctx: FrameContext, background: np.ndarray
) -> np.ndarray | None:
    """The frame ``ctx`` again with the inpaint node's fill replaced by the true ``background``.

    ``outputs`` are every node's outputs at that frame. The plate becomes the true background
    mixed into the photo by the node's own ``mask`` output (how much of each pixel it
    replaced), so only the fill's guess is taken away; every node downstream of it is
    evaluated again, on a fresh instance (the render's own caches stay untouched), with its
    parameters and links at that frame. ``None`` without a ``core.inpaint`` node.
    """
    plate = node_of_type(graph, "core.inpaint")
    if plate is None:
        return None
    results = dict(outputs)
    photo = results[plate.inputs["image"].node][plate.inputs["image"].port]
    weight = results[plate.id]["mask"]
    results[plate.id] = {**results[plate.id], "image": over(background, photo, weight)}
    changed = {plate.id}
    for node_id in graph.order:
        node = graph.nodes[node_id]
        sources = [*node.inputs.values(), *node.links.values()]
        if node.is_output or node_id in changed or not any(ref.node in changed for ref in sources):
            continue
        params = node.params
        if node.links:
            values = {name: getattr(node.params, name) for name in type(node.params).model_fields}
            values.update({name: float(results[r.node][r.port]) for name, r in node.links.items()})
            params = node.cls.Params.model_validate(values)
        inputs = {port: results[ref.node][ref.port] for port, ref in node.inputs.items()}
        results[node_id] = node.cls().evaluate(params, inputs, ctx)
        changed.add(node_id)
    image = graph.outputs[0].inputs["image"]
    frame: np.ndarray = results[image.node][image.port]
    return frame.copy()


def first_frame_with_mask(
    path: Path, subject: str, settings: Settings, alpha: np.ndarray, background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The preset's first frame with the segment node given ``alpha`` (16-bit PNG) instead of its models.

    Also that frame with the true ``background`` as the plate's fill (:func:`with_true_plate`),
    when given.
    """
    graph, _ = compile_preset(path, subject, settings)
    segment = node_of_type(graph, "core.segment")
    if segment is None:
        raise SystemExit("the preset has no core.segment node")
    mask_path = path.with_name(f"{path.stem}-alpha.png")
    cv2.imwrite(str(mask_path), np.round(alpha * 65535).astype(np.uint16))
    graph, _ = compile_preset(path, subject, settings, {segment.id: {"mask": str(mask_path)}})
    evaluator = Evaluator(graph)
    ctx = graph.timeline.context(0)
    outputs = evaluator.run(ctx)
    frame: np.ndarray = evaluator.output_inputs(graph.outputs[0])["image"].copy()
    true_plate = None if background is None else with_true_plate(graph, outputs, ctx, background)
    return frame, true_plate


def fit_region(clip: Render, far: np.ndarray) -> np.ndarray:
    """Where the blur is fitted: the far region, less what the preset's own mask kept sharp.

    A mask that wrongly takes in part of the background (a painting) leaves it sharp;
    fitting there would skew the reference blur. Pixels within the blur radius of the
    preset's mask are left out (unless too few would remain).
    """
    kept = cv2.dilate((clip.mask > 0.02).astype(np.uint8), disc(math.ceil(clip.blur_radius))).astype(bool)
    region = far & ~kept
    return region if region.sum() >= 0.25 * far.sum() else far


def fit_background_blur(clip: Render, background: np.ndarray, far: np.ndarray) -> tuple[float, np.ndarray]:
    """Radius (px) and image of the preset-kind blur of ``background`` closest to the first frame far away.

    The preset's blur node (its first-frame parameters, no holdout) is applied to ``background``
    at radii within 0.5-1.5x the preset's; the closest over :func:`fit_region` wins.
    """
    frame = clip.frames["first"]
    region = fit_region(clip, far)

    def error(radius: float) -> tuple[float, np.ndarray]:
        assert clip.blur is not None
        blurred = clip.blur(background, radius=float(radius), units="px")
        return float(abs_error(frame, blurred)[region].mean()), blurred

    nominal = clip.blur_radius
    candidates = {float(nominal * f): error(nominal * f) for f in np.linspace(0.5, 1.5, 11)}
    best = min(candidates, key=lambda r: candidates[r][0])
    for radius in np.linspace(best - 0.08 * nominal, best + 0.08 * nominal, 5):
        if 0.5 * nominal <= radius <= 1.5 * nominal and float(radius) not in candidates:
            candidates[float(radius)] = error(radius)
    best = min(candidates, key=lambda r: candidates[r][0])
    return best, candidates[best][1]


# --------------------------------------------------------------------------- inputs


def imread(path: Path, flags: int) -> np.ndarray:
    """``cv2.imread`` that fails loudly."""
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def read_rgb(path: Path) -> np.ndarray:
    """A photo as uint8 RGB."""
    return cv2.cvtColor(imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_cutout(name: str) -> np.ndarray:
    """The reference cutout of a shared photo as float32 RGBA, alpha in [0, 1], colour in [0, 255]."""
    bgra = imread(PHOTOS / f"{name}.reference-cutout.png", cv2.IMREAD_UNCHANGED)
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA).astype(np.float32)
    rgba[..., 3] /= 255.0
    return rgba


def reference_alpha(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The reference cutout's alpha, cropped (or zero-padded) to ``shape``."""
    alpha = read_cutout(name)[..., 3]
    result = np.zeros(shape[:2], np.float32)
    height, width = min(shape[0], alpha.shape[0]), min(shape[1], alpha.shape[1])
    result[:height, :width] = alpha[:height, :width]
    return result


# --------------------------------------------------------------------------- composite scenes


@dataclass(frozen=True)
class SceneSpec:
    """One composite scene: which cutout, how tall, where, and in front of which painting."""

    cutout: str
    height: float
    position: str
    painting: str
    overlap: bool
    seed: int

    @property
    def name(self) -> str:
        return f"{self.cutout}-h{round(self.height * 100):02d}-{self.position}-{self.painting}"


@dataclass
class Scene:
    """A built scene with its ground truth."""

    spec: SceneSpec
    image: np.ndarray  # uint8 RGB, alpha * F + (1 - alpha) * B
    alpha: np.ndarray  # float32
    foreground: np.ndarray  # float32 RGB (F)
    background: np.ndarray  # uint8 RGB (B)
    subject_height: float  # fraction of the frame height actually reached
    overlaps: bool  # the subject covers part of the painting


def scene_specs(quick: bool) -> list[SceneSpec]:
    """Every cutout at several sizes and positions; ``quick``: one scene per cutout."""
    specs: list[SceneSpec] = []
    for i, cutout in enumerate(SUBJECTS):
        sizes = [1] if quick else range(len(SUBJECT_HEIGHTS))
        for j in sizes:
            k = (i + j) % 3
            specs.append(
                SceneSpec(
                    cutout=cutout,
                    height=SUBJECT_HEIGHTS[j],
                    position=POSITIONS[k],
                    painting=list(PAINTINGS)[(i + 2 * j) % 3],
                    overlap=(i + j) % 2 == 0,
                    seed=len(specs),
                )
            )
    return specs


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-deviation Gaussian noise smoothed at ``sigma`` pixels."""
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return noise / max(float(noise.std()), 1e-6)


def wall(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A painted plaster wall: smooth colour gradient and mild texture, float32 RGB."""
    tints = np.array([(214, 204, 186), (190, 200, 206), (224, 214, 198), (186, 194, 176), (206, 188, 180)])
    start, end = tints[rng.choice(len(tints), 2, replace=False)].astype(np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (0.65 * x / width + 0.35 * y / height)[..., None]
    colour = start * (1 - t) + end * t
    colour *= (1.05 - 0.12 * y / height)[..., None]  # light from above
    texture = sum(amp * smooth_noise(rng, (height, width), s) for s, amp in ((1.0, 1.5), (4, 2.0), (20, 3.0)))
    return colour + np.asarray(texture)[..., None]


def framed_painting(art: np.ndarray, height: int) -> np.ndarray:
    """``art`` scaled to ``height`` px inside a wooden frame, uint8 RGB."""
    border = max(6, round(0.06 * height))
    inner = height - 2 * border
    art = cv2.resize(art, (round(art.shape[1] * inner / art.shape[0]), inner), interpolation=cv2.INTER_AREA)
    framed = np.empty((height, art.shape[1] + 2 * border, 3), np.uint8)
    framed[:] = (98, 64, 36)
    framed[:3, :] = framed[:, :3] = (138, 98, 60)  # lit outer edge
    framed[border - 3 : -border + 3, border - 3 : -border + 3] = (60, 38, 20)  # shadowed inner lip
    framed[border:-border, border:-border] = art
    return framed


def hang(surface: np.ndarray, framed: np.ndarray, top: int, left: int) -> None:
    """Hang ``framed`` on ``surface`` (float32, in place) with a soft drop shadow."""
    height, width = framed.shape[:2]
    box = np.zeros(surface.shape[:2], np.float32)
    box[top + 10 : top + height + 10, left + 8 : left + width + 8] = 1.0
    shadow = cv2.GaussianBlur(box, (0, 0), 9)
    surface *= (1.0 - 0.35 * shadow)[..., None]
    surface[top : top + height, left : left + width] = framed


def scaled_cutout(name: str, target_height: int, max_width: int) -> tuple[np.ndarray, bool]:
    """The cutout cropped to its subject and scaled (premultiplied) to ``target_height`` rows.

    Returns straight-colour float32 RGBA and whether the subject reaches the photo's bottom edge.
    """
    rgba = read_cutout(name)
    rows, cols = np.nonzero(rgba[..., 3] > 0)
    touches_bottom = bool(rows.max() >= rgba.shape[0] - 2)
    rgba = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = min(target_height / rgba.shape[0], max_width / rgba.shape[1])
    size = (max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale)))
    premultiplied = np.dstack([rgba[..., :3] * rgba[..., 3:], rgba[..., 3]])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(premultiplied, size, interpolation=interpolation)
    alpha = np.clip(resized[..., 3], 0.0, 1.0)
    colour = np.clip(resized[..., :3] / np.maximum(alpha, 1e-3)[..., None], 0, 255)
    colour[alpha < 1e-3] = 0
    return np.dstack([colour, alpha]).astype(np.float32), touches_bottom


def build_scene(spec: SceneSpec) -> Scene:
    """Compose the scene: wall, painting, then the cutout in front."""
    width, height = SCENE_SIZE
    rng = np.random.default_rng(spec.seed)
    cutout, touches_bottom = scaled_cutout(spec.cutout, round(spec.height * height), round(0.95 * width))
    ch, cw = cutout.shape[:2]
    centre = {"left": 0.27, "centre": 0.5, "right": 0.73}[spec.position] * width
    left = int(np.clip(round(centre - cw / 2), 0, width - cw))
    top = height - ch if touches_bottom else height - ch - round(0.04 * height)

    surface = wall(rng, width, height)
    framed = framed_painting(PAINTINGS[spec.painting](), round(0.4 * height))
    fh, fw = framed.shape[:2]
    if spec.overlap:  # behind the subject, shifted to one side so part of it shows
        side = 1 if left + cw / 2 < width / 2 else -1
        frame_left = round(left + cw / 2 + side * 0.15 * width - fw / 2)
        frame_top = round(np.clip(top - 0.1 * height, 0.05 * height, 0.97 * height - fh))
    else:  # on the other side of the wall
        frame_left = round((0.78 if left + cw / 2 < width / 2 else 0.22) * width - fw / 2)
        frame_top = round(0.1 * height)
    frame_left = int(np.clip(frame_left, 12, width - fw - 20))
    hang(surface, framed, frame_top, frame_left)
    surface += rng.normal(0.0, 1.5, surface.shape).astype(np.float32)  # sensor noise
    background = np.clip(surface + 0.5, 0, 255).astype(np.uint8)

    alpha = np.zeros((height, width), np.float32)
    foreground = np.zeros((height, width, 3), np.float32)
    alpha[top : top + ch, left : left + cw] = cutout[..., 3]
    foreground[top : top + ch, left : left + cw] = cutout[..., :3]
    a = alpha[..., None]
    image = np.clip(a * foreground + (1 - a) * background + 0.5, 0, 255).astype(np.uint8)
    covered = alpha[frame_top : frame_top + fh, frame_left : frame_left + fw] > 0.5
    return Scene(spec, image, alpha, foreground, background, ch / height, bool(covered.any()))


# --------------------------------------------------------------------------- contact sheets


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with a dark caption bar above it."""
    bar = np.full((26, tile.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (240, 240, 240), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def mask_overlay(photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo tinted red by the mask (half strength)."""
    red = np.zeros_like(photo)
    red[..., 0] = 255
    return over(red, photo, 0.5 * mask)


def contact_sheet(path: Path, title: str, clip: Render, photo: np.ndarray) -> None:
    """Save first / middle / last frame and the mask overlay as a 2x2 labelled PNG."""
    width = 480
    height = round(photo.shape[0] * width / photo.shape[1])

    def tile(image: np.ndarray, text: str) -> np.ndarray:
        return label(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), text)

    count = len(clip.sharpness)
    tiles = [
        tile(clip.frames["first"], f"first frame (radius {clip.blur_radius:.1f} px)"),
        tile(clip.frames["middle"], f"middle frame ({count // 2 + 1}/{count})"),
        tile(clip.frames["last"], "last frame"),
        tile(mask_overlay(photo, clip.mask), "segment mask (red)"),
    ]
    sheet = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    sheet = label(sheet, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


# --------------------------------------------------------------------------- per-clip evaluation


def clearing_record(clip: Render, linear: float | None) -> dict[str, Any]:
    """Section 3 numbers of one clip."""
    return {
        "in_range_fraction": in_range_fraction(clip.sharpness, clip.transition),
        "linear_easing_in_range_fraction": linear,
        "transition_frames": sum(clip.transition),
        "sharpness": clip.sharpness,
    }


def evaluate_photo(name: str, settings: Settings) -> dict[str, Any]:
    """Sections 1, 3 and 4 on a shared photo."""
    path = PHOTOS / f"{name}.jpg"
    photo = read_rgb(path)
    reference = reference_alpha(name, photo.shape)
    regions = Regions.of(reference, photo)
    clip = render(path, photo, SUBJECTS[name], regions, settings)
    linear = linear_clearing(path, photo, SUBJECTS[name], regions, settings)
    record = {
        "subject": SUBJECTS[name],
        "size": [photo.shape[1], photo.shape[0]],
        "iou": iou(clip.mask, reference),
        "band_error": band_error(clip.mask, reference),
        "matte_band_error": band_error(clip.matte, reference) if clip.matte is not None else None,
        "interior_psnr_min": min(clip.interior_psnr),
        "clearing": clearing_record(clip, linear),
        "render_seconds": clip.seconds,
    }
    sheet = OUT / f"photo-{name}.png"
    title = f"{name} ({SUBJECTS[name]}): IoU {record['iou']:.3f}, band error {record['band_error']:.3f}"
    contact_sheet(sheet, title, clip, photo)
    record["contact_sheet"] = str(sheet.relative_to(ROOT))
    return record


def edge_error(image: np.ndarray, truth: np.ndarray, alpha: np.ndarray) -> float:
    """Mean absolute error (8-bit levels, over RGB) in the soft edge 0.02 < alpha < 0.98."""
    band = (alpha > 0.02) & (alpha < 0.98)
    return float(np.abs(image.astype(np.float32) - truth)[band].mean())


def halo_record(
    clip: Render, scene: Scene, true_mask_frame: np.ndarray, true_mask_plate_frame: np.ndarray | None
) -> dict[str, Any]:
    """First-frame halo and edge colour, with the true-mask, true-plate, naive and oracle references."""
    if clip.blur is None or clip.blur_radius < 0.5:
        return {"halo": None, "note": "the first frame is not blurred"}
    _, far_region = halo_regions(scene.alpha)
    radius, blurred = fit_background_blur(clip, scene.background, far_region)
    assert clip.blur is not None
    renders = {
        "": clip.frames["first"],
        "_true_mask": true_mask_frame,
        "_naive": replay(clip.before + clip.after, clip.blur(scene.image, radius=radius, units="px")),
        "_oracle": replay(clip.after, over(scene.image, replay(clip.before, blurred), scene.alpha)),
    }
    if clip.true_plate is not None:
        renders["_true_plate"] = clip.true_plate
    if true_mask_plate_frame is not None:
        renders["_true_mask_true_plate"] = true_mask_plate_frame
    a = scene.alpha[..., None]
    truth = a * scene.foreground + (1 - a) * blurred.astype(np.float32)
    record: dict[str, Any] = {
        "nominal_radius_px": clip.blur_radius,
        "fitted_radius_px": radius,
        "fit_at_search_bound": not 0.51 * clip.blur_radius < radius < 1.49 * clip.blur_radius,
    }
    for suffix, image in renders.items():
        ring, far = halo_errors(image, blurred, scene.alpha)
        record[f"halo{suffix}"] = ring / max(far, 1e-6)
        record[f"halo_ring_error{suffix}"] = ring
        record[f"halo_far_error{suffix}"] = far
    for suffix, image in renders.items():
        record[f"edge_error{suffix}"] = edge_error(image, truth, scene.alpha)
    return record


def evaluate_scene(spec: SceneSpec, settings: Settings, folder: Path) -> dict[str, Any]:
    """Sections 2, 3 and 4 on one composite scene."""
    scene = build_scene(spec)
    path = folder / f"{spec.name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    subject = SUBJECTS[spec.cutout]
    regions = Regions.of(scene.alpha, scene.image)
    clip = render(path, scene.image, subject, regions, settings, background=scene.background)
    linear = linear_clearing(path, scene.image, subject, regions, settings)
    true_mask_frame, true_mask_plate_frame = first_frame_with_mask(
        path, subject, settings, scene.alpha, scene.background
    )
    record: dict[str, Any] = {
        "subject": subject,
        "subject_height": scene.subject_height,
        "position": spec.position,
        "painting": spec.painting,
        "overlaps_painting": scene.overlaps,
        "iou": iou(clip.mask, scene.alpha),
        **halo_record(clip, scene, true_mask_frame, true_mask_plate_frame),
        "interior_psnr_min": min(clip.interior_psnr),
        "interior_psnr": clip.interior_psnr,
        "background_psnr_last": psnr(clip.frames["last"], scene.image, regions.background),
        "clearing": clearing_record(clip, linear),
        "render_seconds": clip.seconds,
    }
    sheet = OUT / f"scene-{spec.name}.png"
    halo = record["halo"]
    title = f"{spec.name} ({subject}): IoU {record['iou']:.3f}" + (
        f", halo {halo:.2f}" if halo is not None else ""
    )
    contact_sheet(sheet, title, clip, scene.image)
    record["contact_sheet"] = str(sheet.relative_to(ROOT))
    return record


# --------------------------------------------------------------------------- report


@dataclass
class Table:
    """A markdown table printed at the end of its section."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def print(self) -> None:
        widths = [max(len(r[i]) for r in [self.header, *self.rows]) for i in range(len(self.header))]
        for row in [self.header, ["-" * w for w in widths], *self.rows]:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        print()


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for the table; '-' when absent."""
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def verdict(checks: list[bool | None]) -> str:
    """PASS when every applicable check holds."""
    known = [c for c in checks if c is not None]
    return "PASS" if all(known) else "FAIL"


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def print_masks(photos: dict[str, dict[str, Any]]) -> None:
    """Section 1 table."""
    t = TARGETS
    print(f"## 1. Masks on the shared photos (IoU >= {t['photo_iou']}, band error <= {t['band_error']})\n")
    table = Table(["photo", "subject", "IoU", "band err", "matte band err", "result"])
    for name, r in photos.items():
        if "error" in r:
            table.rows.append([name, SUBJECTS[name], "ERROR", r["error"], "", "FAIL"])
            continue
        checks = [at_least(r["iou"], t["photo_iou"]), at_most(r["band_error"], t["band_error"])]
        table.rows.append(
            [
                name,
                r["subject"],
                fmt(r["iou"]) + ("*" if r["warnings"] else ""),
                fmt(r["band_error"]),
                fmt(r["matte_band_error"]),
                verdict(checks),
            ]
        )
    table.print()


def print_scenes(scenes: dict[str, dict[str, Any]]) -> None:
    """Section 2 tables."""
    t = TARGETS
    print(
        f"## 2. Composite scenes (IoU >= {t['scene_iou']}, halo <= {t['halo']}, PSNR >= {t['psnr']:.0f} dB)\n"
    )
    print("References, first frame: true mask = the preset given the true alpha instead of its segmentation;")
    print("true plate = its own mask, the plate's fill replaced by the true background (what is left is")
    print("the mask's share); true mask+plate = both; naive = the whole scene blurred; oracle = the scene")
    print("over the blurred true background through the true alpha. * = the segment node logged a warning")
    print("(e.g. fell back to the salient object).\n")
    table = Table(
        [
            "scene",
            "h",
            "over art",
            "IoU",
            "halo",
            "true mask",
            "true plate",
            "true mask+plate",
            "naive",
            "oracle",
            "r fit/nom px",
            "result",
        ],
    )
    colour = Table(
        ["scene", "interior PSNR min", "bg PSNR last", "edge err", "true mask", "naive", "oracle", "result"]
    )
    for name, r in scenes.items():
        if "error" in r:
            table.rows.append([name, "", "", "ERROR", r["error"], "", "", "", "", "", "", "FAIL"])
            continue
        radius = "-"
        if r.get("halo") is not None:
            bound = " (bound)" if r["fit_at_search_bound"] else ""
            radius = f"{r['fitted_radius_px']:.1f}/{r['nominal_radius_px']:.1f}{bound}"
        table.rows.append(
            [
                name,
                f"{r['subject_height']:.2f}",
                "yes" if r["overlaps_painting"] else "no",
                fmt(r["iou"]) + ("*" if r["warnings"] else ""),
                fmt(r.get("halo"), 2),
                fmt(r.get("halo_true_mask"), 2),
                fmt(r.get("halo_true_plate"), 2),
                fmt(r.get("halo_true_mask_true_plate"), 2),
                fmt(r.get("halo_naive"), 2),
                fmt(r.get("halo_oracle"), 2),
                radius,
                verdict([at_least(r["iou"], t["scene_iou"]), at_most(r.get("halo"), t["halo"])]),
            ]
        )
        checks = [at_least(r["interior_psnr_min"], t["psnr"]), at_least(r["background_psnr_last"], t["psnr"])]
        colour.rows.append(
            [
                name,
                fmt(r["interior_psnr_min"], 1),
                fmt(r["background_psnr_last"], 1),
                fmt(r.get("edge_error"), 2),
                fmt(r.get("edge_error_true_mask"), 2),
                fmt(r.get("edge_error_naive"), 2),
                fmt(r.get("edge_error_oracle"), 2),
                verdict(checks),
            ]
        )
    table.print()
    print("Subject interior (min over frames) and background (last frame) PSNR vs the scene; edge error:")
    print("mean |frame - (alpha F + (1 - alpha) blur(B))| in 8-bit levels where 0.02 < alpha < 0.98.\n")
    colour.print()


def print_clearing(clips: dict[str, dict[str, Any]]) -> None:
    """Section 3 table."""
    print(
        f"## 3. Clearing curve: transition frames with sharpness in 20-80% of its range "
        f"(>= {TARGETS['clearing']}; linear easing for reference)\n"
    )
    table = Table(["clip", "frames", "in range", "linear", "sharpness first -> last", "min..max", "result"])
    for name, r in clips.items():
        if "error" in r:
            continue
        c = r["clearing"]
        curve = c["sharpness"]
        table.rows.append(
            [
                name,
                str(c["transition_frames"]),
                fmt(c["in_range_fraction"], 2),
                fmt(c["linear_easing_in_range_fraction"], 2),
                f"{curve[0]:.2f} -> {curve[-1]:.2f}",
                f"{min(curve):.2f}..{max(curve):.2f}",
                verdict([at_least(c["in_range_fraction"], TARGETS["clearing"])]),
            ]
        )
    table.print()


class Collect(logging.Handler):
    """Keeps the messages focusgraph logs while one clip is evaluated."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def guarded(evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one clip's evaluation, collecting focusgraph's log messages (distinct ones) as ``warnings``.

    A graph error (e.g. a preset being edited) becomes an error row.
    """
    handler = Collect()
    logger = logging.getLogger("focusgraph")
    logger.addHandler(handler)
    try:
        record = evaluate()
    except FocusgraphError as exc:
        record = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        logger.removeHandler(handler)
    record["warnings"] = list(dict.fromkeys(handler.messages))
    return record


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and infinite PSNRs as the string "inf"."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--fps", type=float, default=30.0, help="frames per second (default 30, the preset's)"
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="clip length in seconds (default 5, the preset's)"
    )
    parser.add_argument("--quick", action="store_true", help="one scene per cutout instead of three")
    parser.add_argument("--json", action="store_true", help="also print the JSON report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(args.fps, args.duration)
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"rack-focus quality: {preset_path()}, {settings.duration:g} s at {settings.fps:g} fps\n")

    photos: dict[str, dict[str, Any]] = {}
    if PHOTOS.is_dir():
        for name in SUBJECTS:
            photos[name] = guarded(partial(evaluate_photo, name, settings))
    else:
        print(f"shared photos not found at {PHOTOS}: sections 1-3 skip them and the scenes need them\n")

    scenes: dict[str, dict[str, Any]] = {}
    if PHOTOS.is_dir():
        with tempfile.TemporaryDirectory() as folder:
            for spec in scene_specs(args.quick):
                scenes[spec.name] = guarded(partial(evaluate_scene, spec, settings, Path(folder)))

    if photos:
        print_masks(photos)
    if scenes:
        print_scenes(scenes)
    if photos or scenes:
        print_clearing({**photos, **scenes})
        sheets = [r["contact_sheet"] for r in [*photos.values(), *scenes.values()] if "contact_sheet" in r]
        print(f"## 4. Contact sheets: {len(sheets)} PNGs in {OUT.relative_to(ROOT)}/\n")

    seconds = time.perf_counter() - started
    report = {
        "preset": str(preset_path()),
        "settings": {"fps": settings.fps, "duration": settings.duration, "quick": args.quick},
        "targets": TARGETS,
        "photos": photos,
        "scenes": scenes,
        "seconds": seconds,
    }
    path = OUT / "quality.json"
    text = json.dumps(jsonable(report), indent=2, allow_nan=False)
    path.write_text(text + "\n")
    if args.json:
        print(text)
    print(f"report: {path.relative_to(ROOT)}; total {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
