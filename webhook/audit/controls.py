"""The SOC 2 controls this trail gives evidence for, tested over the period's decisions:
what was tested, the population, how many operated as designed, and every exception.

A control operated as designed when an admitted object carried the evidence the control asks
for, or when one without it was denied (violation or fail-closed error). An exception is an
object admitted without it: warn mode lets such an object in with a warning. Admissions that
needed no check (exempt namespaces, deletes, unchanged artifacts) are counted apart, as out
of the control's scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook.audit.export import decision_of

NOT_CHECKED_REASONS = ("exempt-namespace", "delete", "unchanged-artifacts", "no-artifacts", "subresource", "connect")


@dataclass(frozen=True)
class Control:
    criterion: str
    title: str
    tested: str
    codes: tuple[str, ...]
    evidence: str  # the artifact field that holds this control's evidence ("signers", "scans", "approvals"), "" for the trail


CONTROLS = (
    Control("CC6.8", "Prevent or detect unauthorized or malicious software",
            "Each admitted Pod, workload and InferenceService: every image and model digest carried a valid signature by a trusted key from an "
            "allowed registry; unsigned, untrusted or unverifiable artifacts were denied.",
            ("not-signed", "registry-not-allowed", "unverifiable-uri", "verification-error", "no-rule", "invalid-reference", "tag-not-pinned"),
            "signers"),
    Control("CC7.1", "Detect vulnerabilities and configuration changes",
            "Where a rule required it: a fresh scan signed by the scanner key, under the severity thresholds, with no unsafe model files.",
            ("scan-missing", "scan-too-old", "scan-over-threshold", "scan-no-model-files", "unsafe-model-files", "scan-secrets"), "scans"),
    Control("CC7.2", "Monitor system components for anomalies",
            "Every chain line re-hashed and linked to the one before, sequence numbers without gaps, checkpoints verified with the audit key; "
            "writer runs checked for periods with no webhook running.", (), ""),
    Control("CC8.1", "Authorize, approve and implement changes",
            "Where a rule required it: an unexpired, unrevoked approval for the environment signed by the approver keys (two-person rule where "
            "configured; requesters never approve).",
            ("approval-missing", "approval-wrong-environment", "approval-expired", "approval-not-yet-valid", "approval-revoked",
             "approval-namespace", "approval-insufficient", "approval-no-environment"), "approvals"),
)


def _where(record: dict[str, Any]) -> tuple[str, str, str]:
    review = record.get("review") or {}
    return str(record.get("time") or ""), f"{record['_writer']}#{record['_seq']}", f"{review.get('namespace') or ''}/{review.get('name') or ''}"


def _has_evidence(record: dict[str, Any], field: str) -> bool:
    artifacts = record.get("artifacts") or []
    return bool(artifacts) and all(artifact.get(field) for artifact in artifacts)


def check_admission_control(control: Control, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    population = passed = out_of_scope = 0
    exceptions = []
    for record in decisions:
        decision = decision_of(record)
        codes = set(decision.get("codes") or [])
        related = bool(codes & set(control.codes))
        outcome = decision.get("outcome")
        if outcome == "allow" and decision.get("reason") in NOT_CHECKED_REASONS:
            out_of_scope += 1 if control.criterion == "CC6.8" else 0
            continue
        in_scope = related or _has_evidence(record, control.evidence) or control.criterion == "CC6.8"
        if not in_scope:
            continue
        population += 1
        if outcome == "warn" and (related or control.criterion == "CC6.8"):
            exceptions.append((*_where(record), f"admitted in warn mode despite {', '.join(sorted(codes & set(control.codes))) or decision.get('reason')}"))
        elif outcome == "allow" and not _has_evidence(record, control.evidence):
            exceptions.append((*_where(record), f"admitted ({decision.get('reason')}) without {control.evidence} evidence recorded"))
        else:
            passed += 1
    return {"criterion": control.criterion, "title": control.title, "tested": control.tested, "population": population, "passed": passed,
            "exceptions": exceptions, "outOfScope": out_of_scope}


def check_trail_control(control: Control, integrity: dict[str, Any], gaps: list[dict[str, Any]]) -> dict[str, Any]:
    exceptions = [("", f"{p.get('file') or ''}:{p.get('line') or ''}", "", f"{p['kind']}: {p['message']}") for p in integrity.get("problems") or []]
    exceptions += [("", f"{p['writer']}#{p['seq']}", "", f"record late: answered denied, superseded by {p['supersededBy']}")
                   for p in integrity.get("superseded") or []]
    exceptions += [(g["from"], "", "", f"no webhook record for {g['duration']} (to {g['to']}): {g['why']}") for g in gaps]
    records = int(integrity.get("records") or 0)
    verified = integrity.get("status") == "INTACT"
    tested = control.tested if verified else control.tested + " NOT VERIFIED: no audit key was given, so no record counts as passed."
    return {"criterion": control.criterion, "title": control.title, "tested": tested, "population": records,
            "passed": max(0, records - len(integrity.get("problems") or [])) if verified else 0, "exceptions": exceptions, "outOfScope": 0}


def check_controls(decisions: list[dict[str, Any]], integrity: dict[str, Any], gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [check_trail_control(c, integrity, gaps) if not c.evidence else check_admission_control(c, decisions) for c in CONTROLS]
