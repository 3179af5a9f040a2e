"""``core.blur``: lens (bokeh), Gaussian, motion, zoom or spin blur; animatable radius; depth of field.

``lens`` convolves with the lens's aperture in linear light: an anti-aliased disc, or
a polygon of ``blades`` straight blades (rotated by ``rotation``). Highlights near
white are boosted before the blur (a clipped highlight was brighter than white), so
bright points open into luminous bokeh discs of the aperture's shape, as through a
real lens. ``gaussian`` (sigma = radius / 2) stays available for a soft smudge.
Radii above 6 px are computed at reduced resolution (the result is smooth, so little
is lost: over 50 dB PSNR against the full-resolution blur at 1080p), which keeps a
1080p frame at 15-40 ms; a bokeh disc's rim then spans about a sixth of its radius.

``precision`` (``lens`` and ``gaussian``): ``fast`` (the default) blurs an unchanging
image (the very same array every frame, as the scheduler passes a time-invariant input,
e.g. a rack focus's plate) with an animated radius by blending two cached blur levels
(uint8 sRGB, computed once each, at radii of a fixed ladder; at most four are kept, each
one image) around the frame's radius, so most frames cost one uint8 blend (2-4 ms at
1080p). See :mod:`focusgraph.nodes._levels`. A render with a node store keeps each
level there (:func:`kept_level`; a level depends on the image and the lens settings,
not on the keyframes), so a re-render of the same plate reads them (measured at 1080p,
a rack focus: 0.3 instead of 1.7 s of CPU for the background). Lens levels of
4.5-12.5 px (kernels of 13 px and wider, where OpenCV would transform the whole image
anew for each) are computed at full resolution through the image's spectrum, computed
once per render: about 30 ms a level at 1080p instead of 60-170 ms, and exact. Measured against
``exact`` over dense sweeps of radii 0.25-60 px (every ladder interval's midpoint included; 1080p and 1280 px
upscales of the shared photos, uniform random noise, a noisy synthetic image), the worst
PSNR was 47.6 dB for ``lens`` (with highlights; random noise near 13 px) and 51.7 dB
for ``gaussian``: within 45 dB everywhere. A first call (a still) blurs directly, as
before. ``exact`` blurs every frame at full resolution with the exact kernel: the
reference (slow: 0.1-0.4 s per 1080p frame for large lens radii). With a ``mask`` the
levels hold the normalised convolution; ``depth`` and the other kinds ignore the levels
(``exact`` still lifts the reduced resolution of the depth slices' lens/gaussian blurs).

``motion`` streaks the image along a line at ``angle`` degrees (counter-clockwise from
horizontal); ``radius`` is half the streak's length, so a keyframe drives it like any
radius. ``zoom`` streaks away from ``center`` and ``spin`` along circles around it; their
``radius`` is half the streak's length at the corner farthest from the centre, and the
streaks shrink linearly to nothing at the centre, which stays sharp. These three work in
linear light with the highlight boost too (a clipped highlight streaks brightly), at full
resolution (see :mod:`focusgraph.nodes._kernels` for how, and what it costs).

With a ``mask`` connected, masked pixels (e.g. the subject) are held out of the blur:
each output pixel averages only the unmasked pixels around it (normalised
convolution), so the subject's colours never smear into the background as a halo.

With a ``depth`` map connected (0 = near, 1 = far) the blur is a depth of field: a pixel
at depth ``d`` is blurred by ``|d - focus| * aperture`` (in ``units``), in front of the
focal plane as behind it, and ``radius`` is ignored. The image is cut into ``slices``
depth layers, each blurred with its own radius and composited far to near, so a sharp
near edge does not bleed into the blurred background behind it and a blurred near
object spreads over what is behind it (see :mod:`focusgraph.nodes._layered`). The slices
depend only on the image and the depth map and are built once per render; a frame with
another ``focus`` or ``aperture`` (a focus pull) costs only the blurs and the composite
(measured 0.3-0.6 s per 1080p frame for 8 slices on a busy two-core machine; building
the slices once: 2-3 s). ``depth`` and ``mask`` cannot be combined (a
``GraphValidationError`` on ``inputs.mask``); every ``kind`` works with ``depth``.
``noise_removed`` is then the mean over the slices weighted by their share of the image.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from focusgraph.graph.errors import GraphValidationError, Problem
from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType, animatable
from focusgraph.graph.store import NodeStore, array_key, content_digest
from focusgraph.nodes import _layered, _levels
from focusgraph.nodes._kernels import motion_blur, motion_kernel, radial_blur, radial_noise_kept
from focusgraph.nodes._memo import last_for
from focusgraph.nodes._units import UNITS_HELP, Units, check_same_size, to_pixels

# Work at a scale where the kernel radius is about this many pixels: measured at
# 1080p, a disc blur finished there is within 50 dB PSNR of the full-resolution one
# (4 px: 45 dB and softer bokeh rims; 12 px: 4x slower at radii of 6-12 px).
_LENS_WORK_RADIUS = 6.0
# Blur levels (computed once per rung, then blended every frame) afford a larger working
# radius: 4 px more margin against the exact blur (noise at 6.5 px: 45 -> 50 dB).
_LEVEL_WORK_RADIUS = 8.0
_GAUSS_WORK_SIGMA = 4.0
_IDENTITY_RADIUS = 0.25
# How far (in radii) a lens, gaussian (4 sigma) or motion blur spreads a pixel, with a
# reduced-size lens blur's softer rim and the upsampling's extra pixel.
_REACH = 2.0

_SRGB_TO_LINEAR = np.array(
    [((i / 255) / 12.92 if i <= 10 else ((i / 255 + 0.055) / 1.055) ** 2.4) for i in range(256)],
    dtype=np.float32,
)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB to float32 linear light in [0, 1]."""
    return np.asarray(cv2.LUT(image, _SRGB_TO_LINEAR))


