"""Prometheus metrics in the text exposition format (no client library needed).

Per worker process: with several uvicorn workers each scrape reaches one of them; the
`worker` label (the pid) keeps their series apart so Prometheus can sum them.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict

LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs: dict[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(pairs.items())) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str], int] = defaultdict(int)
        self._violations: dict[str, int] = defaultdict(int)
        self._pinnings: dict[str, int] = defaultdict(int)
        self._pinned = 0
        self._bad_requests = 0
        self._audit_failures = 0
        self._registry_errors = 0
        self._buckets = [0] * len(LATENCY_BUCKETS_SECONDS)
        self._latency_count = 0
        self._latency_sum = 0.0
        self._worker = str(os.getpid())
        # compliance scans (webhook/compliance/background.py): findings ever recorded, and the last scan's state
        self._compliance_findings: dict[tuple[str, str], int] = defaultdict(int)
        self._compliance_scans: dict[str, int] = defaultdict(int)
        self._compliance_current: dict[str, int] = {}
        self._compliance_last_scan = 0.0

    def record_decision(self, outcome: str, reason: str, latency_seconds: float, violation_codes: list[str], registry_errors: int) -> None:
        with self._lock:
            self._decisions[(outcome, reason)] += 1
            for code in violation_codes:
                self._violations[code] += 1
            self._registry_errors += registry_errors
            self._latency_count += 1
            self._latency_sum += latency_seconds
            for index, bound in enumerate(LATENCY_BUCKETS_SECONDS):
                if latency_seconds <= bound:
                    self._buckets[index] += 1

    def record_pinning(self, reason: str, pinned: int) -> None:
        with self._lock:
            self._pinnings[reason] += 1
            self._pinned += pinned

    def record_compliance_scan(self, outcome: str, findings: list[tuple[str, str]], finished_at: float) -> None:
        """One compliance scan: `outcome` completed or failed, its findings as (result, code)."""
        with self._lock:
            self._compliance_scans[outcome] += 1
            current = {result: 0 for result in ("pass", "fail", "warn", "error", "skip")}
            for result, code in findings:
                self._compliance_findings[(result, code)] += 1
                current[result] = current.get(result, 0) + 1
            self._compliance_current = current
            self._compliance_last_scan = finished_at

    def record_bad_request(self) -> None:
        with self._lock:
            self._bad_requests += 1

    def record_audit_failure(self) -> None:
        with self._lock:
            self._audit_failures += 1

    def render(self, cache_stats: object, cache_size: int, shared_stats: object = None) -> str:
        worker = {"worker": self._worker}
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, label_names: tuple[str, ...], values: dict) -> None:
            """One metric family: HELP, TYPE, then a sample per label tuple (sorted)."""
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
            for key, count in sorted(values.items()):
                key = key if isinstance(key, tuple) else (key,)
                lines.append(f"{name}{_labels({**worker, **dict(zip(label_names, key))})} {count}")

        with self._lock:
            family("modelsign_admission_decisions_total", "counter", "Admission decisions by outcome and reason.",
                   ("outcome", "reason"), self._decisions)
            family("modelsign_policy_violations_total", "counter", "Policy violations by code.", ("code",), self._violations)
            family("modelsign_compliance_findings_total", "counter",
                   "Findings of compliance scans of what runs, by result and code (each is an audit record).",
                   ("result", "code"), self._compliance_findings)
            family("modelsign_compliance_scans_total", "counter", "Compliance scans by outcome.", ("outcome",), self._compliance_scans)
            family("modelsign_compliance_current_findings", "gauge", "Findings of the last compliance scan, by result (alert on fail > 0).",
                   ("result",), self._compliance_current)
            lines += ["# HELP modelsign_compliance_last_scan_timestamp_seconds When the last compliance scan finished (0: none yet).",
                      "# TYPE modelsign_compliance_last_scan_timestamp_seconds gauge",
                      f"modelsign_compliance_last_scan_timestamp_seconds{_labels(worker)} {self._compliance_last_scan:.3f}"]
            family("modelsign_pinning_requests_total", "counter", "Mutating reviews (digest pinning) by result.", ("result",), self._pinnings)
            lines += [
                "# HELP modelsign_pinned_references_total References rewritten to their verified digest.",
                "# TYPE modelsign_pinned_references_total counter",
                f"modelsign_pinned_references_total{_labels(worker)} {self._pinned}",
                "# HELP modelsign_bad_requests_total Requests answered 400 (not a usable AdmissionReview).",
                "# TYPE modelsign_bad_requests_total counter",
                f"modelsign_bad_requests_total{_labels(worker)} {self._bad_requests}",
                "# HELP modelsign_audit_write_failures_total Audit records that could not be made durable (their reviews were denied).",
                "# TYPE modelsign_audit_write_failures_total counter",
                f"modelsign_audit_write_failures_total{_labels(worker)} {self._audit_failures}",
                "# HELP modelsign_registry_errors_total Artifacts that could not be verified because of registry errors or the deadline.",
                "# TYPE modelsign_registry_errors_total counter",
                f"modelsign_registry_errors_total{_labels(worker)} {self._registry_errors}",
                "# HELP modelsign_admission_duration_seconds Time to decide one admission request.",
                "# TYPE modelsign_admission_duration_seconds histogram",
            ]
            for bound, count in zip(LATENCY_BUCKETS_SECONDS, self._buckets):  # each bucket counts every value <= bound
                lines.append(f"modelsign_admission_duration_seconds_bucket{_labels({**worker, 'le': repr(bound)})} {count}")
            lines.append(f"modelsign_admission_duration_seconds_bucket{_labels({**worker, 'le': '+Inf'})} {self._latency_count}")
            lines.append(f"modelsign_admission_duration_seconds_sum{_labels(worker)} {self._latency_sum:.6f}")
            lines.append(f"modelsign_admission_duration_seconds_count{_labels(worker)} {self._latency_count}")
        hits, misses, shared = (getattr(cache_stats, name, 0) for name in ("hits", "misses", "shared"))
        lines += [
            "# HELP modelsign_verification_cache_lookups_total Verification cache lookups: hit, miss, or shared (single-flight).",
            "# TYPE modelsign_verification_cache_lookups_total counter",
            f"modelsign_verification_cache_lookups_total{_labels({**worker, 'result': 'hit'})} {hits}",
            f"modelsign_verification_cache_lookups_total{_labels({**worker, 'result': 'miss'})} {misses}",
            f"modelsign_verification_cache_lookups_total{_labels({**worker, 'result': 'shared'})} {shared}",
            "# HELP modelsign_verification_cache_entries Entries in the verification cache.",
            "# TYPE modelsign_verification_cache_entries gauge",
            f"modelsign_verification_cache_entries{_labels(worker)} {cache_size}",
        ]
        if shared_stats is not None:  # webhook serve --shared-cache
            lines += ["# HELP modelsign_shared_cache_lookups_total Shared (Redis) verification cache lookups: hit, miss, wait (for another "
                      "replica's verification), error (Redis down or slow: verified alone), rejected (failed authentication or decoding).",
                      "# TYPE modelsign_shared_cache_lookups_total counter"]
            lines += [f"modelsign_shared_cache_lookups_total{_labels({**worker, 'result': result})} {getattr(shared_stats, name, 0)}"
                      for result, name in (("hit", "hits"), ("miss", "misses"), ("wait", "waits"), ("error", "errors"), ("rejected", "rejected"))]
        return "\n".join(lines) + "\n"
