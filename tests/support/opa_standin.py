"""A STAND-IN for an OPA server: no OPA binary can be installed on this machine (it is not
on PyPI, Debian or npm), so this speaks the part of OPA's REST API that modelsign uses
(PUT /v1/policies/<id>, PUT /v1/data/<path>, POST /v1/data/<path> with {"input": ...})
and evaluates with regopy. It exercises opa-python-client's real HTTP calls and the
webhook's OPA code path; it does not prove compatibility with OPA itself.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpaStandIn:
    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.data: dict = {}
        self.queries = 0
        self.stopped = False
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _drop_if_stopped(self) -> bool:
                """A stopped OPA: kept-alive connections die instead of being answered."""
                if standin.stopped:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                return standin.stopped

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, payload: object | None = None) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802
                if self._drop_if_stopped():
                    return
                body = self._body()
                with standin.lock:
                    if self.path.startswith("/v1/policies/"):
                        standin.policies[self.path.removeprefix("/v1/policies/")] = body.decode()
                        self._reply(200, {})
                        return
                    if self.path.startswith("/v1/data/"):
                        node = standin.data
                        parts = self.path.removeprefix("/v1/data/").split("/")
                        for part in parts[:-1]:
                            node = node.setdefault(part, {})
                        node[parts[-1]] = json.loads(body)
                        self._reply(204)
                        return
                self._reply(404, {"code": "resource_not_found"})

            def do_POST(self) -> None:  # noqa: N802
                from regopy import Interpreter

                from webhook import regocpp

                if self._drop_if_stopped():
                    return
                body = json.loads(self._body() or b"{}")
                with standin.lock:
                    standin.queries += 1
                    if not standin.policies:
                        self._reply(200, {})  # OPA answers an undefined document with no "result"
                        return
                    interpreter = Interpreter()
                    for name, text in sorted(standin.policies.items()):
                        interpreter.add_module(name.replace("/", "_"), text)
                    interpreter.add_data_json(json.dumps(standin.data, ensure_ascii=False))
                    interpreter.set_input(body.get("input"))
                    bundle = interpreter.build("data." + self.path.removeprefix("/v1/data/").replace("/", "."))
                    try:
                        result = {"result": regocpp.query(interpreter, bundle)}
                    except regocpp.Undefined:
                        result = {}
                self._reply(200, result)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def forget(self) -> None:
        """What an OPA restart does: pushed policies and data are gone."""
        with self.lock:
            self.policies.clear()
            self.data.clear()

    def stop(self) -> None:
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