def _encode_srgb(linear: np.ndarray) -> np.ndarray:
    clipped = np.clip(linear, 0.0, 1.0)
    encoded = np.where(clipped <= 0.0031308, clipped * 12.92, 1.055 * np.power(clipped, 1 / 2.4) - 0.055)
    return np.clip(encoded * 255.0 + 0.5, 0, 255).astype(np.uint8)


def disc_kernel(radius: float) -> np.ndarray:
    """Normalised disc of ``radius`` pixels with a one-pixel anti-aliased rim."""
    extent = int(np.ceil(radius + 0.5))
    y, x = np.mgrid[-extent : extent + 1, -extent : extent + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0).astype(np.float32)
    return kernel / kernel.sum()


_SUPERSAMPLE = 8


def aperture_kernel(radius: float, blades: int = 0, rotation: float = 0.0) -> np.ndarray:
    """Normalised aperture of ``radius`` pixels: a disc, or a regular polygon of ``blades`` sides.

    The polygon (circumradius ``radius``, a vertex at the top turned by ``rotation``
    degrees clockwise) is rasterised at 8x and area-averaged, so its edges are
    anti-aliased like the disc's.
    """
    if blades == 0 or radius < 1.0:
        return disc_kernel(radius)
    extent = int(np.ceil(radius + 0.5))
    size = 2 * extent + 1
    angles = np.deg2rad(rotation - 90.0) + 2 * np.pi * np.arange(blades) / blades
    centre = (extent + 0.5) * _SUPERSAMPLE - 0.5  # of the kernel's middle pixel, in canvas pixels
    corners = np.stack([np.cos(angles), np.sin(angles)], axis=-1) * radius * _SUPERSAMPLE + centre
    canvas = np.zeros((size * _SUPERSAMPLE, size * _SUPERSAMPLE), np.float32)
    cv2.fillPoly(canvas, [np.round(corners * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_8, shift=4)
    kernel = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return kernel / kernel.sum()


@functools.lru_cache(maxsize=64)
def noise_kept(kind: str, radius: float, blades: int = 0, rotation: float = 0.0) -> float:
    """Standard deviation of white noise after the blur, relative to before: ``sqrt(sum(k**2))``.

    Exact from the kernel up to 16 px; beyond, from the aperture's area (a flat kernel
    of area A keeps ``1 / sqrt(A)``), which the anti-aliased rim changes by under 1%.
    """
    if kind == "gaussian":
        sigma = radius / 2
        if sigma > 16.0:
            return float(1.0 / (2.0 * np.sqrt(np.pi) * sigma))  # continuous limit, within 0.1%
        taps = cv2.getGaussianKernel(2 * int(np.ceil(4 * sigma)) + 1, sigma)
        return float(np.sum(taps**2))  # separable: sum(k2d**2) = sum(taps**2) ** 2
    if radius <= 16.0:
        return float(np.sqrt(np.sum(aperture_kernel(radius, blades, rotation) ** 2)))
    area = np.pi * radius**2 if blades == 0 else 0.5 * blades * radius**2 * np.sin(2 * np.pi / blades)
    return float(1.0 / np.sqrt(area))


class HighlightCurve:
    """Expands near-white linear values before a lens blur and compresses them after.

    A photo clips its highlights at white; a lens spreads their real, larger energy into
    bright discs. Values above ``threshold`` (an sRGB fraction) are brightened, up to
    ``1 + gain`` times at white, before blurring; afterwards the inverse curve maps the
    result back, so an unspread highlight (radius 0, or a large bright area) comes back
    unchanged, while a highlight spread into a disc keeps its extra light.
    """

    _STEPS = 65536  # the 16-bit index of :meth:`compress_to_srgb`'s table

    def __init__(self, gain: float, threshold: float) -> None:
        self.gain = gain
        knee = float(_SRGB_TO_LINEAR[round(threshold * 255)])
        linear = np.linspace(0.0, 1.0, 4097)
        boosted = linear * (1.0 + gain * np.clip((linear - knee) / max(1.0 - knee, 1e-6), 0.0, 1.0))
        self._forward = np.interp(_SRGB_TO_LINEAR, linear, boosted).astype(np.float32)
        # One 16-bit table from boosted linear light straight to sRGB levels.
        levels = np.linspace(0.0, 1.0 + gain, self._STEPS)
        self._encode = _encode_srgb(np.interp(levels, boosted, linear))

    def expand(self, image: np.ndarray) -> np.ndarray:
        """uint8 sRGB to float32 linear light with boosted highlights."""
        return np.asarray(cv2.LUT(image, self._forward))  # twice numpy's fancy indexing at 4K

    def compress_to_srgb(self, boosted: np.ndarray) -> np.ndarray:
        """Blurred boosted linear light back to uint8 sRGB."""
        scale = (self._STEPS - 1) / (1.0 + self.gain)
        boosted = np.ascontiguousarray(boosted, np.float32)
        # Scaled, rounded and saturated to the table's 16-bit index in one OpenCV pass;
        # then looked up as a 256 x 256 table by the index's two bytes (column: the low
        # byte, row: the high one) with cv2.remap, three times faster than numpy's take.
        index = cv2.addWeighted(boosted, scale, boosted, 0.0, 0.0, dtype=cv2.CV_16U)
        rows = boosted.shape[0] if boosted.ndim else 1
        pairs = index.reshape(rows, -1).view(np.uint8).reshape(rows, -1, 2).astype(np.int16)
        table = self._encode.reshape(256, 256)
        # (opencv-python 4's stubs lack map2=None, which a two-channel int16 map1 takes; 5's have it)
        looked_up = cv2.remap(table, pairs, None, cv2.INTER_NEAREST)  # type: ignore[call-overload, unused-ignore]
        return np.asarray(looked_up).reshape(boosted.shape)


@functools.lru_cache(maxsize=8)
def highlight_curve(gain: float, threshold: float) -> HighlightCurve:
    """The (cached) :class:`HighlightCurve` for ``gain`` and ``threshold``."""
    return HighlightCurve(gain, threshold)


def blur_reduced(
    values: np.ndarray,
    kind: str,
    radius: float,
    blades: int = 0,
    rotation: float = 0.0,
    *,
    lens_work: float | None = _LENS_WORK_RADIUS,
    reused: bool = False,
) -> np.ndarray:
    """Blur a float32 (H, W[, C]) array by ``radius`` pixels at a reduced working size.

    The result is returned at the working size (a blurred image is smooth, so it can be
    finished there and upsampled afterwards); the working size keeps the kernel radius
    near ``lens_work`` (or sigma near ``_GAUSS_WORK_SIGMA``) pixels. ``lens_work=None``
    blurs at full resolution (``precision: exact``), both kinds. ``reused`` says the
    same ``values`` array is blurred at many radii (blur levels): a `lens` kernel of
    ``_SPECTRAL_RADII`` is then applied at full resolution through the values' cached
    spectrum (:func:`correlate_spectral`), faster than a per-call FFT and exact.
    """
    if reused and kind == "lens" and _SPECTRAL_RADII[0] < radius <= _SPECTRAL_RADII[1]:
        kernel = aperture_kernel(radius, blades, rotation)[::-1, ::-1]
        return correlate_spectral(values, kernel)
    if lens_work is None:
        scale = 1.0
    else:
        work = lens_work if kind == "lens" else 2 * _GAUSS_WORK_SIGMA
        scale = min(1.0, work / radius)
    small = values
    if scale < 1.0:
        size = (max(1, round(values.shape[1] * scale)), max(1, round(values.shape[0] * scale)))
        small = cv2.resize(values, size, interpolation=cv2.INTER_AREA)
    scaled_radius = radius * small.shape[1] / values.shape[1]
    if kind == "lens":
        # filter2D correlates: the kernel turned 180 degrees makes a point light take the
        # aperture's own orientation (a triangle with its vertex up stays vertex up).
        kernel = aperture_kernel(scaled_radius, blades, rotation)[::-1, ::-1]
        return cv2.filter2D(small, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return cv2.GaussianBlur(small, (0, 0), scaled_radius / 2, borderType=cv2.BORDER_REFLECT)


# Lens radii whose full-resolution kernel is 13 px wide or more, where cv2.filter2D
# switches to a fresh FFT of the whole image per call (measured at 1080p: 60-120 ms),
# up to the radius beyond which a level is cheaper at reduced size (32-38 ms either way).
_SPECTRAL_RADII = (4.5, 12.5)
_SPECTRAL_PAD = 14  # reflected border (px): more than the largest kernel's reach


@last_for
def _channel_spectra(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The DFT (CCS-packed) of each channel of ``values``, reflect-padded and sized for speed.

    Beyond the :data:`_SPECTRAL_PAD` pixels that a kernel reaches, the reflection goes on
    to the transform's size: :func:`correlate_spectral`'s output never reads there, and
    one channel at a time, transformed in place, holds the least memory.
    """
    pad = _SPECTRAL_PAD
    height = cv2.getOptimalDFTSize(values.shape[0] + 2 * pad)
    width = cv2.getOptimalDFTSize(values.shape[1] + 2 * pad)
    spectra = []
    for channel in range(values.shape[2] if values.ndim == 3 else 1):
        # (cv2.extractChannel, not cv2.split: split is 8x slower on a large 3-channel float image)
        plane = cv2.extractChannel(values, channel) if values.ndim == 3 else values
        bottom, right = height - plane.shape[0] - pad, width - plane.shape[1] - pad
        padded = cv2.copyMakeBorder(plane, pad, bottom, pad, right, cv2.BORDER_REFLECT)
        spectra.append(cv2.dft(padded, dst=padded))
    return tuple(spectra)


def correlate_spectral(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.filter2D(values, -1, kernel, borderType=BORDER_REFLECT)`` through cached spectra.

    The channels' spectra are computed once per ``values`` array (by identity), so
    blurring the same image at many radii costs one kernel transform, a product and an
    inverse transform per channel. Equal to filter2D within float rounding (1e-6).
    """
    spectra = _channel_spectra(values)
    kernel_height, kernel_width = kernel.shape
    if max(kernel_height, kernel_width) // 2 > _SPECTRAL_PAD:
        return cv2.filter2D(values, -1, kernel, borderType=cv2.BORDER_REFLECT)
    # The kernel at the origin: output ``i`` of the product's inverse is the correlation
    # centred on ``i + centre``, so the image's rows and columns start ``centre`` earlier
    # (reading only the reflected border, never wrapping around).
    placed = np.zeros(spectra[0].shape, np.float32)
    placed[:kernel_height, :kernel_width] = kernel
    transformed = cv2.dft(placed, nonzeroRows=kernel_height)  # the zero rows' transforms are skipped
    height, width = values.shape[:2]
    top = _SPECTRAL_PAD - kernel_height // 2
    left = _SPECTRAL_PAD - kernel_width // 2
    planes = []
    for spectrum in spectra:
        product = cv2.mulSpectrums(spectrum, transformed, 0, conjB=True)
        result = cv2.idft(product, dst=product, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
        planes.append(result[top : top + height, left : left + width])
    if values.ndim == 2:
        return np.ascontiguousarray(planes[0])
    return np.asarray(cv2.merge(planes))  # one interleaving pass (writing each channel strided is 2x slower)


class Blur(Node):
    """Blur an image, optionally holding a masked region (the subject) out of it."""

    type_name = "core.blur"
    description = (
        "Lens (bokeh), gaussian, motion, zoom or spin blur; animatable radius; optional holdout mask "
        "(no halo) or depth map (depth of field with an animatable focus)."
    )

    class Params(NodeParams):
        kind: Literal["gaussian", "lens", "motion", "zoom", "spin"] = Field(
            default="lens",
            description="`lens`: disc or polygon aperture in linear light; `gaussian`: sigma = radius/2; "
            "`motion`: a straight streak at `angle`; `zoom`: streaks away from `center`; "
            "`spin`: arcs around `center`.",
        )
        radius: animatable(ge=0, le=2000) = Field(  # type: ignore[valid-type]
            default=0.02,
            description="Blur radius (animatable); 0 leaves the image untouched. `motion`: half the "
            "streak's length; `zoom`/`spin`: half the streak's length at the corner farthest from "
            "`center`. Ignored when `depth` is connected (`aperture` sets the radii).",
        )
        units: Units = Field(default="relative", description=UNITS_HELP)
        blades: int = Field(
            default=0, ge=0, le=16, description="`lens`: aperture blades (0 = round, else 3-16 sides)."
        )
        rotation: float = Field(
            default=0.0, ge=-360, le=360, description="`lens`: turn of the polygonal aperture, degrees."
        )
        highlights: float = Field(
            default=2.0,
            ge=0,
            le=20,
            description="`lens`: extra brightness of white highlights before blurring (0 = none).",
        )
        highlight_threshold: float = Field(
            default=0.9, ge=0.5, lt=1, description="`lens`: sRGB level (0-1) where highlight boost starts."
        )
        angle: float = Field(
            default=0.0,
            ge=-360,
            le=360,
            description="`motion`: direction of the streak, degrees counter-clockwise from horizontal.",
        )
        center: list[float] = Field(
            default_factory=lambda: [0.5, 0.5],
            description="`zoom`/`spin`: centre [x, y] of the streaks, relative (0..1, origin top-left); "
            "it stays sharp.",
        )
        focus: animatable(ge=0, le=1) = Field(  # type: ignore[valid-type]
            default=0.5,
            description="With `depth`: the depth in focus (0 = near, 1 = far; animatable for a focus pull).",
        )
        aperture: animatable(ge=0, le=2000) = Field(  # type: ignore[valid-type]
            default=0.0,
            description="With `depth`: blur radius per unit of depth away from `focus`, in `units` "
            "(relative: radius = |depth - focus| * aperture * longer side); animatable.",
        )
        precision: Literal["fast", "exact"] = Field(
            default="fast",
            description="`fast`: an animated `lens`/`gaussian` radius on an unchanging image blends cached "
            "blurs at a ladder of radii, large radii are blurred at reduced size (within 45 dB PSNR of "
            "`exact`); `exact`: every frame blurred at full resolution with the exact kernel (a reference).",
        )
        slices: int = Field(
            default=8,
            ge=2,
            le=32,
            description="With `depth`: depth slices blurred separately; adjacent slices' radii differ "
            "by aperture * depth range / slices.",
        )

        @field_validator("blades")
        @classmethod
        def _polygon_or_round(cls, blades: int) -> int:
            if blades in (1, 2):
                raise ValueError("must be 0 (round) or between 3 and 16")
            return blades

        @field_validator("center")
        @classmethod
        def _relative_point(cls, center: list[float]) -> list[float]:
            if len(center) != 2 or any(not 0.0 <= v <= 1.0 for v in center):
                raise ValueError("must be a point [x, y] with both coordinates within 0..1")
            return center

    inputs = {
        "image": Port(PortType.IMAGE, "Image to blur."),
        "mask": Port(PortType.MASK, "Pixels to hold out of the blur (1 = held out).", optional=True),
        "depth": Port(
            PortType.MASK,
            "Depth map (0 = near, 1 = far): each pixel is blurred by |depth - focus| * aperture, in "
            "layers composited far to near; not with `mask`.",
            optional=True,
        ),
    }
    outputs = {
        "image": Port(PortType.IMAGE, "The blurred image."),
        "noise_removed": Port(
            PortType.SCALAR,
            "Share of the image's own (pixel-level) noise the blur removed, 0-1: link a grain "
            "amount to it to put back exactly what was lost.",
        ),
    }

    def __init__(self) -> None:
        self.levels = _levels.Levels()
        """Blur levels of the image last blurred (see :mod:`focusgraph.nodes._levels`)."""

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        image: np.ndarray = inputs["image"]
        holdout: np.ndarray | None = inputs.get("mask")
        depth: np.ndarray | None = inputs.get("depth")
        if depth is not None:
            if holdout is not None:
                message = "cannot be combined with `depth` (the depth layers already keep near colours out)"
                raise GraphValidationError([Problem(None, "inputs.mask", message)])
            check_same_size("image", image, "depth", depth)
            return self._depth_of_field(params, image, depth)
        radius = to_pixels(params.radius, params.units, image)
        if radius < _IDENTITY_RADIUS:
            return {"image": image, "noise_removed": 0.0}
        if holdout is not None:
            check_same_size("image", image, "mask", holdout)
        removed = float(np.sqrt(1.0 - _noise_kept(params, radius, image.shape) ** 2))
        if params.precision == "exact" or params.kind not in ("lens", "gaussian"):
            exact = params.precision == "exact"
            return {"image": blur_direct(image, holdout, params, radius, exact), "noise_removed": removed}
        if params.kind == "lens" and holdout is None and radius <= 0.5:
            return {"image": image, "noise_removed": removed}  # a single-pixel aperture: no blur
        # An unchanging image (the very same array as last time: a time-invariant input)
        # is blurred by blending cached levels (see :mod:`focusgraph.nodes._levels`).
        sources = (image,) if holdout is None else (image, holdout)
        settings = (
            params.kind,
            params.highlights,
            params.highlight_threshold,
            params.blades,
            params.rotation,
        )

        def compute(rung: float) -> np.ndarray:
            if ctx.store is None:
                return blur_level(image, holdout, params, rung)
            return kept_level(ctx.store, image, holdout, params, rung)

        def direct(at: float, first: bool) -> np.ndarray:
            # The first call is blurred as a still always was; a frame of a fast sweep as a level.
            work = _LENS_WORK_RADIUS if first else _LEVEL_WORK_RADIUS
            return blur_direct(image, holdout, params, at, lens_work=work, reused=not first)

        blurred = self.levels.blur(sources, settings, radius, compute, direct)
        return {"image": blurred, "noise_removed": removed}

    def _depth_of_field(self, params: Any, image: np.ndarray, depth: np.ndarray) -> dict[str, Any]:
        """Layered blur: each depth slice blurred by ``|depth - focus| * aperture``, far to near."""
        aperture = to_pixels(params.aperture, params.units, image)
        gain = params.highlights if params.kind != "gaussian" else 0.0
        values = _working_values(image, params.kind, gain, params.highlight_threshold)
        stack = _layered.layers(values, depth, params.slices)
        radii = [abs(layer.depth - params.focus) * aperture for layer in stack]
        if max(radii) < _IDENTITY_RADIUS:
            return {"image": image, "noise_removed": 0.0}

        def blur_layer(rgba: np.ndarray, radius: float) -> np.ndarray:
            return rgba if radius < _IDENTITY_RADIUS else _blur(rgba, params, radius, exact)

        exact = params.precision == "exact"

        reach = None if params.kind in ("zoom", "spin") else _REACH
        colour = _layered.composite(stack, radii, blur_layer, reach)
        removed = sum(
            layer.share
            * (0.0 if r < _IDENTITY_RADIUS else np.sqrt(1.0 - _noise_kept(params, r, image.shape) ** 2))
            for layer, r in zip(stack, radii, strict=True)
        )
        return {"image": _encode(colour, params, gain, image.shape), "noise_removed": float(removed)}


def blur_direct(
    image: np.ndarray,
    holdout: np.ndarray | None,
    params: Any,
    radius: float,
    exact: bool = False,
    lens_work: float = _LENS_WORK_RADIUS,
    reused: bool = False,
) -> np.ndarray:
    """``image`` blurred by ``radius`` px as uint8 sRGB, without levels.

    Parameters
    ----------
    image : ndarray
        uint8 (H, W, 3) sRGB.
    holdout : ndarray or None
        (H, W) float mask of pixels held out of the blur (normalised convolution).
    params : Blur.Params
        The node's parameters (kind, aperture, highlights).
    radius : float
        Blur radius in pixels.
    exact : bool
        Full resolution and the exact kernel (else `lens` and `gaussian` work at a reduced size).
    lens_work : float
        `lens`: kernel radius (px) at the reduced working size.
    reused : bool
        The same image is blurred at many radii (see :func:`blur_reduced`).
    """
    gain = params.highlights if params.kind != "gaussian" else 0.0
    if holdout is None:
        values = _working_values(image, params.kind, gain, params.highlight_threshold)
    else:
        values = _weighted_values(image, holdout, params.kind, gain, params.highlight_threshold)
    blurred = _blur(values, params, radius, exact, lens_work, reused)
    if holdout is not None:
        blurred = blurred[..., :3] / blurred[..., 3:]
    return _encode(blurred, params, gain, image.shape)


def blur_level(image: np.ndarray, holdout: np.ndarray | None, params: Any, rung: float) -> np.ndarray:
    """One blur level: ``image`` blurred by the ladder's ``rung`` px (uint8 sRGB, the image's size).

    Computed with a larger working radius than a direct blur (a level is computed once
    and blended into many frames). A round `lens` aperture of up to 0.5 px is a single
    pixel: the image itself.
    """
    if params.kind == "lens" and holdout is None and rung <= 0.5:
        return image
    return blur_direct(image, holdout, params, rung, lens_work=_LEVEL_WORK_RADIUS, reused=True)


def kept_level(
    store: NodeStore, image: np.ndarray, holdout: np.ndarray | None, params: Any, rung: float
) -> np.ndarray:
    """:func:`blur_level` through the node store: read when a render kept it, else computed and kept.

    A level depends only on the (time-invariant) image and holdout, the lens settings
    and the rung, not on the keyframes: a re-render reads every level the last render of
    the same plate computed, whatever its timing, length or grain, at 1-3 ms a 1080p level
    instead of 15-80 ms.
    """
    key = array_key(
        __name__,
        {
            "level": rung,
            "kind": params.kind,
            "highlights": [params.highlights, params.highlight_threshold],
            "aperture": [params.blades, params.rotation],
            "sources": _content_digests(image, holdout),
        },
    )
    found = store.get_array(key)
    if found is not None and found.shape == image.shape and found.dtype == image.dtype:
        return found
    level = blur_level(image, holdout, params, rung)
    if level is not image:  # a single-pixel aperture's level is the image itself
        store.put_array_in_background(key, level)
    return level


@last_for
def _content_digests(image: np.ndarray, holdout: np.ndarray | None) -> list[str | None]:
    """Content digests of a blur's sources (once per render: they are time-invariant)."""
    return [content_digest(image), None if holdout is None else content_digest(holdout)]


def _blur(
    values: np.ndarray,
    params: Any,
    radius: float,
    exact: bool = False,
    lens_work: float = _LENS_WORK_RADIUS,
    reused: bool = False,
) -> np.ndarray:
    """``values`` blurred by ``params.kind`` at ``radius`` px (lens, gaussian: at a reduced working size)."""
    if params.kind == "motion":
        return motion_blur(values, radius, params.angle)
    if params.kind in ("zoom", "spin"):
        return radial_blur(values, params.kind, radius, (params.center[0], params.center[1]))
    work = None if exact else lens_work
    return blur_reduced(
        values,
        params.kind,
        radius,
        params.blades,
        params.rotation,
        lens_work=work,
        reused=reused and not exact,
    )


def _encode(blurred: np.ndarray, params: Any, gain: float, shape: tuple[int, ...]) -> np.ndarray:
    """Working values back to uint8 sRGB at the image's size."""
    if params.kind != "gaussian":
        encoded = highlight_curve(gain, params.highlight_threshold).compress_to_srgb(blurred)
    else:
        encoded = cv2.addWeighted(blurred, 255.0, blurred, 0.0, 0.0, dtype=cv2.CV_8U)  # rounded, saturated
    height, width = shape[:2]
    if encoded.shape[:2] != (height, width):
        encoded = cv2.resize(encoded, (width, height), interpolation=cv2.INTER_LINEAR)
    return encoded


def _noise_kept(params: Any, radius: float, shape: tuple[int, ...]) -> float:
    """Share of white noise's standard deviation the blur keeps (see :func:`noise_kept`)."""
    if params.kind == "motion":
        return float(np.sqrt(np.sum(motion_kernel(radius, params.angle) ** 2)))
    if params.kind in ("zoom", "spin"):
        return radial_noise_kept(params.kind, radius, shape, (params.center[0], params.center[1]))
    return noise_kept(params.kind, radius, params.blades, params.rotation)


# Weight left on held-out pixels: where nothing else is in reach (deep inside a large
# subject) the result degrades gracefully to the plain blur of the (inpainted) image.
_HOLDOUT_FLOOR = 1e-3


@last_for
def _working_values(image: np.ndarray, kind: str, gain: float, threshold: float) -> np.ndarray:
    """The image as float32: linear light with boosted highlights for `lens`, else sRGB in [0, 1]."""
    if kind != "gaussian":
        return highlight_curve(gain, threshold).expand(image)
    return image.astype(np.float32) / 255


@last_for
def _weighted_values(
    image: np.ndarray, holdout: np.ndarray, kind: str, gain: float, threshold: float
) -> np.ndarray:
    """(H, W, 4) values premultiplied by the holdout weight, with the weight last.

    Blurring this and dividing colour by weight is normalised convolution: held-out
    pixels contribute (almost) nothing to their neighbours.
    """
    weight = 1.0 - holdout.astype(np.float32) * (1.0 - _HOLDOUT_FLOOR)
    stacked = np.empty((*image.shape[:2], 4), np.float32)
    np.multiply(_working_values(image, kind, gain, threshold), weight[..., None], out=stacked[..., :3])
    stacked[..., 3] = weight
    return stacked
