"""A real OPA server (`opa run --server`, built by `.ci/peers`) on 127.0.0.1 for the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.cluster import require_peer
from support.processes import stop_process
from support.registry import free_port


@dataclass
class RunningOpa:
    url: str
    process: subprocess.Popen
    log_path: Path
    workdir: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def restart(self) -> None:
        """What an OPA restart does to the webhook: pushed policies and data are gone."""
        self.stop()
        self.process = start_opa(self.workdir, port=self.port).process

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered (a stalled OPA)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
        stop_process(self.process)


def start_opa(workdir: Path, *, port: int | None = None) -> RunningOpa:
    opa = require_peer("opa")
    port = port or free_port()
    log_path = workdir / f"opa-{port}.log"
    process = subprocess.Popen([str(opa), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error", "--disable-telemetry"],
                               stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"opa exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return RunningOpa(url=url, process=process, log_path=log_path, workdir=workdir)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"opa did not become ready:\n{log_path.read_text(errors='replace')}")
