"""The admission webhook: FastAPI app, policy (re)loading, health and metrics.

POST /validate   AdmissionReview v1 or v1beta1 -> AdmissionReview response (400 if unusable)
GET  /healthz    process alive
GET  /readyz     ready once a policy with its keys is loaded (shows the last reload error)
GET  /metrics    Prometheus text format

The policy file, its key files and the Rego directory are watched; a change is reloaded,
and a bad reload keeps the last good policy (and says so on /readyz and in the logs).

With an audit log configured (MODELSIGN_AUDIT_*, see webhook/audit/settings.py) every
decision is a durable chain record before its response goes out; if it cannot be written,
the answer is a deny that says so. Startup, shutdown, policy loads, key changes, bad requests
and errors are recorded too.
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

from signer import ModelsignError, set_throttle_board
from webhook.admission import shared_cache
from webhook.admission.cache import SingleFlightCache
from webhook.admission.config import default_rego_dir, load_policy, referenced_files
from webhook.admission.intime import InTimeDecider
from webhook.admission.pipeline import AdmissionPipeline, Decision
from webhook.admission.review import MAX_BODY_BYTES, AdmissionRequest, ReviewError, parse_review, review_response
from webhook.admission.statement_memory import StatementMemory
from webhook.audit.identity import webhook_identity
from webhook.audit.policy_facts import policy_facts
from webhook.audit.records import keys_change, review_fields
from webhook.audit.settings import placement_warnings, settings_from_environment
from webhook.audit.trail import AuditTrail
from webhook.audit.writer import LATE_REASON, AuditWriteError, AuditWriter
from webhook.compliance.background import ComplianceLoop, ComplianceSettings
from webhook.logs import clip, configure_logging, dropped_lines, flush_stdout, get_logger
from webhook.server.metrics import Metrics

ENV_POLICY = "MODELSIGN_POLICY"
ENV_REGO_DIR = "MODELSIGN_REGO_DIR"
ENV_RELOAD_SECONDS = "MODELSIGN_RELOAD_SECONDS"
ENV_KEY_DIR = "MODELSIGN_KEY_DIR"


@dataclass
class Settings:
    policy_path: Path
    rego_dir: Path | None = None
    reload_seconds: float = 2.0
    key_dir: Path | None = None  # where key files the policy names are found when their path does not exist here

    @classmethod
    def from_environment(cls) -> Settings:
        path = os.environ.get(ENV_POLICY)
        if not path:
            raise ModelsignError(f"{ENV_POLICY} is not set", hint="start the webhook with `modelsign webhook serve --config FILE`")
        rego = os.environ.get(ENV_REGO_DIR)
        key_dir = os.environ.get(ENV_KEY_DIR)
        return cls(policy_path=Path(path), rego_dir=Path(rego) if rego else None, reload_seconds=float(os.environ.get(ENV_RELOAD_SECONDS, "2")),
                   key_dir=Path(key_dir) if key_dir else None)


class WebhookState:
    """The current pipeline, swapped atomically on reload; the old one is retired after its
    in-flight requests had time to finish."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline: AdmissionPipeline | None = None
        self.audit: AuditTrail | None = None
        self.audit_error: str | None = None  # the audit log is required but could not be opened
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self._fingerprint: tuple = ()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.log = get_logger(component="webhook")
        # statements once verified against a digest, across policy reloads (statement_memory.py)
        self.statement_memory = StatementMemory()

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
        return files + referenced_files(document, self.settings.policy_path.parent, self.settings.key_dir)

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
            policy = load_policy(self.settings.policy_path, rego_dir=self.settings.rego_dir or default_rego_dir(), key_dir=self.settings.key_dir)
            cache = shared_cache.from_environment(SingleFlightCache(max_entries=policy.spec.cache.max_entries))
            shared = cache if isinstance(cache, shared_cache.SharedVerificationCache) else None
            set_throttle_board(shared)  # 429 notes shared too
            self.statement_memory.shared = shared_cache.SharedStatements(shared) if shared is not None else None  # and removed statements
            pipeline = AdmissionPipeline(policy, cache=cache, memory=self.statement_memory)
        except Exception as exc:  # any failure keeps the last good policy; the reason is shown on /readyz
            self.last_error = str(exc) if isinstance(exc, ModelsignError) else f"{type(exc).__name__}: {exc}"
            self._fingerprint = fingerprint
            self.log.error("policy_load_failed", error=self.last_error, keeping=current.policy_hash if current else None)
            self.record("policy-load", ok=False, source=str(self.settings.policy_path), error=self.last_error,
                        kept={"name": current.name, "hash": current.policy_hash} if current else None)
            return False
        old, self.pipeline = self.pipeline, pipeline
        self.last_error = None
        self.loaded_at = time.time()
        self._fingerprint = fingerprint
        self.log.info("policy_loaded", policy=policy.name, policy_hash=policy.policy_hash, keys=policy.key_fingerprints, engine=pipeline.engine.name)
        facts = policy_facts(policy)  # rules, keys with their sources and users, mode, exemptions: the report shows them per hash
        self.record("policy-load", ok=True, source=str(self.settings.policy_path), policy={"name": policy.name, "hash": policy.policy_hash},
                    engine=pipeline.engine.name, previous={"name": current.name, "hash": current.policy_hash} if current else None, **facts)
        changed = keys_change(current.key_fingerprints if current else {}, policy.key_fingerprints)
        if changed is not None and current is not None:
            self.record("keys-change", policy={"name": policy.name, "hash": policy.policy_hash}, **changed)
        if old is not None:
            old.retire()
        return True

    def open_audit(self) -> None:
        """Open this process's chain (in the worker, after the fork). A required audit log that
        cannot be opened makes every review a deny with the reason."""
        try:
            settings = settings_from_environment()
            if settings is not None:
                self.audit = AuditTrail(AuditWriter(settings))
                for warning in placement_warnings(settings):  # said in the log and in the trail itself
                    self.log.warning("audit_placement_warning", warning=warning)
                    self.record("audit-warning", warning=warning)
        except ModelsignError as exc:
            self.audit_error = exc.message + (f"; {exc.hint}" if exc.hint else "")
            self.log.error("audit_unavailable", error=self.audit_error)

    def record(self, record_type: str, **fields: Any) -> None:
        """A non-decision event, from a thread; a failure to record it is logged, not raised."""
        if self.audit is None:
            return
        try:
            self.audit.event(record_type, **fields)
        except ModelsignError as exc:
            self.log.error("audit_write_failed", record_type=record_type, error=exc.message)

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
        if self.audit is not None:
            self.record("shutdown", pid=os.getpid(), witness=self.audit.writer.witness_stats(), stdoutDropped=dropped_lines())
            self.audit.close()
        flush_stdout()  # the stdout copy of the last records (bounded: a stalled stdout cannot hold up the exit)


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
    decider = InTimeDecider()
    log = get_logger(component="admission")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.open_audit()
        state.record("startup", pid=os.getpid(), policySource=str(settings.policy_path), writer=state.audit.writer.writer_id if state.audit else None,
                     identity=webhook_identity())
        state.load()
        if watch:
            state.start_watching()
        compliance = _compliance_loop()
        yield
        if compliance is not None:
            compliance.stop()
        state.stop()
        decider.shutdown()

    app = FastAPI(title="modelsign admission webhook", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.webhook = state
    app.state.metrics = metrics

    def _compliance_loop() -> ComplianceLoop | None:
        """`--compliance-interval`: scans of what runs, off the admission path (webhook/compliance/background.py)."""
        compliance_settings = ComplianceSettings.from_environment()
        if compliance_settings is None:
            return None
        loop = ComplianceLoop(compliance_settings, pipeline=lambda: state.pipeline, record=state.record, metrics=metrics,
                              log=get_logger(component="compliance"), lock_key=str(settings.policy_path.resolve()))
        loop.start()
        return loop

    async def _audit_event(record_type: str, **fields: Any) -> None:
        if state.audit is None:
            return
        try:
            await state.audit.event_async(record_type, **fields)
        except ModelsignError as exc:  # an event, not a decision: logged (the metric counts denied reviews)
            log.error("audit_write_failed", record_type=record_type, error=exc.message)

    async def _bad_request(message: str, request: Request) -> JSONResponse:
        metrics.record_bad_request()
        log.warning("bad_request", error=message)
        await _audit_event("bad-request", error=message, client=request.client.host if request.client else None)
        return JSONResponse(status_code=400, content={"error": message, "hint": "POST an admission.k8s.io/v1 AdmissionReview with request.uid"})

    def _unrecorded(review: AdmissionRequest, reason: str) -> JSONResponse:
        """Fail closed: a decision that could not be recorded is not given."""
        message = f"modelsign denies because it could not write the audit record: {reason}"
        log.error("audit_write_failed", uid=review.uid, error=reason)
        return JSONResponse(review_response(review.api_version, review.uid, allowed=False, message=message))

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
            return await _bad_request(str(exc), request)
        if state.audit_error is not None:
            metrics.record_audit_failure()
            return _unrecorded(review, state.audit_error)
        pipeline = state.pipeline
        if pipeline is None:  # no policy ever loaded: fail closed with the reason
            message = f"modelsign has no valid policy loaded: {state.last_error or 'not loaded yet'}"
            if state.audit is not None:
                try:
                    await state.audit.event_async("decision", **review_fields(review), decision={
                        "outcome": "error", "allowed": False, "reason": "no-policy", "message": message, "codes": [], "warnings": []})
                except ModelsignError as exc:
                    metrics.record_audit_failure()
                    return _unrecorded(review, exc.message)
            return JSONResponse(review_response(review.api_version, review.uid, allowed=False, message=message))
        decision = await decider.decide(pipeline, review)  # by the deadline + a margin, a deny if need be
        _record(review, decision)
        response = pipeline.response(review, decision)
        if state.audit is not None:
            try:
                receipt = await state.audit.decision(review, decision)
            except AuditWriteError as exc:
                metrics.record_audit_failure()
                # Best effort: if the trail recovers, it says this review was denied for want of a record.
                await _audit_event("audit-failure", **review_fields(review), decisionId=decision.decision_id, error=exc.message,
                                   response={"allowed": False, "reason": LATE_REASON if exc.late else "audit-record-not-written"})
                return _unrecorded(review, exc.message)
            response["response"].setdefault("auditAnnotations", {})["audit-record"] = f"{receipt.writer}#{receipt.seq}"
        return JSONResponse(response)

    @app.post("/mutate")
    async def mutate(request: Request) -> JSONResponse:
        """Digest pinning (webhook/admission/pinning.py). Never a deny: what cannot be pinned stays as
        written and the validating webhook decides about it."""
        try:
            review = parse_review(await _read_body(request))
        except ReviewError as exc:
            return await _bad_request(str(exc), request)
        pipeline = state.pipeline
        if pipeline is None or state.audit_error is not None:
            return JSONResponse(review_response(review.api_version, review.uid, allowed=True))
        pinning = await decider.pin(pipeline, review)
        metrics.record_pinning(pinning.reason, len(pinning.pinned))
        if pinning.pinned:
            log.info("digests_pinned", pinning_id=pinning.pinning_id, uid=review.uid, kind=review.kind, namespace=review.namespace,
                     name=review.name, pinned=pinning.pinned, latency_ms=pinning.latency_ms)
        annotations = {"pinning-id": pinning.pinning_id, "pinned": str(len(pinning.pinned))}
        if pinning.pinned and state.audit is not None:
            try:  # what runs changed: recorded before the patch goes out, like a decision
                receipt = await state.audit.event_async("pinning", **review_fields(review), pinningId=pinning.pinning_id, pinned=pinning.pinned,
                                                        policy={"name": pipeline.policy.name, "hash": pipeline.policy.policy_hash})
            except ModelsignError as exc:
                metrics.record_audit_failure()
                log.error("audit_write_failed", uid=review.uid, error=exc.message)
                return JSONResponse(review_response(review.api_version, review.uid, allowed=True, warnings=[
                    f"modelsign did not pin digests: the audit record could not be written ({exc.message})"]))
            annotations["audit-record"] = f"{receipt.writer}#{receipt.seq}"
        return JSONResponse(review_response(review.api_version, review.uid, allowed=True, patch=pinning.patch, audit_annotations=annotations))

    @app.exception_handler(Exception)
    async def _never_500(request: Request, exc: Exception) -> JSONResponse:
        try:
            error = clip(f"{type(exc).__name__}: {exc}")  # an exception's text may echo request values
            log.error("unhandled_error", path=clip(request.url.path), error=error)
            await _audit_event("exception", path=clip(request.url.path), error=error)
        except Exception:  # noqa: BLE001 - this handler must answer, whatever else is broken
            pass
        return JSONResponse(status_code=400, content={"error": "request could not be processed", "detail": f"{type(exc).__name__}"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        pipeline = state.pipeline
        ready = pipeline is not None and state.audit_error is None
        body: dict[str, Any] = {"ready": ready, "lastReloadError": state.last_error, "auditError": state.audit_error,
                                "auditWriter": state.audit.writer.writer_id if state.audit else None}
        if pipeline is not None:
            body.update(policy=pipeline.policy.name, policyHash=pipeline.policy.policy_hash, engine=pipeline.engine.name,
                        keys=sorted(pipeline.policy.key_fingerprints), loadedAt=state.loaded_at)
        return JSONResponse(status_code=200 if ready else 503, content=body)

    @app.get("/metrics")
    def metrics_endpoint() -> PlainTextResponse:
        pipeline = state.pipeline
        text = metrics.render(pipeline.cache.stats if pipeline else None, len(pipeline.cache) if pipeline else 0,
                              getattr(pipeline.cache, "shared_stats", None) if pipeline else None)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


def app_from_environment() -> FastAPI:
    """uvicorn factory for each worker process (settings come through the environment)."""
    return create_app(Settings.from_environment())
