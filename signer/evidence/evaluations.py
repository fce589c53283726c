"""Evaluations: signed statements of how a model performed, and how fairly, on a dataset.

Predicate `https://modelsign.dev/attestation/evaluation/v1`:
  {"evaluator": "eval-ci", "evaluatedAt": RFC 3339,
   "dataset": {"name": "holdout-2026-10", "digest": "sha256:..." | null, "uri": ""},
   "metrics": {"accuracy": 0.93, "latency_p95_ms": 120, "memory_mb": 2048},       # performance
   "fairness": {"demographic_parity": 0.86, "equalized_odds": 0.91, "fairness_score": 0.88},
   "notes": ""}
Metric names are `[A-Za-z0-9_.-]{1,64}`, values finite numbers, and a name appears in one
group only, so the policy reads one flat namespace (`require.evaluation.metrics`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from signer.errors import UsageError
from signer.evidence.approvals import format_time, parse_time
from signer.jsonread import mapping, text
from signer.signatures.verification import VerifiedAttestation

MAX_METRICS = 64  # per group
METRIC_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # with fullmatch: `$` would let "name\n" through
GROUPS = ("metrics", "fairness")
_DESCRIPTIVE = {"dataset", "evaluator", "notes"}  # keys of a metrics file that are not metrics
_GROUP_SYNONYMS = {"metrics": "metrics", "performance": "metrics", "fairness": "fairness", "bias": "fairness"}


def _number(value: Any) -> float | int | None:
    """A finite number within 64 bits (what the policy engines hold), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) >= 2**63:
        return None
    return value


def _group(values: Any, *, what: str) -> dict[str, float | int]:
    if not isinstance(values, dict):
        raise UsageError(f"{what} must be an object of metric names to numbers", hint='e.g. {"accuracy": 0.93, "latency_p95_ms": 120}')
    if len(values) > MAX_METRICS:
        raise UsageError(f"{what} has {len(values)} metrics; at most {MAX_METRICS} per group")
    group: dict[str, float | int] = {}
    for name, value in values.items():
        if not METRIC_NAME.fullmatch(str(name)):
            raise UsageError(f"{what}: metric name {name!r} is not 1-64 letters, digits, '_', '.' or '-'")
        number = _number(value)
        if number is None:
            raise UsageError(f"{what}: metric {name} is {value!r}, not a finite number")
        group[str(name)] = number
    return group


def metric_groups(document: Any, *, what: str) -> dict[str, dict[str, float | int]]:
    """`{"metrics": {...}, "fairness": {...}}` from a metrics file: either that shape (also
    `performance`/`bias` as group names), or a flat object of numbers (all performance)."""
    if not isinstance(document, dict) or not document:
        raise UsageError(f"{what} must be a JSON object of metrics", hint='e.g. {"performance": {"accuracy": 0.93}, "fairness": {"demographic_parity": 0.86}}')
    grouped = {key for key in document if key in _GROUP_SYNONYMS}
    if not grouped:
        return {"metrics": _group({k: v for k, v in document.items() if k not in _DESCRIPTIVE}, what=what), "fairness": {}}
    extra = sorted(set(document) - grouped - _DESCRIPTIVE)
    if extra:
        raise UsageError(f"{what}: unknown key(s) {', '.join(extra)}", hint="use performance (or metrics), fairness, dataset, evaluator and notes")
    groups: dict[str, dict[str, float | int]] = {"metrics": {}, "fairness": {}}
    for key in grouped:
        groups[_GROUP_SYNONYMS[key]].update(_group(document[key], what=f"{what} {key}"))
    both = sorted(set(groups["metrics"]) & set(groups["fairness"]))
    if both:
        raise UsageError(f"{what}: {', '.join(both)} appear(s) both as performance and fairness metrics; name each once")
    return groups


def evaluation_predicate(*, metrics: dict[str, float | int], fairness: dict[str, float | int], evaluator: str, dataset_name: str,
                         dataset_digest: str | None = None, dataset_uri: str = "", notes: str = "", now: datetime | None = None) -> dict[str, Any]:
    if not metrics and not fairness:
        raise UsageError("an evaluation needs at least one metric", hint="give performance or fairness metrics in the metrics file")
    if not dataset_name:
        raise UsageError("an evaluation names the dataset it was measured on", hint="pass --dataset NAME (or \"dataset\" in the metrics file)")
    if dataset_digest is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", dataset_digest):
        raise UsageError(f"dataset digest {dataset_digest!r} is not sha256:<64 hex>")
    return {
        "evaluator": evaluator,
        "evaluatedAt": format_time(now or datetime.now(timezone.utc)),
        "dataset": {"name": dataset_name, "digest": dataset_digest, "uri": dataset_uri},
        "metrics": dict(metrics),
        "fairness": dict(fairness),
        "notes": notes,
    }


@dataclass(frozen=True)
class EvaluationFacts:
    signer: str
    key_id: str | None
    evaluator: str
    evaluated_at: datetime
    dataset: str
    dataset_digest: str | None
    values: dict[str, float | int]  # performance and fairness metrics, one namespace
    location: str
    statement_digest: str  # the evidence id audit records and approval requests cite

    def to_input(self, now: datetime, wanted: frozenset[str] | None = None) -> dict[str, Any]:
        """What the policy sees: the metrics `wanted` (all when None), so the engine's input is
        bounded by what the policy names, not by what a statement carries."""
        shown = self.values if wanted is None else {name: self.values[name] for name in sorted(wanted) if name in self.values}
        return {
            "id": self.statement_digest, "signer": self.signer, "keyId": self.key_id, "evaluator": self.evaluator,
            "evaluatedAt": format_time(self.evaluated_at), "ageSeconds": int((now - self.evaluated_at).total_seconds()),
            "dataset": self.dataset, "datasetDigest": self.dataset_digest, "metrics": shown, "metricCount": len(self.values),
        }


def evaluation_facts(attestation: VerifiedAttestation) -> EvaluationFacts | None:
    """Typed facts of a verified evaluation attestation; None if its predicate is malformed."""
    p = attestation.predicate
    if not isinstance(p, dict):
        return None
    evaluated_at = parse_time(p.get("evaluatedAt"))
    dataset = mapping(p.get("dataset"))
    values: dict[str, float | int] = {}
    for group in GROUPS:
        items = p.get(group, {})
        if not isinstance(items, dict) or len(items) > MAX_METRICS:
            return None
        for name, value in items.items():
            number = _number(value)
            if number is None or not METRIC_NAME.fullmatch(name) or name in values:
                return None
            values[name] = number
    if evaluated_at is None or not values or not text(dataset.get("name")):
        return None
    digest = dataset.get("digest")
    return EvaluationFacts(
        signer=attestation.signer, key_id=attestation.key_id, evaluator=text(p.get("evaluator")), evaluated_at=evaluated_at,
        dataset=text(dataset.get("name")), dataset_digest=digest if isinstance(digest, str) else None, values=values,
        location=attestation.location, statement_digest=attestation.statement_digest,
    )
