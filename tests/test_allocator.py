"""The console script keeps freed frame buffers instead of faulting fresh pages in each frame."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates a large image twice (fills it, frees it, fills a new one) and prints the page
# faults of the second allocation against the first's.
_PROBE = """
import resource, sys
import numpy as np
from focusgraph.graph.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
first = faults()
image = np.ones((2160, 3840, 3), np.float32)  # 100 MB: beyond malloc's mmap threshold
second = faults()
del image
image = np.ones((2160, 3840, 3), np.float32)
third = faults()
print(second - first, third - second)
"""


def _faults(mode: str) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    first, again = done.stdout.split()
    return int(first), int(again)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_frames_are_reused_without_fresh_page_faults() -> None:
    first, again = _faults("default")
    assert first > 0 and again > first // 2  # by default the block went back to the OS
    first, again = _faults("keep")
    assert again < first // 10  # kept: the second image reuses the first one's pages


def test_the_console_script_keeps_freed_memory() -> None:
    script = (
        "import sys, focusgraph.graph.allocator as a\n"
        "calls = []\n"
        "a.keep_freed_memory = lambda: calls.append(1) or True\n"
        "import focusgraph.graph.cli as cli\n"
        "cli.main = lambda: print(len(calls)) or 0\n"
        "from focusgraph.graph.entry import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "1"
