"""`webhook serve --compliance-interval 10m`: the scan of `report cluster`, on a timer, inside
the webhook.

It never stands in admission's way: it runs on its own thread, with its own evidence cache and
registry threads, deciding one object at a time (so it holds at most one of the policy
engine's interpreters). One worker process per pod scans: the first to take an advisory lock
on a file in the temporary directory; if that worker ends, another takes the lock at its next
tick. It fails safe: whatever goes wrong becomes an `error` finding, an audit record and a
metric; the thread carries on and the webhook keeps answering.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from signer import ModelsignError, UsageError, parse_duration
from webhook.compliance.findings import ERROR_RULE, Finding, Resource
from webhook.compliance.records import record_findings
from webhook.compliance.scan import ComplianceReport

ENV_INTERVAL = "MODELSIGN_COMPLIANCE_INTERVAL"  # seconds
ENV_KUBECONFIG = "MODELSIGN_COMPLIANCE_KUBECONFIG"
ENV_APPLY = "MODELSIGN_COMPLIANCE_APPLY"
MIN_INTERVAL_SECONDS = 10


@dataclass(frozen=True)
class ComplianceSettings:
    interval_seconds: float
    kubeconfig: Path | None = None
    apply: bool = False

    @classmethod
    def from_environment(cls) -> ComplianceSettings | None:
        raw = os.environ.get(ENV_INTERVAL)
        if not raw:
            return None
        kubeconfig = os.environ.get(ENV_KUBECONFIG)
        return cls(interval_seconds=float(raw), kubeconfig=Path(kubeconfig) if kubeconfig else None, apply=os.environ.get(ENV_APPLY) == "1")


def export_to_environment(*, interval: str | None, kubeconfig: Path | None, apply: bool) -> None:
    """In `webhook serve`'s parent process: check the flags, hand them to the workers."""
    if interval is None:
        if kubeconfig is not None or apply:
            raise UsageError("--compliance-kubeconfig and --compliance-apply need --compliance-interval", hint="add --compliance-interval 10m")
        for name in (ENV_INTERVAL, ENV_KUBECONFIG, ENV_APPLY):
            os.environ.pop(name, None)
        return
    seconds = parse_duration(interval)
    if seconds < MIN_INTERVAL_SECONDS:
        raise UsageError(f"--compliance-interval {interval} is shorter than {MIN_INTERVAL_SECONDS}s", hint="scan every few minutes, e.g. 10m")
    if kubeconfig is not None and not kubeconfig.is_file():
        raise UsageError(f"--compliance-kubeconfig {kubeconfig} does not exist", hint="omit it inside the cluster (the service account is used)")
    os.environ[ENV_INTERVAL] = str(seconds)
    os.environ[ENV_KUBECONFIG] = str(kubeconfig.resolve()) if kubeconfig else ""
    os.environ[ENV_APPLY] = "1" if apply else ""


def failure_report(message: str, *, policy_name: str = "", policy_hash: str = "") -> ComplianceReport:
    """A scan that could not run at all, as a report with one error finding."""
    report = ComplianceReport(scan_id=f"failed-{time.time_ns()}", started=datetime.now(timezone.utc), policy_name=policy_name,
                              policy_hash=policy_hash, scope="all namespaces")
    report.findings.append(Finding(resource=Resource(api_version="", kind="ComplianceScan", namespace="", name="*"), result="error",
                                   rule=ERROR_RULE, code="scan-failed", message=message))
    return report


class ComplianceLoop:
    def __init__(self, settings: ComplianceSettings, *, pipeline: Callable[[], Any], record: Callable[..., Any], metrics: Any, log: Any,
                 lock_key: str) -> None:
        self.settings = settings
        self._pipeline = pipeline  # the webhook's current pipeline (None until a policy loads)
        self._record = record
        self._metrics = metrics
        self._log = log
        digest = hashlib.sha256(lock_key.encode()).hexdigest()[:16]
        self._lock_path = Path(tempfile.gettempdir()) / f"modelsign-compliance-{digest}.lock"
        self._lock_fd: int | None = None
        self._api: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelsign-compliance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock for the next worker
            self._lock_fd = None

    def _leader(self) -> bool:
        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ModelsignError(f"cannot open the compliance lock file {self._lock_path}: {exc.strerror}",
                                 hint="give the webhook a writable temporary directory (an emptyDir on /tmp)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # another worker scans
        self._lock_fd = fd
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._leader():
                    self.run_once()
            except Exception as exc:  # noqa: BLE001 - the loop outlives anything; the error is a finding
                try:
                    self._finish(failure_report(f"the compliance scan failed: {type(exc).__name__}: {exc}"), "failed")
                except Exception as unrecorded:  # noqa: BLE001 - not even recordable: logged, and the next tick tries again
                    self._log.error("compliance_scan_unrecorded", error=f"{type(exc).__name__}: {exc}",
                                    record_error=f"{type(unrecorded).__name__}: {unrecorded}")
            self._stop.wait(self.settings.interval_seconds)

    def run_once(self) -> ComplianceReport:
        from webhook.compliance.inventory import list_running
        from webhook.compliance.kube import api_client
        from webhook.compliance.scan import scan, scan_pipeline

        live = self._pipeline()
        if live is None:
            return self._finish(failure_report("no valid policy is loaded, so nothing could be checked (see /readyz)"), "failed")
        policy = live.policy
        try:
            if self._api is None:
                self._api = api_client(self.settings.kubeconfig)
            pipeline = scan_pipeline(policy, engine=live.engine)
            try:
                report = scan(pipeline, list_running(self._api, None), scope="all namespaces")
            finally:
                pipeline.close()
        except ModelsignError as exc:
            message = exc.message + (f"; {exc.hint}" if exc.hint else "")
            return self._finish(failure_report(f"the compliance scan failed: {message}", policy_name=policy.name, policy_hash=policy.policy_hash), "failed")
        if self.settings.apply:
            try:
                from webhook.compliance.policyreport import policy_reports
                from webhook.compliance.publish import apply_reports

                apply_reports(self._api, policy_reports(report), prune=True)
            except ModelsignError as exc:
                report.findings.append(Finding(resource=Resource(api_version="wgpolicyk8s.io/v1alpha2", kind="PolicyReport", namespace="", name="*"),
                                               result="error", rule=ERROR_RULE, code="report-apply-failed",
                                               message=f"the PolicyReports could not be written: {exc.message}" + (f"; {exc.hint}" if exc.hint else "")))
        return self._finish(report, "completed")

    def _finish(self, report: ComplianceReport, outcome: str) -> ComplianceReport:
        record_findings(report, self._record, trigger="interval")
        self._metrics.record_compliance_scan(outcome, [(f.result, f.code) for f in report.findings], time.time())
        counts = report.counts()
        self._log.info("compliance_scan", scan_id=report.scan_id, outcome=outcome, objects=report.objects, policy=report.policy_name, **counts)
        for finding in report.findings:
            if finding.result in ("fail", "error"):
                self._log.warning("compliance_finding", scan_id=report.scan_id, result=finding.result, resource=finding.resource.label,
                                  code=finding.code, message=finding.message)
        return report
