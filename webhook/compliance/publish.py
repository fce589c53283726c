"""`--apply`: write the PolicyReports into the cluster, where Policy Reporter, Kyverno's and
Kubewarden's UIs already look. Each report is created or replaced whole (this scan's results,
no merging with older ones); with every namespace in scope, modelsign's reports in namespaces
that have no findings any more are deleted, so a report never outlives what it describes."""

from __future__ import annotations

from typing import Any

from signer import mapping, text
from webhook.compliance.kube import KubeError, request_json
from webhook.compliance.policyreport import API_VERSION, REPORT_LABELS, REPORT_NAME

WRITE_ATTEMPTS = 3
PLURALS = {"PolicyReport": "policyreports", "ClusterPolicyReport": "clusterpolicyreports"}
_BASE = f"/apis/{API_VERSION}"
_SELECTOR = ",".join(f"{k}={v}" for k, v in REPORT_LABELS.items())


def _path(kind: str, namespace: str | None, name: str | None = None) -> str:
    path = f"{_BASE}/namespaces/{namespace}/{PLURALS[kind]}" if namespace else f"{_BASE}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


def _put(api: Any, report: dict[str, Any]) -> str:
    """Create the report, or replace it at the version just read; if another writer (a webhook
    replica, a CLI run) replaced it in between, read again and retry."""
    kind, namespace = report["kind"], report["metadata"].get("namespace")
    where = f"{kind} {namespace + '/' if namespace else ''}{REPORT_NAME}"
    for attempt in range(WRITE_ATTEMPTS):
        try:
            existing = request_json(api, "GET", _path(kind, namespace, REPORT_NAME))
        except KubeError as exc:
            if exc.status != 404:
                raise
            try:
                request_json(api, "POST", _path(kind, namespace), body=report)
                return f"created {where}"
            except KubeError as created:
                if created.status != 409 or attempt == WRITE_ATTEMPTS - 1:
                    raise
                continue
        version = text(mapping(existing.get("metadata")).get("resourceVersion"))
        try:
            request_json(api, "PUT", _path(kind, namespace, REPORT_NAME), body={**report, "metadata": {**report["metadata"], "resourceVersion": version}})
            return f"replaced {where}"
        except KubeError as exc:
            if exc.status != 409 or attempt == WRITE_ATTEMPTS - 1:
                raise
    raise KubeError(f"{where} could not be written")  # not reached: the last attempt raises


def require_crds(api: Any) -> None:
    try:
        resources = request_json(api, "GET", _BASE).get("resources") or []
    except KubeError as exc:
        if exc.status == 404:
            raise KubeError(f"the cluster does not serve {API_VERSION} (no PolicyReport CRDs), so the reports cannot be applied",
                            hint="install the wg-policy PolicyReport CRDs (Kyverno and Kubewarden ship them), or drop --apply and use -o policyreport") from None
        raise
    served = {text(mapping(r).get("kind")) for r in resources}
    missing = sorted(set(PLURALS) - served)
    if missing:
        raise KubeError(f"{API_VERSION} does not serve {', '.join(missing)}", hint="install both wg-policy report CRDs, or drop --apply")


def apply_reports(api: Any, reports: list[dict[str, Any]], *, prune: bool) -> list[str]:
    """Create or replace each report; with `prune`, delete modelsign's reports not among them.
    Returns what was done, one line each."""
    require_crds(api)
    done = []
    for report in reports:
        done.append(_put(api, report))
    if prune:
        kept = {(r["kind"], r["metadata"].get("namespace") or "") for r in reports}
        listed = request_json(api, "GET", _path("PolicyReport", None), query=[("labelSelector", _SELECTOR)]).get("items") or []
        for item in listed:
            namespace = text(mapping(mapping(item).get("metadata")).get("namespace"))
            name = text(mapping(mapping(item).get("metadata")).get("name"))
            if name == REPORT_NAME and ("PolicyReport", namespace) not in kept:
                try:
                    request_json(api, "DELETE", _path("PolicyReport", namespace, name))
                except KubeError as exc:
                    if exc.status != 404:  # gone already (another writer pruned it): fine
                        raise
                done.append(f"deleted PolicyReport {namespace}/{name} (nothing in scope there any more)")
    return done
