"""The console script keeps freed frame buffers instead of faulting fresh pages in each frame."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from focusgraph.graph import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Allocates a large image twice (fills it, frees it, fills a new one) and prints the page
# faults of the first allocation and of the second; with "trim", gives the freed memory
# back between the two. Transparent huge pages are turned off for the probe: one fault
# could map 2 MB or 4 KB depending on how many huge pages the kernel has free, which made
# the counts vary from run to run (781 faults for the first image, 283 after the trim).
_PROBE = """
import ctypes, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: every fault is one 4 KB page
import numpy as np
from focusgraph.graph.allocator import keep_freed_memory, release_freed_memory
if sys.argv[1] != "default":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
first = faults()
image = np.ones((2160, 3840, 3), np.float32)  # 100 MB: beyond malloc's mmap threshold
second = faults()
del image
if sys.argv[1] == "trim":
    release_freed_memory()
image = np.ones((2160, 3840, 3), np.float32)
third = faults()
print(second - first, third - second)
"""

#: The caller's malloc settings would change what the probe measures.
_CLEAN_ENV = {
    name: value
    for name, value in os.environ.items()
    if not name.startswith("MALLOC_") and name not in ("GLIBC_TUNABLES", "LD_PRELOAD")
}


def _faults(mode: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env=_CLEAN_ENV
    )
    first, again = done.stdout.split()
    return int(first), int(again)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_freed_frames_are_reused_without_fresh_page_faults() -> None:
    first, again = _faults("default")
    assert first > 0 and again > first // 2  # by default the block went back to the OS
    first, again = _faults("keep")
    assert again < first // 10  # kept: the second image reuses the first one's pages
    first, again = _faults("trim")
    assert again > first // 2  # released: the memory went back to the OS after all


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's environment variables")
def test_the_child_environment_leaves_the_users_settings_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1234")
    env = allocator.child_environment()
    assert env["MALLOC_MMAP_MAX_"] == "0" and env["MALLOC_TRIM_THRESHOLD_"] == "1234"
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=4")
    env = allocator.child_environment()
    assert "MALLOC_MMAP_MAX_" not in env and env["GLIBC_TUNABLES"] == "glibc.malloc.mmap_max=4"
