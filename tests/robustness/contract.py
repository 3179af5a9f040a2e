"""The failure contract of the hostile-input catalogue: workspace, outcome checks, process helpers.

Every failure a user can cause must end with: one line on stderr naming the file, node
and field; a distinct exit code (2 graph/arguments, 3 input image, 4 model, 5
encode/output, 130 interrupted); no traceback; nothing new at the output path (a
previous file there byte-identical); no temporary file left; the input untouched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# A one-frame graph: the photo straight to a PNG still (no models), for input tests.
STILL_GRAPH = """\
version: 1
name: still
inputs:
  image: {type: path}
  output: {type: path}
timeline: {fps: 1, duration: 0}
nodes:
  photo: {type: load, params: {path: $image}}
  still: {type: encode, inputs: {image: photo}, params: {path: $output}}
"""

# A short clip with per-frame work (animated blur and grain), no models.
CLIP_GRAPH = """\
version: 1
name: clip
inputs:
  image: {type: path}
  output: {type: path}
  duration: {type: number, default: 1}
timeline: {fps: 30, duration: $duration}
nodes:
  photo: {type: load, params: {path: $image}}
  focus: {type: keyframe, params: {keys: [{time: 0, value: 8}, {time: 1, value: 0}]}}
  soft: {type: blur, inputs: {image: photo}, params: {radius: {link: focus}, units: px}}
  textured: {type: grain, inputs: {image: soft}, params: {amount: 6, seed: 3}}
  clip: {type: encode, inputs: {image: textured}, params: {path: $output}}
"""

# Defines peak_mb() in a child interpreter: its peak resident memory in MB. VmHWM covers this
# program only; getrusage's ru_maxrss also keeps the high-water mark of the process that forked
# it (Linux carries it across exec), here the much larger pytest process.
PEAK_MB_SOURCE = """
def peak_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
"""

PREVIOUS_OUTPUT = b"a previous render that must survive byte for byte\n"
EXIT = {"node": 1, "graph": 2, "image": 3, "model": 4, "output": 5, "interrupted": 130}


@dataclass(frozen=True)
class Outcome:
    """What one CLI run printed and returned."""

    code: int
    out: str
    err: str

    def refused(self, kind: str, *fragments: str) -> str:
        """Assert a contract-abiding failure of ``kind`` (see ``EXIT``); return its line."""
        assert self.code == EXIT[kind], f"exit {self.code}, expected {EXIT[kind]}: {self.err}"
        assert "Traceback" not in self.err, self.err
        # The error is one line, the last; lines before it can only be progress messages.
        lines = self.err.strip().splitlines()
        line = lines[-1]
        assert line.startswith("focusgraph: error: ") or kind == "interrupted", self.err
        assert sum("focusgraph:" in earlier for earlier in lines) == 1, self.err
        for fragment in fragments:
            assert fragment in line, f"{fragment!r} not in: {line}"
        return line


def digest_tree(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (files or folders), by path; symlinks by target."""
    digests: dict[str, str] = {}
    for root in roots:
        paths = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_symlink():
                digests[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_dir():
                digests[str(path)] = "dir"
    return digests


@dataclass
class Workspace:
    """A folder with the graphs, an input folder and an output folder holding a previous render."""

    root: Path

    def __post_init__(self) -> None:
        self.inputs = self.root / "in"
        self.outputs = self.root / "out"
        self.inputs.mkdir()
        self.outputs.mkdir()
        self.still_graph = self.root / "still.yaml"
        self.still_graph.write_text(STILL_GRAPH)
        self.clip_graph = self.root / "clip.yaml"
        self.clip_graph.write_text(CLIP_GRAPH)
        self.previous = self.outputs / "previous.mp4"
        self.previous.write_bytes(PREVIOUS_OUTPUT)

    def photo(self, name: str = "photo.png", size: tuple[int, int] = (96, 64)) -> Path:
        """A small photo-like image (gradient with a bright disc) in the input folder."""
        width, height = size
        y, x = np.mgrid[0:height, 0:width]
        image = np.dstack([x * 255 // max(width, 1), y * 255 // max(height, 1), (x + y) % 256])
        image = image.astype(np.uint8)
        path = self.inputs / name
        Image.fromarray(image).save(path)
        return path

    def write(self, name: str, data: bytes) -> Path:
        """A file of raw bytes in the input folder."""
        path = self.inputs / name
        path.write_bytes(data)
        return path

    def snapshot(self) -> dict[str, str]:
        """Digest of everything in the workspace (inputs, graphs, outputs, temporary folder).

        Ignored: ``tmp/.ses``, which importing onnxruntime writes into the temporary folder
        (its session id, kept for reuse, not a temporary file of a render).
        """
        return {
            path: digest
            for path, digest in digest_tree(self.root).items()
            if path != str(self.root / "tmp" / ".ses")
        }


def run_subprocess(
    args: Sequence[str | Path],
    *,
    preexec: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Outcome:
    """Run the installed ``focusgraph`` console script in a child process."""
    script = Path(sys.executable).with_name("focusgraph")
    result = subprocess.run(
        [str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
        env=None if env is None else {**os.environ, **env},
        check=False,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)
