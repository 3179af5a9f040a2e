"""The VideoWriter's writer thread: order, overlap, bounded memory, errors and prompt abort.

Fake ffmpeg executables (shell scripts given to :class:`VideoWriter` as its ``ffmpeg``)
play a slow, a dying and a stuck encoder; the order test uses the real ffmpeg.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from processes import processes_mentioning
from videoprobe import read_frames

from focusgraph.graph.errors import EncodeError
from focusgraph.graph.node import FrameContext, Timeline
from focusgraph.nodes import _writers
from focusgraph.nodes._writers import VideoWriter
from focusgraph.nodes.encode import Encode

#: Raw frames larger than a pipe's buffer (64 KiB), so that a write blocks until read.
BIG = (256, 512)  # height, width: 384 KiB per frame
LOSSLESS = ["-c:v", "ffv1", "-f", "matroska"]


def _script(folder: Path, body: str) -> str:
    """A fake ffmpeg: a shell script whose last argument is the output file."""
    path = folder / "ffmpeg"
    path.write_text("#!/bin/sh\nfor out; do :; done\n" + body)
    path.chmod(0o755)
    return str(path)


def _as_is(inputs: dict[str, Any], ctx: FrameContext) -> np.ndarray:
    image: np.ndarray = inputs["image"]
    return image


def _writer(target: Path, ffmpeg: str, frames: int = 10, output_args: list[str] | None = None) -> VideoWriter:
    return VideoWriter(target, ".mkv", False, ffmpeg, Timeline(24.0, frames), output_args or LOSSLESS, _as_is)


def _frame(index: int, size: tuple[int, int] = BIG) -> np.ndarray:
    """A frame that differs from every other: a gradient shifted by ``index``."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack(
        [(x + index * 7) % 256, (y + index * 13) % 256, np.full_like(x, index * 17 % 256)]
    ).astype(np.uint8)


def _left_behind(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if "focusgraph-tmp" in entry.name)


def test_frames_arrive_in_order_and_complete(tmp_path: Path) -> None:
    target = tmp_path / "clip.mkv"
    frames = [_frame(index, (48, 64)) for index in range(40)]
    writer = _writer(
        target, imageio_ffmpeg.get_ffmpeg_exe(), len(frames), [*LOSSLESS[:2], "-pix_fmt", "rgb24"]
    )
    timeline = writer.timeline
    for index, frame in enumerate(frames):
        writer.write({"image": frame}, timeline.context(index))
    assert writer.commit() == target
    decoded = list(read_frames(target, accurate=False))
    assert len(decoded) == len(frames)
    for index, (got, sent) in enumerate(zip(decoded, frames, strict=True)):
        assert np.array_equal(got, sent), f"frame {index} differs"


def test_encode_node_mp4_keeps_order(tmp_path: Path) -> None:
    """Through the Encode node (H.264, lossy): each decoded frame is nearest to the one sent there."""
    target = tmp_path / "clip.mp4"
    levels = [int(level) for level in np.linspace(20, 235, 24)]
    node = Encode()
    timeline = Timeline(24.0, len(levels))
    writer = node.open(node.Params(path=str(target)), timeline, False)
    for index, level in enumerate(levels):
        writer.write({"image": np.full((48, 64, 3), level, np.uint8)}, timeline.context(index))
    writer.commit()
    means = [float(frame.mean()) for frame in read_frames(target)]
    assert len(means) == len(levels)
    assert all(abs(mean - level) < 3 for mean, level in zip(means, levels, strict=True))


