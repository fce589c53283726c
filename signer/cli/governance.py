"""The governance commands: `evaluate`, `approval request|approve|reject` and `approvals list`
(their options: signer/cli/parser.py).

Each state change is a signed attestation on the digest (request, approval, rejection; the
revocation is `modelsign revoke`), so the history can be verified offline by anyone with the
public keys: `approvals list` derives every request's state from the verified statements.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from typing import Any

from signer.cli import render
from signer.cli.commands import _anchors, _attest_and_report, _stores
from signer.errors import EXIT_OK, UsageError
from signer.evidence.approvals import ApprovalFacts, approval_facts, approval_predicate, format_time, parse_duration, with_status
from signer.evidence.evaluations import evaluation_facts, evaluation_predicate, metric_groups
from signer.evidence.requests import RequestFacts, RequestState, find_request, request_facts, request_predicate, request_state
from signer.evidence.scan.scanning import scan_facts
from signer.formats import mediatypes as mt
from signer.jsonread import load_json, text
from signer.oci.stores import Stores
from signer.references import ArtifactReference, parse_reference
from signer.signatures.artifacts import resolve_artifact
from signer.signatures.verification import AttestationReport, verify_attestations
from signer.trust.anchors import TrustAnchor
from signer.trust.keys import load_public_key_file, load_signing_key_file

GOVERNANCE_TYPES = {mt.APPROVAL_PREDICATE, mt.APPROVAL_REQUEST_PREDICATE}


def _user() -> str:
    return os.environ.get("USER", "")


def _statements(stores: Stores, reference: ArtifactReference, anchors: list[TrustAnchor], types: set[str]) -> tuple[str, str, AttestationReport]:
    resolved = resolve_artifact(stores, reference)
    report = verify_attestations(stores.repository(reference), resolved.digest, anchors, predicate_types=types)
    return resolved.digest, str(resolved.pinned), report


def _governance(report: AttestationReport, now: datetime) -> tuple[list[RequestFacts], list[tuple[ApprovalFacts, str]], list[str]]:
    """Requests, approval statements with their status, and `location: why` of the statements
    that verified but could not be read (malformed predicates: listed, never counted)."""
    requests, approvals, unreadable = [], [], []
    for attestation in report.of_type(mt.APPROVAL_REQUEST_PREDICATE):
        request = request_facts(attestation)
        requests += [request] if request else []
        unreadable += [] if request else [f"{attestation.location}: approval request {attestation.statement_digest[:19]} has a malformed predicate"]
    for attestation in report.of_type(mt.APPROVAL_PREDICATE):
        approval = approval_facts(attestation)
        approvals += [approval] if approval else []
        unreadable += [] if approval else [f"{attestation.location}: approval statement {attestation.statement_digest[:19]} has a malformed predicate"]
    return requests, with_status(approvals, now), unreadable


# -- evaluate -----------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    try:
        document = load_json(args.metrics.read_bytes(), what=f"metrics file {args.metrics}")
    except OSError as exc:
        raise UsageError(f"cannot read metrics file {args.metrics}: {exc.strerror}") from None
    groups = metric_groups(document, what=f"metrics file {args.metrics}")
    embedded = document.get("dataset") if isinstance(document, dict) else None
    dataset = embedded if isinstance(embedded, dict) else {"name": text(embedded)}
    predicate = evaluation_predicate(
        metrics=groups["metrics"], fairness=groups["fairness"], evaluator=args.evaluator or text(document.get("evaluator")) or _user(),
        dataset_name=args.dataset or text(dataset.get("name")), dataset_digest=args.dataset_digest or text(dataset.get("digest")) or None,
        dataset_uri=args.dataset_uri or text(dataset.get("uri")), notes=args.notes or text(document.get("notes")),
    )
    if args.output == "text":
        shown = ", ".join(f"{name} {value:g}" for group in ("metrics", "fairness") for name, value in predicate[group].items())
        print(f"Evaluation of {args.target} on {predicate['dataset']['name']} by {predicate['evaluator']}: {shown}")
    with _stores(args) as stores:
        return _attest_and_report(args, stores, reference, key, mt.EVALUATION_PREDICATE, predicate)


# -- approval request / approve / reject --------------------------------------------------------------


def _newest_evidence(report: AttestationReport) -> list[dict[str, str]]:
    """The newest verified scan and evaluation: what a request made with --evidence-key rests on."""
    found: list[dict[str, str]] = []
    scans = [(facts["finishedOn"], a.statement_digest) for a in report.of_type(mt.VULN_PREDICATE) if (facts := scan_facts(a.predicate))]
    evaluations = [(format_time(f.evaluated_at), f.statement_digest) for f in (evaluation_facts(a) for a in report.of_type(mt.EVALUATION_PREDICATE)) if f]
    for kind, items in (("scan", scans), ("evaluation", evaluations)):
        if items:
            found.append({"type": kind, "id": max(items)[1]})
    return found


def cmd_approval_request(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    evidence = [{"type": "scan", "id": i} for i in args.scan] + [{"type": "evaluation", "id": i} for i in args.evaluation]
    with _stores(args) as stores:
        if args.evidence_key:
            anchors: list[TrustAnchor] = [load_public_key_file(path) for path in args.evidence_key]
            _, _, report = _statements(stores, reference, anchors, {mt.VULN_PREDICATE, mt.EVALUATION_PREDICATE})
            newest = _newest_evidence(report)
            if not newest:
                raise UsageError(f"no scan or evaluation of {args.target} verifies with --evidence-key",
                                 hint="run `modelsign scan` / `modelsign evaluate` first, or pass the ids with --scan / --evaluation")
            evidence += [item for item in newest if item not in evidence]
        predicate = request_predicate(environment=args.environment, namespaces=args.namespace, requester=args.requester or _user(),
                                      approvers=args.approver, count=args.approvals, ticket=args.ticket,
                                      lifetime_seconds=parse_duration(args.expires), reason=args.reason, url=args.url, evidence=evidence)
        if args.output == "text":
            wanted = predicate["approvers"]
            who = f" from {', '.join(wanted['names'])}" if wanted["names"] else ""
            cited = ", ".join(f"{item['type']} {item['id']}" for item in evidence) or "none"
            print(f"Requesting approval of {args.target} for {args.environment} (namespaces {', '.join(predicate['namespaces'])}): "
                  f"{wanted['count']} approval(s){who}, ticket {args.ticket}\n  evidence: {cited}")
        return _attest_and_report(args, stores, reference, key, mt.APPROVAL_REQUEST_PREDICATE, predicate)


def _answer(args: argparse.Namespace, decision: str) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    approver = args.approver or _user()
    with _stores(args) as stores:
        if args.request:
            if not args.requester_key:
                raise UsageError("--request needs the requester's public key to verify the request", hint="pass --requester-key REQUESTER.pub")
            anchors: list[TrustAnchor] = [load_public_key_file(path) for path in args.requester_key]
            _, _, report = _statements(stores, reference, anchors, {mt.APPROVAL_REQUEST_PREDICATE})
            requests = [f for f in (request_facts(a) for a in report.of_type(mt.APPROVAL_REQUEST_PREDICATE)) if f is not None]
            request = find_request(requests, args.request)
            if approver == request.requester:
                raise UsageError(f"{approver} asked for this approval, so cannot answer it (the requester never counts as an approver)",
                                 hint="ask one of the approvers the request names")
            if request.approvers and approver not in request.approvers:
                raise UsageError(f"{approver} is not among the approvers request {request.id[:19]} names ({', '.join(request.approvers)})",
                                 hint="pass --approver with your name as the request gives it, or ask for a new request")
            lifetime = parse_duration(args.expires) if getattr(args, "expires", None) else request.lifetime_seconds
            predicate = approval_predicate(decision=decision, environment=request.environment, namespaces=list(request.namespaces), approver=approver,
                                           requester=request.requester, ticket=request.ticket, url=args.url, reason=args.reason,
                                           expires_in_seconds=lifetime if decision == "approved" else None, request_id=request.id)
        else:
            if not (args.environment and args.ticket):
                raise UsageError("without --request, name the --environment and the --ticket", hint="or answer a request: --request ID --requester-key PUB")
            if decision == "approved" and not args.expires:
                raise UsageError("an approval must expire", hint="pass --expires, e.g. 30d")
            lifetime = parse_duration(args.expires) if decision == "approved" else None
            predicate = approval_predicate(decision=decision, environment=args.environment, namespaces=args.namespace, approver=approver,
                                           requester=args.requester, ticket=args.ticket, url=args.url, reason=args.reason, expires_in_seconds=lifetime)
        return _attest_and_report(args, stores, reference, key, mt.APPROVAL_PREDICATE, predicate)


def cmd_approval_approve(args: argparse.Namespace) -> int:
    return _answer(args, "approved")


def cmd_approval_reject(args: argparse.Namespace) -> int:
    return _answer(args, "rejected")


# -- approvals list -----------------------------------------------------------------------


def _request_json(state: RequestState) -> dict[str, Any]:
    request = state.request
    return {
        "id": request.id, "state": state.state, "since": format_time(state.since), "environment": request.environment,
        "namespaces": list(request.namespaces), "requester": request.requester, "signer": request.signer, "approvers": list(request.approvers),
        "required": request.required, "approvals": state.approvals, "ticket": request.ticket, "reason": request.reason,
        "requestedAt": format_time(request.requested_at), "evidence": [{"type": t, "id": i} for t, i in request.evidence],
        "history": [{"time": format_time(e.time), "action": e.action, "by": e.who, "key": e.key, "detail": e.detail} for e in state.history],
    }


def _request_text(state: RequestState) -> list[str]:
    request = state.request
    names = f" from {', '.join(request.approvers)}" if request.approvers else ""
    evidence = ", ".join(f"{t} {i[:19]}" for t, i in request.evidence) or "none cited"
    lines = [
        f"  {state.state:<9} request {request.id[:19]}  {request.environment} ({', '.join(request.namespaces)}) since {format_time(state.since)}",
        f"            asked by {request.requester} (key {request.signer}), ticket {request.ticket or '-'}"
        + (f": {request.reason}" if request.reason else ""),
        f"            needs {request.required} approval(s){names}; {state.approvals} in force; evidence: {evidence}",
    ]
    for event in state.history:
        who = f" by {event.who} (key {event.key})" if event.who or event.key else ""
        separator = ": " if event.action in ("rejected", "revoked") else ", " if who else ""
        detail = f"{separator}{event.detail}" if event.detail else ""
        lines.append(f"            {format_time(event.time)}  {event.action.upper():<9}{who}{detail}")
    return lines


def cmd_approvals_list(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    reference = parse_reference(args.target)
    with _stores(args) as stores:
        digest, pinned, report = _statements(stores, reference, anchors, GOVERNANCE_TYPES)
    now = datetime.now(timezone.utc)
    requests, statements, unreadable = _governance(report, now)
    states = sorted((request_state(r, statements, now) for r in requests), key=lambda s: s.request.requested_at)
    listed = [{**f.to_input(status, now), "reason": f.reason, "location": f.location} for f, status in statements]
    if args.output != "text":
        render.emit(args.output, "", {"digest": digest, "requests": [_request_json(s) for s in states], "approvals": listed,
                                      "rejected": report.rejected, "unreadable": unreadable})
        return EXIT_OK
    print(f"Approval requests of {pinned} (signatures verified):")
    for state in states:
        print("\n".join(_request_text(state)))
    if not states:
        print("  none")
    print("Approvals, rejections and revocations (each signed statement):")
    for item in listed:
        until = f" until {item['expiresAt']}" if item["expiresAt"] else ""
        print(f"  {item['status']:<13} {item['decision']:<8} {item['environment']} {','.join(item['namespaces'])} by {item['signer']} "
              f"({item['approver'] or '?'}) for {item['requester'] or '?'}, ticket {item['ticket'] or '-'}, at {item['approvedAt']}{until}"
              + (f": {item['reason']}" if item["decision"] != "approved" and item["reason"] else ""))
    if not listed:
        print("  none")
    for rejection in report.rejected:
        print(f"  rejected: {rejection.location}: {rejection.reason}")
    for problem in unreadable:
        print(f"  not counted: {problem}")
    return EXIT_OK
