"""The console script's entry point: handles Ctrl-C from the very first instant.

Importing the CLI takes a moment (pydantic, networkx, OpenCV); an interrupt in that
window would otherwise print a traceback. Until :func:`focusgraph.graph.cli.main`
installs its own handling, SIGINT/SIGTERM end the process with exit code 130 (nothing
has been opened or written yet).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _early_exit(signum: int, frame: Any) -> None:
    os.write(2, b"focusgraph: interrupted; nothing was written\n")
    os._exit(130)


def run() -> None:
    """Install early interrupt handling, then run the CLI."""
    signal.signal(signal.SIGINT, _early_exit)
    signal.signal(signal.SIGTERM, _early_exit)
    from focusgraph.graph.allocator import keep_freed_memory

    keep_freed_memory()
    from focusgraph.graph.cli import main

    code = main()
    if code != 0:
        sys.exit(code)  # the interpreter's own exit runs the finalizers that clean up after a failure
    _exit_now()


def _exit_now() -> None:
    """End a successful run without the interpreter's teardown.

    Everything is written, committed and closed by now; tearing down the interpreter
    (collecting every module's objects: OpenCV, onnxruntime, the TFLite runtime) would
    add 0.1-0.2 s to every render, as long as some of the renders' own work. Like
    Python's exit, this waits for the threads still running.
    """
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
