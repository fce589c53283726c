"""Reading the trail back for auditors: records in a period, filtered; JSONL and CSV exports.

Only records whose line hashes intact are exported (damage is the integrity section's job,
not the tables'). CSV has one row per decision, stable columns, and cells that a spreadsheet
could read as a formula (=, +, -, @, tab, CR) are prefixed with a single quote.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from signer.errors import UsageError
from webhook.audit.canonical import canonical_json
from webhook.audit.chain import record_of, scan_lines
from webhook.audit.verify import expand

OUTCOMES = ("allow", "deny", "warn", "error")
CSV_COLUMNS = (
    "time", "writer", "seq", "decision_id", "review_uid", "dry_run", "operation", "kind", "namespace", "name", "username",
    "outcome", "allowed", "mode", "reason", "codes", "artifacts", "digests", "signers", "scan_ids", "approval_ids",
    "message", "policy_name", "policy_hash", "latency_ms", "record_hash",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_moment(text: str, *, what: str) -> datetime:
    """`2026-10-01` (midnight UTC) or an RFC 3339 time."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a date (2026-10-01) or an RFC 3339 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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
        if self.outcomes and (record.get("decision") or {}).get("outcome") not in self.outcomes:
            return False
        if self.artifacts:
            values = [str(v) for a in record.get("artifacts") or [] for v in (a.get("reference"), a.get("digest")) if v]
            if not any(fnmatch.fnmatchcase(v, g) for v in values for g in self.artifacts):
                return False
        return True


@dataclass
class Trail:
    records: list[dict[str, Any]] = field(default_factory=list)  # record + "_writer", "_seq", "_hash"

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") == "decision"]

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") in types]


def record_time(record: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        return None


def load_trail(paths: Iterable[Path], selection: Selection) -> Trail:
    trail = Trail()
    for path in expand(paths):
        data = path.read_bytes()
        for entry in scan_lines(data):
            if len(entry) == 4 or not entry[7]:  # not a chain line, or damaged: left to the integrity section
                continue
            try:
                record = json.loads(record_of(data[entry[1]:entry[2]]))
            except ValueError:
                continue
            if isinstance(record, dict) and selection.matches(record):
                record.update(_writer=entry[4], _seq=entry[3], _hash="sha256:" + entry[5].decode())
                trail.records.append(record)
    trail.records.sort(key=lambda r: (str(r.get("time", "")), r["_writer"], r["_seq"]))
    return trail


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(record: dict[str, Any]) -> list[str]:
    review, user = record.get("review") or {}, record.get("user") or {}
    decision, policy = record.get("decision") or {}, record.get("policy") or {}
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
    """One canonical JSON line per decision: the record, with the chain's writer, seq and hash."""
    with out.open("wb") as handle:
        for record in trail.decisions:
            chained = {k: v for k, v in record.items() if not k.startswith("_")}
            chained.update(writer=record["_writer"], seq=record["_seq"], hash=record["_hash"])
            handle.write(canonical_json(chained) + b"\n")
