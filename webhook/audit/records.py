"""What goes into an audit record (schema modelsign.audit/v1), as plain data.

Record types: "decision" (every AdmissionReview answered, dry runs marked), "startup",
"shutdown", "policy-load" (every load and reload, failed ones too), "keys-change" (trusted key
fingerprints added, removed or changed), "bad-request" (a review that could not be read),
"exception" (an error outside a decision), "audit-failure" (a review denied because its
record was not durable in time), "audit-warning" (weak protection, said at start), and the
writer's own "retention" (chain files removed), "checkpoint" and "superseded" (late records
and the answer actually given), and "compliance" (one per finding of a compliance scan of what
runs: `modelsign report cluster --audit-log`, `webhook serve --compliance-interval`). The writer adds `seq`, `writer`, `prev_hash` and `hash`
around the record (chain.py); the structlog processors in trail.py add `schema` and `time`
and redact secrets (redaction.py).
"""

from __future__ import annotations

from typing import Any

from webhook.admission.pipeline import Decision
from webhook.admission.review import AdmissionRequest


def _scan_evidence(scan: dict[str, Any]) -> dict[str, Any]:
    counts = scan.get("severityCounts") or {}
    return {"id": scan.get("id"), "signer": scan.get("signer"), "finishedOn": scan.get("finishedOn"),
            "critical": counts.get("CRITICAL", 0), "high": counts.get("HIGH", 0), "unsafeModelFiles": scan.get("unsafeModelFiles")}


def _approval_evidence(approval: dict[str, Any]) -> dict[str, Any]:
    return {key: approval.get(key) for key in ("id", "signer", "keyId", "decision", "environment", "approver", "requester", "ticket", "status", "expiresAt",
                                               "requestId")}


def _evaluation_evidence(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {key: evaluation.get(key) for key in ("id", "signer", "evaluator", "evaluatedAt", "dataset")}


def _artifact(artifact: dict[str, Any]) -> dict[str, Any]:
    evidence = artifact.get("evidence") or {}
    return {
        "source": artifact.get("source"),
        "reference": artifact.get("value"),
        "role": artifact.get("role"),
        "kind": artifact.get("kind"),
        "digest": evidence.get("digest"),
        "signatures": [s.get("keyId") or s.get("identity") for s in evidence.get("signatures") or []],
        "signers": [s.get("signer") for s in evidence.get("signatures") or []],
        "scans": [_scan_evidence(s) for s in evidence.get("scans") or []],
        "approvals": [_approval_evidence(a) for a in evidence.get("approvals") or []],
        "evaluations": [_evaluation_evidence(e) for e in evidence.get("evaluations") or []],
        "attestations": [{"type": a.get("type"), "id": a.get("id"), "signer": a.get("signer")} for a in evidence.get("attestations") or []],
        "error": evidence.get("error") or artifact.get("problem"),
    }


def review_fields(review: AdmissionRequest) -> dict[str, Any]:
    return {
        "review": {
            "uid": review.uid, "dryRun": review.dry_run, "operation": review.operation,
            "kind": {"group": review.group, "version": review.version, "kind": review.kind},
            "resource": review.resource, "subResource": review.sub_resource, "namespace": review.namespace, "name": review.name,
        },
        "user": {"username": review.user.username, "uid": review.user.uid, "groups": list(review.user.groups)},
    }


def decision_fields(review: AdmissionRequest, decision: Decision) -> dict[str, Any]:
    return {
        **review_fields(review),
        "artifacts": [_artifact(a) for a in decision.artifacts],
        "decision": {
            "id": decision.decision_id, "outcome": decision.outcome, "allowed": decision.allowed, "mode": decision.mode,
            "reason": decision.reason, "codes": sorted({str(v.get("code")) for v in decision.violations}),
            "message": decision.message, "warnings": list(decision.warnings),
        },
        "policy": {"name": decision.policy_name, "hash": decision.policy_hash},
        "latencyUs": int(round(decision.latency_ms * 1000)),
    }


def keys_change(previous: dict[str, str], current: dict[str, str]) -> dict[str, Any] | None:
    """Fields of a keys-change record between two name -> fingerprint maps; None if equal."""
    if previous == current:
        return None
    return {
        "added": [{"name": n, "fingerprint": current[n]} for n in sorted(set(current) - set(previous))],
        "removed": [{"name": n, "fingerprint": previous[n]} for n in sorted(set(previous) - set(current))],
        "changed": [{"name": n, "from": previous[n], "to": current[n]} for n in sorted(set(previous) & set(current)) if previous[n] != current[n]],
    }


def compliance_fields(*, scan: dict[str, Any], resource: dict[str, str], finding: dict[str, Any], artifacts: list[dict[str, Any]],
                      policy: dict[str, str]) -> dict[str, Any]:
    """A "compliance" record: one finding of a scan of what runs, with the evidence behind it
    (the same artifact facts a decision record carries, under `evidence`)."""
    return {"scan": scan, "resource": resource, "finding": finding, "evidence": [_artifact(a) for a in artifacts], "policy": policy}
