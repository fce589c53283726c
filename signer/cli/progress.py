"""Progress on stderr for long work, with an ETA when the amount is known.

Shown only when stderr is a terminal and `--quiet` was not given: piped or redirected output
gets nothing, so logs and scripts never see carriage returns. The library never prints: it
takes a callback (`signer.progress.ProgressCallback`, called with bytes done and bytes in all,
or a `PhasedProgress` for work in steps) and a `Progress` is both.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, Callable, Iterator

_REDRAW_SECONDS = 0.2
_MAX_SHOWN = 2**63 - 1


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """`label  42% 1.3 GiB/3.0 GiB  210.4 MiB/s  ETA 0:08`, redrawn in place at most 5 times a
    second; for a step of unknown length (a trivy run) `label  0:42 elapsed`. A `PhasedProgress`:
    `phase()` starts the next step of multi-step work (a scan: pull and unpack, check, trivy)."""

    def __init__(self, label: str, *, quiet: bool = False, stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.clock = clock
        self._width = 0
        self._lock = threading.Lock()
        self._start(label, None)

    def _start(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.clock() if self.enabled else 0.0
        self._drawn = self.started  # the first line after 0.2 s, when there is a rate to tell (or at the end)

    def phase(self, label: str, total: int | None = None) -> None:
        """The next step: `total` bytes, or None when its length is unknown (shown as time elapsed)."""
        if self.enabled:
            self._start(label, total)
            if total is None:
                self._draw(self.started, self._elapsed_line(self.started))

    def __call__(self, done: int, total: int) -> None:
        """The callback: `done` of `total` bytes (thread-safe; cheap when disabled)."""
        if not self.enabled:
            return
        self.done, self.total = done, total
        now = self.clock()
        if now - self._drawn < _REDRAW_SECONDS and done < total:
            return
        self._draw(now, self._line(now))

    def _line(self, now: float) -> str:
        try:
            return self._elapsed_line(now) if self.total is None else self._bytes_line(now)
        except (ArithmeticError, ValueError):  # a display problem never fails the work: stop showing
            self.enabled = False
            return ""

    def _bytes_line(self, now: float) -> str:
        # Sizes come from manifests: bounded (int64), but never let arithmetic on them fail the work.
        done, total = min(self.done, _MAX_SHOWN), min(self.total or 0, _MAX_SHOWN)
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        eta = f"ETA {_duration((total - done) / rate)}" if rate > 0 and done < total else f"in {_duration(elapsed)}"
        percent = 100 * done / total if total else 100.0
        return f"{self.label} {percent:3.0f}% {_size(done)}/{_size(total)}  {_size(rate)}/s  {eta}"

    def _elapsed_line(self, now: float) -> str:
        return f"{self.label}  {_duration(now - self.started)} elapsed"

    def _draw(self, now: float, line: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._drawn = now
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Redraw every second while the work runs, so a stalled pull or a long trivy run still
        shows the time going by (bytes steps keep their rate and ETA current)."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0 if self._width == 0 else 1.0):
                now = self.clock()
                self._draw(now, self._line(now))

        thread = threading.Thread(target=tick, name="progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.close()

    def close(self) -> None:
        """Clear the line, so the result prints on a clean one."""
        if self.enabled and self._width:
            with self._lock:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0
