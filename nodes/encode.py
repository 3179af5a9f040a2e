"""``core.encode``: write the rendered frames to an H.264 MP4 or a still PNG/JPEG.

Video
    Frames stream one at a time into an ``ffmpeg`` process (the binary shipped with
    ``imageio-ffmpeg``) as raw RGB, so memory does not grow with the clip length.
    The input is taken as sRGB, full range; it is converted to YUV 4:2:0 with the
    BT.709 matrix in limited ("tv") range, and the stream is tagged BT.709 /
    limited so that players and browsers decode it with the same matrix.
    H.264 in 4:2:0 needs even dimensions: an odd width or height is **cropped** by
    one pixel (the last column or row), never padded or scaled. An image with a
    1-pixel side cannot be encoded.

Still image
    With a single-frame timeline and a ``.png``, ``.jpg`` or ``.jpeg`` path (or
    ``format: png`` / ``jpeg``) one image is written at its full size.

Safety
    Output goes to a hidden temporary file beside the target
    (``.<name>.focusgraph-tmp-<random><ext>``) and is moved into place with
    :func:`os.replace` only after ffmpeg has exited successfully, so an interrupted
    or failed render never leaves a partial file and never touches an existing
    one. The output directory must already exist; it is not created. ffmpeg runs
    in its own process group (a terminal Ctrl-C reaches only Python, which aborts);
    a writer dropped without commit or abort is cleaned up by a finalizer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import signal
import subprocess
import tempfile
import weakref
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import cv2
import imageio_ffmpeg
import numpy as np
from pydantic import Field

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

Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
Format = Literal["mp4", "png", "jpeg"]

#: File extensions understood by ``format: auto``.
EXTENSION_FORMATS: dict[str, Format] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
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

STDERR_TAIL_LINES = 6
ABORT_WAIT_SECONDS = 5.0
FFMPEG_CHECK_SECONDS = 20.0


class Encode(OutputNode):
    """Write frames to an H.264 MP4 (BT.709, faststart) or a single PNG/JPEG still."""

    type_name = "core.encode"
    version = 1
    description = (
        "Write the clip to an H.264 MP4 (yuv420p, BT.709 tagged, faststart) or a single "
        "frame to a PNG/JPEG. Odd sizes are cropped by one pixel for video. Atomic: the "
        "file appears only when complete."
    )

    class Params(NodeParams):
        path: FilePath = Field(
            description=(
                "Output file. The extension picks the format when format is auto "
                "(.mp4/.m4v video, .png/.jpg/.jpeg still). Its directory must exist."
            ),
        )
        format: Literal["auto", "mp4", "png", "jpeg"] = Field(
            default="auto",
            description="Output format; auto decides from the extension of path.",
        )
        crf: int = Field(
            default=18,
            ge=0,
            le=51,
            description="H.264 constant rate factor (video only): 18 is near visually "
            "lossless, 23 is x264's default; higher is smaller and worse.",
        )
        preset: Preset = Field(
            default="medium",
            description="x264 speed preset (video only): slower presets give smaller files at equal crf.",
        )
        faststart: bool = Field(
            default=True,
            description="Put the MP4 index (moov) before the data so playback can start while downloading.",
        )
        quality: int = Field(
            default=95,
            ge=1,
            le=100,
            description="JPEG quality of a still, 1-100 (ignored for MP4 and PNG).",
        )

    inputs: ClassVar[dict[str, Port]] = {
        "image": Port(PortType.IMAGE, help="The frame to write."),
    }
    outputs: ClassVar[dict[str, Port]] = {}

    def output_path(self, params: Any) -> Path:
        """The file this node will create: ``params.path``."""
        return Path(params.path).expanduser()

    def open(self, params: Any, timeline: Timeline, overwrite: bool) -> Writer:
        """Check the target and start a writer for ``timeline``.

        Raises
        ------
        EncodeError
            If the format cannot be determined, a still is asked for more than one
            frame, the target exists (and ``overwrite`` is false) or is a directory,
            the directory is missing, or ffmpeg cannot be started.
        """
        target = Path(params.path).expanduser()
        fmt = resolve_format(params.format, target)
        if fmt != "mp4" and timeline.frame_count != 1:
            raise EncodeError(
                f"'{target}' is a still image but the timeline has {timeline.frame_count} "
                "frames; use a .mp4 path or render a single frame",
                field="params.path",
            )
        check_target(target, overwrite)
        if fmt == "mp4":
            return VideoWriter(target, params, timeline, overwrite, usable_ffmpeg())
        return StillWriter(target, fmt, params.quality, overwrite)


def usable_ffmpeg() -> str:
    """Return the path of an ffmpeg that runs and has libx264 (checked once per binary).

    Called when a writer opens, so a missing or broken ffmpeg is reported before any
    frame is rendered.

    Raises
    ------
    EncodeError
        If imageio-ffmpeg has no binary, it cannot be started, or it lacks libx264.
    """
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        raise EncodeError(f"no ffmpeg found ({error}); reinstall imageio-ffmpeg") from None
    return _check_ffmpeg(exe)


@functools.cache
def _check_ffmpeg(exe: str) -> str:
    fix = "reinstall imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE to a working ffmpeg"
    try:
        result = subprocess.run(
            [exe, "-hide_banner", "-encoders"], capture_output=True, timeout=FFMPEG_CHECK_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        reason = getattr(error, "strerror", None) or error
        raise EncodeError(f"ffmpeg '{exe}' cannot be run ({reason}); {fix}") from None
    if result.returncode != 0:
        raise EncodeError(
            f"ffmpeg '{exe}' does not work (exit status {result.returncode}: "
            f"{_last_line(result.stderr)}); {fix}"
        )
    if b"libx264" not in result.stdout:
        raise EncodeError(f"ffmpeg '{exe}' cannot encode H.264 (it has no libx264); {fix}")
    return exe


def _last_line(output: bytes) -> str:
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def resolve_format(fmt: Format | Literal["auto"], target: Path) -> Format:
    """Return the concrete format of ``target``: ``fmt`` itself unless it is ``"auto"``."""
    if fmt != "auto":
        return fmt
    found = EXTENSION_FORMATS.get(target.suffix.lower())
    if found is None:
        known = ", ".join(EXTENSION_FORMATS)
        raise EncodeError(
            f"cannot tell the format of '{target}' from its extension; use one of {known} or set format",
            field="params.path",
        )
    return found


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is a directory, exists without ``overwrite``, or has no directory."""
    if target.is_dir():
        raise EncodeError(f"'{target}' is a directory; give a file name", field="params.path")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise EncodeError(f"'{target}' exists; pass --overwrite to replace it", field="params.path")
        if not target.is_file():
            raise EncodeError(f"'{target}' exists and is not a regular file", field="params.path")
    parent = target.parent
    if not parent.is_dir():
        raise EncodeError(
            f"directory '{parent}' of '{target}' does not exist; create it first",
            field="params.path",
        )


