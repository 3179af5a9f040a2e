"""The writers of ``core.encode``: ffmpeg video, stills and PNG sequences, all atomic.

:class:`VideoWriter` streams raw RGB frames into one ``ffmpeg`` process (the binary
shipped with ``imageio-ffmpeg``); the codec, filters and container come from the
arguments the node builds (H.264 MP4, VP9 WebM or a palette GIF), so it knows nothing
about formats. :class:`AtomicWriter` is the temporary-file-then-rename part it shares
with :class:`StillWriter`; :class:`SequenceWriter` does the same with a folder.
Every writer gets a ``prepare`` function from the node that checks and reframes
each frame.

Overlap with the encoder: :class:`VideoWriter` does not write to ffmpeg's pipe in the
render thread. :meth:`VideoWriter.write` hands the frame to a writer thread
(:class:`FrameFeeder`) through a queue of :data:`QUEUE_FRAMES` frames and returns; the
thread does the blocking ``stdin.write`` (which releases the GIL), so the next frame is
computed while ffmpeg takes this one. At most ``QUEUE_FRAMES + 1`` frames are held
(queued, plus the one being written), whatever the clip's length. The frame is handed
over without a copy: the arrays reaching an output node are fresh results of a node (or
read-only arrays reused as they are) that nothing mutates later, and a node that
recycled its output buffer in place would break that contract for every writer. Errors
of the thread surface, with the same messages as a write in the render thread would
give, on the next :meth:`VideoWriter.write` or at :meth:`VideoWriter.commit`.

OpenCV while ffmpeg encodes: from a :class:`VideoWriter`'s first frame to its commit or
abort, OpenCV runs its calls in the calling thread only (:data:`OPENCV_THREADS_ENCODING`,
then the previous count is restored; :class:`EncodingThreads`). The encoder's threads
already fill every core, and the pipeline is the parallelism: the render thread computes
the next frame while ffmpeg encodes earlier ones. An OpenCV call split over a worker
pool on busy cores mostly waits for its slowest stripe. Measured on the 5 s rack focus
of a photo on two cores (re-renders, medians of 3-6 interleaved runs): at 4K the render
process used 11.1 instead of 13.2 s of CPU and the clip took 27.3 instead of 28.8 s; at
1080p 3.7-3.9 instead of 3.8-4.0 s, within noise in wall time. The first frame (the
segmentation, the plate, the first blur) is computed before the first write, while
ffmpeg is not yet running, with every thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import cv2
import imageio_ffmpeg
import numpy as np

from focusgraph.graph.allocator import child_environment
from focusgraph.graph.errors import EncodeError
from focusgraph.graph.node import FrameContext, Timeline, Writer

STDERR_TAIL_LINES = 6
ABORT_WAIT_SECONDS = 5.0
FFMPEG_CHECK_SECONDS = 20.0
#: Frames waiting in the queue of a :class:`VideoWriter`'s writer thread (one more may be
#: being written). 0 writes in the render thread, without overlap (for benchmarks).
QUEUE_FRAMES = 2
#: Start ffmpeg with glibc's malloc keeping freed frame buffers
#: (:func:`focusgraph.graph.allocator.child_environment`).
ENCODER_KEEPS_MEMORY = True
#: OpenCV threads while a :class:`VideoWriter` streams to ffmpeg (see the module's docstring).
OPENCV_THREADS_ENCODING = 1
#: How long a blocked hand-over or join waits between checks of the writer thread.
POLL_SECONDS = 0.1
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


class FrameFeeder:
    """Writes frames to a pipe from a daemon thread fed through a bounded queue.

    The thread holds no reference to the writer that owns it, so a writer dropped
    without ``commit`` or ``abort`` is still finalized (its finalizer calls
    :meth:`stop`). After a failed write the thread keeps taking (and dropping) queued
    frames until it is stopped, so a hand-over never waits on a dead thread.

    Parameters
    ----------
    pipe : IO[bytes]
        The pipe (ffmpeg's stdin). The feeder never closes it.
    depth : int
        Frames the queue holds; 0 writes synchronously in the calling thread.

    Attributes
    ----------
    error : BaseException or None
        The exception of the first failed write.
    failed_frame : int or None
        Index of the frame whose write failed.
    """

    def __init__(self, pipe: IO[bytes], depth: int) -> None:
        self.pipe = pipe
        self.error: BaseException | None = None
        self.failed_frame: int | None = None
        self.stopping = False
        self.queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(max(depth, 1))
        self.thread: threading.Thread | None = None
        if depth > 0:
            self.thread = threading.Thread(target=self._run, name="focusgraph-ffmpeg-feeder", daemon=True)
            self.thread.start()

    def _write(self, frame: int, image: np.ndarray) -> None:
        try:
            self.pipe.write(image.data)
        except BaseException as error:  # reported to the render thread
            self.failed_frame = frame
            self.error = error

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None or self.stopping:
                return
            if self.error is None:
                self._write(*item)
            del item  # do not hold the frame while waiting for the next one

    @property
    def alive(self) -> bool:
        """Whether the writer thread runs (always false for a synchronous feeder)."""
        return self.thread is not None and self.thread.is_alive()

    def put(self, frame: int, image: np.ndarray) -> bool:
        """Hand ``image`` (C-contiguous, never mutated afterwards) over; wait while the queue is full.

        Returns
        -------
        bool
            False if a write has failed (this frame is dropped; see :attr:`error`).
        """
        if self.error is not None:
            return False
        if self.thread is None:
            self._write(frame, image)
            return self.error is None
        while True:
            try:
                self.queue.put((frame, image), timeout=POLL_SECONDS)
                return self.error is None
            except queue.Full:
                if self.error is not None or not self.thread.is_alive():
                    return False

    def finish(self) -> bool:
        """Wait until every queued frame is written and the thread has ended.

        Returns
        -------
        bool
            False if a write failed (see :attr:`error`).
        """
        if self.thread is not None:
            while self.thread.is_alive():
                with contextlib.suppress(queue.Full):
                    self.queue.put(None, timeout=POLL_SECONDS)
                    break
            while self.thread.is_alive():  # a loop of short joins: Ctrl-C gets through
                self.thread.join(POLL_SECONDS)
        return self.error is None

    def stop(self, timeout: float = 0.0) -> bool:
        """Make the thread drop what is queued and end; wait up to ``timeout`` seconds for it.

        A write in progress is not interrupted: kill the reader of the pipe first.

        Returns
        -------
        bool
            Whether the thread has ended (it is a daemon thread: one that has not will
            not hold up the interpreter's exit).
        """
        self.stopping = True
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
        if self.thread is None:
            return True
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and time.monotonic() < deadline:
            self.thread.join(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        return not self.thread.is_alive()


class EncodingThreads:
    """OpenCV's thread count while encoders run: :data:`OPENCV_THREADS_ENCODING`, then as before.

    Each running encoder holds a claim (:meth:`claim`, :meth:`release`); the first claim
    lowers OpenCV's thread count and the last release restores the count found then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims = 0
        self._restore = 0

    @property
    def claims(self) -> int:
        """Encoders running now."""
        return self._claims

    def claim(self) -> None:
        """An encoder started."""
        with self._lock:
            if self._claims == 0:
                self._restore = cv2.getNumThreads()
                cv2.setNumThreads(OPENCV_THREADS_ENCODING)
            self._claims += 1

    def release(self) -> None:
        """An encoder stopped."""
        with self._lock:
            self._claims -= 1
            if self._claims == 0:
                cv2.setNumThreads(self._restore)


ENCODING_THREADS = EncodingThreads()
"""The process's :class:`EncodingThreads`, claimed by every running :class:`VideoWriter`."""


def release_claims(claims: list[EncodingThreads]) -> None:
    """Release each claim in ``claims`` once, emptying it."""
    while claims:
        claims.pop().release()


def discard_video(
    temp: Path,
    processes: list[subprocess.Popen[bytes]],
    feeders: list[FrameFeeder],
    claims: list[EncodingThreads],
) -> None:
    """Finalizer of a :class:`VideoWriter`: kill ffmpeg, stop the writer thread, remove ``temp``."""
    for feeder in feeders:
        feeder.stopping = True
    discard(temp, processes)
    for feeder in feeders:
        feeder.stop()
    release_claims(claims)


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
        self.finalizer: weakref.finalize[..., Any] = weakref.finalize(
            self, discard, self.temp, self.processes
        )

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
    clip's size. The pipe is written by a :class:`FrameFeeder` thread, so that
    :meth:`write` returns as soon as the frame is queued (at most :data:`QUEUE_FRAMES`
    wait) and the renderer computes the next frame while ffmpeg takes this one. The
    frame is not copied: it must not be modified after :meth:`write` (arrays that
    nodes return are fresh or read-only).

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
        self.feeder: FrameFeeder | None = None
        self.feeders: list[FrameFeeder] = []  # seen by the finalizer, which must not hold self
        self.claims: list[EncodingThreads] = []  # held from ffmpeg's start to the writer's end
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in release)
        self.finalizer.detach()
        self.finalizer = weakref.finalize(
            self, discard_video, self.temp, self.processes, self.feeders, self.claims
        )

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
        """Prepare one frame and queue it for ffmpeg (started on the first frame).

        Waits only while :data:`QUEUE_FRAMES` frames are already queued.

        Raises
        ------
        EncodeError
            If the frame is invalid or changes size, if ffmpeg cannot start, or if ffmpeg
            has stopped (this frame or an earlier one could not be written); the
            writer is aborted first.
        """
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
                    env=child_environment() if ENCODER_KEEPS_MEMORY else None,
                )
            except OSError as error:
                raise self.fail(f"cannot start ffmpeg: {error}") from error
            self.processes.append(self.process)
            assert self.process.stdin is not None
            self.feeder = FrameFeeder(self.process.stdin, QUEUE_FRAMES)
            self.feeders.append(self.feeder)
            ENCODING_THREADS.claim()
            self.claims.append(ENCODING_THREADS)
        elif self.size != (width, height):
            clip_w, clip_h = self.size or (0, 0)
            raise self.fail(
                f"frame {ctx.frame} is {width}x{height} but the clip is {clip_w}x{clip_h} "
                "(after the even crop); every frame must have the same size"
            )
        feeder = self.feeder
        assert feeder is not None
        if feeder.error is None and self.process.poll() is not None:
            raise self.stopped(ctx.frame, BrokenPipeError("ffmpeg exited"))
        # a view of the frame when it is contiguous (nothing modifies it later), else a copy
        if not feeder.put(ctx.frame, np.ascontiguousarray(image)):
            raise self.stopped(feeder.failed_frame, feeder.error)
        self.frames += 1

    def stopped(self, frame: int | None, error: BaseException | None) -> EncodeError:
        """Abort after a failed write of ``frame``; return the error to raise (chained to ``error``).

        The message tells how ffmpeg ended (it is given a few seconds to exit) and the
        tail of its log.
        """
        if self.done:  # aborted (from another thread) while this frame waited in the queue
            return EncodeError(f"the writer of '{self.target}' is already closed")
        process = self.process
        assert process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(ABORT_WAIT_SECONDS)
        failure = self.fail(
            f"ffmpeg stopped while writing '{self.target}' at frame {frame}: "
            f"{ending(process.returncode)}{stderr_tail(self.log)}"
        )
        failure.__cause__ = error
        return failure

    def commit(self) -> Path:
        """Write the queued frames, finish the file, check ffmpeg's exit status and move it into place."""
        self.check_open()
        process = self.process
        if process is None:
            raise self.fail(f"no frames were written to '{self.target}'")
        feeder = self.feeder
        assert process.stdin is not None and feeder is not None
        if not feeder.finish():
            raise self.stopped(feeder.failed_frame, feeder.error)
        with contextlib.suppress(OSError):  # ffmpeg died: the exit status tells why
            process.stdin.close()
        code = process.wait()
        if code != 0:
            raise self.fail(f"ffmpeg failed writing '{self.target}': {ending(code)}{stderr_tail(self.log)}")
        if self.temp.stat().st_size == 0:
            raise self.fail(f"ffmpeg wrote an empty file for '{self.target}'")
        return self.finish()

    def release(self) -> None:
        """Stop ffmpeg and the writer thread promptly, then close the pipe and the log.

        The thread is told to stop. If it ends at once (it was idle), ffmpeg's input is
        closed. ffmpeg, if still running, is then terminated (which also ends a write
        the thread is blocked in, ffmpeg not reading) and killed if it has not exited
        after :data:`ABORT_WAIT_SECONDS`. A thread that was busy is joined with a timeout
        before the pipe is closed (closing waits for a write in progress); it is a daemon
        thread, so one that never ends cannot hold up the interpreter's exit.
        """
        process = self.process
        feeder = self.feeder
        if process is not None:
            idle = feeder is None or feeder.stop(POLL_SECONDS)
            if idle and process.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    process.stdin.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(ABORT_WAIT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if (
                not idle
                and feeder is not None
                and feeder.stop(ABORT_WAIT_SECONDS)
                and process.stdin is not None
            ):
                with contextlib.suppress(OSError, ValueError):
                    process.stdin.close()
        release_claims(self.claims)
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
