"""A real redis-server (Debian's) on a free loopback port, for the shared cache tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.processes import stop_process
from support.registry import free_port


@dataclass
class RunningRedis:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(workdir: Path, port: int | None = None) -> RunningRedis:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `bash .ci/setup --test` (apt-get install redis-server)")
    port = port or free_port()
    log_path = workdir / f"redis-{port}.log"
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                               stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited early:\n{log_path.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return RunningRedis(port, process, log_path)
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"redis-server did not answer on port {port}:\n{log_path.read_text(errors='replace')}")


def shared_cache_flags(redis: RunningRedis, workdir: Path, secret: bytes) -> list[str]:
    """`webhook serve` flags for the shared cache on `redis`, its key file written under `workdir`."""
    key_file = workdir / "shared-cache.key"
    key_file.write_bytes(secret)
    return ["--shared-cache", redis.url, "--shared-cache-key-file", str(key_file)]
