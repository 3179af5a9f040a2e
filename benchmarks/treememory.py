"""Peak memory of a process tree (a render and its ffmpeg, a batch and its workers), sampled."""

from __future__ import annotations

import threading
import time

import psutil


class TreeMemory(threading.Thread):
    """Samples the resident memory of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
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
            except psutil.Error:
                break
            self.peak_total = max(self.peak_total, total)
            time.sleep(self.interval)
