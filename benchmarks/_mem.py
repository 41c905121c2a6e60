"""Resident memory of this process, from /proc (Linux), for the benchmarks."""

from __future__ import annotations

import os
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (``VmHWM``) to the current resident size."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    """The peak resident size since the last :func:`reset_peak` (``VmHWM``), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss() -> int:
    """The resident size now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RssPeak:
    """Peak RSS above the starting value, sampled in a background thread."""

    def __enter__(self) -> RssPeak:
        self.base = rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.0005)

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, rss())
        self._stop.set()
        self._t.join()

    @property
    def extra(self) -> int:
        return self.peak - self.base
