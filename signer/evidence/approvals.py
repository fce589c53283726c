"""Approvals: signed, expiring statements that a digest may run in an environment.

Predicate `https://modelsign.dev/attestation/approval/v1`:
  {"decision": "approved" | "rejected" | "revoked", "environment": "prod" (or "*" on a revocation),
   "namespaces": ["prod-*"], "approver": "alice", "requester": "bob", "ticket": "CHG-1234",
   "url": "", "reason": "eval passed", "approvedAt": RFC 3339, "notBefore": RFC 3339,
   "expiresAt": RFC 3339 (null on a revocation or rejection),
   "requestId": "sha256:..." (optional: the approval request it answers)}
It is bound to the artifact digest by the in-toto subject. A revocation (decision
"revoked") signed by any trusted key cancels every approval for the same digest and
environment issued at or before it. A rejection (decision "rejected", with its reason)
does the same for its environment until a later approval: approvals stamped after it count
again. Status is computed here, once, for the CLI and for the admission policy alike.

Compatibility: "rejected" and `requestId` were added to v1 without changing what the other
fields mean, so approvals and revocations written before read exactly as they did. A
modelsign that predates rejections ignores a rejection (its predicate does not parse there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from signer.errors import UsageError
from signer.jsonread import strings, text
from signer.signatures.verification import VerifiedAttestation

CLOCK_SKEW_SECONDS = 300  # signers' clocks are trusted to this much
DECISIONS = ("approved", "rejected", "revoked")
MAX_REASON_IN_INPUT = 500  # characters of a reason the policy sees (the statement keeps all of it)

_DURATION = re.compile(r"(\d+)(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """`30d`, `168h`, `90m`, `3600s`, `2w` -> seconds."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0:
        raise UsageError(f"invalid duration {text!r}", hint="write a positive number with s, m, h, d or w, e.g. 30d or 168h")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC to the second; the year always four digits (strftime's %Y is not padded
    below 1000 on glibc, and these strings are compared as text)."""
    return moment.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def approval_predicate(*, decision: str, environment: str, namespaces: list[str], approver: str, requester: str, ticket: str,
                       url: str = "", reason: str = "", now: datetime | None = None, not_before: datetime | None = None,
                       expires_in_seconds: int | None = None, request_id: str | None = None) -> dict[str, Any]:
    if decision not in DECISIONS:
        raise UsageError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not environment:
        raise UsageError("an approval names the environment it is for", hint="pass --environment, e.g. prod")
    if decision == "approved" and not expires_in_seconds:
        raise UsageError("an approval must expire", hint="pass --expires, e.g. 30d")
    if decision == "rejected" and not reason.strip():
        raise UsageError("a rejection says why", hint="pass --reason, e.g. \"demographic parity 0.72 is below 0.8\"")
    issued = now or datetime.now(timezone.utc)
    start = not_before or issued
    extra = {"requestId": request_id} if request_id else {}
    return {
        "decision": decision,
        "environment": environment,
        "namespaces": namespaces or ["*"],
        "approver": approver,
        "requester": requester,
        "ticket": ticket,
        "url": url,
        "reason": reason,
        "approvedAt": format_time(issued),
        "notBefore": format_time(start),
        "expiresAt": format_time(start + timedelta(seconds=expires_in_seconds)) if decision == "approved" and expires_in_seconds else None,
        **extra,
    }


@dataclass(frozen=True)
class ApprovalFacts:
    signer: str
    key_id: str | None
    identity: str  # who approved: the keyless subject, else the approver named in it, else the key's name
    decision: str
    environment: str
    namespaces: tuple[str, ...]
    approver: str
    requester: str
    ticket: str
    reason: str
    approved_at: datetime
    not_before: datetime
    expires_at: datetime | None
    location: str
    statement_digest: str  # the evidence id audit records cite
    request_id: str = ""  # the approval request this answers ("" for a direct approval)

    def to_input(self, status: str, now: datetime) -> dict[str, Any]:
        return {
            "id": self.statement_digest, "signer": self.signer, "keyId": self.key_id, "identity": self.identity, "decision": self.decision,
            "environment": self.environment, "namespaces": list(self.namespaces), "approver": self.approver,
            "requester": self.requester, "ticket": self.ticket, "status": status, "requestId": self.request_id,
            "reason": self.reason[:MAX_REASON_IN_INPUT],
            "approvedAt": format_time(self.approved_at), "notBefore": format_time(self.not_before),
            "expiresAt": format_time(self.expires_at) if self.expires_at else None,
            "expiresInSeconds": int((self.expires_at - now).total_seconds()) if self.expires_at else None,
        }


def approval_facts(attestation: VerifiedAttestation) -> ApprovalFacts | None:
    """Typed facts of a verified approval attestation; None if its predicate is malformed."""
    p = attestation.predicate
    if not isinstance(p, dict) or p.get("decision") not in DECISIONS:
        return None
    approved_at, not_before = parse_time(p.get("approvedAt")), parse_time(p.get("notBefore") or p.get("approvedAt"))
    expires_at = parse_time(p.get("expiresAt"))
    environment = p.get("environment")
    if approved_at is None or not_before is None or not isinstance(environment, str) or not environment:
        return None
    if p["decision"] == "approved" and expires_at is None:
        return None  # an approval without an expiry is not accepted
    namespaces = strings(p.get("namespaces")) if "namespaces" in p else ["*"]
    keyless = attestation.keyless.subjects[0] if attestation.keyless and attestation.keyless.subjects else ""
    identity = keyless or text(p.get("approver")) or attestation.signer
    return ApprovalFacts(
        signer=attestation.signer, key_id=attestation.key_id, identity=identity, decision=p["decision"], environment=environment,
        namespaces=tuple(namespaces), approver=text(p.get("approver")), requester=text(p.get("requester")),
        ticket=text(p.get("ticket")), reason=text(p.get("reason")), approved_at=approved_at, not_before=not_before, expires_at=expires_at,
        location=attestation.location, statement_digest=attestation.statement_digest, request_id=text(p.get("requestId")),
    )


def with_status(facts: list[ApprovalFacts], now: datetime) -> list[tuple[ApprovalFacts, str]]:
    """Each approval with its status: active, not-yet-valid, expired, revoked or rejected.
    Revocations and rejections themselves are listed with status `revocation` / `rejection`.

    Times are the signers' own, so they are read with CLOCK_SKEW_SECONDS of slack: a
    revocation also covers approvals stamped up to that much after it, and an approval
    stamped in the future is not valid until then. A rejection is a step of the approval
    workflow, not an emergency stop, so it is read in the signers' order without slack: an
    approval stamped after it (to the second) counts again; use `revoke` to stop everything."""
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    revocations = [f for f in facts if f.decision == "revoked"]
    rejections = [f for f in facts if f.decision == "rejected"]
    out = []
    for item in facts:
        if item.decision == "revoked":
            out.append((item, "revocation"))
        elif item.decision == "rejected":
            out.append((item, "rejection"))
        elif any(r.environment in ("*", item.environment) and r.approved_at + skew >= item.approved_at for r in revocations):
            out.append((item, "revoked"))
        elif any(r.environment == item.environment and r.approved_at >= item.approved_at for r in rejections):
            out.append((item, "rejected"))
        elif now < max(item.not_before, item.approved_at - skew):
            out.append((item, "not-yet-valid"))
        elif item.expires_at is not None and now >= item.expires_at:
            out.append((item, "expired"))
        else:
            out.append((item, "active"))
    return out
