"""Keep freed frame buffers in the process for reuse, instead of handing them back to the OS.

A render allocates and frees several full-size images per frame (a 4K float image is
100 MB). glibc's malloc serves every block over 32 MB (and, after it trims the heap,
smaller ones too) from fresh pages of the OS and returns them on ``free``, so each frame
pays page faults and the kernel's zeroing of those pages again. Measured on a 5 s 4K
rack focus: 150,000-250,000 page faults and 4-8 s of system time in the render process;
with the freed memory kept, 48,000 faults and 1.3-2.3 s, and the render 3-11% faster.
Peak memory does not grow: the kept blocks are the ones the next frame asks for again.

:func:`keep_freed_memory` is called by the console script and by batch workers, the
processes focusgraph owns; a program using the library decides for itself. ffmpeg, which
reads every frame into fresh buffers too, is started with :func:`child_environment`:
the same setting through glibc's environment variables (4K encode 9% faster, measured).
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

RETAINED_BYTES = 512 << 20
"""Free memory at the top of the heap kept before any is handed back to the OS."""


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep large freed blocks (no ``mmap`` per block, trim only beyond 512 MB).

    Returns
    -------
    bool
        Whether the setting took effect (False off Linux, or with another C library).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (present in glibc only; musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, RETAINED_BYTES))


def child_environment() -> dict[str, str]:
    """The environment for a child process (ffmpeg), with the same setting unless one is given.

    glibc reads ``MALLOC_MMAP_MAX_`` and ``MALLOC_TRIM_THRESHOLD_`` at start-up; other C
    libraries ignore them. A value the user set, or ``GLIBC_TUNABLES``, is left as it is.
    """
    env = dict(os.environ)
    if sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in env:
        env.setdefault("MALLOC_MMAP_MAX_", "0")
        env.setdefault("MALLOC_TRIM_THRESHOLD_", str(RETAINED_BYTES))
    return env
