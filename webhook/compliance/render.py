"""`report cluster` output: a table for people, JSON for programs (PolicyReports: policyreport.py)."""

from __future__ import annotations

from typing import Any

from signer import printable_lines
from webhook.compliance.findings import Finding
from webhook.compliance.scan import ComplianceReport

RESULT_LABELS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR", "skip": "SKIP"}


def _row(finding: Finding) -> tuple[str, ...]:
    resource = finding.resource
    where = f"{resource.namespace}/{resource.name}" if resource.namespace else resource.name
    return (RESULT_LABELS[finding.result], resource.kind, where, finding.rule, finding.source or "-", finding.digest[:19] or "-")


def render_table(report: ComplianceReport) -> str:
    rows = [("RESULT", "KIND", "NAMESPACE/NAME", "RULE", "FIELD", "DIGEST")] + [_row(f) for f in report.findings]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    details = [f for f in report.findings if f.result in ("fail", "warn", "error")]
    if details:
        lines.append("")
    for finding in details:
        lines.append(f"- {finding.resource.label}: {finding.message}")
        lines += [f"    note: {note}" for note in finding.notes]
    counts = report.counts()
    lines += ["", f"{report.objects} object(s) in {report.scope} checked against policy {report.policy_name}@{report.policy_hash[:19]} "
                  f"at {report.started:%Y-%m-%dT%H:%M:%SZ}: " + ", ".join(f"{counts[r]} {r}" for r in counts)]
    if report.left_out:
        lines.append(f"{report.left_out} finished Pod(s)/Job(s) and controller-owned ReplicaSet(s)/Job(s) left out (they run nothing themselves)")
    lines += [f"note: {note}" for note in report.unserved]
    return printable_lines("\n".join(lines))  # messages quote registry and cluster text


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "resource": finding.resource.reference(), "result": finding.result, "rule": finding.rule, "code": finding.code,
        "message": finding.message, "field": finding.source, "artifact": finding.artifact, "digest": finding.digest,
        "digestSource": finding.digest_source, "decisionId": finding.decision_id, "notes": list(finding.notes),
    }


def report_data(report: ComplianceReport) -> dict[str, Any]:
    """The report for programs (`-o json|yaml`)."""
    return {
        "scanId": report.scan_id, "time": report.started.strftime("%Y-%m-%dT%H:%M:%SZ"), "scope": report.scope,
        "policy": {"name": report.policy_name, "hash": report.policy_hash}, "objects": report.objects, "leftOut": report.left_out,
        "summary": report.counts(), "compliant": report.compliant, "notes": report.unserved,
        "findings": [finding_json(f) for f in report.findings],
    }
