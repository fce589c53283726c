"""Reading the trail back for auditors: records in a period, filtered; JSONL and CSV exports.

Only records whose line hashes intact are exported (damage is the integrity section's job,
not the tables'). CSV has one row per decision, stable columns, and cells that a spreadsheet
could read as a formula (=, +, -, @, tab, CR) are prefixed with a single quote.

A decision whose record was late (its review was answered "denied" before the record was
durable, and a "superseded" record says so: verify pairs them) is shown everywhere with the
response actually given: outcome deny, allowed false, reason audit-record-late, and the
record that says so (`superseded_by`); the recorded outcome is kept beside it.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from signer import UsageError
from webhook.audit.canonical import canonical_json
from webhook.audit.chain import record_of, scan_lines
from webhook.audit.schedule import parse_time
from webhook.audit.verify import expand


CSV_COLUMNS = (
    "time", "writer", "seq", "decision_id", "review_uid", "dry_run", "operation", "kind", "namespace", "name", "username",
    "outcome", "allowed", "mode", "reason", "codes", "artifacts", "digests", "signers", "scan_ids", "approval_ids",
    "message", "policy_name", "policy_hash", "latency_ms", "record_hash", "superseded_by", "recorded_outcome",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_moment(text: str, *, what: str) -> datetime:
    """`2026-10-01` (midnight UTC) or an RFC 3339 time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a date (2026-10-01) or an RFC 3339 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_period(since: datetime | None, until: datetime | None) -> None:
    """An empty or reversed period is a mistake, not a report of nothing."""
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--since {since.isoformat()} is not before --until {until.isoformat()}: the period would be empty",
                         hint="--since is the start (inclusive) and --until the end (exclusive); swap them if they are reversed")


@dataclass(frozen=True)
class Selection:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    namespaces: tuple[str, ...] = ()  # globs; empty: all
    outcomes: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()  # globs over references and digests

    def describe(self) -> dict[str, Any]:
        return {"since": self.since.isoformat() if self.since else None, "until": self.until.isoformat() if self.until else None,
                "namespaces": list(self.namespaces), "decisions": list(self.outcomes), "artifacts": list(self.artifacts)}

    def in_period(self, record: dict[str, Any]) -> bool:
        moment = record_time(record)
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)

    def matches(self, record: dict[str, Any]) -> bool:
        if not self.in_period(record):
            return False
        if record.get("type") != "decision":
            return not (self.namespaces or self.outcomes or self.artifacts)  # events only when unfiltered
        review = record.get("review") or {}
        if self.namespaces and not any(fnmatch.fnmatchcase(str(review.get("namespace", "")), g) for g in self.namespaces):
            return False
        if self.outcomes and decision_of(record).get("outcome") not in self.outcomes:
            return False
        if self.artifacts:
            values = [str(v) for a in record.get("artifacts") or [] for v in (a.get("reference"), a.get("digest")) if v]
            if not any(fnmatch.fnmatchcase(v, g) for v in values for g in self.artifacts):
                return False
        return True


# Records read whatever the period: which writers ran when, and the policy they enforced.
CONTEXT_TYPES = ("startup", "shutdown", "policy-load", "keys-change", "tail-seal")


@dataclass
class Trail:
    records: list[dict[str, Any]] = field(default_factory=list)  # record + "_writer", "_seq", "_hash"
    context: list[dict[str, Any]] = field(default_factory=list)  # CONTEXT_TYPES records of any time, same extra fields
    writer_spans: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # writer -> first and last record time

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") == "decision"]

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") in types]


def record_time(record: dict[str, Any]) -> datetime | None:
    return parse_time(record.get("time", ""))


def decision_of(record: dict[str, Any]) -> dict[str, Any]:
    """The decision as answered: a superseded record's response where there is one."""
    decision = record.get("decision") or {}
    given = record.get("_given")
    if given is None:
        return decision
    return {**decision, "outcome": "deny", "allowed": False, "reason": given.get("reason"), "codes": [given.get("reason")],
            "message": f"answered: denied ({given.get('reason')}: the record was not durable in time; {given['supersededBy']} says so). "
                       f"Recorded: {decision.get('outcome')}. {decision.get('message') or ''}".strip()}


# Records of one file are appended in time order, give or take a late record (its review's
# deadline) and clock steps: a file whose first and last records lie this far outside a
# period holds none of it.
FILE_SPAN_SLACK = timedelta(minutes=10)
_EDGE_BYTES = 1024 * 1024  # a record is far smaller: the last line is within this of the end


def _edge_time(line: bytes) -> datetime | None:
    try:
        record = json.loads(record_of(line))
    except ValueError:
        return None
    return record_time(record) if isinstance(record, dict) else None


