"""The scope of an audit report, from the trail itself: which webhook processes (writers) ran
when, the gaps when none was running, and the policy each one enforced, per policy hash.

A writer runs from its `startup` record (or its first record) to its `shutdown` record; one
without a shutdown record was killed or was still running when the trail was copied, so its
run is only known up to its last record (a `tail-seal` by the next writer says it was killed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from webhook.audit.export import Trail, record_time

MIN_GAP = timedelta(seconds=1)  # shorter uncovered stretches are the time between two records, not an outage


FAILURE_POLICY_MEANING = {
    "Fail": "failurePolicy Fail: while no webhook answered, the API server rejected every request the webhook configuration matches, so "
            "nothing in scope was admitted unchecked during these gaps (namespaces its namespaceSelector excludes are never sent).",
    "Ignore": "failurePolicy Ignore: while no webhook answered, the API server admitted the requests the webhook configuration matches "
              "without a check and without a record here: review what was created during these gaps in the API server's audit log.",
    None: "failurePolicy not stated: with Fail, the API server rejected matching requests during these gaps; with Ignore, it admitted them "
          "unchecked. Pass --failure-policy with the value of the ValidatingWebhookConfiguration (the shipped manifests set Fail).",
}


@dataclass(frozen=True)
class Run:
    writer: str
    start: datetime
    end: datetime
    clean_stop: bool  # a shutdown record ends it
    identity: dict[str, Any]


def _fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds % 60} s" if minutes else f"{seconds} s"


def writer_runs(trail: Trail) -> list[Run]:
    starts: dict[str, dict[str, Any]] = {}
    stops: dict[str, datetime] = {}
    for record in trail.context:
        if record.get("type") == "startup":
            starts.setdefault(record["_writer"], record)
        elif record.get("type") == "shutdown":
            stops[record["_writer"]] = record_time(record) or stops.get(record["_writer"])  # type: ignore[assignment]
    runs = []
    for writer, (first, last) in trail.writer_spans.items():
        startup = starts.get(writer) or {}
        start = record_time(startup) or first
        runs.append(Run(writer, start, stops.get(writer) or last, writer in stops, startup.get("identity") or {}))
    return sorted(runs, key=lambda r: (r.start, r.writer))


def gaps(runs: list[Run], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Stretches of [start, end] that no writer's run covers, with what came before each."""
    found: list[dict[str, Any]] = []
    cursor, before = start, None
    for run in sorted(runs, key=lambda r: r.start):
        if run.start >= end:
            break
        if run.start - cursor >= MIN_GAP:
            found.append(_gap(cursor, run.start, before))
        if before is None or run.end > before.end:
            before = run
        cursor = max(cursor, run.end)
    if end - cursor >= MIN_GAP:
        found.append(_gap(cursor, end, before, last=True))
    return found


def _gap(start: datetime, end: datetime, before: Run | None, *, last: bool = False) -> dict[str, Any]:
    if before is None:
        why = "before the first record of any writer in the trail"
    elif before.clean_stop:
        why = f"no writer was running: {before.writer} stopped cleanly (shutdown record)"
    else:
        why = (f"no record after the last one of {before.writer}, which has no shutdown record: it was killed, "
               + ("or was still running (idle) when the trail was copied" if last else "or idle until then"))
    return {"from": _fmt(start), "to": _fmt(end), "duration": _duration(end - start), "why": why}


def policies_in_force(trail: Trail, start: datetime, end: datetime, runs: list[Run]) -> list[dict[str, Any]]:
    """Every policy hash in force during [start, end]: the last one each writer running at the
    start had loaded, and each one loaded (or decided with) within, with its rules and keys."""
    running_at_start = {run.writer for run in runs if run.start <= start <= run.end}
    loads = [r for r in trail.context if r.get("type") == "policy-load" and r.get("ok")]
    by_hash: dict[str, dict[str, Any]] = {}
    in_force_at_start: dict[str, dict[str, Any]] = {}  # writer -> its last load before the start
    for record in loads:
        moment = record_time(record)
        policy = record.get("policy") or {}
        if moment is None or not policy.get("hash"):
            continue
        if moment < start:
            in_force_at_start[record["_writer"]] = record
            continue
        if moment <= end:
            _entry(by_hash, record)["loads"] += 1
    for writer, record in in_force_at_start.items():
        if writer in running_at_start:
            _entry(by_hash, record)["inForceAtStart"] = True
    decided = Counter(((r.get("policy") or {}).get("hash"), (r.get("policy") or {}).get("name"), (r.get("decision") or {}).get("mode"))
                      for r in trail.decisions)
    for (policy_hash, name, mode), count in decided.items():
        if policy_hash:
            entry = by_hash.setdefault(policy_hash, {"hash": policy_hash, "name": name, "loads": 0, "inForceAtStart": False, "facts": None,
                                                     "firstLoaded": None, "decisions": Counter()})
            entry["decisions"][mode or "?"] += count
    return sorted(by_hash.values(), key=lambda e: (e["firstLoaded"] or "", e["hash"]))


def _entry(by_hash: dict[str, dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    policy = record.get("policy") or {}
    entry = by_hash.setdefault(policy["hash"], {"hash": policy["hash"], "name": policy.get("name"), "loads": 0, "inForceAtStart": False,
                                                "facts": None, "firstLoaded": record.get("time"), "decisions": Counter()})
    if "rules" in record:  # written by a modelsign that records the policy's facts
        entry["facts"] = {k: record.get(k) for k in ("mode", "exemptNamespaces", "allowedRegistries", "requireDigest", "rules", "keys")}
    elif entry["facts"] is None and record.get("keys"):
        entry["facts"] = {"keys": record.get("keys")}
    return entry


def identities(runs: list[Run], cluster_option: str | None) -> dict[str, str]:
    """The webhook's identity as its writers recorded it (distinct values joined)."""
    def values(field: str) -> str:
        return ", ".join(sorted({str(r.identity[field]) for r in runs if r.identity.get(field)}))

    cluster = values("cluster")
    if cluster_option and cluster and cluster_option not in cluster.split(", "):
        cluster = f"{cluster_option} (given with --cluster; the writers recorded {cluster})"
    else:
        cluster = cluster_option or cluster or "not recorded: set MODELSIGN_CLUSTER on the webhook, or pass --cluster to the export"
    pods = ", ".join(sorted({f"{r.identity.get('podNamespace')}/{r.identity.get('pod')}" for r in runs if r.identity.get("pod")}))
    return {"cluster": cluster, "webhook": values("webhook") or "not recorded (writers older than this report's modelsign)",
            "pods": pods or "not recorded (POD_NAME/POD_NAMESPACE unset)", "hosts": values("host") or "not recorded",
            "versions": values("modelsignVersion") or "not recorded"}
