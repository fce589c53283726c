"""One admission decision about a running object, as findings with wg-policy results.

pass: every artifact satisfies the policy today. fail: an enforced violation (admission would
deny it now). warn: a violation of a rule in warn mode. error: the object could not be
decided (registry down, engine failure, the list could not be read). skip: the namespace is
exempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webhook.admission.pipeline import Decision
from webhook.compliance.binding import Binding

RESULTS = ("pass", "fail", "warn", "error", "skip")
PASS_RULE = "artifacts-verified"
ERROR_RULE = "decision-error"
SKIP_RULE = "exempt-namespace"


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str
    uid: str = ""

    def reference(self) -> dict[str, str]:
        """A core/v1 ObjectReference, as PolicyReport results carry it."""
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Finding:
    resource: Resource
    result: str  # one of RESULTS
    rule: str  # the policy rule, or the check's code where no rule names it
    code: str  # modelsign's violation code ("approval-expired", "scan-too-old"...) or the PASS/ERROR/SKIP rule
    message: str
    source: str = ""  # the field the artifact is at (spec.containers[0].image); "" for the object as a whole
    artifact: str = ""  # the reference or URI as checked (pinned at the running digest where bound)
    digest: str = ""
    digest_source: str = ""  # "running" (from the Pod's status), "spec" or "resolved" (a tag, resolved now)
    decision_id: str = ""
    notes: tuple[str, ...] = ()
    evidence: list[dict[str, Any]] = field(default_factory=list, compare=False)  # the decision's artifacts behind this finding


def _digest_source(source: str, bindings: dict[str, Binding], artifact: dict[str, Any]) -> str:
    bound = bindings.get(source)
    if bound is not None and bound.digest:
        return "running"
    return "spec" if artifact.get("pinnedByDigest") else ("resolved" if (artifact.get("evidence") or {}).get("digest") else "")


def findings_from_decision(resource: Resource, decision: Decision, bindings: list[Binding], object_notes: tuple[str, ...] = ()) -> list[Finding]:
    """The findings of one decision, in the decision's order."""
    bound = {b.source: b for b in bindings}
    artifacts = {a["source"]: a for a in decision.artifacts}
    notes = object_notes + tuple(b.note for b in bindings)

    def about(source: str) -> dict[str, Any]:
        artifact = artifacts.get(source) or {}
        digest = (artifact.get("evidence") or {}).get("digest") or ""
        return dict(source=source, artifact=str(artifact.get("value") or ""), digest=digest, digest_source=_digest_source(source, bound, artifact),
                    notes=tuple(b.note for b in bindings if b.source == source) or object_notes, evidence=[artifact] if artifact else [])

    common = dict(resource=resource, decision_id=decision.decision_id)
    if decision.reason == "exempt-namespace":
        return [Finding(**common, result="skip", rule=SKIP_RULE, code=SKIP_RULE, message=decision.message, notes=notes)]
    if decision.reason == "error":  # the pipeline could not decide (fails closed at admission)
        message = decision.message or "; ".join(decision.warnings)
        return [Finding(**common, result="error", rule=ERROR_RULE, code=ERROR_RULE, message=message, notes=notes, evidence=list(decision.artifacts))]
    if not decision.violations:
        return [Finding(**common, result="pass", rule=PASS_RULE, code=PASS_RULE, message=decision.message or "admitted today", notes=notes,
                        evidence=list(decision.artifacts))]
    found = []
    for violation in decision.violations:
        code = str(violation.get("code"))
        result = "error" if code == "verification-error" else ("fail" if violation.get("enforce") else "warn")
        found.append(Finding(**common, result=result, rule=str(violation.get("rule") or code), code=code, message=str(violation.get("message")),
                             **about(str(violation.get("source")))))
    return found


def listing_error(resource: Resource, message: str) -> Finding:
    """A list the scan could not read: the objects in it are unknown, so it is an error."""
    return Finding(resource=resource, result="error", rule=ERROR_RULE, code="list-failed", message=message)
