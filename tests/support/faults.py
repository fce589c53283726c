"""A forwarding proxy in front of the real registry that injects HTTP failures on request.

Used to show retries with backoff on 429/5xx and the error messages when a registry keeps
failing. Everything not scripted is forwarded unchanged to the real registry.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    def __init__(self, upstream_host: str) -> None:
        self.upstream_host = upstream_host
        self.faults: deque[int] = deque()
        self.always: int | None = None
        self.redirect_blobs_to: str | None = None  # base URL that blob GETs are redirected to (307)
        self.delay_seconds: float = 0.0  # added before forwarding each request (a slow registry)
        self.chunk_delay_seconds: float = 0.0  # between 64 KiB chunks of each answer (a trickling registry)
        self.retry_after = "0"  # the Retry-After header sent with injected 429s
        self.seen: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.seen.append(f"{self.command} {self.path}")
                    status = proxy.faults.popleft() if proxy.faults else proxy.always
                if proxy.delay_seconds:
                    time.sleep(proxy.delay_seconds)
                if proxy.redirect_blobs_to and self.command == "GET" and "/blobs/sha256:" in self.path:
                    self.send_response(307)
                    self.send_header("Location", proxy.redirect_blobs_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if status is not None:
                    payload = b'{"errors":[{"code":"UNAVAILABLE","message":"injected failure"}]}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if status == 429:
                        self.send_header("Retry-After", proxy.retry_after)
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(proxy.upstream_host, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value.replace(proxy.upstream_host, proxy.host))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    for start in range(0, len(data), 65536):
                        self.wfile.write(data[start:start + 65536])
                        self.wfile.flush()
                        if proxy.chunk_delay_seconds:
                            time.sleep(proxy.chunk_delay_seconds)
                connection.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self.faults.extend(statuses)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlackHole:
    """A registry address that accepts connections and never answers (a hung host or a
    firewall that swallows packets after the handshake)."""

    def __init__(self) -> None:
        import socket

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])  # kept open, never read or written
            except OSError:
                return

    def stop(self) -> None:
        import socket

        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self.listener.close()
        for connection in self.accepted:
            connection.close()
