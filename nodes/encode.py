"""``core.encode``: write the rendered frames to a video, a GIF, a PNG sequence or a still.

Formats (``format: auto`` picks one from the path)
    * ``mp4`` (``.mp4``, ``.m4v``): H.264 (libx264), yuv420p, ``+faststart``.
    * ``webm`` (``.webm``): VP9 (libvpx-vp9), yuv420p, constant quality.
    * ``gif`` (``.gif``): a 256-colour palette made from the clip; loops forever.
    * ``png-sequence`` (a path ending in ``/``): a folder of ``frame-00000.png``, ...
    * ``png``, ``jpeg``, ``webp`` (``.png``, ``.jpg``/``.jpeg``, ``.webp``): one image,
      for one-frame timelines only.

Video (MP4, WebM)
    Frames stream one at a time into an ``ffmpeg`` process (the binary shipped with
    ``imageio-ffmpeg``) as raw RGB, so memory does not grow with the clip length.
    The input is taken as sRGB, full range; it is converted to YUV 4:2:0 with the
    BT.709 matrix in limited ("tv") range, and the stream is tagged BT.709 /
    limited so that players and browsers decode it with the same matrix (the same
    filter and tags for both codecs). 4:2:0 needs even dimensions: at the frame's own
    size an odd width or height is **cropped** by one pixel (the last column or row),
    never padded or scaled; a requested size is rounded to even. An image with a
    1-pixel side cannot be encoded at its own size.

GIF
    One ffmpeg process builds a palette from the whole clip (``palettegen``) and maps
    every frame to it (``paletteuse``). ``palettegen`` only has its palette at the end
    of the stream, so ffmpeg **holds every frame of the clip in memory** until then
    (width x height x 3 bytes per frame after ``gif_fps``: 5 s at 480x270 and 15 fps is
    29 MB, but a 1080p clip at 30 fps is 930 MB): give GIFs a ``width``.

PNG sequence
    Frames are written to a hidden temporary folder beside the target, which is
    renamed into place at commit. With ``--overwrite`` an existing folder is replaced
    only if it holds nothing but ``frame-*.png`` files (a previous sequence).

Size and aspect (every format)
    ``aspect`` (``9:16``, ``1:1``, ...) first brings the frame to that shape: ``cover``
    crops (centred on the subject when the optional ``mask`` input is connected:
    the alpha-weighted centre of the first frame's mask, so the window never moves),
    ``contain`` pads with bars of ``background``. ``width``/``height`` then scale it
    (area averaging when shrinking, Lanczos when enlarging); with only one of them
    the other follows the aspect. See :mod:`focusgraph.nodes._reframe`.

Safety
    Output goes to a hidden temporary file (or folder) beside the target
    (``.<name>.focusgraph-tmp-<random><ext>``) and is moved into place with
    :func:`os.replace` only after ffmpeg has exited successfully, so an interrupted
    or failed render never leaves a partial file and never touches an existing
    one. The output directory must already exist; it is not created. ffmpeg runs
    in its own process group (a terminal Ctrl-C reaches only Python, which aborts);
    a writer dropped without commit or abort is cleaned up by a finalizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from focusgraph.graph.errors import EncodeError
from focusgraph.graph.node import (
    FilePath,
    FrameContext,
    NodeParams,
    OutputNode,
    Port,
    PortType,
    Timeline,
    Writer,
)
from focusgraph.nodes import _reframe
from focusgraph.nodes._writers import (
    Prepare,
    SequenceWriter,
    StillWriter,
    VideoWriter,
    check_sequence_target,
    check_target,
    frame_rate,
    usable_ffmpeg,
)

__all__ = [
    "COLOR_TAGS",
    "EXTENSION_FORMATS",
    "FORMATS",
    "VIDEO_FILTER",
    "Encode",
    "SequenceWriter",
    "StillWriter",
    "VideoWriter",
    "frame_rate",
    "resolve_format",
]

Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
Format = Literal["mp4", "webm", "gif", "png-sequence", "png", "jpeg", "webp"]
Dither = Literal["bayer", "none", "sierra2_4a", "floyd_steinberg"]

#: Every concrete format, in the order error messages list them.
FORMATS: tuple[Format, ...] = ("mp4", "webm", "gif", "png-sequence", "png", "jpeg", "webp")
STILL_FORMATS = frozenset({"png", "jpeg", "webp"})

#: File extensions understood by ``format: auto`` (a path ending in ``/`` is a PNG sequence).
EXTENSION_FORMATS: dict[str, Format] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".webm": "webm",
    ".gif": "gif",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
}

#: ffmpeg video filter: explicit sRGB (full range) -> BT.709 limited-range YUV 4:2:0,
#: then tag the frames so the encoder writes matching VUI and ``colr`` metadata.
VIDEO_FILTER = (
    "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd,"
    "format=yuv420p,"
    "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709"
)

#: Output options repeating the colour tags (container and encoder level).
COLOR_TAGS = [
    "-colorspace", "bt709",
    "-color_primaries", "bt709",
    "-color_trc", "bt709",
    "-color_range", "tv",
]  # fmt: skip

#: VP9's crf when ``vp9_crf`` is not given: the x264 ``crf`` plus this. Measured on the
#: rack-focus clip of girl-2.jpg (718x478, 150 frames): x264 crf 18 gives 50.3 dB PSNR
#: in 143 kB, VP9 crf 24 49.6 dB in 111 kB, crf 31 47.6 dB in 77 kB.
VP9_CRF_OFFSET = 6


class Encode(OutputNode):
    """Write frames to MP4/WebM video, a GIF, a PNG sequence, or a single PNG/JPEG/WebP still.

    See the module docstring for the formats, the size and aspect options and the
    atomic-write guarantees.
    """

    type_name = "core.encode"
    version = 1
    description = (
        "Write the clip to an H.264 MP4 or VP9 WebM (yuv420p, BT.709 tagged), a looping GIF "
        "(palette from the clip), a PNG sequence (path ending in /), or a single frame to "
        "PNG/JPEG/WebP. width/height/aspect/fit resize, crop (centred on the optional mask) "
        "or pad every format. Atomic: the output appears only when complete."
    )

    class Params(NodeParams):
        path: FilePath = Field(
            description=(
                "Output file. The extension picks the format when format is auto (.mp4/.m4v, "
                ".webm, .gif; .png/.jpg/.jpeg/.webp still); a path ending in / is a folder of "
                "PNG frames. Its directory must exist."
            ),
        )
        format: Literal["auto", "mp4", "webm", "gif", "png-sequence", "png", "jpeg", "webp"] = Field(
            default="auto",
            description="Output format; auto decides from path.",
        )
        width: int = Field(
            default=0,
            ge=0,
            le=16384,
            description="Output width in pixels; 0 follows height and the aspect (both 0: the frame's size).",
        )
        height: int = Field(
            default=0,
            ge=0,
            le=16384,
            description="Output height in pixels; 0 follows width and the aspect.",
        )
        aspect: str = Field(
            default="source",
            description="Output shape W:H (9:16, 1:1, 16:9, 4:5, 1.85:1) or source (the frame's own).",
        )
        fit: Literal["cover", "contain"] = Field(
            default="cover",
            description="How the frame meets the aspect: cover crops (around the mask's centre when "
            "the mask input is connected), contain pads with bars.",
        )
        background: str = Field(
            default="#000000",
            pattern=r"^#?[0-9a-fA-F]{6}$",
            description="Colour of the contain bars, #rrggbb.",
        )
        crf: int = Field(
            default=18,
            ge=0,
            le=51,
            description="H.264 constant rate factor (video only): 18 is near visually "
            "lossless, 23 is x264's default; higher is smaller and worse. WebM uses crf + 6 "
            "unless vp9_crf is set.",
        )
        vp9_crf: int | None = Field(
            default=None,
            ge=0,
            le=63,
            description="VP9 constant quality for WebM, 0-63 (default: crf + 6, about the same quality).",
        )
        preset: Preset = Field(
            default="medium",
            description="x264 speed preset (MP4 only): slower presets give smaller files at equal crf.",
        )
        faststart: bool = Field(
            default=True,
            description="Put the MP4 index (moov) before the data so playback can start while downloading.",
        )
        quality: int = Field(
            default=95,
            ge=1,
            le=100,
            description="JPEG and WebP quality of a still, 1-100 (ignored by the other formats).",
        )
        gif_fps: float = Field(
            default=15.0,
            ge=0,
            le=50,
            description="GIF frame rate (0: the timeline's). 15 halves the size of a 30 fps clip.",
        )
        gif_dither: Dither = Field(
            default="bayer",
            description="GIF dithering: bayer (ordered, compresses well), none, or error diffusion "
            "(sierra2_4a, floyd_steinberg: smoother, about twice the size with film grain).",
        )

        @field_validator("aspect")
        @classmethod
        def _aspect_is_ratio(cls, aspect: str, info: ValidationInfo) -> str:
            ratio = _reframe.parse_aspect(aspect)
            width, height = info.data.get("width", 0), info.data.get("height", 0)
            if ratio is not None and width and height and abs(round(height * ratio) - width) > 1:
                raise ValueError(
                    f"{aspect} disagrees with width {width} and height {height} "
                    f"({_reframe.ratio_text(width / height)}); give two of width, height and aspect"
                )
            return aspect

    inputs: ClassVar[dict[str, Port]] = {
        "image": Port(PortType.IMAGE, help="The frame to write."),
        "mask": Port(
            PortType.MASK,
            help="The subject (1 = subject): a cover crop is centred on it (its first frame's centre).",
            optional=True,
        ),
    }
    outputs: ClassVar[dict[str, Port]] = {}

    def output_path(self, params: Any) -> Path:
        """The file (or, for a PNG sequence, folder) this node will create: ``params.path``."""
        return Path(params.path).expanduser()

    def open(self, params: Any, timeline: Timeline, overwrite: bool) -> Writer:
        """Check the target and start a writer for ``timeline``.

        Raises
        ------
        EncodeError
            If the format cannot be determined, a still is asked for more than one
            frame, the target exists (and ``overwrite`` is false) or is of the wrong
            kind, the directory is missing, or ffmpeg cannot be started.
        """
        target = Path(params.path).expanduser()
        fmt = resolve_format(params.format, params.path)
        if fmt in STILL_FORMATS and timeline.frame_count != 1:
            raise EncodeError(
                f"'{target}' is a still image but the timeline has {timeline.frame_count} "
                "frames; use a video path (.mp4, .webm, .gif), a folder path ending in / for "
                "a PNG sequence, or render a single frame",
                field="params.path",
            )
        prepare = frame_preparer(params, even_sides=fmt in {"mp4", "webm"})
        if fmt == "png-sequence":
            check_sequence_target(target, overwrite)
            return SequenceWriter(target, timeline, overwrite, prepare)
        check_target(target, overwrite)
        if fmt == "mp4":
            ffmpeg = usable_ffmpeg("libx264", "H.264")
            return VideoWriter(target, ".mp4", overwrite, ffmpeg, timeline, mp4_args(params), prepare)
        if fmt == "webm":
            ffmpeg = usable_ffmpeg("libvpx-vp9", "VP9")
            return VideoWriter(target, ".webm", overwrite, ffmpeg, timeline, webm_args(params), prepare)
        if fmt == "gif":
            ffmpeg = usable_ffmpeg("gif", "GIF")
            args = gif_args(params, timeline.fps)
            return VideoWriter(target, ".gif", overwrite, ffmpeg, timeline, args, prepare)
        return StillWriter(target, fmt, params.quality, overwrite, prepare)


def mp4_args(params: Any) -> list[str]:
    """ffmpeg output arguments of an H.264 MP4 (BT.709 limited range, optional faststart)."""
    args = [
        "-vf", VIDEO_FILTER,
        "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-crf", str(params.crf), "-preset", params.preset,
        *COLOR_TAGS,
    ]  # fmt: skip
    if params.faststart:
        args += ["-movflags", "+faststart"]
    return [*args, "-f", "mp4"]


def webm_args(params: Any) -> list[str]:
    """ffmpeg output arguments of a VP9 WebM in constant quality, colour handled as for MP4.

    ``-deadline good -cpu-used 4`` is libvpx's usual speed/size balance (``best`` is many
    times slower); ``-row-mt 1`` with two tile columns keeps two cores busy.
    """
    crf = params.vp9_crf if params.vp9_crf is not None else min(63, params.crf + VP9_CRF_OFFSET)
    threads = max(1, min(os.cpu_count() or 2, 16))
    return [
        "-vf", VIDEO_FILTER,
        "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p",
        "-crf", str(crf), "-b:v", "0",
        "-deadline", "good", "-cpu-used", "4",
        "-row-mt", "1", "-tile-columns", "1", "-threads", str(threads),
        *COLOR_TAGS,
        "-f", "webm",
    ]  # fmt: skip


def gif_args(params: Any, fps: float) -> list[str]:
    """ffmpeg output arguments of a looping GIF whose palette is computed from the clip itself.

    Defaults chosen by measurement on the rack-focus preset at 480 px wide, 5 s (its
    moving film grain defeats GIF's LZW compression): with error diffusion
    (``sierra2_4a``, ffmpeg's default) the clips were 5.7-6.9 MB at 30 fps; ordered
    ``bayer`` dither (whose pattern does not crawl from frame to frame) with
    ``diff_mode=rectangle`` (only the changed rectangle is re-dithered) gave
    1.9-5.0 MB at 30 fps and 1.1-2.9 MB at 15 fps (girl-1, girl-2, girl-3, animal-1;
    the foliage of animal-1 is the largest). ``stats_mode=full`` builds the palette
    from all pixels, which was smaller than ``diff``. Hence 15 fps, bayer scale 2 and
    a whole-clip palette. The palette is only known at the end, so ffmpeg buffers the
    whole (frame-rate reduced) clip: see the module docstring.
    """
    filters = []
    if params.gif_fps and params.gif_fps < fps:
        filters.append(f"fps={frame_rate(params.gif_fps)}")
    dither = params.gif_dither + (":bayer_scale=2" if params.gif_dither == "bayer" else "")
    filters.append(
        f"split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither={dither}:diff_mode=rectangle"
    )
    return ["-filter_complex", ",".join(filters), "-loop", "0", "-f", "gif"]


def resolve_format(fmt: Format | Literal["auto"], path: str | Path) -> Format:
    """Return the concrete format of ``path``: ``fmt`` itself unless it is ``"auto"``.

    With ``"auto"`` a path ending in ``/`` is a PNG sequence, otherwise the extension
    decides (see :data:`EXTENSION_FORMATS`).

    Raises
    ------
    EncodeError
        If the extension is unknown; the message lists every format.
    """
    if fmt != "auto":
        return fmt
    text = str(path)
    if text.endswith(("/", os.sep)):
        return "png-sequence"
    target = Path(text)
    found = EXTENSION_FORMATS.get(target.suffix.lower())
    if found is None:
        known = ", ".join(EXTENSION_FORMATS)
        raise EncodeError(
            f"cannot tell the format of '{target}' from its extension; use one of {known}, a "
            f"path ending in / for a PNG sequence, or set format ({', '.join(FORMATS)})",
            field="params.path",
        )
    return found


def even_crop(image: np.ndarray) -> np.ndarray:
    """Drop the last column and/or row of ``image`` so both sides are even.

    Raises
    ------
    EncodeError
        If a side is 1 pixel (nothing would be left).
    """
    height, width = image.shape[:2]
    even_h, even_w = height - height % 2, width - width % 2
    if even_h == 0 or even_w == 0:
        raise EncodeError(f"image too small to encode as video: {width}x{height} (needs at least 2x2)")
    if (even_h, even_w) == (height, width):
        return image
    return image[:even_h, :even_w]


def check_frame(image: Any) -> np.ndarray:
    """Return ``image`` if it is an ``(H, W, 3)`` uint8 array, else raise :class:`EncodeError`."""
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or (image.shape[2] != 3)
    ):
        got = (
            f"{image.dtype} array of shape {image.shape}"
            if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise EncodeError(f"expected an (H, W, 3) uint8 RGB image, got {got}")
    return image


def check_mask(mask: Any) -> np.ndarray:
    """Return ``mask`` if it is a non-empty 2-D numeric array, else raise :class:`EncodeError`."""
    if (
        not isinstance(mask, np.ndarray)
        or mask.ndim != 2
        or mask.size == 0
        or not (np.issubdtype(mask.dtype, np.floating) or np.issubdtype(mask.dtype, np.integer))
    ):
        got = f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray) else type(mask)
        raise EncodeError(f"expected an (H, W) float mask, got {got}", field="inputs.mask")
    return mask


def frame_preparer(params: Any, *, even_sides: bool) -> Prepare:
    """The function that turns each frame's inputs into the frame to write.

    Without width, height or aspect it only checks the frame (and, for video, crops
    an odd side); otherwise it is a :class:`Reframer`.
    """
    if params.width or params.height or params.aspect != "source":
        return Reframer(params, even_sides=even_sides)

    def unchanged(inputs: dict[str, Any], ctx: FrameContext) -> np.ndarray:
        image = check_frame(inputs["image"])
        return even_crop(image) if even_sides else image

    return unchanged


class Reframer:
    """Brings every frame to the requested size and aspect (see :mod:`._reframe`).

    The plan (crop window, scale, bars) is made from the first frame, and from the
    ``mask`` input's centre on that frame, and reused for every later frame, so a
    cover crop never jitters.
    """

    def __init__(self, params: Any, *, even_sides: bool) -> None:
        self.width: int = params.width
        self.height: int = params.height
        self.aspect = _reframe.parse_aspect(params.aspect)
        self.fit: _reframe.Fit = params.fit
        self.background = _reframe.parse_colour(params.background)
        self.even_sides = even_sides
        self.plan: _reframe.Plan | None = None

    def __call__(self, inputs: dict[str, Any], ctx: FrameContext) -> np.ndarray:
        """Check one frame and return it reframed."""
        image = check_frame(inputs["image"])
        height, width = image.shape[:2]
        if self.plan is None:
            centre = None
            if self.fit == "cover" and inputs.get("mask") is not None:
                centre = _reframe.mask_centroid(check_mask(inputs["mask"]))
            self.plan = _reframe.plan(
                (width, height),
                width=self.width,
                height=self.height,
                aspect=self.aspect,
                fit=self.fit,
                centre=centre,
                even_sides=self.even_sides,
            )
        elif (width, height) != self.plan.source:
            first_w, first_h = self.plan.source
            raise EncodeError(
                f"frame {ctx.frame} is {width}x{height} but the first frame was {first_w}x{first_h}; "
                "every frame must have the same size"
            )
        return _reframe.apply_plan(image, self.plan, self.background)
