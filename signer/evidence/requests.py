"""Approval requests: a signed ask that a digest may run in an environment, and its state.

Predicate `https://modelsign.dev/attestation/approval-request/v1`:
  {"environment": "prod", "namespaces": ["ml-*"], "requester": "data-scientist",
   "approvers": {"names": ["mlops-lead", "risk-officer"], "count": 2},   # names may be []: any N approvers
   "ticket": "CHG-2001", "reason": "...", "url": "", "requestedAt": RFC 3339,
   "approvalLifetimeSeconds": 2592000,                                  # what approvers are asked to grant
   "evidence": [{"type": "scan" | "evaluation" | <predicate-type URI>, "id": "sha256:..."}]}
The request id is its statement's sha256 (as for every attestation). Approvers answer with
approval predicates (`approval/v1`, decision "approved" or "rejected") that carry the
`requestId`; revocations are the usual ones. The state is derived, never stored:

- REVOKED: a revocation for its environment (or `*`) at or after the request, or one of its
  approvals revoked;
- APPROVED: enough distinct approvers approved after the last rejection (the named ones,
  `count` of them; the requester never counts) and enough of those approvals are in force;
- EXPIRED: enough approved, but too many of those approvals have expired since;
- REJECTED: a rejection, and not enough approvals after it;
- PENDING: otherwise.
Admission counts approvals by the policy's own rule (`minApprovers`), request or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from signer.errors import UsageError
from signer.evidence.approvals import ApprovalFacts, format_time, parse_time
from signer.jsonread import mapping, strings, text
from signer.signatures.verification import VerifiedAttestation

MAX_APPROVERS = 10
MAX_EVIDENCE = 20
_ID = re.compile(r"sha256:[0-9a-f]{64}")
STATES = ("PENDING", "APPROVED", "REJECTED", "EXPIRED", "REVOKED")


def request_predicate(*, environment: str, namespaces: list[str], requester: str, approvers: list[str], count: int | None, ticket: str,
                      lifetime_seconds: int, reason: str = "", url: str = "", evidence: list[dict[str, str]] | None = None,
                      now: datetime | None = None) -> dict[str, Any]:
    if not environment:
        raise UsageError("a request names the environment it is for", hint="pass --environment, e.g. prod")
    if not requester:
        raise UsageError("a request names who asks", hint="pass --requester NAME (default: $USER)")
    names = list(dict.fromkeys(a for a in approvers if a))
    if requester in names:
        raise UsageError(f"{requester} asks for the approval, so cannot be one of its approvers", hint="name other approvers")
    wanted = count if count is not None else len(names)
    if wanted < 1 or wanted > MAX_APPROVERS:
        raise UsageError(f"a request needs between 1 and {MAX_APPROVERS} approvals, not {wanted}",
                         hint="name the approvers with --approver (repeatable) or give --approvals N")
    if names and wanted > len(names):
        raise UsageError(f"--approvals {wanted} is more than the {len(names)} approver(s) named", hint="name more approvers or lower --approvals")
    items = list(evidence or [])
    if len(items) > MAX_EVIDENCE:
        raise UsageError(f"{len(items)} evidence ids; a request cites at most {MAX_EVIDENCE}")
    for item in items:
        if not _ID.fullmatch(item.get("id", "")):
            raise UsageError(f"evidence id {item.get('id')!r} is not sha256:<64 hex>", hint="copy the id `modelsign scan`/`evaluate` printed")
    return {
        "environment": environment, "namespaces": namespaces or ["*"], "requester": requester,
        "approvers": {"names": names, "count": wanted}, "ticket": ticket, "reason": reason, "url": url,
        "requestedAt": format_time(now or datetime.now(timezone.utc)), "approvalLifetimeSeconds": lifetime_seconds,
        "evidence": items,
    }


@dataclass(frozen=True)
class RequestFacts:
    id: str
    signer: str
    key_id: str | None
    environment: str
    namespaces: tuple[str, ...]
    requester: str
    approvers: tuple[str, ...]
    required: int
    ticket: str
    reason: str
    requested_at: datetime
    lifetime_seconds: int
    evidence: tuple[tuple[str, str], ...]  # (type, id)
    location: str


def request_facts(attestation: VerifiedAttestation) -> RequestFacts | None:
    """Typed facts of a verified request; None if its predicate is malformed."""
    p = attestation.predicate
    if not isinstance(p, dict):
        return None
    approvers = mapping(p.get("approvers"))
    names = tuple(strings(approvers.get("names")))[:MAX_APPROVERS]
    count = approvers.get("count")
    requested_at = parse_time(p.get("requestedAt"))
    lifetime = p.get("approvalLifetimeSeconds")
    items = p.get("evidence") if isinstance(p.get("evidence"), list) else []
    evidence = tuple((text(item.get("type")), text(item.get("id"))) for item in items if isinstance(item, dict))
    if (requested_at is None or not text(p.get("environment")) or not text(p.get("requester")) or isinstance(count, bool)
            or not isinstance(count, int) or not 1 <= count <= MAX_APPROVERS or (names and count > len(names))
            or isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0):
        return None
    return RequestFacts(
        id=attestation.statement_digest, signer=attestation.signer, key_id=attestation.key_id, environment=p["environment"],
        namespaces=tuple(strings(p.get("namespaces")) or ["*"]), requester=p["requester"], approvers=names, required=count,
        ticket=text(p.get("ticket")), reason=text(p.get("reason")), requested_at=requested_at, lifetime_seconds=lifetime,
        evidence=evidence[:MAX_EVIDENCE], location=attestation.location,
    )


@dataclass(frozen=True)
class Event:
    time: datetime
    action: str  # requested, approved, rejected, revoked, expired
    who: str  # the person named in the statement
    key: str  # the trusted key (or keyless identity) that signed it
    detail: str = ""


@dataclass(frozen=True)
class RequestState:
    request: RequestFacts
    state: str  # one of STATES
    since: datetime
    approvals: int  # distinct approvers counted towards the request now
    history: tuple[Event, ...]


def _names(approval: ApprovalFacts) -> set[str]:
    return {n for n in (approval.identity, approval.approver, approval.signer) if n}


def _approver_id(approval: ApprovalFacts) -> str:
    return approval.key_id or approval.identity


def _counted(request: RequestFacts, approvals: list[tuple[ApprovalFacts, str]], after: datetime | None) -> list[tuple[ApprovalFacts, str]]:
    """One approval per distinct eligible approver (the newest), stamped after `after`."""
    newest: dict[str, tuple[ApprovalFacts, str]] = {}
    for approval, status in approvals:
        if request.requester in _names(approval) or (request.approvers and not _names(approval) & set(request.approvers)):
            continue  # the requester never counts; with named approvers, only they do
        if after is not None and approval.approved_at <= after:
            continue  # superseded by a later rejection
        key = _approver_id(approval)
        if key not in newest or approval.approved_at > newest[key][0].approved_at:
            newest[key] = (approval, status)
    return list(newest.values())


def request_state(request: RequestFacts, statements: list[tuple[ApprovalFacts, str]], now: datetime) -> RequestState:
    """The state of `request` given every verified approval statement of the digest, with the
    statuses `with_status` computed."""
    linked = [(a, s) for a, s in statements if a.request_id == request.id]
    approvals = [(a, s) for a, s in linked if a.decision == "approved"]
    rejections = [a for a, _ in linked if a.decision == "rejected"]
    in_environment = [a for a, _ in statements if a.decision == "revoked" and a.environment in ("*", request.environment)]
    revocations = [a for a in in_environment if a.approved_at >= request.requested_at]
    history = [Event(request.requested_at, "requested", request.requester, request.signer, f"ticket {request.ticket or '-'}")]
    history += [Event(a.approved_at, "approved", a.approver or a.identity, a.signer,
                      f"until {format_time(a.expires_at)}" if a.expires_at else "") for a, _ in approvals]
    history += [Event(a.approved_at, "rejected", a.approver or a.identity, a.signer, a.reason) for a in rejections]
    history += [Event(a.approved_at, "revoked", a.approver or a.identity, a.signer, a.reason) for a in revocations]
    last_rejection = max((a.approved_at for a in rejections), default=None)
    counted = _counted(request, [(a, s) for a, s in approvals if s != "revoked"], last_rejection)
    in_force = [a for a, s in counted if s in ("active", "not-yet-valid")]
    revoked = [a for a, s in approvals if s == "revoked"]
    state, since = "PENDING", request.requested_at
    if revocations or revoked:
        # after the request; or (an approval revoked within the clock margin) the newest revocation before it
        state, since = "REVOKED", min(r.approved_at for r in revocations) if revocations else max(r.approved_at for r in in_environment)
    elif len(in_force) >= request.required:
        state, since = "APPROVED", sorted(a.approved_at for a in in_force)[request.required - 1]
    elif len(counted) >= request.required:
        expiries = sorted((a.expires_at for a, _ in counted if a.expires_at), reverse=True)
        state, since = "EXPIRED", expiries[request.required - 1] if len(expiries) >= request.required else now
        history.append(Event(since, "expired", "", "", f"{len(in_force)} of {request.required} approval(s) still in force"))
    elif last_rejection is not None:
        state, since = "REJECTED", last_rejection
    return RequestState(request=request, state=state, since=since, approvals=len(in_force),
                        history=tuple(sorted(history, key=lambda e: (e.time, e.action != "requested"))))


def find_request(requests: list[RequestFacts], wanted: str) -> RequestFacts:
    """The request whose id is `wanted` or starts with it (at least 12 hex digits)."""
    prefix = wanted if wanted.startswith("sha256:") else f"sha256:{wanted}"
    if not re.fullmatch(r"sha256:[0-9a-f]{12,64}", prefix):
        raise UsageError(f"request id {wanted!r} is not sha256:<hex> (at least 12 hex digits)", hint="copy it from `modelsign approvals list`")
    found = [r for r in requests if r.id.startswith(prefix)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(r.id[:19] for r in requests) or "none"
    if not found:
        raise UsageError(f"no verified approval request {wanted} on this digest (requests verified with the given keys: {known})",
                         hint="check the target and pass the requester's public key with --requester-key")
    raise UsageError(f"request id {wanted} is ambiguous ({known}); give more of it")