def test_write_returns_before_the_frame_is_consumed_and_memory_is_bounded(tmp_path: Path) -> None:
    consumer = _script(tmp_path, 'sleep 2\nexec cat > "$out"\n')  # starts reading after 2 s
    target = tmp_path / "clip.mkv"
    count = 8
    writer = _writer(target, consumer, count)
    timeline = writer.timeline
    alive: list[weakref.ref[np.ndarray]] = []
    in_flight = _writers.QUEUE_FRAMES + 1  # queued, plus the one the thread is writing
    started = time.monotonic()
    for index in range(in_flight):
        frame = _frame(index)
        alive.append(weakref.ref(frame))
        writer.write({"image": frame}, timeline.context(index))
        del frame
    assert time.monotonic() - started < 1.0, "write() waited for ffmpeg: no overlap"

    # the next hand-over waits: the queue is full and nothing is read yet
    blocked = threading.Thread(
        target=writer.write, args=({"image": _frame(in_flight)}, timeline.context(in_flight))
    )
    blocked.start()
    blocked.join(0.5)
    assert blocked.is_alive(), "the queue did not bound the frames in flight"
    gc.collect()
    assert sum(ref() is not None for ref in alive) <= in_flight
    blocked.join(10)
    assert not blocked.is_alive()
    assert time.monotonic() - started > 1.5  # it waited for the consumer to start reading
    for index in range(in_flight + 1, count):
        writer.write({"image": _frame(index)}, timeline.context(index))
    writer.commit()
    assert target.stat().st_size == count * _frame(0).nbytes  # every byte reached the "encoder"
    gc.collect()
    assert all(ref() is None for ref in alive)  # nothing is kept once written


@pytest.mark.parametrize("when", ["write", "commit"])
def test_ffmpeg_dying_mid_stream_is_reported_with_its_stderr(tmp_path: Path, when: str) -> None:
    # reads one and a half frames, then fails like an encoder would
    dying = _script(
        tmp_path, f"head -c {_frame(0).nbytes * 3 // 2} > /dev/null\necho 'x264: out of cheese' >&2\nexit 3\n"
    )
    target = tmp_path / "clip.mkv"
    frames = 30 if when == "write" else 2
    writer = _writer(target, dying, frames)
    process = None
    with pytest.raises(EncodeError) as info:
        for index in range(frames):
            writer.write({"image": _frame(index)}, writer.timeline.context(index))
            process = writer.process
        if when == "write":
            pytest.fail("no write() reported the dead ffmpeg")
        writer.commit()
    message = str(info.value)
    assert "exit status 3; x264: out of cheese" in message
    assert "\n" not in message
    if when == "write":
        assert message.startswith(f"ffmpeg stopped while writing '{target}' at frame ")
    else:  # two frames: the second write fails in the thread, which commit reports
        assert message.startswith(f"ffmpeg stopped while writing '{target}' at frame 1: ")
    assert process is not None and process.poll() is not None
    assert _left_behind(tmp_path) == []
    assert writer.feeder is not None and not writer.feeder.alive


def test_abort_during_a_blocked_write_is_prompt_and_leaves_nothing(tmp_path: Path) -> None:
    stuck = _script(tmp_path, "exec sleep 600\n")  # never reads
    target = tmp_path / "clip.mkv"
    writer = _writer(target, stuck, 100)
    timeline = writer.timeline
    worker_error: list[BaseException] = []

    def render() -> None:
        try:
            for index in range(100):
                writer.write({"image": _frame(index)}, timeline.context(index))
        except EncodeError as error:  # the writer was aborted under it
            worker_error.append(error)

    renderer = threading.Thread(target=render, daemon=True)
    renderer.start()
    renderer.join(1.0)
    assert renderer.is_alive(), "writes should be blocked on the stuck ffmpeg"
    process = writer.process
    assert process is not None and process.poll() is None
    assert len(_left_behind(tmp_path)) == 1
    started = time.monotonic()
    writer.abort()
    assert time.monotonic() - started < 3.0
    assert process.poll() is not None
    assert writer.feeder is not None and not writer.feeder.alive
    renderer.join(3.0)
    assert not renderer.is_alive()
    assert [str(error) for error in worker_error] == [f"the writer of '{target}' is already closed"]
    assert _left_behind(tmp_path) == []
    assert processes_mentioning(str(tmp_path)) == []


