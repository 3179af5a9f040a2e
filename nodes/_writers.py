"""The writers of ``core.encode``: ffmpeg video, stills and PNG sequences, all atomic.

:class:`VideoWriter` streams raw RGB frames into one ``ffmpeg`` process (the binary
shipped with ``imageio-ffmpeg``); the codec, filters and container come from the
arguments the node builds (H.264 MP4, VP9 WebM or a palette GIF), so it knows nothing
about formats. :class:`AtomicWriter` is the temporary-file-then-rename part it shares
with :class:`StillWriter`; :class:`SequenceWriter` does the same with a folder.
Every writer gets a ``prepare`` function from the node that checks and reframes
each frame.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import cv2
import imageio_ffmpeg
import numpy as np

from focusgraph.graph.errors import EncodeError
from focusgraph.graph.node import FrameContext, Timeline, Writer

STDERR_TAIL_LINES = 6
ABORT_WAIT_SECONDS = 5.0
FFMPEG_CHECK_SECONDS = 20.0
_FIX = "reinstall imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE to a working ffmpeg"

#: Image formats of :func:`encode_image`.
ImageFormat = Literal["png", "jpeg", "webp"]

#: Turns the ``inputs`` of one frame into the ``(H, W, 3)`` uint8 frame to write.
Prepare = Callable[[dict[str, Any], FrameContext], np.ndarray]


def usable_ffmpeg(encoder: str = "libx264", what: str = "H.264") -> str:
    """Return the path of an ffmpeg that runs and has ``encoder`` (probed once per binary).

    Called when a writer opens, so a missing or broken ffmpeg is reported before any
    frame is rendered.

    Parameters
    ----------
    encoder : str
        ffmpeg encoder name the output needs (``libx264``, ``libvpx-vp9``, ``gif``).
    what : str
        What the encoder writes, for the message (``H.264``).

    Raises
    ------
    EncodeError
        If imageio-ffmpeg has no binary, it cannot be started, or it lacks ``encoder``.
    """
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        raise EncodeError(f"no ffmpeg found ({error}); reinstall imageio-ffmpeg") from None
    if encoder not in _encoders(exe):
        raise EncodeError(f"ffmpeg '{exe}' cannot encode {what} (it has no {encoder}); {_FIX}")
    return exe


@functools.cache
def _encoders(exe: str) -> frozenset[str]:
    """Names of the encoders ``exe -encoders`` lists (``libx264``, ``gif``, ...)."""
    try:
        result = subprocess.run(
            [exe, "-hide_banner", "-encoders"], capture_output=True, timeout=FFMPEG_CHECK_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        reason = getattr(error, "strerror", None) or error
        raise EncodeError(f"ffmpeg '{exe}' cannot be run ({reason}); {_FIX}") from None
    if result.returncode != 0:
        raise EncodeError(
            f"ffmpeg '{exe}' does not work (exit status {result.returncode}: "
            f"{_last_line(result.stderr)}); {_FIX}"
        )
    names = set()
    for line in result.stdout.decode(errors="replace").splitlines():
        fields = line.split()
        # " V....D libx264   libx264 H.264 ...": capabilities, then the name
        if len(fields) >= 2 and re.fullmatch(r"[VAS.][A-Z.]{5}", fields[0]):
            names.add(fields[1])
    return frozenset(names)


def _last_line(output: bytes) -> str:
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"


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
    """Kill ``processes`` and remove ``temp`` (a file or a directory): cleanup of a writer never closed."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    if temp.is_dir() and not temp.is_symlink():
        shutil.rmtree(temp, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        temp.unlink()


def temp_name(target: Path, extension: str = "") -> Path:
    """A fresh hidden name beside ``target``: ``.<name>.focusgraph-tmp-<random><extension>``."""
    return target.with_name(f".{target.name}.focusgraph-tmp-{secrets.token_hex(6)}{extension}")


def reserve_temp(target: Path, extension: str) -> Path:
    """Create an empty, uniquely named hidden file beside ``target`` and return its path.

    The file is created with mode ``0o666`` minus the umask, like any new file, so the
    final output gets ordinary permissions after the rename.
    """
    for _ in range(100):
        temp = temp_name(target, extension)
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


class AtomicWriter(Writer):
    """Common part of the file writers: a temporary file beside the target, renamed at commit.

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
        """Raise :class:`EncodeError` if the writer was already committed or aborted."""
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
    """Streams frames as raw RGB into one ffmpeg process that writes the temporary file.

    ffmpeg is started on the first frame, whose size (after ``prepare``) fixes the
    clip's size.

    Parameters
    ----------
    target : Path
        The file to create.
    extension : str
        Extension of the temporary file (``.mp4``), which some muxers look at.
    overwrite : bool
        Whether an existing ``target`` may be replaced.
    ffmpeg : str
        The ffmpeg executable (see :func:`usable_ffmpeg`).
    timeline : Timeline
        Frame rate of the incoming frames.
    output_args : list of str
        Everything between the raw input and the output file name: filters, codec,
        colour tags, ``-f`` muxer.
    prepare : callable
        Turns a frame's ``inputs`` into the RGB frame to send (checks, crops, scales);
        an :class:`EncodeError` from it aborts the writer.
    """

    def __init__(
        self,
        target: Path,
        extension: str,
        overwrite: bool,
        ffmpeg: str,
        timeline: Timeline,
        output_args: list[str],
        prepare: Prepare,
    ) -> None:
        super().__init__(target, extension, overwrite)
        self.ffmpeg = ffmpeg
        self.timeline = timeline
        self.output_args = list(output_args)
        self.prepare = prepare
        self.size: tuple[int, int] | None = None  # (width, height) of the frames sent
        self.frames = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in release)

    def command(self, width: int, height: int) -> list[str]:
        """The ffmpeg command line for frames of ``width`` x ``height``."""
        return [
            self.ffmpeg,
            "-hide_banner", "-nostats", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-video_size", f"{width}x{height}",
            "-framerate", frame_rate(self.timeline.fps),
            "-i", "pipe:0",
            "-an", "-map_metadata", "-1",
            *self.output_args,
            str(self.temp),
        ]  # fmt: skip

    def write(self, inputs: dict[str, Any], ctx: FrameContext) -> None:
        """Prepare one frame and send it to ffmpeg (started on the first frame)."""
        self.check_open()
        try:
            image = self.prepare(inputs, ctx)
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


#: Frame names in a PNG sequence (``frame-00000.png``); wider when the clip needs it.
SEQUENCE_NAME = re.compile(r"frame-\d+\.png")
SEQUENCE_DIGITS = 5
#: zlib level of sequence frames. Measured on a 1000x667 rack-focus frame with film grain:
#: level 1 takes 57 ms for 1.02 MB, 3 82 ms for 0.98 MB, 6 (the still's) 224 ms for 0.95 MB.
SEQUENCE_PNG_COMPRESSION = 1


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is a directory, exists without ``overwrite``, or has no directory."""
    if target.is_dir():
        raise EncodeError(
            f"'{target}' is a directory; give a file name (or end the path with / for a PNG sequence)",
            field="params.path",
        )
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise EncodeError(f"'{target}' exists; pass --overwrite to replace it", field="params.path")
        if not target.is_file():
            raise EncodeError(f"'{target}' exists and is not a regular file", field="params.path")
    _check_parent(target)


def _check_parent(target: Path) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise EncodeError(
            f"directory '{parent}' of '{target}' does not exist; create it first",
            field="params.path",
        )


def check_sequence_target(target: Path, overwrite: bool) -> None:
    """Refuse a sequence folder that exists without ``overwrite`` or is not a previous sequence.

    Raises
    ------
    EncodeError
        If ``target`` exists and ``overwrite`` is false, if it exists but is not a
        folder holding only ``frame-*.png`` files, if it has no name of its own (``/``,
        ``./``), or if its parent is missing.
    """
    if target.name in {"", ".", ".."}:
        raise EncodeError(
            f"'{target}' names no new folder; give one such as frames/ for a PNG sequence",
            field="params.path",
        )
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise EncodeError(f"'{target}' exists; pass --overwrite to replace it", field="params.path")
        if target.is_symlink() or not target.is_dir():
            raise EncodeError(
                f"'{target}' exists and is not a folder; a PNG sequence is written to a folder",
                field="params.path",
            )
        foreign = sorted(
            entry.name
            for entry in target.iterdir()
            if not (SEQUENCE_NAME.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink())
        )
        if foreign:
            raise EncodeError(
                f"'{target}' holds more than a PNG sequence ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); refusing to replace it",
                field="params.path",
            )
    _check_parent(target)


def encode_image(image: np.ndarray, fmt: ImageFormat, quality: int, png_compression: int = 6) -> bytes:
    """Encode an RGB frame as PNG, JPEG or WebP bytes (``quality`` for JPEG and WebP)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif fmt == "webp":
        # OpenCV: 1-100 is lossy; above 100 would be lossless, which quality cannot ask for
        ok, data = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
    else:
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, png_compression])
    if not ok:
        raise EncodeError(f"cannot encode the frame as {fmt}")
    return bytes(data.tobytes())


class StillWriter(AtomicWriter):
    """Writes the single frame of a one-frame timeline as PNG, JPEG or WebP."""

    EXTENSIONS: ClassVar[dict[str, str]] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}

    def __init__(
        self, target: Path, fmt: ImageFormat, quality: int, overwrite: bool, prepare: Prepare
    ) -> None:
        super().__init__(target, self.EXTENSIONS[fmt], overwrite)
        self.fmt = fmt
        self.quality = quality
        self.prepare = prepare
        self.written = False

    def write(self, inputs: dict[str, Any], ctx: FrameContext) -> None:
        """Encode the frame into the temporary file."""
        self.check_open()
        if self.written:
            raise self.fail(f"'{self.target}' is a still image; got more than one frame")
        try:
            data = encode_image(self.prepare(inputs, ctx), self.fmt, self.quality)
        except EncodeError as error:
            raise self.fail(f"{error.message} for '{self.target}'") from None
        try:
            self.temp.write_bytes(data)
        except OSError as error:
            raise self.fail(f"cannot write '{self.target}': {error.strerror}") from error
        self.written = True

    def commit(self) -> Path:
        """Move the image into place."""
        self.check_open()
        if not self.written:
            raise self.fail(f"no frame was written to '{self.target}'")
        return self.finish()


class SequenceWriter(Writer):
    """Writes every frame as ``frame-00000.png``, ... into a folder that appears at commit.

    The frames go to a hidden temporary folder beside the target. At commit it is
    renamed to the target; with ``overwrite`` a previous sequence there is first
    moved aside (under another hidden name) and deleted after the rename, so readers
    see the old folder or the new one, never a mix (the name is missing only between
    the two renames). Abort (or a writer dropped
    unclosed) deletes the temporary folder.
    """

    def __init__(self, target: Path, timeline: Timeline, overwrite: bool, prepare: Prepare) -> None:
        self.target = target
        self.overwrite = overwrite
        self.prepare = prepare
        self.digits = max(SEQUENCE_DIGITS, len(str(timeline.frame_count - 1)))
        self.frames = 0
        self.done = False
        self.temp = self._make_temp()
        self.finalizer = weakref.finalize(self, discard, self.temp, [])

    def _make_temp(self) -> Path:
        for _ in range(100):
            temp = temp_name(self.target)
            try:
                temp.mkdir(0o777)  # minus the umask, like any new folder
            except FileExistsError:
                continue
            except OSError as error:
                raise EncodeError(
                    f"cannot create a folder in '{self.target.parent}': {error.strerror}",
                    field="params.path",
                ) from error
            return temp
        raise EncodeError(f"cannot create a temporary folder beside '{self.target}'", field="params.path")

    def fail(self, message: str) -> EncodeError:
        """Abort and return an :class:`EncodeError` with ``message`` to raise."""
        self.abort()
        return EncodeError(message)

    def write(self, inputs: dict[str, Any], ctx: FrameContext) -> None:
        """Encode one frame as PNG into the temporary folder."""
        if self.done:
            raise EncodeError(f"the writer of '{self.target}' is already closed")
        try:
            data = encode_image(self.prepare(inputs, ctx), "png", 0, SEQUENCE_PNG_COMPRESSION)
        except EncodeError as error:
            raise self.fail(f"{error.message} for '{self.target}'") from None
        path = self.temp / f"frame-{self.frames:0{self.digits}d}.png"
        try:
            with open(path, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise self.fail(f"cannot write '{path.name}' of '{self.target}': {error.strerror}") from error
        self.frames += 1

    def commit(self) -> Path:
        """Rename the temporary folder to the target, replacing a previous sequence if allowed."""
        if self.done:
            raise EncodeError(f"the writer of '{self.target}' is already closed")
        if self.frames == 0:
            raise self.fail(f"no frames were written to '{self.target}'")
        old: Path | None = None
        try:
            check_sequence_target(self.target, self.overwrite)  # it may have appeared meanwhile
        except EncodeError:
            self.abort()
            raise
        try:
            if self.target.exists():
                old = temp_name(self.target, ".old")
                os.replace(self.target, old)
            os.replace(self.temp, self.target)
        except OSError as error:
            if old is not None and not self.target.exists():
                with contextlib.suppress(OSError):
                    os.replace(old, self.target)
            raise self.fail(f"cannot move the frames into '{self.target}': {error.strerror}") from error
        self.done = True
        self.finalizer.detach()
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        """Delete the temporary folder; idempotent."""
        if self.done:
            return
        self.done = True
        self.finalizer.detach()
        shutil.rmtree(self.temp, ignore_errors=True)
