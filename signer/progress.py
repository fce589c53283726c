"""How long work reports how far it got, without printing anything.

The library only calls back; what to show (and whether) is the caller's business: the CLI's
`signer.cli.progress.Progress` draws a line on a terminal and nothing otherwise.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

# Called with (bytes done, bytes in all).
ProgressCallback = Callable[[int, int], None]


class PhasedProgress(Protocol):
    """Work in steps (pull and unpack, then a scanner run): bytes within a step, and each new step
    named with its size, or None for work of unknown length (shown as time elapsed)."""

    def __call__(self, done: int, total: int) -> None: ...

    def phase(self, label: str, total: int | None = None) -> None: ...


class ByteCounter:
    """Sums bytes from one or more threads and hands the running total to the callback."""

    def __init__(self, total: int, report: ProgressCallback) -> None:
        self.done, self.total, self.report, self._lock = 0, total, report, threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            self.report(self.done, self.total)
