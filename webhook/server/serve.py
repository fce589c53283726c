"""`modelsign webhook serve`: uvicorn over TLS, several workers, certificates reloaded on change.

Each worker builds its SSLContext through `reloading_ssl_context` and watches the cert
and key files: when cert-manager or `modelsign certs` rotates them, new handshakes use the
new pair (load_cert_chain on the live context); established connections are unaffected.

Nothing a process of the server writes may block on a stalled stdout or stderr (anyone who
reaches the port can make uvicorn log "Invalid HTTP request received."): uvicorn's logging
is configured with `webhook.logs.uvicorn_log_config`, which every worker applies first, and
which puts logs, warnings, sys.stdout and sys.stderr on bounded non-blocking queues
(webhook/logs.py).
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Any, Callable

import uvicorn

from webhook.logs import configure_logging, get_logger, uvicorn_log_config
from webhook.admission.shared_cache import ENV_KEY_FILE as ENV_SHARED_CACHE_KEY_FILE, ENV_URL as ENV_SHARED_CACHE_URL
from webhook.server.app import ENV_KEY_DIR, ENV_POLICY, ENV_REGO_DIR, ENV_RELOAD_SECONDS

CERT_RELOAD_SECONDS = 10.0


def _stamp(*paths: str) -> tuple:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
            stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def reloading_ssl_context(config: uvicorn.Config, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    certfile, keyfile = str(config.ssl_certfile), str(config.ssl_keyfile)
    log = get_logger(component="tls")
    seen = _stamp(certfile, keyfile)

    def watch() -> None:
        nonlocal seen
        while True:
            threading.Event().wait(float(os.environ.get("MODELSIGN_CERT_RELOAD_SECONDS", CERT_RELOAD_SECONDS)))
            current = _stamp(certfile, keyfile)
            if current == seen or None in current:
                continue
            try:
                context.load_cert_chain(certfile, keyfile)
                seen = current
                log.info("tls_certificate_reloaded", certfile=certfile)
            except (OSError, ssl.SSLError) as exc:  # half-written rotation: keep serving the old pair, retry next tick
                log.error("tls_certificate_reload_failed", certfile=certfile, error=str(exc))

    threading.Thread(target=watch, name="modelsign-tls-reload", daemon=True).start()
    return context


def serve(*, policy: Path, tls_cert: Path, tls_key: Path, host: str, port: int, workers: int, rego_dir: Path | None, reload_seconds: float,
          key_dir: Path | None = None, shared_cache: str | None = None, shared_cache_key_file: Path | None = None) -> None:
    configure_logging()
    for path, what in ((policy, "policy file"), (tls_cert, "TLS certificate"), (tls_key, "TLS key")):
        if not path.is_file():
            from signer import UsageError

            raise UsageError(f"{what} {path} does not exist", hint="create certificates with `modelsign certs generate`" if "TLS" in what else None)
    os.environ[ENV_POLICY] = str(policy.resolve())
    if rego_dir is not None:
        os.environ[ENV_REGO_DIR] = str(rego_dir.resolve())
    os.environ[ENV_RELOAD_SECONDS] = str(reload_seconds)
    if key_dir is not None:
        os.environ[ENV_KEY_DIR] = str(key_dir.resolve())
    if shared_cache:
        if shared_cache_key_file is None or not shared_cache_key_file.is_file():
            from signer import UsageError

            raise UsageError("--shared-cache needs --shared-cache-key-file FILE (at least 32 random bytes from the webhook's Secret): "
                             "entries are authenticated with it", hint="head -c 32 /dev/urandom > shared-cache.key, kept in the Secret")
        os.environ[ENV_SHARED_CACHE_URL] = shared_cache
        os.environ[ENV_SHARED_CACHE_KEY_FILE] = str(shared_cache_key_file.resolve())
    options: dict[str, Any] = dict(
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        ssl_context_factory=reloading_ssl_context,
        access_log=False,
        log_level="warning",
        log_config=uvicorn_log_config(),  # uvicorn's loggers through the non-blocking queue, never straight to stderr
        timeout_graceful_shutdown=10,
    )
    uvicorn.run("webhook.server.app:app_from_environment", **options)
