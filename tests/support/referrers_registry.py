"""A registry WITH the OCI referrers API, in front of Debian's docker-registry 2.8 (which has
none). STAND-IN: no registry that serves the referrers API can be built or installed here
(zot is refused by the Go module proxy, distribution v3 has no referrers API, Debian and
PyPI ship neither), so this proxy adds the one endpoint, as Quay and other registries
answer it, and forwards everything else to the real registry:

- GET /v2/<name>/referrers/<digest>: an OCI index of the manifests pushed with that subject;
  404 NAME_UNKNOWN for a repository the registry does not know (Quay's Go registry);
- a manifest PUT with a `subject` is indexed and answered with `OCI-Subject`, so clients keep
  no fallback tags; fallback tags (`sha256-<hex>`) are hidden, as such a registry has none.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from signer.formats import mediatypes as mt

NAME_UNKNOWN = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
MANIFEST_UNKNOWN = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'


class ReferrersRegistry:
    def __init__(self, upstream_host: str) -> None:
        self.upstream_host = upstream_host
        self.referrers: dict[tuple[str, str], list[dict]] = {}
        self.broken_api = False  # answer the referrers endpoint as a registry without it would
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _upstream(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, list, bytes]:
                connection = http.client.HTTPConnection(registry.upstream_host, timeout=30)
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, response.getheaders(), response.read()
                finally:
                    connection.close()

            def _answer(self, status: int, data: bytes, content_type: str | None = "application/json", headers: list | tuple = ()) -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path
                if "/referrers/" in path and self.command == "GET":
                    if registry.broken_api:
                        return self._answer(404, b"404 page not found\n", "text/plain; charset=utf-8")
                    name, rest = path[len("/v2/"):].split("/referrers/", 1)
                    if self._upstream("GET", f"/v2/{name}/tags/list", None, {})[0] == 404:
                        return self._answer(404, NAME_UNKNOWN)
                    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": registry.referrers.get((name, rest.split("?", 1)[0]), [])}
                    return self._answer(200, json.dumps(index).encode(), mt.OCI_INDEX)
                if "/manifests/sha256-" in path and self.command in ("GET", "HEAD"):
                    return self._answer(404, MANIFEST_UNKNOWN)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                status, response_headers, data = self._upstream(self.command, path, body, headers)
                extra = []
                if self.command == "PUT" and "/manifests/" in path and body and status == 201:
                    document = json.loads(body)
                    if isinstance(document.get("subject"), dict):
                        name = path[len("/v2/"):].split("/manifests/", 1)[0]
                        registry.referrers.setdefault((name, document["subject"]["digest"]), []).append({
                            "mediaType": document.get("mediaType"), "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body),
                            "artifactType": document.get("artifactType") or (document.get("config") or {}).get("mediaType"),
                            "annotations": document.get("annotations") or {}})
                        extra.append(("OCI-Subject", document["subject"]["digest"]))
                forwarded = [(key, value.replace(registry.upstream_host, registry.host)) for key, value in response_headers
                             if key.lower() not in ("transfer-encoding", "connection", "content-length")]
                self._answer(status, data, None, forwarded + extra)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
