"""One admission decision, one way through:
request -> artifacts -> evidence -> policy decision -> response (+ the record to audit).

Requests that need no verification are answered before any evidence is gathered:
DELETE/CONNECT, subresources other than ephemeralcontainers (status, scale...), exempt namespaces, and UPDATEs whose
artifacts are unchanged from `oldObject` (the Pods such an update creates are admitted on
their own). Every other request is decided by the Rego policy. Any failure on the way is a
deny with the reason (a warning in warn mode): never an error, never a silent allow.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from signer.oci.stores import Stores
from webhook.cache import SingleFlightCache
from webhook.config import LoadedPolicy
from webhook.engine import PolicyEngine, build_engine
from webhook.evidence import Evidence, EvidenceGatherer
from webhook.extract import extract
from webhook.messages import render
from webhook.review import AdmissionRequest, review_response
from webhook.targets import Target, classify

NO_VERIFICATION_OPERATIONS = ("DELETE", "CONNECT")
VERIFIED_SUBRESOURCES = ("ephemeralcontainers",)  # `kubectl debug` adds images through it


@dataclass
class Decision:
    decision_id: str
    allowed: bool
    outcome: str  # "allow", "deny", "warn" (allowed with would-deny warnings), "error"
    reason: str  # short code: "verified", "violations", "exempt-namespace", "delete", ...
    message: str
    warnings: list[str]
    violations: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    mode: str
    policy_name: str
    policy_hash: str
    dry_run: bool
    latency_ms: float = 0.0
    registry_errors: int = 0
    cache_hits: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def audit_annotations(self) -> dict[str, str]:
        return {
            "modelsign.dev/decision-id": self.decision_id,
            "modelsign.dev/decision": self.outcome,
            "modelsign.dev/policy": f"{self.policy_name}@{self.policy_hash}",
        }


class AdmissionPipeline:
    def __init__(self, policy: LoadedPolicy, *, stores: Stores | None = None, executor: concurrent.futures.ThreadPoolExecutor | None = None,
                 cache: SingleFlightCache | None = None, engine: PolicyEngine | None = None) -> None:
        self.policy = policy
        self.stores = stores or Stores(policy.registry_options(), local_registries=policy.local_registries())
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="modelsign-verify")
        self.cache = cache or SingleFlightCache(max_entries=policy.spec.cache.max_entries)
        self.engine = engine or build_engine(policy)
        self.gatherer = EvidenceGatherer(policy, self.stores, self.cache, self.executor)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.stores.close()

    # -- decisions ----------------------------------------------------------------------

    def decide(self, request: AdmissionRequest) -> Decision:
        started = time.monotonic()
        try:
            decision = self._decide(request, started + self.policy.spec.deadline_seconds)
        except Exception as exc:  # fail closed: whatever broke, the answer is a deny with the reason
            decision = self._failure(request, f"modelsign could not decide: {type(exc).__name__}: {exc}")
        decision.latency_ms = round((time.monotonic() - started) * 1000, 3)
        return decision

    def _decide(self, request: AdmissionRequest, deadline: float) -> Decision:
        skip = self._no_verification_needed(request)
        if skip is not None:
            return self._allowed(request, skip[0], skip[1])
        if request.object is None:
            return self._failure(request, f"{request.operation} {request.kind} request carries no object to check")
        targets = [classify(found) for found in extract(request.kind, request.object)]
        if request.operation == "UPDATE" and request.old_object is not None and self._unchanged(request, targets):
            return self._allowed(request, "unchanged-artifacts", "artifacts unchanged from the existing object")
        evidence = self.gatherer.gather(targets, deadline)
        artifacts = [self._artifact_input(target, evidence.get(target.key)) for target in targets]
        result = self.engine.decide({"request": request.facts(), "artifacts": artifacts})
        if result.get("exempt"):
            return self._allowed(request, "exempt-namespace", f"namespace {request.namespace} is exempt", artifacts)
        violations = [{**v, "message": render(v)} for v in result["violations"] if isinstance(v, dict)]
        enforced = [v for v in violations if v.get("enforce", True) is not False]
        warned = [v for v in violations if v.get("enforce", True) is False]
        warnings = [f"modelsign would deny (warn mode): {v['message']}" for v in warned]
        registry_errors = sum(1 for e in evidence.values() if e.registry_error)
        cache_hits = sum(1 for e in evidence.values() if e.cached)
        base = dict(
            violations=violations, artifacts=artifacts, warnings=warnings, registry_errors=registry_errors, cache_hits=cache_hits,
        )
        if enforced:
            message = f"modelsign denied {request.kind} {self._object_name(request)}: " + " | ".join(v["message"] for v in enforced)
            return self._make(request, allowed=False, outcome="deny", reason="violations", message=message, **base)
        if warned:
            return self._make(request, allowed=True, outcome="warn", reason="violations-warn-mode", message="", **base)
        verified = sum(1 for a in artifacts if a["kind"] == "oci")
        return self._make(request, allowed=True, outcome="allow", reason="verified", message=f"{verified} artifact(s) verified", **base)

    def _no_verification_needed(self, request: AdmissionRequest) -> tuple[str, str] | None:
        if request.operation in NO_VERIFICATION_OPERATIONS:
            return request.operation.lower(), f"{request.operation} needs no verification"
        if request.sub_resource and request.sub_resource not in VERIFIED_SUBRESOURCES:
            return "subresource", f"subresource {request.sub_resource} needs no verification"
        if any(fnmatch.fnmatchcase(request.namespace, pattern) for pattern in self.policy.spec.exempt_namespaces):
            return "exempt-namespace", f"namespace {request.namespace} is exempt"
        return None

    @staticmethod
    def _unchanged(request: AdmissionRequest, targets: list[Target]) -> bool:
        old = sorted((f.source, repr(f.value)) for f in extract(request.kind, request.old_object))
        return old == sorted((t.found.source, repr(t.found.value)) for t in targets)

    @staticmethod
    def _artifact_input(target: Target, evidence: Evidence | None) -> dict[str, Any]:
        reference = target.reference
        return {
            "source": target.found.source,
            "value": target.found.value if isinstance(target.found.value, str) else repr(target.found.value),
            "role": target.found.role,
            "kind": target.kind,
            "problem": target.problem,
            "scheme": target.scheme,
            "name": reference.name if reference else None,
            "registry": reference.registry if reference else None,
            "repository": reference.repository if reference else None,
            "tag": reference.tag if reference else None,
            "pinnedByDigest": bool(reference and reference.digest),
            "evidence": evidence.to_input() if evidence else None,
        }

    # -- building decisions ------------------------------------------------------------------

    def _object_name(self, request: AdmissionRequest) -> str:
        return f"{request.namespace}/{request.name}" if request.namespace else request.name

    def _make(self, request: AdmissionRequest, *, allowed: bool, outcome: str, reason: str, message: str, **fields: Any) -> Decision:
        return Decision(
            decision_id=str(uuid.uuid4()),
            allowed=allowed,
            outcome=outcome,
            reason=reason,
            message=message,
            warnings=fields.pop("warnings", []),
            violations=fields.pop("violations", []),
            artifacts=fields.pop("artifacts", []),
            mode=self.policy.spec.mode,
            policy_name=self.policy.name,
            policy_hash=self.policy.policy_hash,
            dry_run=request.dry_run,
            **fields,
        )

    def _allowed(self, request: AdmissionRequest, reason: str, message: str, artifacts: list[dict[str, Any]] | None = None) -> Decision:
        return self._make(request, allowed=True, outcome="allow", reason=reason, message=message, artifacts=artifacts or [])

    def _failure(self, request: AdmissionRequest, message: str) -> Decision:
        if self.policy.spec.mode == "warn":
            return self._make(request, allowed=True, outcome="warn", reason="error", message="", warnings=[f"modelsign would deny (warn mode): {message}"])
        return self._make(request, allowed=False, outcome="error", reason="error", message=message)

    # -- responses ------------------------------------------------------------------------------

    @staticmethod
    def response(request: AdmissionRequest, decision: Decision) -> dict[str, Any]:
        return review_response(
            request.api_version,
            request.uid,
            allowed=decision.allowed,
            message=decision.message if not decision.allowed else None,
            warnings=decision.warnings,
            audit_annotations=decision.audit_annotations(),
        )
