"""The command line: exit codes, one-line errors, documentation commands."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from focusgraph.graph.cli import main
from focusgraph.graph.registry import default_registry
from focusgraph.presets import preset_paths

FOCUSGRAPH = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "focusgraph")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script."""
    return subprocess.run([FOCUSGRAPH, *args], capture_output=True, text=True, timeout=120)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_presets_validate(capsys: pytest.CaptureFixture[str]) -> None:
    for name in preset_paths():
        assert main(["validate", name]) == 0
        assert "ok" in capsys.readouterr().out


def test_nodes_documents_every_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes"]) == 0
    listing = capsys.readouterr().out
    for name, cls in default_registry().types.items():
        assert name in listing
        assert main(["nodes", name]) == 0
        text = capsys.readouterr().out
        for field, info in cls.Params.model_fields.items():
            assert field in text
            assert info.description, f"{name}.{field} has no description"
            assert info.description in text
        for port in [*cls.inputs, *cls.outputs]:
            assert port in text


def test_presets_lists_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "-v"]) == 0
    out = capsys.readouterr().out
    assert "rack-focus" in out and "clear_start" in out


def test_bad_graph_exits_2_with_one_line(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(
        "version: 1\nname: bad\ntimeline: {duration: 1}\nnodes:\n  a: {type: blurr}\n", encoding="utf-8"
    )
    result = run("validate", str(graph))
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr and "did you mean 'blur'" in result.stderr


def test_missing_photo_exits_3(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    result = run("render", "rack-focus", "-i", str(tmp_path / "nope.jpg"), "-o", str(out))
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert "nope.jpg" in line and "photo" in line
    assert not out.exists()


def test_existing_output_exits_5_and_is_untouched(small_photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"keep me")
    result = run("render", "rack-focus", "-i", str(small_photo), "-o", str(out), "--set", "duration=0.2")
    assert result.returncode == 5
    assert "--overwrite" in one_error_line(result.stderr)
    assert out.read_bytes() == b"keep me"


def test_output_over_input_is_refused(small_photo: Path) -> None:
    before = small_photo.read_bytes()
    result = run("render", "rack-focus", "-i", str(small_photo), "-o", str(small_photo), "--overwrite")
    assert result.returncode == 2
    assert "overwrite the input" in result.stderr
    assert small_photo.read_bytes() == before


def test_bad_set_values(small_photo: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "c.mp4")
    result = run("render", "rack-focus", "-i", str(small_photo), "-o", out, "--set", "blur=lots")
    assert result.returncode == 2 and "inputs.blur" in result.stderr
    result = run("render", "rack-focus", "-i", str(small_photo), "-o", out, "--set", "background.raduis=3")
    assert result.returncode == 2 and "background.params.raduis" in result.stderr
    result = run("render", "not-a-preset", "-i", str(small_photo), "-o", out)
    assert result.returncode == 2 and "rack-focus" in result.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run(
        "--debug", "render", "rack-focus", "-i", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "c.mp4")
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_render_still_and_progress(small_photo: Path, tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    result = run(
        "render",
        "rack-focus",
        "-i",
        str(small_photo),
        "-o",
        str(still),
        "--set",
        "duration=0",
        "-q",
        "--set",
        "subject=salient",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(still) and still.stat().st_size > 0
    assert result.stderr == ""  # -q after the command silences the progress bar
    clip = tmp_path / "clip.mp4"
    result = run("render", "rack-focus", "-i", str(small_photo), "-o", str(clip), "--set", "duration=0.5")
    assert result.returncode == 0, result.stderr
    assert "rendered 15 frames" in result.stderr and "frames/s" in result.stderr
    assert "rendering:" not in result.stderr  # no progress bar in a log


def test_progress_bar_on_a_terminal(small_photo: Path, tmp_path: Path) -> None:
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    clip = tmp_path / "clip.mp4"
    command = [
        FOCUSGRAPH,
        "render",
        "rack-focus",
        "-i",
        str(small_photo),
        "-o",
        str(clip),
        "--set",
        "duration=0.5",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = shown.decode(errors="replace")
    assert "15/15" in text and "frame/s" in text and "<00:00" in text  # count, rate and ETA


def test_models_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "u2netp" in out and "mediapipe" in out


def test_user_mask_renders_without_models(small_photo: Path, tmp_path: Path) -> None:
    """With `subject.mask` set no model is needed: the render works offline with an empty cache."""
    import os

    import cv2
    import numpy as np

    mask = np.zeros((64, 96), np.uint8)
    cv2.circle(mask, (48, 32), 14, 255, -1)
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), mask)
    out = tmp_path / "clip.mp4"
    offline = {
        **os.environ,
        "FOCUSGRAPH_MODELS": str(tmp_path / "no-models"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/",
        "PIP_NO_INDEX": "1",
        "PIP_RETRIES": "0",
    }
    offline.pop("PIP_FIND_LINKS", None)
    command = [FOCUSGRAPH, "-q", "render", "rack-focus", "-i", str(small_photo), "-o", str(out)]
    command += ["--set", "duration=0.2", "--set", f"subject.mask={mask_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=offline)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0 and not (tmp_path / "no-models").exists()
    command = [
        FOCUSGRAPH,
        "-q",
        "render",
        "rack-focus",
        "-i",
        str(small_photo),
        "-o",
        str(tmp_path / "b.mp4"),
    ]
    # without the mask the models are needed, and cannot be fetched offline
    without_mask = subprocess.run(command, capture_output=True, text=True, timeout=120, env=offline)
    assert without_mask.returncode == 4, without_mask.stderr
    assert "focusgraph models fetch" in one_error_line(without_mask.stderr)


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_interrupt_during_start_up_exits_130(small_photo: Path, tmp_path: Path, delay: float) -> None:
    """Ctrl-C while models and runtimes load (a C-extension import may turn it into ImportError)."""
    out = tmp_path / "clip.mp4"
    command = [FOCUSGRAPH, "-q", "render", "rack-focus", "-i", str(small_photo), "-o", str(out)]
    process = subprocess.Popen([*command, "--set", "duration=600"], stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]
