"""Catalogue items 9-12: broken encoders, unwritable places, full disks, interrupts, clobbering."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from contract import PREVIOUS_OUTPUT, Outcome, Workspace, run_subprocess
from processes import processes_mentioning
from videoprobe import probe

Refuses = Callable[..., tuple[Outcome, dict[str, str]]]


def _clip(workspace: Workspace, photo: Path, out: Path, *extra: str) -> tuple[str | Path, ...]:
    return ("render", workspace.clip_graph, "-i", photo, "-o", out, *extra)


def _truncated_photo(workspace: Workspace) -> Path:
    """A photo that would fail to decode: an output problem reported instead proves no frame was rendered."""
    data = workspace.photo("whole.jpg", size=(96, 64)).read_bytes()
    (workspace.inputs / "whole.jpg").unlink()
    return workspace.write("half.jpg", data[: len(data) // 2])


# 9 -------------------------------------------------------------------------------------------


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("kind", ["missing", "not-executable", "crashing", "without-libx264"])
def test_09_unusable_ffmpeg_is_detected_before_any_frame(
    workspace: Workspace,
    refuses: Refuses,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
) -> None:
    tools = tmp_path_factory.mktemp("tools")
    scripts = {
        "crashing": "echo 'libx264.so: cannot open' >&2\nexit 127\n",
        "without-libx264": "echo ' V....D libopenh264'\n",
    }
    exe = _script(tools / "ffmpeg", scripts[kind]) if kind in scripts else str(tools / "ffmpeg")
    if kind == "not-executable":
        exe = str(tools)
    expected = {
        "missing": "cannot be run (No such file or directory)",
        "not-executable": "cannot be run",
        "crashing": "exit status 127: libx264.so: cannot open",
        "without-libx264": "no libx264",
    }[kind]
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", exe)
    outcome, _ = refuses(*_clip(workspace, _truncated_photo(workspace), workspace.previous, "--overwrite"))
    outcome.refused("output", "node clip", exe, expected, "IMAGEIO_FFMPEG_EXE")


def test_09_missing_output_directory_is_detected_before_any_frame(
    workspace: Workspace, refuses: Refuses
) -> None:
    out = workspace.outputs / "not-yet" / "clip.mp4"
    outcome, _ = refuses(*_clip(workspace, _truncated_photo(workspace), out))
    outcome.refused("output", "node clip.params.path", "does not exist; create it first")


def test_09_read_only_output_directory_is_detected_before_any_frame(
    workspace: Workspace, refuses: Refuses
) -> None:
    if os.geteuid() == 0:  # root writes anywhere; sysfs refuses new files even to root
        folder = Path("/sys")
    else:
        folder = workspace.outputs / "locked"
        folder.mkdir()
        folder.chmod(0o555)
    outcome, _ = refuses(*_clip(workspace, _truncated_photo(workspace), folder / "clip.mp4"))
    outcome.refused("output", "node clip.params.path", f"cannot create a file in '{folder}'")
    assert not (folder / "clip.mp4").exists()


# 10 ------------------------------------------------------------------------------------------


def test_10_disk_full_mid_encode_keeps_the_previous_output(workspace: Workspace) -> None:
    """The file size limit (RLIMIT_FSIZE) is inherited by ffmpeg: its writes fail part-way."""
    photo = workspace.photo(size=(320, 240))
    limit = 64 * 1024  # the full clip is several times larger

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    before = workspace.snapshot()
    args = [*_clip(workspace, photo, workspace.previous, "--overwrite", "--set", "duration=4")]
    outcome = run_subprocess(args, preexec=small_disk)
    outcome.refused("output", "node clip", "ffmpeg", str(workspace.previous), "file size limit")
    assert workspace.snapshot() == before  # previous output intact, no temporary file
    assert processes_mentioning(str(workspace.outputs)) == []


# 11 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_11_interrupt_after_some_frames_leaves_nothing(workspace: Workspace, signum: int) -> None:
    photo = workspace.photo(size=(320, 240))
    script = Path(sys.executable).with_name("focusgraph")
    before = workspace.snapshot()
    args = [*_clip(workspace, photo, workspace.previous, "--overwrite", "--set", "duration=600")]
    process = subprocess.Popen([str(script), *map(str, args)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    temp: list[Path] = []
    while time.monotonic() < deadline:  # wait until ffmpeg has written encoded frames
        temp = [p for p in workspace.outputs.iterdir() if "focusgraph-tmp" in p.name]
        if temp and temp[0].stat().st_size > 4096:
            break
        time.sleep(0.05)
    assert temp and temp[0].stat().st_size > 4096, "the render never started writing frames"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    outcome = Outcome(process.returncode, "", stderr)
    outcome.refused("interrupted", "interrupted; nothing was written")
    assert workspace.snapshot() == before
    assert processes_mentioning(str(workspace.outputs)) == []


# 12 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["same", "dot-slash", "symlink", "hardlink"])
def test_12_output_over_the_input_is_refused_before_decoding(
    workspace: Workspace, refuses: Refuses, monkeypatch: pytest.MonkeyPatch, alias: str
) -> None:
    photo = workspace.photo("photo.png")
    monkeypatch.chdir(workspace.inputs)
    out: str | Path = {"same": photo, "dot-slash": "./photo.png"}.get(alias, workspace.outputs / "link.png")
    if alias == "symlink":
        (workspace.outputs / "link.png").symlink_to(photo)
    elif alias == "hardlink":
        os.link(photo, workspace.outputs / "link.png")
    still = ("render", workspace.still_graph, "-i", "photo.png", "-o", out, "--overwrite")
    outcome, _ = refuses(*still)
    outcome.refused("graph", "node still.params.path", "would overwrite the input file", "photo.png")


def test_12_existing_output_is_refused_before_decoding(workspace: Workspace, refuses: Refuses) -> None:
    outcome, _ = refuses(*_clip(workspace, _truncated_photo(workspace), workspace.previous))
    outcome.refused("output", "node clip.params.path", str(workspace.previous), "--overwrite")


def test_12_overwrite_replaces_atomically(workspace: Workspace, cli: Callable[..., Outcome]) -> None:
    old_inode = workspace.previous.stat().st_ino
    reader = workspace.previous.open("rb")  # a player holding the old file keeps reading it whole
    outcome = cli(
        *_clip(workspace, workspace.photo(), workspace.previous, "--overwrite", "--set", "duration=0.5")
    )
    assert outcome.code == 0, outcome.err
    assert reader.read() == PREVIOUS_OUTPUT
    reader.close()
    assert workspace.previous.stat().st_ino != old_inode  # a new file renamed into place
    assert probe(workspace.previous)["codec"] == "h264"
    assert sorted(p.name for p in workspace.outputs.iterdir()) == ["previous.mp4"]
