"""What an audit report says, computed once for the HTML and PDF renderings."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

from webhook.audit.canonical import canonical_json
from webhook.audit.export import OUTCOMES, Selection, Trail, decision_of, record_time
from webhook.audit.verify import NOT_VERIFIED, VerifyReport

MAX_TABLE_ROWS = 500

# SOC 2 (2017 Trust Services Criteria) points of focus this trail gives evidence for.
SOC2_CRITERIA = (
    ("CC6.8", "Prevent or detect unauthorized or malicious software",
     "Every Pod, workload and InferenceService was admitted only when each image and model digest carried a valid signature by a trusted key "
     "from an allowed registry; unsigned, untrusted or unverifiable artifacts were denied.",
     ("not-signed", "registry-not-allowed", "unverifiable-uri", "verification-error", "no-rule", "invalid-reference", "tag-not-pinned")),
    ("CC7.1", "Detect vulnerabilities and configuration changes",
     "Where rules required it, artifacts were admitted only with a fresh scan, signed by the scanner key, under the severity thresholds "
     "and with no unsafe model files.",
     ("scan-missing", "scan-too-old", "scan-over-threshold", "scan-no-model-files", "unsafe-model-files", "scan-secrets")),
    ("CC8.1", "Authorize, approve and implement changes",
     "Where rules required it, a deployment was admitted only with an unexpired, unrevoked approval for its environment by the "
     "approver keys (two-person rule where configured; requesters never approve).",
     ("approval-missing", "approval-wrong-environment", "approval-expired", "approval-not-yet-valid", "approval-revoked",
      "approval-namespace", "approval-insufficient", "approval-no-environment")),
    ("CC7.2", "Monitor system components for anomalies",
     "Every decision, policy load, key change and error is in a hash-chained, signed-checkpoint trail; its integrity is verified below.",
     ()),
)


@dataclass
class Report:
    generated: str
    selection: dict[str, Any]
    period: tuple[str, str]
    totals: dict[str, int]
    dry_runs: int
    namespaces: int
    artifacts: int
    timeline_unit: str
    timeline: list[tuple[str, dict[str, int]]]
    top_denials: list[tuple[str, int]]
    denials: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    soc2: list[dict[str, Any]]
    integrity: dict[str, Any]
    sample_seed: int
    sample: list[dict[str, Any]]
    truncated: dict[str, int] = field(default_factory=dict)


def integrity_status(integrity: dict[str, Any], *, html: bool) -> str:
    """INTACT only when verified with the audit key; otherwise what stands in its way."""
    status = integrity.get("status") or ("INTACT" if integrity.get("ok") else "DAMAGED")
    if status == "DAMAGED":
        text, css = f"DAMAGED: {len(integrity['problems'])} problem(s)", "bad"
    elif status == "UNVERIFIED":
        text, css = f"UNVERIFIED: {integrity.get('note') or NOT_VERIFIED}", "unverified"
    else:
        text, css = "INTACT (verified with the audit key)", "ok"
    return f'<span class="{css}">{escape(text)}</span>' if html else text


SUPERSEDED_HEADERS = ("late record", "decision id", "answered", "superseded by")


def superseded_rows(integrity: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The late records verify paired with the superseded record that names them."""
    return [(f"{p['writer']}#{p['seq']}", str(p.get("decisionId") or ""),
             f"allowed={str((p.get('response') or {}).get('allowed')).lower()} ({(p.get('response') or {}).get('reason')})", p["supersededBy"])
            for p in integrity.get("superseded") or []]


def describe_filters(selection: dict[str, Any]) -> str:
    parts = [f"{name} {', '.join(value) if isinstance(value, list) else value}" for name, value in selection.items()
             if value and name not in ("since", "until")]
    return "; ".join(parts) or "none (every decision in the period)"


def _row(record: dict[str, Any]) -> dict[str, Any]:
    review, decision = record.get("review") or {}, decision_of(record)
    kind = review.get("kind") or {}
    return {
        "time": record.get("time"), "outcome": decision.get("outcome"), "kind": kind.get("kind") if isinstance(kind, dict) else kind,
        "object": f"{review.get('namespace') or ''}/{review.get('name') or ''}", "user": (record.get("user") or {}).get("username"),
        "operation": review.get("operation"), "dryRun": bool(review.get("dryRun")),
        "codes": ", ".join(decision.get("codes") or []) or decision.get("reason") or "", "message": decision.get("message") or "",
        "artifacts": ", ".join(str(a.get("digest") or a.get("reference")) for a in record.get("artifacts") or []),
        "record": f"{record['_writer']}#{record['_seq']}",
    }


def _timeline(decisions: list[dict[str, Any]], start: datetime, end: datetime) -> tuple[str, list[tuple[str, dict[str, int]]]]:
    hourly = end - start <= timedelta(days=3)
    unit = "hour" if hourly else "day"
    buckets: dict[str, dict[str, int]] = {}
    cursor = start.replace(minute=0, second=0, microsecond=0) if hourly else start.replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    while cursor <= end and len(buckets) < 400:
        buckets[cursor.strftime("%Y-%m-%dT%H:00Z" if hourly else "%Y-%m-%d")] = dict.fromkeys(OUTCOMES, 0)
        cursor += step
    for record in decisions:
        moment = record_time(record)
        if moment is None:
            continue
        label = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:00Z" if hourly else "%Y-%m-%d")
        outcome = decision_of(record).get("outcome")
        if label in buckets and outcome in OUTCOMES:
            buckets[label][outcome] += 1
    return unit, list(buckets.items())


