"""Run the real `modelsign webhook serve` (uvicorn, TLS, worker processes) for tests."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.registry import free_port


@dataclass
class RunningWebhook:
    url: str
    process: subprocess.Popen
    ca_file: Path
    log_path: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca_file)), timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL the server and its worker processes (its own process group), as a crash would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def start_webhook(policy: Path, certs: Path, workdir: Path, *, workers: int = 2, env: dict[str, str] | None = None, expect_ready: bool = True,
                  extra: list[str] | None = None, preexec_fn=None) -> RunningWebhook:
    port = free_port()
    log_path = workdir / f"webhook-{port}.log"
    command = [sys.executable, "-m", "webhook.cli", "webhook", "serve", "--config", str(policy), "--tls-cert", str(certs / "tls.crt"),
               "--tls-key", str(certs / "tls.key"), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--reload-interval", "0.5", *(extra or [])]
    process = subprocess.Popen(command, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                               preexec_fn=preexec_fn, start_new_session=True)
    server = RunningWebhook(url=f"https://127.0.0.1:{port}", process=process, ca_file=certs / "ca.crt", log_path=log_path)
    deadline = time.monotonic() + 30
    with server.client() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"webhook exited early:\n{server.log()}")
            try:
                status = client.get("/readyz").status_code
                if status == 200 or (status == 503 and not expect_ready):
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"webhook did not become ready:\n{server.log()}")
