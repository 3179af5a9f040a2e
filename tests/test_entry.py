"""The console script's entry point: its exit after a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run_entry(main_body: str) -> subprocess.CompletedProcess[str]:
    """Run the console script's ``run()`` with ``focusgraph.graph.cli.main`` replaced by ``main_body``."""
    body = "".join(f"    {line}\n" for line in main_body.splitlines())
    script = (
        "import atexit, sys, threading, time\n"
        "import focusgraph.graph.cli as cli\n"
        f"def main():\n{body}"
        "cli.main = main\n"
        "from focusgraph.graph.entry import run\n"
        "run()\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_successful_run_flushes_its_output_and_waits_for_its_threads(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    done = _run_entry(
        "print('out', end='')\n"
        "print('err', end='', file=sys.stderr)\n"
        f"threading.Thread(target=lambda: (time.sleep(0.3), open({str(marker)!r}, 'w').close())).start()\n"
        "return 0"
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "out", "err")  # block-buffered pipes, flushed
    assert marker.exists()  # the thread still running at the end was waited for


@pytest.mark.parametrize("code", [1, 4])
def test_a_failed_run_exits_through_the_interpreter_and_its_finalizers(code: int) -> None:
    done = _run_entry(f"atexit.register(lambda: print('finalized'))\nreturn {code}")
    assert done.returncode == code and done.stdout.strip() == "finalized"


def test_a_successful_run_skips_the_interpreters_teardown() -> None:
    done = _run_entry("atexit.register(lambda: print('finalized'))\nreturn 0")
    assert done.returncode == 0 and "finalized" not in done.stdout
