"""The admission webhook: FastAPI app, policy (re)loading, health and metrics.

POST /validate   AdmissionReview v1 or v1beta1 -> AdmissionReview response (400 if unusable)
GET  /healthz    process alive
GET  /readyz     ready once a policy with its keys is loaded (shows the last reload error)
GET  /metrics    Prometheus text format

The policy file, its key files and the Rego directory are watched; a change is reloaded,
and a bad reload keeps the last good policy (and says so on /readyz and in the logs).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from signer.errors import ModelsignError
from webhook.config import default_rego_dir, load_policy, referenced_files
from webhook.logs import configure_logging, get_logger
from webhook.metrics import Metrics
from webhook.pipeline import AdmissionPipeline, Decision
from webhook.review import MAX_BODY_BYTES, AdmissionRequest, ReviewError, parse_review, review_response

ENV_POLICY = "MODELSIGN_POLICY"
ENV_REGO_DIR = "MODELSIGN_REGO_DIR"
ENV_RELOAD_SECONDS = "MODELSIGN_RELOAD_SECONDS"


@dataclass
class Settings:
    policy_path: Path
    rego_dir: Path | None = None
    reload_seconds: float = 2.0

    @classmethod
    def from_environment(cls) -> Settings:
        path = os.environ.get(ENV_POLICY)
        if not path:
            raise ModelsignError(f"{ENV_POLICY} is not set", hint="start the webhook with `modelsign webhook serve --config FILE`")
        rego = os.environ.get(ENV_REGO_DIR)
        return cls(policy_path=Path(path), rego_dir=Path(rego) if rego else None, reload_seconds=float(os.environ.get(ENV_RELOAD_SECONDS, "2")))


class WebhookState:
    """The current pipeline, swapped atomically on reload; the old one is retired after its
    in-flight requests had time to finish."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline: AdmissionPipeline | None = None
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self._fingerprint: tuple = ()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.log = get_logger(component="webhook")

    def _watched_files(self) -> list[Path]:
        """The policy file, the Rego files, and every file the policy file names now (read
        leniently, so a fix to a key file is noticed even while the policy is invalid)."""
        files = [self.settings.policy_path]
        rego_dir = self.settings.rego_dir or default_rego_dir()
        files += sorted(rego_dir.glob("*.rego"))
        try:
            document = yaml.safe_load(self.settings.policy_path.read_bytes())
        except (OSError, yaml.YAMLError, RecursionError):
            document = None
        return files + referenced_files(document, self.settings.policy_path.parent)

    def _current_fingerprint(self) -> tuple:
        fingerprint: list[tuple[str, int | None, int | None, int | None]] = []
        for path in self._watched_files():
            try:
                stat = path.stat()  # follows the ConfigMap ..data symlink swap
                fingerprint.append((str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino))
            except OSError:
                fingerprint.append((str(path), None, None, None))
        return tuple(fingerprint)

    def load(self) -> bool:
        current = self.pipeline.policy if self.pipeline else None
        fingerprint = self._current_fingerprint()  # taken first: a change during loading triggers another load
        try:
            policy = load_policy(self.settings.policy_path, rego_dir=self.settings.rego_dir or default_rego_dir())
            pipeline = AdmissionPipeline(policy)
        except Exception as exc:  # any failure keeps the last good policy; the reason is shown on /readyz
            self.last_error = str(exc) if isinstance(exc, ModelsignError) else f"{type(exc).__name__}: {exc}"
            self._fingerprint = fingerprint
            self.log.error("policy_load_failed", error=self.last_error, keeping=current.policy_hash if current else None)
            return False
        old, self.pipeline = self.pipeline, pipeline
        self.last_error = None
        self.loaded_at = time.time()
        self._fingerprint = fingerprint
        self.log.info("policy_loaded", policy=policy.name, policy_hash=policy.policy_hash, keys=policy.key_fingerprints, engine=pipeline.engine.name)
        if old is not None:
            old.retire()
        return True

    def reload_if_changed(self) -> None:
        if self._current_fingerprint() != self._fingerprint:
            self.load()

    def start_watching(self) -> None:
        def watch() -> None:
            while not self._stop.wait(self.settings.reload_seconds):
                try:
                    self.reload_if_changed()
                except Exception as exc:  # the watcher must survive anything; the error is logged
                    self.log.error("policy_watch_failed", error=f"{type(exc).__name__}: {exc}")

        self._watcher = threading.Thread(target=watch, name="modelsign-policy-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self.pipeline is not None:
            self.pipeline.close()


async def _read_body(request: Request) -> bytes:
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise ReviewError(f"request body is larger than the {MAX_BODY_BYTES} bytes accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, *, watch: bool = True) -> FastAPI:
    configure_logging()
    state = WebhookState(settings)
    metrics = Metrics()
    log = get_logger(component="admission")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.load()
        if watch:
            state.start_watching()
        yield
        state.stop()

    app = FastAPI(title="modelsign admission webhook", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.webhook = state
    app.state.metrics = metrics

    def _bad_request(message: str) -> JSONResponse:
        metrics.record_bad_request()
        log.warning("bad_request", error=message)
        return JSONResponse(status_code=400, content={"error": message, "hint": "POST an admission.k8s.io/v1 AdmissionReview with request.uid"})

    def _record(review: AdmissionRequest, decision: Decision) -> None:
        metrics.record_decision(decision.outcome, decision.reason, decision.latency_ms / 1000,
                                [str(v.get("code")) for v in decision.violations], decision.registry_errors)
        log.info(
            "admission_decision",
            decision_id=decision.decision_id, uid=review.uid, dry_run=decision.dry_run, operation=review.operation,
            kind=review.kind, namespace=review.namespace, name=review.name, user=review.user.username,
            allowed=decision.allowed, outcome=decision.outcome, reason=decision.reason, mode=decision.mode,
            message=decision.message or None, warnings=decision.warnings or None,
            artifacts=[{"source": a["source"], "value": a["value"], "digest": (a.get("evidence") or {}).get("digest"),
                        "signers": [s["signer"] for s in (a.get("evidence") or {}).get("signatures", [])]} for a in decision.artifacts],
            policy=decision.policy_name, policy_hash=decision.policy_hash, latency_ms=decision.latency_ms,
        )

    @app.post("/validate")
    async def validate(request: Request) -> JSONResponse:
        try:
            review = parse_review(await _read_body(request))
        except ReviewError as exc:
            return _bad_request(str(exc))
        pipeline = state.pipeline
        if pipeline is None:  # no policy ever loaded: fail closed with the reason
            message = f"modelsign has no valid policy loaded: {state.last_error or 'not loaded yet'}"
            return JSONResponse(review_response(review.api_version, review.uid, allowed=False, message=message))
        decision = await run_in_threadpool(pipeline.decide, review)
        _record(review, decision)
        return JSONResponse(pipeline.response(review, decision))

    @app.exception_handler(Exception)
    async def _never_500(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return JSONResponse(status_code=400, content={"error": "request could not be processed", "detail": f"{type(exc).__name__}"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        pipeline = state.pipeline
        body: dict[str, Any] = {"ready": pipeline is not None, "lastReloadError": state.last_error}
        if pipeline is not None:
            body.update(policy=pipeline.policy.name, policyHash=pipeline.policy.policy_hash, engine=pipeline.engine.name,
                        keys=sorted(pipeline.policy.key_fingerprints), loadedAt=state.loaded_at)
        return JSONResponse(status_code=200 if pipeline is not None else 503, content=body)

    @app.get("/metrics")
    def metrics_endpoint() -> PlainTextResponse:
        pipeline = state.pipeline
        text = metrics.render(pipeline.cache.stats if pipeline else None, len(pipeline.cache) if pipeline else 0)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


def app_from_environment() -> FastAPI:
    """uvicorn factory for each worker process (settings come through the environment)."""
    return create_app(Settings.from_environment())
