"""Run Debian's real `docker-registry` (distribution 2.8) on 127.0.0.1 with a random port.

Variants: plain HTTP, TLS (our own CA), htpasswd basic auth, and bearer tokens from a
small token service (tests/support/tokens.py). The registry's request log is captured so
tests can prove which requests were (not) made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from support.processes import stop_process

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningRegistry:
    host: str  # "127.0.0.1:PORT"
    root: Path
    log_path: Path
    process: subprocess.Popen
    scheme: str = "http"
    ca_file: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def requests_since(self, offset: int) -> list[str]:
        """Request lines (`METHOD URI`) the registry logged after byte `offset` of its log."""
        text = self.log_path.read_bytes()[offset:].decode(errors="replace")
        found = []
        for line in text.splitlines():
            if "http.request.method=" in line and "http.request.uri=" in line:
                method = line.split("http.request.method=", 1)[1].split()[0].strip('"')
                uri = line.split("http.request.uri=", 1)[1].split()[0].strip('"')
                found.append(f"{method} {uri}")
        return found

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def stop(self) -> None:
        stop_process(self.process)


def start_registry(
    workdir: Path,
    *,
    tls: tuple[Path, Path] | None = None,
    ca_file: Path | None = None,
    htpasswd: Path | None = None,
    token: dict | None = None,
) -> RunningRegistry:
    if not os.path.exists(REGISTRY_BINARY):
        raise RuntimeError("docker-registry is not installed; the README test command installs it (apt-get install docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "modelsign-tests"},
    }
    if tls:
        config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "modelsign-test", "path": str(htpasswd)}}
    if token:
        config["auth"] = {"token": token}
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "registry.log"
    log_handle = log_path.open("wb")
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config_path)], stdout=log_handle, stderr=subprocess.STDOUT)
    registry = RunningRegistry(
        host=f"127.0.0.1:{port}", root=workdir, log_path=log_path, process=process, scheme="https" if tls else "http", ca_file=ca_file
    )
    deadline = time.monotonic() + 20
    verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited early:\n{registry.log()}")
        try:
            if httpx.get(f"{registry.url}/v2/", timeout=1, verify=verify).status_code in (200, 401):
                return registry
        except httpx.HTTPError:
            time.sleep(0.1)
    registry.stop()
    raise RuntimeError(f"docker-registry did not come up:\n{registry.log()}")