def _approvals(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for record in decisions:
        for artifact in record.get("artifacts") or []:
            for approval in artifact.get("approvals") or []:
                entry = seen.setdefault(str(approval.get("id")), {**approval, "artifact": artifact.get("digest"), "decisions": 0, "admitted": 0})
                entry["decisions"] += 1
                entry["admitted"] += 1 if decision_of(record).get("allowed") else 0
    return sorted(seen.values(), key=lambda a: (str(a.get("artifact")), str(a.get("environment"))))


def _changes(trail: Trail) -> list[dict[str, Any]]:
    rows = []
    for record in trail.of_type("policy-load", "keys-change", "startup", "shutdown", "retention", "tail-seal"):
        kind = record.get("type")
        policy = record.get("policy") or {}
        if kind == "policy-load":
            detail = f"{policy.get('name')} {policy.get('hash')}" if record.get("ok") else f"FAILED: {record.get('error')}"
        elif kind == "keys-change":
            parts = [f"+{k['name']} {k['fingerprint']}" for k in record.get("added") or []]
            parts += [f"-{k['name']} {k['fingerprint']}" for k in record.get("removed") or []]
            parts += [f"~{k['name']} {k['from']} -> {k['to']}" for k in record.get("changed") or []]
            detail = "; ".join(parts)
        elif kind == "retention":
            seconds = int(record.get("retentionSeconds") or 0)
            period = f"{seconds // 86400} days" if seconds >= 86400 else f"{seconds} s"
            detail = f"removed {len(record.get('removed') or [])} chain file(s) whose last signed checkpoint is older than {period}"
        elif kind == "tail-seal":
            sealed = record.get("checkpoint") or {}
            detail = f"sealed the chain of {sealed.get('writer')} at seq {sealed.get('seq')}: it was killed without its final checkpoint"
        else:
            detail = f"pid {record.get('pid')}"
        rows.append({"time": record.get("time"), "type": kind, "writer": record["_writer"], "detail": detail})
    return rows


def _exceptions(trail: Trail) -> list[dict[str, Any]]:
    rows = [{"time": r.get("time"), "type": "decision error", "detail": decision_of(r).get("message"), "record": f"{r['_writer']}#{r['_seq']}"}
            for r in trail.decisions if decision_of(r).get("outcome") == "error"]
    rows += [{"time": r.get("time"), "type": "audit record late", "record": f"{r['_writer']}#{r['_seq']}",
              "detail": f"answered denied before its record was durable; recorded {(r.get('decision') or {}).get('outcome')}; "
                        f"{r['_given']['supersededBy']} says so"} for r in trail.decisions if r.get("_given")]
    rows += [{"time": r.get("time"), "type": r.get("type"), "detail": r.get("error"), "record": f"{r['_writer']}#{r['_seq']}"}
             for r in trail.of_type("exception", "bad-request", "audit-failure")]
    return sorted(rows, key=lambda r: str(r["time"]))


def default_seed(selection: Selection) -> int:
    """The same export request draws the same sample."""
    return int.from_bytes(hashlib.sha256(canonical_json(selection.describe())).digest()[:4], "big")


def build_report(trail: Trail, selection: Selection, integrity: VerifyReport, *, sample_size: int, seed: int | None) -> Report:
    decisions = trail.decisions
    times = [t for t in (record_time(r) for r in trail.records) if t is not None]
    start = selection.since or (min(times) if times else datetime.now(timezone.utc))
    end = (selection.until - timedelta(microseconds=1)) if selection.until else (max(times) if times else start)
    outcomes = Counter(decision_of(r).get("outcome") for r in decisions)
    denied = [r for r in decisions if decision_of(r).get("outcome") == "deny"]
    codes = Counter(code for r in denied for code in decision_of(r).get("codes") or [])
    warned_codes = Counter(code for r in decisions if decision_of(r).get("outcome") == "warn" for code in decision_of(r).get("codes") or [])
    unit, timeline = _timeline(decisions, start, end)
    seed = default_seed(selection) if seed is None else seed
    sample = random.Random(seed).sample(decisions, min(sample_size, len(decisions)))
    soc2 = []
    for criterion, title, statement, related in SOC2_CRITERIA:
        soc2.append({"criterion": criterion, "title": title, "statement": statement,
                     "denied": sum(codes[c] for c in related), "warned": sum(warned_codes[c] for c in related),
                     "codes": [f"{c}: {codes[c]}" for c in related if codes[c]]})
    soc2[0]["admitted"] = outcomes["allow"]
    soc2[-1]["denied"] = len(integrity.problems)
    if not integrity.keyed:
        soc2[-1]["statement"] = soc2[-1]["statement"].replace("its integrity is verified below", f"{NOT_VERIFIED}, so it is not evidence yet")
    approvals = _approvals(decisions)
    denial_rows = [_row(r) for r in denied]
    return Report(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), selection=selection.describe(),
        period=(start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")),
        totals={"decisions": len(decisions), **{o: outcomes[o] for o in OUTCOMES}},
        dry_runs=sum(1 for r in decisions if (r.get("review") or {}).get("dryRun")),
        namespaces=len({(r.get("review") or {}).get("namespace") for r in decisions}),
        artifacts=len({a.get("digest") for r in decisions for a in r.get("artifacts") or [] if a.get("digest")}),
        timeline_unit=unit, timeline=timeline, top_denials=codes.most_common(10),
        denials=denial_rows[:MAX_TABLE_ROWS], approvals=approvals[:MAX_TABLE_ROWS], exceptions=_exceptions(trail)[:MAX_TABLE_ROWS],
        changes=_changes(trail)[:MAX_TABLE_ROWS], soc2=soc2, integrity=integrity.to_json(), sample_seed=seed, sample=[_row(r) for r in sample],
        truncated={name: count for name, count in (("denials", len(denial_rows)), ("approvals", len(approvals))) if count > MAX_TABLE_ROWS},
    )
