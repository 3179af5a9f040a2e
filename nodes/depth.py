"""``core.depth``: a depth map of the photo, 0 = near, 1 = far, for depth-driven blur.

Real optics blur by distance; lens-blur tools (After Effects' Camera Lens Blur,
Photoshop's Lens Blur, Blender's Defocus, Resolve) take a depth map. This node makes one:
an ``(H, W)`` float32 mask in ``[0, 1]`` the size of ``image``, ``0`` near and ``1`` far.
It is the same for every frame. Three sources:

``estimate`` (the default): no model, no network, a plausible *layout*, not a measurement.
    The subject (the ``mask`` input, e.g. from ``segment``/``feather``) stands at
    ``subject_depth``, composited through its soft mask so its edge stays soft. Everything
    else is a ground plane seen from eye level, by row only. The subject's feet are the 99th
    percentile of its mask's rows (if that is within 2% of the bottom edge, the frame cuts the
    subject and no floor in front of it is visible); below them the floor comes nearer,
    linearly from ``subject_depth`` at the feet to ``near_depth`` at the bottom; above them it
    recedes from ``background_depth`` (just behind the subject) to ``far_depth`` at the
    ``horizon`` row (default: 10% of the height above the subject's top) and stays there
    above it. The profile is smoothed with a Gaussian in y (sigma 2% of the height), so
    there is no step at the feet. Without a mask (or an empty one) it is a plain vertical
    ramp, ``near_depth`` at the bottom to ``far_depth`` at the top.
    What it gives: the subject on its own plane, the floor in front of it nearer, the
    background behind it farther, farther still towards the top. What it cannot know: the
    real distance of a wall or anything in the background (all of a row is one depth),
    objects nearer than the subject other than the floor (a table in front, a hand
    reaching out), or several subjects at different distances.

``file``: a depth image you supply (``path``): any grey or RGB image Pillow reads, 8- or
    16-bit (16-bit precision is kept), luminance scaled by its full range (0..255 or
    0..65535 -> 0..1, not stretched). ``near`` says which end is near (MiDaS and
    Depth-Anything exports write white = near). A map of another shape is centre-cropped to
    the photo's shape (as ``load`` fits a photo to ``timeline.size``), then resized (area
    filter shrinking, bicubic enlarging, clipped).

``model``: a monocular depth model as ONNX (``model``), run on the CPU with onnxruntime.
    Input: ``(1, 3, S, S)`` float32 RGB, ``S`` = ``model_size`` (or the model's own fixed
    input size when it declares one), ``(rgb / 255 - mean) / std``. Output: ``(1, h, w)``
    or ``(1, 1, h, w)``, by default relative inverse depth (MiDaS/Depth-Anything: larger =
    nearer; ``output_is: depth`` for a model that outputs depth). It is normalised by its
    2nd-98th percentiles to ``[0, 1]`` (flipped for inverse depth, so 0 = near), resized to
    the photo. Flipping inverse depth linearly keeps the map linear in disparity, which is
    what a lens's blur is proportional to. The map is relative, never metric. The session
    is cached per file (path and modification time). The model is your file: nothing is
    downloaded or provisioned.

With ``file`` or ``model`` and a ``mask`` connected, ``subject_depth`` (default: keep the
map) forces the subject to that depth, e.g. to put the focal plane exactly on the person.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from focusgraph.graph.errors import InputImageError, ModelError, NodeExecutionError
from focusgraph.graph.node import FilePath, FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes._imagefile import read_gray
from focusgraph.nodes._units import check_same_size

FloatMap = NDArray[np.float32]

ESTIMATE_SUBJECT_DEPTH = 0.3
"""Depth of the subject in ``estimate`` mode when ``subject_depth`` is not set."""

_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]
_SMOOTH = 0.02  # sigma of the Gaussian in y, as a fraction of the height
_BOTTOM = 0.02  # feet this close to the bottom edge (fraction of the height): cut by the frame
_HORIZON_MARGIN = 0.1  # default horizon: this fraction of the height above the subject's top


def _resize(values: FloatMap, width: int, height: int) -> FloatMap:
    """Resize a float map (area filter shrinking, bicubic enlarging), clipped to ``[0, 1]``."""
    resized: Any = values
    if values.shape != (height, width):
        shrinking = values.shape[0] * values.shape[1] >= width * height
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        resized = cv2.resize(np.ascontiguousarray(values), (width, height), interpolation=interpolation)
    return np.asarray(np.clip(resized, 0.0, 1.0), dtype=np.float32)


def _crop_to_aspect(values: FloatMap, width: int, height: int) -> FloatMap:
    """The largest centred region of ``values`` with the aspect ratio ``width:height``."""
    src_h, src_w = values.shape
    if src_w * height > width * src_h:
        crop_w, crop_h = max(1, min(src_w, round(src_h * width / height))), src_h
    else:
        crop_w, crop_h = src_w, max(1, min(src_h, round(src_w * height / width)))
    x0, y0 = (src_w - crop_w) // 2, (src_h - crop_h) // 2
    return values[y0 : y0 + crop_h, x0 : x0 + crop_w]


def _smooth(profile: NDArray[np.float64], sigma: float) -> NDArray[np.float64]:
    """Gaussian-smooth a 1-D profile, its ends extended (no pull towards 0 at the borders)."""
    radius = max(1, round(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(profile, radius, mode="edge")
    return np.convolve(padded, taps / taps.sum(), mode="valid")


def ground_plane(
    height: int,
    width: int,
    mask: FloatMap | None,
    *,
    subject: float = ESTIMATE_SUBJECT_DEPTH,
    near: float = 0.05,
    background: float = 0.6,
    far: float = 1.0,
    horizon: float | None = None,
) -> FloatMap:
    """The ``estimate`` heuristic (see the module docstring): a depth map of ``height`` x ``width``.

    Parameters
    ----------
    height, width : int
        Size of the map.
    mask : numpy.ndarray, optional
        ``(height, width)`` soft subject mask in ``[0, 1]``; ``None`` or empty: a vertical ramp.
    subject, near, background, far : float
        Depths of the subject, the bottom edge, the background just behind the subject
        and the horizon.
    horizon : float, optional
        Row of the horizon relative to the height (0 = top); default 10% of the height
        above the subject's top.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float32 in ``[0, 1]``.
    """
    rows = np.arange(height, dtype=np.float64)
    if mask is None or not (mask >= 0.5).any():
        profile = far + (near - far) * rows / max(height - 1, 1)
        return np.clip(np.repeat(profile[:, None], width, axis=1), 0.0, 1.0).astype(np.float32)
    ys = np.nonzero(mask >= 0.5)[0]
    feet = float(np.percentile(ys, 99))
    if feet >= (1.0 - _BOTTOM) * (height - 1):  # cut by the frame's bottom: its feet are below it
        feet = float(height)
    top = float(np.percentile(ys, 1))
    line = (top - _HORIZON_MARGIN * height) if horizon is None else horizon * (height - 1)
    line = min(max(line, 0.0), feet - 1.0)
    floor = subject + (near - subject) * (rows - feet) / max(height - 1 - feet, 1.0)
    behind = background + (far - background) * (feet - rows) / max(feet - line, 1.0)
    profile = np.where(rows >= feet, floor, np.where(rows >= line, behind, far))
    profile = _smooth(profile, max(_SMOOTH * height, 0.5))
    base = np.repeat(profile.astype(np.float32)[:, None], width, axis=1)
    alpha = np.clip(mask, 0.0, 1.0).astype(np.float32)
    return np.clip(base * (1.0 - alpha) + np.float32(subject) * alpha, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _session(path: str, mtime_ns: int, size: int) -> Any:
    """An onnxruntime CPU session for ``path``, cached per (path, modification time, size)."""
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(
            f"depth model {path} cannot be loaded by onnxruntime ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); give an .onnx depth model",
            field="params.model",
        ) from None


def _open_model(model: str) -> Any:
    file = Path(model).expanduser()
    try:
        info = file.stat()
    except OSError as exc:
        raise ModelError(
            f"depth model {file} cannot be read ({exc.strerror or exc}); check the path",
            field="params.model",
        ) from None
    if not file.is_file():
        raise ModelError(f"depth model {file} is not a file", field="params.model")
    return _session(str(file), info.st_mtime_ns, info.st_size)


def run_model(image: NDArray[np.uint8], params: Any) -> FloatMap:
    """Run the ONNX depth model on ``image``; return relative depth in ``[0, 1]`` (0 = near)."""
    session = _open_model(params.model)
    declared = session.get_inputs()[0]
    shape = list(declared.shape) if declared.shape is not None else []
    fixed = len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int)
    size_h, size_w = (int(shape[2]), int(shape[3])) if fixed else (params.model_size, params.model_size)
    small = cv2.resize(image, (size_w, size_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    mean, std = np.asarray(params.mean, np.float32), np.asarray(params.std, np.float32)
    tensor = ((small - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    try:
        raw = np.asarray(session.run(None, {declared.name: tensor})[0], dtype=np.float32)
    except Exception as exc:  # onnxruntime's own exception types
        raise NodeExecutionError(
            f"depth model {params.model} failed on a {size_w}x{size_h} input ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check model_size, mean and std",
            field="params.model",
        ) from None
    if not (raw.ndim == 3 and raw.shape[0] == 1) and not (raw.ndim == 4 and raw.shape[:2] == (1, 1)):
        raise NodeExecutionError(
            f"depth model {params.model} returned shape {tuple(raw.shape)}; expected (1, h, w) or "
            "(1, 1, h, w), one relative (inverse) depth per pixel",
            field="params.model",
        )
    values = np.nan_to_num(raw.reshape(raw.shape[-2:]), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(v) for v in np.percentile(values, [2, 98]))
    if high - low <= 1e-12 * max(abs(high), abs(low), 1.0):
        relative = np.full(values.shape, 0.5, np.float32)
    else:
        relative = np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)
    if params.output_is == "inverse-depth":
        relative = 1.0 - relative
    return _resize(relative, image.shape[1], image.shape[0])


class Depth(Node):
    """A depth map of the photo (0 = near, 1 = far): estimated, read from a file, or from a model."""

    type_name = "core.depth"
    version = 1
    persistent = True  # a depth model run is slow (see ``persists``)
    description = (
        "Depth map of the photo, 0 = near, 1 = far. 'estimate' (default, no model): the subject "
        "on its own plane over a ground plane rising from its feet (a plausible layout; it knows "
        "nothing of the background's real distances); 'file': your depth image (8/16-bit); "
        "'model': your ONNX monocular depth model (MiDaS/Depth-Anything convention)."
    )

    class Params(NodeParams):
        source: Literal["estimate", "file", "model"] = Field(
            default="estimate",
            description=(
                "'estimate': subject plane + ground-plane heuristic from the mask (no model); "
                "'file': read `path`; 'model': run the ONNX depth model `model`."
            ),
        )
        path: FilePath | None = Field(
            default=None,
            description=(
                "Depth image for source 'file': grey or RGB, 8- or 16-bit, any size (centre-cropped "
                "to the photo's shape and resized); luminance by its full range."
            ),
        )
        near: Literal["black", "white"] = Field(
            default="black",
            description="Which end of the depth image is near (MiDaS/Depth-Anything exports: white).",
        )
        model: FilePath | None = Field(
            default=None,
            description=(
                "ONNX depth model for source 'model': input (1, 3, S, S) float32 RGB normalised "
                "with mean/std, output (1, h, w) or (1, 1, h, w). Your file: never downloaded."
            ),
        )
        model_size: int = Field(
            default=384,
            ge=32,
            le=2048,
            multiple_of=32,
            description="Side S of the model's square input (ignored if the model declares a fixed one).",
        )
        mean: list[float] = Field(
            default=_IMAGENET_MEAN,
            min_length=3,
            max_length=3,
            description="Per-channel mean subtracted from RGB in 0..1 (ImageNet's by default).",
        )
        std: list[float] = Field(
            default=_IMAGENET_STD,
            min_length=3,
            max_length=3,
            description="Per-channel standard deviation RGB is divided by (ImageNet's by default).",
        )
        output_is: Literal["inverse-depth", "depth"] = Field(
            default="inverse-depth",
            description="What the model outputs: 'inverse-depth' (larger = nearer, MiDaS) or 'depth'.",
        )
        subject_depth: float | None = Field(
            default=None,
            ge=0,
            le=1,
            description=(
                f"Depth of the subject (the `mask` input). 'estimate': default {ESTIMATE_SUBJECT_DEPTH}; "
                "'file'/'model': default keeps the map, a value forces the subject to it."
            ),
        )
        near_depth: float = Field(
            default=0.05, ge=0, le=1, description="'estimate': depth of the bottom edge (the nearest floor)."
        )
        background_depth: float = Field(
            default=0.6,
            ge=0,
            le=1,
            description="'estimate': depth of the background behind the subject.",
        )
        far_depth: float = Field(
            default=1.0, ge=0, le=1, description="'estimate': depth at and above the horizon."
        )
        horizon: float | None = Field(
            default=None,
            ge=0,
            le=1,
            description=(
                "'estimate': row of the horizon, relative to the height (0 = top); default 10% of "
                "the height above the subject's top (clamped to the frame)."
            ),
        )

        @model_validator(mode="after")
        def _check_source(self) -> Depth.Params:
            if self.source == "file" and self.path is None:
                raise ValueError("source 'file' needs `path`: the depth image to read")
            if self.source == "model" and self.model is None:
                raise ValueError("source 'model' needs `model`: the .onnx depth model to run")
            if self.source != "file" and self.path is not None:
                raise ValueError(f"`path` is read only with source 'file' (source is {self.source!r})")
            if self.source != "model" and self.model is not None:
                raise ValueError(f"`model` is run only with source 'model' (source is {self.source!r})")
            if any(s <= 0 for s in self.std):
                raise ValueError("every `std` value must be positive")
            return self

    inputs = {
        "image": Port(PortType.IMAGE, "The photo: gives the size; the model's input."),
        "mask": Port(PortType.MASK, "The subject (from segment/feather), 1 = subject.", optional=True),
    }
    outputs = {"depth": Port(PortType.MASK, "Depth, (H, W) float32: 0 = near, 1 = far.")}
    varies_per_frame = False

    def persists(self, params: Any) -> bool:
        """Only a model's depth is worth keeping: an estimate or a file is quicker to redo."""
        return bool(params.source == "model")

    def input_files(self, params: Any) -> list[Path]:
        """The depth image or the model file this node reads."""
        if params.source == "file":
            return [Path(params.path).expanduser()]
        if params.source == "model":
            return [Path(params.model).expanduser()]
        return []

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        """Compute the depth map (the same for every frame)."""
        image = np.ascontiguousarray(inputs["image"], dtype=np.uint8)
        height, width = image.shape[:2]
        mask: FloatMap | None = inputs.get("mask")
        if mask is not None:
            check_same_size("image", image, "mask", mask)
            mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
        if params.source == "estimate":
            subject = ESTIMATE_SUBJECT_DEPTH if params.subject_depth is None else params.subject_depth
            depth = ground_plane(
                height,
                width,
                mask,
                subject=subject,
                near=params.near_depth,
                background=params.background_depth,
                far=params.far_depth,
                horizon=params.horizon,
            )
            return {"depth": depth}
        if params.source == "file":
            try:
                user = read_gray(Path(params.path).expanduser(), prefer_alpha=False)
            except InputImageError as exc:
                exc.field = exc.field or "params.path"
                raise
            depth = _resize(_crop_to_aspect(user, width, height), width, height)
            if params.near == "white":
                depth = (1.0 - depth).astype(np.float32)
        else:
            depth = run_model(image, params)
        if mask is not None and params.subject_depth is not None:
            depth = depth * (1.0 - mask) + np.float32(params.subject_depth) * mask
        return {"depth": np.clip(depth, 0.0, 1.0).astype(np.float32)}
