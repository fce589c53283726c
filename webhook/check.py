"""`modelsign check -f FILE`: the webhook's decision for manifests, before `kubectl apply`.

Reads multi-document YAML or JSON (or `-` for stdin; `kind: List` is expanded), builds the
AdmissionRequest the API server would send for a CREATE, and runs the identical pipeline.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signer import UsageError, mapping, text
from webhook.admission.pipeline import AdmissionPipeline, Decision
from webhook.admission.review import AdmissionRequest, UserInfo

MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CheckedObject:
    source: str  # file and document index
    kind: str
    namespace: str
    name: str
    decision: Decision


def read_documents(path: str) -> list[tuple[str, Any]]:
    """(label, document) for every non-empty YAML/JSON document; errors name the file and line."""
    label = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if len(text) > MAX_MANIFEST_BYTES:
        raise UsageError(f"{label} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{label} is not valid YAML{where}: {problem}", hint="fix the manifest (template placeholders like {username} must be quoted or filled in)") from None
    except RecursionError:
        raise UsageError(f"{label} is nested too deeply") from None
    expanded: list[tuple[str, Any]] = []
    for index, document in enumerate(documents):
        if isinstance(document, dict) and document.get("kind") == "List" and isinstance(document.get("items"), list):
            expanded += [(f"{label}#{index}.items[{i}]", item) for i, item in enumerate(document["items"])]
        else:
            expanded.append((f"{label}#{index}", document))
    return expanded


def admission_request(document: dict[str, Any], *, uid: str, default_namespace: str) -> AdmissionRequest:
    group, _, version = text(document.get("apiVersion")).rpartition("/")
    metadata = mapping(document.get("metadata"))
    namespace = text(metadata.get("namespace")) or default_namespace
    name = text(metadata.get("name")) or text(metadata.get("generateName"))
    return AdmissionRequest(
        api_version="admission.k8s.io/v1", uid=uid, group=group, version=version, kind=text(document.get("kind")),
        resource="", sub_resource="", name=name, namespace=namespace, operation="CREATE",
        user=UserInfo(username="modelsign-check"), dry_run=True, object=document,
    )


def check_files(pipeline: AdmissionPipeline, paths: list[str], *, default_namespace: str = "default") -> list[CheckedObject]:
    results: list[CheckedObject] = []
    for path in paths:
        for label, document in read_documents(path):
            if not isinstance(document, dict) or not isinstance(document.get("kind"), str):
                raise UsageError(f"{label} is not a Kubernetes object (no kind)")
            request = admission_request(document, uid=f"check-{len(results)}", default_namespace=default_namespace)
            results.append(CheckedObject(source=label, kind=request.kind, namespace=request.namespace, name=request.name, decision=pipeline.decide(request)))
    return results


def render_table(results: list[CheckedObject]) -> str:
    rows = [("DECISION", "KIND", "NAMESPACE/NAME", "SOURCE")]
    for result in results:
        outcome = {"allow": "ALLOW", "deny": "DENY", "warn": "WARN", "error": "DENY"}[result.decision.outcome]
        rows.append((outcome, result.kind, f"{result.namespace}/{result.name}", result.source))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    for result in results:
        decision = result.decision
        details = ([decision.message] if not decision.allowed else []) + decision.warnings
        for detail in details:
            lines.append(f"- {result.kind} {result.namespace}/{result.name}: {detail}")
    return "\n".join(lines)


def results_json(results: list[CheckedObject]) -> str:
    return json.dumps(
        [
            {
                "source": r.source, "kind": r.kind, "namespace": r.namespace, "name": r.name,
                "allowed": r.decision.allowed, "outcome": r.decision.outcome, "reason": r.decision.reason,
                "message": r.decision.message, "warnings": r.decision.warnings, "violations": r.decision.violations,
                "artifacts": r.decision.artifacts, "policy": r.decision.policy_name, "policyHash": r.decision.policy_hash,
            }
            for r in results
        ],
        indent=2,
    )
