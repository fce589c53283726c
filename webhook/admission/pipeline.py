"""One admission decision, one way through:
request -> artifacts -> evidence -> policy decision -> response (+ the record to audit).

Requests that need no verification are answered before any evidence is gathered:
DELETE/CONNECT, subresources other than ephemeralcontainers (status, scale...), exempt namespaces, and UPDATEs whose
artifacts are unchanged from `oldObject` (the Pods such an update creates are admitted on
their own). Every other request is decided by the Rego policy. Any failure on the way is a
deny with the reason (a warning in warn mode): never an error, never a silent allow.
"""

from __future__ import annotations

import fnmatch
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from signer import Stores, unsafe_character
from webhook.admission.cache import SingleFlightCache
from webhook.admission.config import LoadedPolicy
from webhook.admission.engine.engines import PolicyEngine, build_engine
from webhook.admission.environments import EnvironmentLookupError, EnvironmentResolver
from webhook.admission.evidence import Evidence, EvidenceGatherer
from webhook.admission.extract import KNOWN_KINDS, extract
from webhook.admission.invariants import unaccounted
from webhook.admission.messages import render
from webhook.admission.review import AdmissionRequest, review_response
from webhook.admission.scheduler import FairScheduler
from webhook.admission.statement_memory import StatementMemory
from webhook.admission.signed_names import signed_name_facts
from webhook.admission.targets import Target, bounded_text, classify

NO_VERIFICATION_OPERATIONS = ("DELETE", "CONNECT")
POLICY_BUDGET_SECONDS = 0.5
# Far above any real workload; bounds policy work per request (rego-cpp's cost grows with the
# square of the violations: 100 unsigned artifacts take about 0.2 s to decide, 200 about 0.6 s).
MAX_ARTIFACTS_PER_REQUEST = 100
MAX_DISTINCT_REFERENCES = 32  # distinct images/ModelKits verified per request; bounds registry work
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
        # The API server prefixes each key with the webhook name ("artifacts.modelsign.dev/decision");
        # keys must be plain names: a key with its own "/" would be dropped.
        return {"decision-id": self.decision_id, "decision": self.outcome, "policy": f"{self.policy_name}@{self.policy_hash}"}


