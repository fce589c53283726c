"""Every finding of a scan becomes a "compliance" audit record (webhook/audit/records.py)."""

from __future__ import annotations

from typing import Any, Callable

from webhook.audit.records import compliance_fields
from webhook.compliance.findings import Finding
from webhook.compliance.scan import ComplianceReport

RECORD_TYPE = "compliance"


def finding_record(finding: Finding, report: ComplianceReport, trigger: str) -> dict[str, Any]:
    return compliance_fields(
        scan={"id": report.scan_id, "trigger": trigger, "scope": report.scope, "started": report.started.strftime("%Y-%m-%dT%H:%M:%SZ")},
        resource=finding.resource.reference(),
        finding={"result": finding.result, "rule": finding.rule, "code": finding.code, "message": finding.message, "field": finding.source,
                 "artifact": finding.artifact, "digest": finding.digest, "digestSource": finding.digest_source, "decisionId": finding.decision_id,
                 "notes": list(finding.notes)},
        artifacts=finding.evidence,
        policy={"name": report.policy_name, "hash": report.policy_hash},
    )


def record_findings(report: ComplianceReport, write: Callable[..., Any], *, trigger: str) -> int:
    """Write one record per finding through `write(record_type, **fields)`; how many were written."""
    for finding in report.findings:
        write(RECORD_TYPE, **finding_record(finding, report, trigger))
    return len(report.findings)