def test_dropped_writer_with_a_blocked_thread_is_cleaned_up(tmp_path: Path) -> None:
    stuck = _script(tmp_path, "exec sleep 600\n")
    writer = _writer(tmp_path / "clip.mkv", stuck, 100)
    for index in range(_writers.QUEUE_FRAMES + 1):  # the thread is blocked in a write
        writer.write({"image": _frame(index)}, writer.timeline.context(index))
    process, feeder = writer.process, writer.feeder
    assert process is not None and feeder is not None
    del writer
    gc.collect()
    assert process.poll() is not None
    assert feeder.stop(3.0)  # the thread ended after its pipe broke
    assert _left_behind(tmp_path) == []


def test_synchronous_mode_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``QUEUE_FRAMES = 0`` writes in the render thread (the benchmark's baseline)."""
    monkeypatch.setattr(_writers, "QUEUE_FRAMES", 0)
    target = tmp_path / "clip.mkv"
    frames = [_frame(index, (48, 64)) for index in range(5)]
    writer = _writer(
        target, imageio_ffmpeg.get_ffmpeg_exe(), len(frames), [*LOSSLESS[:2], "-pix_fmt", "rgb24"]
    )
    for index, frame in enumerate(frames):
        writer.write({"image": frame}, writer.timeline.context(index))
    assert writer.feeder is not None and writer.feeder.thread is None
    writer.commit()
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(target, accurate=False), frames, strict=True))


def test_ffmpeg_starts_keeping_freed_frame_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a fake ffmpeg that records the malloc settings it was started with, then reads its input
    record = 'echo "$MALLOC_MMAP_MAX_ $MALLOC_TRIM_THRESHOLD_" > "$out.env"\n'
    ffmpeg = _script(tmp_path, record + 'cat > "$out"\n')
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    for keeps, expected in ((True, f"0 {512 << 20}"), (False, "")):
        monkeypatch.setattr(_writers, "ENCODER_KEEPS_MEMORY", keeps)
        target = tmp_path / f"clip-{keeps}.mkv"
        writer = _writer(target, ffmpeg, frames=1)
        writer.write({"image": _frame(0)}, FrameContext(0, 0.0, Timeline(24.0, 1)))
        writer.commit()  # waits for ffmpeg to exit
        recorded = next(tmp_path.glob("*.env"))
        assert recorded.read_text().strip() == expected
        recorded.unlink()


def test_opencv_runs_single_threaded_while_encoders_run(tmp_path: Path) -> None:
    """From a writer's first frame to its commit or abort OpenCV uses one thread; then the count is back."""
    initial = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        lossless = [*LOSSLESS[:2], "-pix_fmt", "rgb24", *LOSSLESS[2:]]
        first, second = (
            _writer(tmp_path / "a.mkv", ffmpeg, 2, lossless),
            _writer(tmp_path / "b.mkv", ffmpeg, 2, lossless),
        )
        assert cv2.getNumThreads() == 2  # opening starts nothing
        first.write({"image": _frame(0, (48, 64))}, first.timeline.context(0))
        assert cv2.getNumThreads() == _writers.OPENCV_THREADS_ENCODING
        second.write({"image": _frame(0, (48, 64))}, second.timeline.context(0))
        first.commit()
        assert cv2.getNumThreads() == _writers.OPENCV_THREADS_ENCODING  # the second still encodes
        second.abort()
        assert cv2.getNumThreads() == 2 and _writers.ENCODING_THREADS.claims == 0
        first.abort()  # already committed: releases nothing twice
        assert _writers.ENCODING_THREADS.claims == 0

        dropped = _writer(tmp_path / "c.mkv", ffmpeg, 2, lossless)
        dropped.write({"image": _frame(0, (48, 64))}, dropped.timeline.context(0))
        assert cv2.getNumThreads() == _writers.OPENCV_THREADS_ENCODING
        del dropped
        gc.collect()
        assert cv2.getNumThreads() == 2 and _writers.ENCODING_THREADS.claims == 0
    finally:
        cv2.setNumThreads(initial)
