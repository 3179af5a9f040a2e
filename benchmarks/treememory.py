"""Peak memory of a process tree (a render and its ffmpeg, a batch and its workers), sampled."""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


class TreeMemory(threading.Thread):
    """Samples the resident memory of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self.peak_root = 0  # the command's own process (the render), without its children (ffmpeg)
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            total = 0
            try:
                for process in [self.root, *self.root.children(recursive=True)]:
                    try:
                        rss = process.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    self.peak_single = max(self.peak_single, rss)
                    if process.pid == self.root.pid:
                        self.peak_root = max(self.peak_root, rss)
            except psutil.Error:
                break
            self.peak_total = max(self.peak_total, total)
            time.sleep(self.interval)


@dataclass(frozen=True)
class Measured:
    """A finished command: wall time, exit status, stderr, the peak memory and the CPU time of its tree."""

    seconds: float
    returncode: int
    stderr: str
    peak_total_mb: float
    peak_single_mb: float
    peak_root_mb: float = 0.0
    cpu_seconds: float = 0.0  # user + system time of the command and every descendant it waited for


def run_measured(command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``command`` (stdout discarded, ``env`` its environment) while sampling its tree's memory.

    Commands must run one at a time: the CPU time is the change of this process's
    ``RUSAGE_CHILDREN`` over the run.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    memory = TreeMemory(process.pid)
    memory.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    memory.finished.set()
    memory.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(
        seconds,
        process.returncode,
        stderr,
        memory.peak_total / 2**20,
        memory.peak_single / 2**20,
        memory.peak_root / 2**20,
        cpu,
    )
