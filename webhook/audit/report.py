"""What an audit report says, computed once for the HTML and PDF renderings and the evidence
pack's JSON resource file."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

from webhook.audit.canonical import canonical_json
from webhook.audit.controls import check_controls
from webhook.audit.export import Selection, Trail, decision_of, record_time
from webhook.audit.terms import OUTCOMES
from webhook.audit.scope import FAILURE_POLICY_MEANING, Run, gaps, identities, policies_in_force, writer_runs
from webhook.audit.verify import NOT_VERIFIED, VerifyReport

RESOURCE_SCHEMA = "modelsign.audit-report/v1"

MAX_TABLE_ROWS = 500
SAMPLE_METHOD = ("simple random sample without replacement: Python's random.Random(seed).sample over the population in time order "
                 "(Mersenne Twister); the same export request draws the same sample")


TIME_HEADERS = frozenset({"time", "from", "to", "started", "stopped", "expires"})  # columns shown as `2026-11-30 03:44:08Z`


@dataclass(frozen=True)
class Table:
    """A table both renderings draw: `weights` size the PDF columns, `numeric` are right-aligned."""
    headers: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    weights: tuple[int, ...]
    numeric: frozenset[int] = frozenset()
    caption: str = ""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[str | Table]  # paragraphs and tables, in order


@dataclass(frozen=True)
class ReportIdentity:
    report_id: str
    generated: str
    generated_by: str
    version: str
    audit_keys: list[str]  # "key id (file)" of every audit key the trail was checked against


@dataclass
class Report:
    identity: ReportIdentity
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
    controls: list[dict[str, Any]]
    integrity: dict[str, Any]
    sample_seed: int
    population: int
    sample: list[dict[str, Any]]
    front: list[Section]  # identity, scope, policy in force, controls, population and sample
    resource: dict[str, Any]  # the same facts as data, for the evidence pack's JSON file
    truncated: dict[str, int] = field(default_factory=dict)

    @property
    def generated(self) -> str:
        return self.identity.generated


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


def repository_of(reference: Any) -> str:
    """`registry/team/model` of `registry/team/model:tag@sha256:…`; a storage URI as it is."""
    text = str(reference or "")
    if "://" in text:
        return text
    name = text.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _joined(values: Any) -> str:
    return ", ".join(dict.fromkeys(str(v) for v in values if v))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    review, decision = record.get("review") or {}, decision_of(record)
    kind = review.get("kind") or {}
    artifacts = record.get("artifacts") or []
    approvals = [a for artifact in artifacts for a in artifact.get("approvals") or []]
    return {
        "time": record.get("time"), "outcome": decision.get("outcome"), "kind": kind.get("kind") if isinstance(kind, dict) else kind,
        "object": f"{review.get('namespace') or ''}/{review.get('name') or ''}", "user": (record.get("user") or {}).get("username"),
        "operation": review.get("operation"), "dryRun": bool(review.get("dryRun")),
        "codes": ", ".join(decision.get("codes") or []) or decision.get("reason") or "", "message": decision.get("message") or "",
        "artifacts": ", ".join(str(a.get("digest") or a.get("reference")) for a in artifacts),
        "repositories": _joined(repository_of(a.get("reference")) for a in artifacts),
        "signers": _joined(s for a in artifacts for s in a.get("signers") or []),
        "tickets": _joined(a.get("ticket") for a in approvals), "approvers": _joined(a.get("approver") for a in approvals),
        "record": f"{record['_writer']}#{record['_seq']}",
    }


def short_time(value: Any) -> str:
    """`2026-11-30 03:44:08Z` of an RFC 3339 time: one line in a narrow column."""
    text = str(value or "")
    return text[:10] + " " + text[11:19] + "Z" if len(text) >= 19 and text[10] == "T" else text


# Bucket sizes for the timeline: the smallest that gives at most MAX_BUCKETS bars.
BUCKETS = ((1, "second"), (5, "5 seconds"), (15, "15 seconds"), (60, "minute"), (300, "5 minutes"), (900, "15 minutes"), (3600, "hour"),
           (6 * 3600, "6 hours"), (86400, "day"), (7 * 86400, "week"))
MAX_BUCKETS = 48


def timeline_buckets(decisions: list[dict[str, Any]], start: datetime, end: datetime) -> tuple[str, list[tuple[str, dict[str, int]]]]:
    """Counts per bucket, the bucket chosen by the period's length; labels as short as the
    period allows (times of day within one day, dates across days)."""
    span = max((end - start).total_seconds(), 1)
    seconds, unit = next(((size, name) for size, name in BUCKETS if span / size <= MAX_BUCKETS), BUCKETS[-1])
    epoch = datetime(1970, 1, 5, tzinfo=timezone.utc)  # a Monday: weeks start on Mondays
    first = start - timedelta(seconds=(start - epoch).total_seconds() % seconds)
    count = int((end - first).total_seconds() // seconds) + 1
    one_day = start.date() == end.date()
    fmt = "%Y-%m-%d" if seconds >= 86400 else ("%H:%M:%S" if seconds < 60 else "%H:%M") if one_day else "%m-%d %H:%M"
    buckets = [((first + timedelta(seconds=i * seconds)).strftime(fmt), dict.fromkeys(OUTCOMES, 0)) for i in range(min(count, 400))]
    for record in decisions:
        moment = record_time(record)
        outcome = decision_of(record).get("outcome")
        if moment is None or outcome not in OUTCOMES:
            continue
        index = int((moment - first).total_seconds() // seconds)
        if 0 <= index < len(buckets):
            buckets[index][1][outcome] += 1
    return unit, buckets


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


def _requirements(require: dict[str, Any]) -> str:
    """`signedBy: ml-team; scan: {...}`: what a rule requires, empty settings left out."""
    def shown(value: Any) -> str:
        return ", ".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else canonical_json(value).decode()

    return "; ".join(f"{name}: {shown(value)}" for name, value in require.items() if value not in ({}, [], None))


def _policy_section(policies: list[dict[str, Any]]) -> Section:
    blocks: list[str | Table] = []
    if not policies:
        blocks.append("No policy-load record and no decision in the period names a policy.")
    for policy in policies:
        facts = policy["facts"] or {}
        when = "in force at the start of the period" if policy["inForceAtStart"] else f"first loaded {short_time(policy['firstLoaded'])}" \
            if policy["firstLoaded"] else "named by decisions; its load is not in the trail"
        decided = ", ".join(f"{mode} {count}" for mode, count in sorted(policy["decisions"].items())) or "none"
        blocks.append(f"Policy {policy['name'] or '?'} {policy['hash']}: {when}; loaded {policy['loads']} time(s) in the period; "
                          f"mode {facts.get('mode') or 'not recorded'}; exempt namespaces {', '.join(facts.get('exemptNamespaces') or []) or 'none'}"
                          f"{'' if 'exemptNamespaces' in facts else ' recorded'}; allowed registries "
                          f"{', '.join(facts.get('allowedRegistries') or []) or 'not recorded'}; decisions by mode: {decided}.")
        if "rules" not in facts:
            blocks.append("Its rules were not recorded: the policy-load record predates this modelsign version (keep the policy file of "
                              "this hash with the workpapers).")
        else:
            blocks.append(Table(("rule", "artifacts", "namespaces", "mode", "requires"),
                                [(r.get("name"), ", ".join(r.get("artifacts") or []), ", ".join(r.get("namespaces") or []),
                                  r.get("mode") or facts.get("mode"), _requirements(r.get("require") or {}))
                                 for r in facts["rules"]], (30, 50, 40, 16, 126), caption=f"Rules of {policy['hash']}"))
        if facts.get("keys"):
            blocks.append(Table(("key (owner)", "kind", "fingerprint", "source", "relied on by"),
                                [(k.get("name"), k.get("kind") or "key", k.get("fingerprint"), k.get("source") or "not recorded",
                                  "; ".join(k.get("usedBy") or []) or ("not recorded" if "usedBy" not in k else "no rule"))
                                 for k in facts["keys"]], (40, 14, 70, 70, 68), caption=f"Trusted keys of {policy['hash']}"))
    return Section("policy", "Policy in force", blocks)


def _scope_section(report_period: tuple[str, str], selection: dict[str, Any], covered: list[Run], found_gaps: list[dict[str, Any]],
                   policies: list[dict[str, Any]], who: dict[str, str], failure_policy: str | None, trail: Trail) -> Section:
    in_period = Counter(r["_writer"] for r in trail.records)
    exempt = "; ".join(f"{', '.join((p['facts'] or {}).get('exemptNamespaces') or []) or 'none'} ({p['hash'][:19]}...)"
                       for p in policies if "exemptNamespaces" in (p["facts"] or {})) or "not recorded"
    modes = Counter()
    for policy in policies:
        modes.update(policy["decisions"])
    facts = [
        ("cluster", who["cluster"]), ("webhook", who["webhook"]), ("webhook pods", who["pods"]), ("hosts", who["hosts"]),
        ("webhook modelsign versions", who["versions"]),
        ("period (UTC)", f"{report_period[0]} to {report_period[1]}"
                         + ("" if selection.get("since") and selection.get("until") else " (from the trail's records: no --since/--until given)")),
        ("filters", describe_filters(selection)),
        ("writers covered", f"{len(covered)} (each a webhook worker process; one chain each)"),
        ("exempt namespaces (per policy)", exempt),
        ("mode over the period", ", ".join(f"{mode}: {count} decision(s)" for mode, count in sorted(modes.items())) or "no decisions"),
        ("gaps (no webhook running)", f"{len(found_gaps)}" + (" (listed below, with what the failurePolicy means for them)" if found_gaps else "")),
        ("failurePolicy", failure_policy or "not stated (--failure-policy)"),
    ]
    writers = Table(("writer", "started", "stopped", "how it stopped", "records in period"),
                    [(r.writer, short_time(r.start.strftime("%Y-%m-%dT%H:%M:%SZ")), short_time(r.end.strftime("%Y-%m-%dT%H:%M:%SZ")),
                      "shutdown record" if r.clean_stop else "no shutdown record (killed, or running when copied): last record", in_period[r.writer])
                     for r in covered], (80, 36, 36, 96, 24), numeric=frozenset({4}), caption="Writers (webhook processes) covered")
    gap_table = Table(("from", "to", "duration", "why"), [(short_time(g["from"]), short_time(g["to"]), g["duration"], g["why"]) for g in found_gaps],
                      (36, 36, 24, 176), caption="Gaps: stretches of the period no writer covered")
    return Section("scope", "Scope", [Table(("", ""), facts, (60, 212), caption="What this report covers"), writers, gap_table,
                                      *([FAILURE_POLICY_MEANING[failure_policy]] if found_gaps else [])])


def _controls_section(controls: list[dict[str, Any]]) -> Section:
    summary = Table(("criterion", "title", "what was tested", "population", "passed", "exceptions", "not in scope"),
                    [(c["criterion"], c["title"], c["tested"], c["population"], c["passed"], len(c["exceptions"]), c["outOfScope"]) for c in controls],
                    (16, 40, 128, 22, 18, 22, 22), numeric=frozenset({3, 4, 5, 6}))
    rows = [(c["criterion"], short_time(e[0]), e[1], e[2], e[3]) for c in controls for e in c["exceptions"]]
    exceptions = Table(("criterion", "time", "record / where", "object", "exception"), rows[:MAX_TABLE_ROWS], (16, 34, 66, 50, 106),
                       caption="Exceptions" + (f" (first {MAX_TABLE_ROWS} of {len(rows)})" if len(rows) > MAX_TABLE_ROWS else ""))
    return Section("soc2", "SOC 2 controls tested", [
        "Passed: the control operated as designed (admitted with the evidence it asks for, or denied without it, failing closed on errors). "
        "Exceptions: admitted without that evidence (warn mode), and for CC7.2 every integrity problem, late record and gap. "
        "Not in scope: admissions that needed no check (exempt namespaces, deletes, unchanged artifacts).", summary, exceptions])


def _sample_section(population: int, sample: list[dict[str, Any]], seed: int) -> Section:
    rows = [(short_time(s["time"]), s["outcome"], s["object"], s["kind"], s["user"], s["repositories"], s["signers"], s["tickets"], s["approvers"],
             s["codes"], s["record"]) for s in sample]
    return Section("sample", f"Population and sample (seed {seed})", [
        f"Population {population} (the period's decisions matching the filters), sample {len(sample)}, seed {seed}, method: {SAMPLE_METHOD}.",
        Table(("time", "outcome", "object", "kind", "user", "repository", "signed by", "ticket", "approver", "codes", "record"),
               rows, (30, 13, 30, 17, 20, 40, 18, 16, 16, 24, 48))])


def _identity_section(identity: ReportIdentity, integrity: dict[str, Any]) -> Section:
    keys = "; ".join(identity.audit_keys) or "none: the trail's integrity was NOT verified"
    return Section("identity", "Report identity", [Table(("", ""), [
        ("report id", identity.report_id), ("generated (UTC)", identity.generated), ("generated by", identity.generated_by),
        ("modelsign version", identity.version), ("audit key(s) checked against (key id, file)", keys),
        ("integrity", integrity_status(integrity, html=False)),
    ], (70, 202))])


def build_report(trail: Trail, selection: Selection, integrity: VerifyReport, *, sample_size: int, seed: int | None,
                 identity: ReportIdentity, failure_policy: str | None = None, cluster: str | None = None) -> Report:
    decisions = trail.decisions
    times = [t for t in (record_time(r) for r in trail.records) if t is not None]
    start = selection.since or (min(times) if times else datetime.now(timezone.utc))
    end = (selection.until - timedelta(microseconds=1)) if selection.until else (max(times) if times else start)
    outcomes = Counter(decision_of(r).get("outcome") for r in decisions)
    denied = [r for r in decisions if decision_of(r).get("outcome") == "deny"]
    codes = Counter(code for r in denied for code in decision_of(r).get("codes") or [])
    unit, timeline = timeline_buckets(decisions, start, end)
    seed = default_seed(selection) if seed is None else seed
    sample = [_row(r) for r in random.Random(seed).sample(decisions, min(sample_size, len(decisions)))]
    runs = writer_runs(trail)
    covered = [run for run in runs if run.end >= start and run.start <= end]  # the writers that ran during the period
    found_gaps = gaps(runs, start, min(end, datetime.now(timezone.utc)))  # a period that ends in the future has no gap there yet
    integrity_json = integrity.to_json()
    controls = check_controls(decisions, integrity_json, found_gaps)
    policies = policies_in_force(trail, start, end, runs)
    period = (start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    who = identities(covered, cluster)
    approvals = _approvals(decisions)
    denial_rows = [_row(r) for r in denied]
    front = [_scope_section(period, selection.describe(), covered, found_gaps, policies, who, failure_policy, trail), _policy_section(policies),
             _controls_section(controls), _sample_section(len(decisions), sample, seed)]
    resource = {
        "schema": RESOURCE_SCHEMA, "reportId": identity.report_id, "generated": identity.generated, "generatedBy": identity.generated_by,
        "modelsignVersion": identity.version, "auditKeys": identity.audit_keys, "period": {"from": period[0], "to": period[1]},
        "selection": selection.describe(), "integrity": integrity.status_fields() | {"records": integrity.records, "problems": len(integrity.problems)},
        "scope": {**who, "failurePolicy": failure_policy, "failurePolicyMeaning": FAILURE_POLICY_MEANING[failure_policy],
                  "writers": [{"writer": r.writer, "started": r.start.isoformat(), "stopped": r.end.isoformat(), "shutdownRecorded": r.clean_stop,
                               "identity": r.identity} for r in covered],
                  "gaps": found_gaps},
        "policies": [{**p, "decisions": dict(p["decisions"])} for p in policies],
        "controls": [{**c, "exceptions": [dict(zip(("time", "record", "object", "exception"), e)) for e in c["exceptions"]]} for c in controls],
        "population": {"size": len(decisions), "sampleSize": len(sample), "seed": seed, "method": SAMPLE_METHOD}, "sample": sample,
        "totals": {"decisions": len(decisions), **{o: outcomes[o] for o in OUTCOMES}},
    }
    return Report(
        identity=identity, selection=selection.describe(), period=period,
        totals={"decisions": len(decisions), **{o: outcomes[o] for o in OUTCOMES}},
        dry_runs=sum(1 for r in decisions if (r.get("review") or {}).get("dryRun")),
        namespaces=len({(r.get("review") or {}).get("namespace") for r in decisions}),
        artifacts=len({a.get("digest") for r in decisions for a in r.get("artifacts") or [] if a.get("digest")}),
        timeline_unit=unit, timeline=timeline, top_denials=codes.most_common(10),
        denials=denial_rows[:MAX_TABLE_ROWS], approvals=approvals[:MAX_TABLE_ROWS], exceptions=_exceptions(trail)[:MAX_TABLE_ROWS],
        changes=_changes(trail)[:MAX_TABLE_ROWS], controls=controls, integrity=integrity_json, sample_seed=seed, population=len(decisions),
        sample=sample, front=[_identity_section(identity, integrity_json), *front], resource=resource,
        truncated={name: count for name, count in (("denials", len(denial_rows)), ("approvals", len(approvals))) if count > MAX_TABLE_ROWS},
    )