def file_span(path: Path) -> tuple[datetime, datetime] | None:
    """The times of a chain file's first and last records, reading only its two ends (None:
    unknown, so the file is read whole)."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(_EDGE_BYTES)
            size = handle.seek(0, 2)
            handle.seek(max(0, size - _EDGE_BYTES))
            tail = handle.read()
    except OSError:
        return None
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    start, end = _edge_time(first.rstrip(b"\n")), _edge_time(lines[-1])
    if start is None or end is None:
        return None
    return min(start, end), max(start, end)


def touches(path: Path, selection: Selection) -> bool:
    """Whether `path` may hold records of the selection's period."""
    if selection.since is None and selection.until is None:
        return True
    span = file_span(path)
    if span is None:
        return True
    first, last = span[0] - FILE_SPAN_SLACK, span[1] + FILE_SPAN_SLACK
    return (selection.until is None or first < selection.until) and (selection.since is None or last >= selection.since)


def load_trail(paths: Iterable[Path], selection: Selection, superseded: Iterable[dict[str, Any]] = (), *, period_files_only: bool = False) -> Trail:
    """The intact records in `paths` that `selection` matches; `superseded`: verify's pairs
    (late record -> the superseded record naming it), applied before selecting.
    `period_files_only`: read only the files the period touches (`touches`): then `context`
    and `writer_spans` hold only what those files say (enough for CSV and JSONL exports)."""
    given = {(pair["writer"], pair["seq"]): {**(pair.get("response") or {}), "supersededBy": pair["supersededBy"]} for pair in superseded}
    trail = Trail()
    for path in expand(paths):
        if period_files_only and not touches(path, selection):
            continue
        data = path.read_bytes()
        for entry in scan_lines(data):
            if len(entry) == 4 or not entry[7]:  # not a chain line, or damaged: left to the integrity section
                continue
            try:
                record = json.loads(record_of(data[entry[1]:entry[2]]))
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if (entry[4], entry[3]) in given and record.get("type") == "decision":
                record["_given"] = given[(entry[4], entry[3])]
            record.update(_writer=entry[4], _seq=entry[3], _hash="sha256:" + entry[5].decode())
            moment = record_time(record)
            if moment is not None:
                first, last = trail.writer_spans.get(entry[4], (moment, moment))
                trail.writer_spans[entry[4]] = (min(first, moment), max(last, moment))
            if record.get("type") in CONTEXT_TYPES:
                trail.context.append(record)
            if selection.matches(record):
                trail.records.append(record)
    for records in (trail.records, trail.context):
        records.sort(key=lambda r: (str(r.get("time", "")), r["_writer"], r["_seq"]))
    return trail


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(record: dict[str, Any]) -> list[str]:
    review, user = record.get("review") or {}, record.get("user") or {}
    decision, policy = decision_of(record), record.get("policy") or {}
    artifacts = record.get("artifacts") or []
    kind = review.get("kind") or {}
    latency = record.get("latencyUs")
    values = {
        "time": record.get("time"), "writer": record["_writer"], "seq": str(record["_seq"]), "decision_id": decision.get("id"),
        "review_uid": review.get("uid"), "dry_run": str(bool(review.get("dryRun"))).lower(), "operation": review.get("operation"),
        "kind": kind.get("kind") if isinstance(kind, dict) else kind, "namespace": review.get("namespace"), "name": review.get("name"),
        "username": user.get("username"), "outcome": decision.get("outcome"), "allowed": str(bool(decision.get("allowed"))).lower(),
        "mode": decision.get("mode"), "reason": decision.get("reason"), "codes": ";".join(decision.get("codes") or []),
        "artifacts": ";".join(str(a.get("reference")) for a in artifacts), "digests": ";".join(str(a.get("digest") or "") for a in artifacts),
        "signers": ";".join(",".join(str(s) for s in a.get("signers") or []) for a in artifacts),
        "scan_ids": ";".join(str(s.get("id")) for a in artifacts for s in a.get("scans") or []),
        "approval_ids": ";".join(str(s.get("id")) for a in artifacts for s in a.get("approvals") or []),
        "message": decision.get("message"), "policy_name": policy.get("name"), "policy_hash": policy.get("hash"),
        "latency_ms": f"{latency / 1000:.3f}" if isinstance(latency, int) else "", "record_hash": record["_hash"],
        "superseded_by": (record.get("_given") or {}).get("supersededBy"),
        "recorded_outcome": (record.get("decision") or {}).get("outcome") if record.get("_given") else None,
    }
    return [_cell(values[c]) for c in CSV_COLUMNS]


def write_csv(trail: Trail, out: Path) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in trail.decisions:
        writer.writerow(csv_row(record))
    out.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def write_jsonl(trail: Trail, out: Path) -> None:
    """One canonical JSON line per decision: the record as written (so its hash can be checked
    against the chain), with the chain's writer, seq and hash, and `responseGiven` where the
    review was answered otherwise (a superseded late record)."""
    with out.open("wb") as handle:
        for record in trail.decisions:
            chained = {k: v for k, v in record.items() if not k.startswith("_")}
            chained.update(writer=record["_writer"], seq=record["_seq"], hash=record["_hash"])
            if record.get("_given"):
                chained["responseGiven"] = record["_given"]
            handle.write(canonical_json(chained) + b"\n")