def _with_rejections(violations: tuple[dict[str, Any], ...], artifacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A not-signed violation's rejected signatures, from the evidence (not through the engine,
    whose work would otherwise grow with the padding an attacker can push)."""
    evidence = {a["source"]: a.get("evidence") or {} for a in artifacts}
    return [{**v, "rejected": evidence.get(v["source"], {}).get("rejected", []), "rejectedCount": evidence.get(v["source"], {}).get("rejectedCount", 0)}
            if v["code"] == "not-signed" else v for v in violations]


class AdmissionPipeline:
    def __init__(self, policy: LoadedPolicy, *, stores: Stores | None = None, scheduler: FairScheduler | None = None,
                 cache: SingleFlightCache | None = None, engine: PolicyEngine | None = None,
                 memory: StatementMemory | None = None) -> None:
        self.policy = policy
        self.stores = stores or Stores(policy.registry_options(), local_registries=policy.local_registries())
        # Registry lookups are I/O bound: threads for several reviews at once, each review at most
        # `limits.requestConcurrency` of them, taken in turn (webhook/admission/scheduler.py).
        self.scheduler = scheduler or FairScheduler(2 * MAX_DISTINCT_REFERENCES, policy.spec.limits.request_concurrency)
        self.cache = cache or SingleFlightCache(max_entries=policy.spec.cache.max_entries)
        self.engine = engine or build_engine(policy)
        # kept across policy reloads by the server: removing a statement must not pay off after one
        self.gatherer = EvidenceGatherer(policy, self.stores, self.cache, self.scheduler, memory)
        self.environments = EnvironmentResolver(policy.spec.environments, policy.base_dir)
        self._inflight = 0
        self._retired = False
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.scheduler.shutdown()
        self.stores.close()

    def retire(self) -> None:
        """A newer policy took over: close once the requests still using this one are done."""
        with self._lock:
            self._retired = True
            idle = self._inflight == 0
        if idle:
            self.close()

    # -- decisions ----------------------------------------------------------------------

    def decide(self, request: AdmissionRequest) -> Decision:
        started = time.monotonic()
        with self._lock:
            self._inflight += 1
        try:
            decision = self._decide(request, started + self.policy.spec.deadline_seconds)
        except Exception as exc:  # fail closed: whatever broke, the answer is a deny with the reason
            decision = self._failure(request, f"modelsign could not decide: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._inflight -= 1
                finished = self._retired and self._inflight == 0
            if finished:
                self.close()
        decision.latency_ms = round((time.monotonic() - started) * 1000, 3)
        return decision

    def _decide(self, request: AdmissionRequest, deadline: float) -> Decision:
        skip = self._no_verification_needed(request)
        if skip is not None:
            return self._allowed(request, skip[0], skip[1])
        if request.object is None:
            return self._failure(request, f"{request.operation} {request.kind} request carries no object to check")
        for what, value in (("namespace", request.namespace), ("name", request.name), ("kind", request.kind)):
            unsafe = unsafe_character(value)
            if unsafe is not None:
                return self._failure(request, f"the request's {what} {value!r} contains {unsafe}; Kubernetes names are printable text")
        if request.kind not in KNOWN_KINDS:
            return self._failure(request, f"kind {request.kind or '(none)'} is not one modelsign checks; remove it from the webhook's rules")
        object_kind = request.object.get("kind")
        if isinstance(object_kind, str) and object_kind and object_kind != request.kind:
            return self._failure(request, f"the object is a {object_kind} but the request says {request.kind}")
        found = extract(request.kind, request.object)
        if len(found) > MAX_ARTIFACTS_PER_REQUEST:
            return self._failure(request, f"{len(found)} images and model URIs in one object, more than the {MAX_ARTIFACTS_PER_REQUEST} modelsign checks per request")
        targets = [classify(item) for item in found]
        distinct = {t.key for t in targets if t.kind == "oci"}
        if len(distinct) > MAX_DISTINCT_REFERENCES:
            return self._failure(request, f"{len(distinct)} distinct images and models in one object, more than the {MAX_DISTINCT_REFERENCES} modelsign verifies per request")
        if request.operation == "UPDATE" and request.old_object is not None and self._unchanged(request, targets):
            return self._allowed(request, "unchanged-artifacts", "artifacts unchanged from the existing object")
        # Registry work stops a little before the deadline so the policy step still fits in it.
        evidence = self.gatherer.gather(targets, deadline - min(POLICY_BUDGET_SECONDS, self.policy.spec.deadline_seconds / 10))
        artifacts = [self._artifact_input(target, evidence.get(target.key), self.policy.mirror_groups) for target in targets]
        if time.monotonic() > deadline:
            return self._failure(request, f"the {self.policy.spec.deadline_seconds:g}s deadline passed before the policy could be evaluated")
        facts = request.facts()
        if self.policy.needs_environment:
            try:
                facts["environment"] = self.environments.environment(request.namespace)
            except EnvironmentLookupError as exc:
                return self._failure(request, f"{exc.message}; {exc.hint}" if exc.hint else exc.message)
        result = self.engine.decide({"request": facts, "artifacts": artifacts}, deadline=deadline)
        if result.exempt:  # exemptions were settled above, from exemptNamespaces: the engine may not add one
            return self._failure(request, f"the policy engine called namespace {request.namespace!r} exempt, but it is not in exemptNamespaces; "
                                          "refusing the engine's answer (check your own Rego rules)")
        missing = unaccounted(artifacts, result.violations)
        if missing:
            return self._failure(request, "the policy engine's answer contradicts the evidence, so it is refused: no violation names "
                                          + "; ".join(missing[:5]) + " (check your own Rego rules, or the engine)")
        # In the object's order (then by code and rule), whatever order the engine's set had:
        # the same answer, word for word, from either engine and on every replica.
        position = {a["source"]: index for index, a in enumerate(artifacts)}
        ordered = sorted(result.violations, key=lambda v: (position.get(v["source"], len(position)), v["source"], v["code"], str(v.get("rule", ""))))
        violations = [{**v, "message": render(v)} for v in _with_rejections(tuple(ordered), artifacts)]
        enforced = [v for v in violations if v["enforce"]]
        warned = [v for v in violations if not v["enforce"]]
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
        if self.exempt(request.namespace):
            return "exempt-namespace", f"namespace {request.namespace} is exempt"
        return None

    def exempt(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.policy.spec.exempt_namespaces)

    @staticmethod
    def _unchanged(request: AdmissionRequest, targets: list[Target]) -> bool:
        old = sorted((f.source, repr(f.value)) for f in extract(request.kind, request.old_object))
        return old == sorted((t.found.source, repr(t.found.value)) for t in targets)

    @staticmethod
    def _artifact_input(target: Target, evidence: Evidence | None, mirror_groups: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
        reference = target.reference
        facts = evidence.to_input() if evidence else None
        signed = signed_name_facts(reference.name, facts["signatures"], mirror_groups) if facts and reference else []
        return {
            "source": target.found.source,
            "value": bounded_text(target.found.value),
            "role": target.found.role,
            "kind": target.kind,
            "problem": target.problem,
            "scheme": target.scheme,
            "name": reference.name if reference else None,
            "registry": reference.registry if reference else None,
            "repository": reference.repository if reference else None,
            "tag": reference.tag if reference else None,
            "pinnedByDigest": bool(reference and reference.digest),
            "signedNames": [name for name in signed if reference is None or name != reference.name],
            "evidence": facts,
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

    def overdue(self, request: AdmissionRequest, waited_seconds: float) -> Decision:
        """The answer when `decide` has not returned in time (its late result is discarded)."""
        decision = self._failure(request, f"modelsign did not decide within the {self.policy.spec.deadline_seconds:g}s deadline (answered after "
                                          f"{waited_seconds:.1f}s); retry, and if it persists check that the registries and the policy "
                                          "engine answer quickly, or raise deadlineSeconds")
        decision.reason, decision.latency_ms = "deadline", round(waited_seconds * 1000, 3)
        return decision

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
