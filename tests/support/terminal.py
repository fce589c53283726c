"""Run a command with its stderr on a pseudo-terminal, to see what a user at a terminal sees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_on_a_terminal(argv: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal showed)."""
    master, slave = os.openpty()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd)
    os.close(slave)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every holder of the terminal has closed it
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out = process.stdout.read().decode() if process.stdout else ""
    return process.wait(timeout=timeout), out, shown.decode(errors="replace")