def reserve_temp(target: Path, extension: str) -> Path:
    """Create an empty, uniquely named hidden file beside ``target`` and return its path.

    The file is created with mode ``0o666`` minus the umask, like any new file, so the
    final output gets ordinary permissions after the rename.
    """
    for _ in range(100):
        temp = target.with_name(f".{target.name}.focusgraph-tmp-{secrets.token_hex(6)}{extension}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise EncodeError(
                f"cannot create a file in '{target.parent}': {error.strerror}", field="params.path"
            ) from error
        os.close(fd)
        return temp
    raise EncodeError(f"cannot create a temporary file beside '{target}'", field="params.path")


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


def frame_rate(fps: float) -> str:
    """ffmpeg rate string for ``fps``: exact NTSC fractions (``24000/1001``) when close."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 5e-3:
            return f"{base * 1000}/1001"
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def stderr_tail(log: IO[bytes], lines: int = STDERR_TAIL_LINES) -> str:
    """The last non-empty ``lines`` of an ffmpeg log file, joined on one line."""
    log.flush()
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    text = re.sub(r" @ 0x[0-9a-f]+\]", "]", text)
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "no message from ffmpeg"


def ending(code: int | None) -> str:
    """How ffmpeg ended, as the start of an error message (empty while it runs)."""
    if code is None:
        return ""
    if code >= 0:
        return f"exit status {code}; "
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if -code == signal.SIGXFSZ:
        return f"killed by {name}: the file size limit was reached (disk quota or `ulimit -f`); "
    return f"killed by {name}; "


def discard(temp: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    """Kill ``processes`` and remove ``temp``: cleanup of a writer that was never closed."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    with contextlib.suppress(OSError):
        temp.unlink()


class AtomicWriter(Writer):
    """Common part of the writers: a temporary file beside the target, renamed at commit.

    Subclasses produce the temporary file and may override :meth:`release` to free
    what they hold (a process, a log). ``abort`` and ``release`` are idempotent.
    """

    def __init__(self, target: Path, extension: str, overwrite: bool) -> None:
        self.target = target
        self.overwrite = overwrite
        self.done = False
        self.temp = reserve_temp(target, extension)
        self.processes: list[subprocess.Popen[bytes]] = []
        # last resort if the writer is dropped (or the interpreter exits) without
        # commit or abort: kill ffmpeg and remove the temporary file
        self.finalizer = weakref.finalize(self, discard, self.temp, self.processes)

    def check_open(self) -> None:
        if self.done:
            raise EncodeError(f"the writer of '{self.target}' is already closed")

    def release(self) -> None:
        """Free resources other than the temporary file."""

    def fail(self, message: str) -> EncodeError:
        """Abort and return an :class:`EncodeError` with ``message`` to raise."""
        self.abort()
        return EncodeError(message)

    def finish(self) -> Path:
        """Atomically move the temporary file to the target and close the writer.

        Without ``overwrite`` the target is checked again, so a file that appeared
        during the render is not replaced.
        """
        if not self.overwrite and (self.target.exists() or self.target.is_symlink()):
            self.abort()
            raise EncodeError(f"'{self.target}' exists; pass --overwrite to replace it", field="params.path")
        try:
            with open(self.temp, "rb") as file:
                os.fsync(file.fileno())
            os.replace(self.temp, self.target)
        except OSError as error:
            raise self.fail(f"cannot move the output into '{self.target}': {error.strerror}") from error
        self.done = True
        self.finalizer.detach()
        self.release()
        return self.target

    def abort(self) -> None:
        """Release everything and remove the temporary file; idempotent."""
        if self.done:
            return
        self.done = True
        self.finalizer.detach()
        self.release()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


