"""Findings as wg-policy reports (wgpolicyk8s.io/v1alpha2), the objects Kyverno, Kubewarden
and Policy Reporter read: one PolicyReport per namespace, one ClusterPolicyReport for
cluster-scoped objects and lists that span namespaces.

Each result: policy (the AdmissionPolicy's name), rule, result (pass/fail/warn/error/skip),
message, resources (ObjectReferences), timestamp {seconds, nanos}, source "modelsign",
scored, severity on failures, and string properties (code, field, artifact, digest and where
the digest came from, the decision id). `summary` counts the results.
"""

from __future__ import annotations

from typing import Any

from webhook.compliance.findings import RESULTS, Finding
from webhook.compliance.scan import ComplianceReport

API_VERSION = "wgpolicyk8s.io/v1alpha2"
SOURCE = "modelsign"
CATEGORY = "Supply chain: model and image provenance"
REPORT_NAME = "modelsign-compliance"
MAX_MESSAGE_CHARACTERS = 1024  # a report is one object in etcd (1.5 MiB limit): messages are kept short
SEVERITY = {"fail": "high", "error": "medium", "warn": "medium"}
REPORT_LABELS = {"app.kubernetes.io/managed-by": "modelsign"}


def _message(finding: Finding) -> str:
    text = finding.message + ("" if not finding.notes else " [" + "; ".join(finding.notes) + "]")
    return text if len(text) <= MAX_MESSAGE_CHARACTERS else text[:MAX_MESSAGE_CHARACTERS - 3] + "..."


def result_entry(finding: Finding, report: ComplianceReport) -> dict[str, Any]:
    properties = {"code": finding.code, "decisionId": finding.decision_id, "policyHash": report.policy_hash, "scanId": report.scan_id}
    for key, value in (("field", finding.source), ("artifact", finding.artifact), ("digest", finding.digest), ("digestSource", finding.digest_source)):
        if value:
            properties[key] = value
    entry: dict[str, Any] = {
        "source": SOURCE,
        "policy": report.policy_name,
        "rule": finding.rule,
        "category": CATEGORY,
        "result": finding.result,
        "scored": True,
        "message": _message(finding),
        "resources": [finding.resource.reference()],
        "timestamp": {"seconds": int(report.started.timestamp()), "nanos": 0},
        "properties": properties,
    }
    if finding.result in SEVERITY:
        entry["severity"] = SEVERITY[finding.result]
    return entry


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {result: 0 for result in RESULTS}
    for finding in findings:
        counts[finding.result] += 1
    return counts


def _report(kind: str, namespace: str | None, findings: list[Finding], report: ComplianceReport) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": REPORT_NAME, "labels": dict(REPORT_LABELS),
                                "annotations": {"modelsign.dev/scan-id": report.scan_id, "modelsign.dev/policy": f"{report.policy_name}@{report.policy_hash}"}}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "summary": summary(findings),
            "results": [result_entry(f, report) for f in findings]}


def policy_reports(report: ComplianceReport, *, namespaces: list[str] | None = None) -> list[dict[str, Any]]:
    """A PolicyReport for each namespace with findings (and each of `namespaces`, so a namespace
    that became clean gets an empty report), then the ClusterPolicyReport when there are
    cluster-scoped findings (always with every namespace in scope)."""
    by_namespace: dict[str, list[Finding]] = {namespace: [] for namespace in namespaces or []}
    cluster: list[Finding] = []
    for finding in report.findings:
        if finding.resource.namespace:
            by_namespace.setdefault(finding.resource.namespace, []).append(finding)
        else:
            cluster.append(finding)
    reports = [_report("PolicyReport", namespace, findings, report) for namespace, findings in sorted(by_namespace.items())]
    if cluster or namespaces is None:
        reports.append(_report("ClusterPolicyReport", None, cluster, report))
    return reports