class VideoWriter(AtomicWriter):
    """Streams frames into ffmpeg/libx264; see the module docstring.

    ffmpeg is started on the first frame, whose size fixes the clip's size.
    """

    def __init__(self, target: Path, params: Any, timeline: Timeline, overwrite: bool, ffmpeg: str) -> None:
        super().__init__(target, ".mp4", overwrite)
        self.ffmpeg = ffmpeg
        self.params = params
        self.timeline = timeline
        self.size: tuple[int, int] | None = None  # (width, height) after the even crop
        self.frames = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in release)

    def command(self, width: int, height: int) -> list[str]:
        """The ffmpeg command line for frames of ``width`` x ``height``."""
        params = self.params
        command = [
            self.ffmpeg,
            "-hide_banner", "-nostats", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-video_size", f"{width}x{height}",
            "-framerate", frame_rate(self.timeline.fps),
            "-i", "pipe:0",
            "-an", "-map_metadata", "-1",
            "-vf", VIDEO_FILTER,
            "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-crf", str(params.crf), "-preset", params.preset,
            *COLOR_TAGS,
        ]  # fmt: skip
        if params.faststart:
            command += ["-movflags", "+faststart"]
        return [*command, "-f", "mp4", str(self.temp)]

    def write(self, inputs: dict[str, Any], ctx: FrameContext) -> None:
        """Send one frame to ffmpeg, cropped to even size."""
        self.check_open()
        try:
            image = even_crop(check_frame(inputs["image"]))
        except EncodeError:
            self.abort()
            raise
        height, width = image.shape[:2]
        if self.process is None:
            self.size = (width, height)
            try:
                # own process group: a terminal Ctrl-C reaches only Python, which aborts
                self.process = subprocess.Popen(
                    self.command(width, height),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=self.log,
                    process_group=0,
                )
            except OSError as error:
                raise self.fail(f"cannot start ffmpeg: {error}") from error
            self.processes.append(self.process)
        elif self.size != (width, height):
            clip_w, clip_h = self.size or (0, 0)
            raise self.fail(
                f"frame {ctx.frame} is {width}x{height} but the clip is {clip_w}x{clip_h} "
                "(after the even crop); every frame must have the same size"
            )
        process = self.process
        assert process.stdin is not None
        try:
            if process.poll() is not None:
                raise BrokenPipeError("ffmpeg exited")
            process.stdin.write(np.ascontiguousarray(image).data)
        except OSError as error:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(ABORT_WAIT_SECONDS)
            raise self.fail(
                f"ffmpeg stopped while writing '{self.target}' at frame {ctx.frame}: "
                f"{ending(process.returncode)}{stderr_tail(self.log)}"
            ) from error
        self.frames += 1

    def commit(self) -> Path:
        """Finish the file, check ffmpeg's exit status and move the file into place."""
        self.check_open()
        process = self.process
        if process is None:
            raise self.fail(f"no frames were written to '{self.target}'")
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # ffmpeg died: the exit status tells why
            process.stdin.close()
        code = process.wait()
        if code != 0:
            raise self.fail(f"ffmpeg failed writing '{self.target}': {ending(code)}{stderr_tail(self.log)}")
        if self.temp.stat().st_size == 0:
            raise self.fail(f"ffmpeg wrote an empty file for '{self.target}'")
        return self.finish()

    def release(self) -> None:
        """Stop ffmpeg if it still runs (terminate, then kill) and close the log."""
        process = self.process
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(ABORT_WAIT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.log.close()


class StillWriter(AtomicWriter):
    """Writes the single frame of a one-frame timeline as PNG or JPEG."""

    def __init__(self, target: Path, fmt: Format, quality: int, overwrite: bool) -> None:
        super().__init__(target, ".png" if fmt == "png" else ".jpg", overwrite)
        self.fmt = fmt
        self.quality = quality
        self.written = False

    def write(self, inputs: dict[str, Any], ctx: FrameContext) -> None:
        """Encode the frame into the temporary file."""
        self.check_open()
        if self.written:
            raise self.fail(f"'{self.target}' is a still image; got more than one frame")
        try:
            image = check_frame(inputs["image"])
        except EncodeError:
            self.abort()
            raise
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.fmt == "png":
            ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        else:
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise self.fail(f"cannot encode the frame as {self.fmt} for '{self.target}'")
        try:
            self.temp.write_bytes(data.tobytes())
        except OSError as error:
            raise self.fail(f"cannot write '{self.target}': {error.strerror}") from error
        self.written = True

    def commit(self) -> Path:
        """Move the image into place."""
        self.check_open()
        if not self.written:
            raise self.fail(f"no frame was written to '{self.target}'")
        return self.finish()
