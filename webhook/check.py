"""`modelsign check -f FILE|DIR [-R]`: the webhook's decision for manifests, before `kubectl apply`.

Reads multi-document YAML or JSON (or `-` for stdin; `kind: List` is expanded; a directory's
.yaml/.yml/.json files as kubectl does, its subdirectories too with -R), builds the
AdmissionRequest the API server would send for a CREATE, and runs the identical pipeline.
`--review FILE` replays a captured AdmissionReview as the API server sent it (as
`kwctl run --request-path`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signer import UsageError, mapping, printable_lines, text
from webhook.admission.pipeline import AdmissionPipeline, Decision
from webhook.admission.policy_yaml import yaml_problem
from webhook.admission.review import AdmissionRequest, ReviewError, UserInfo, parse_review

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")  # what kubectl reads from a directory


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
        raise UsageError(yaml_problem(exc, label), hint="fix the manifest (template placeholders like {username} must be quoted or filled in)") from None
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


def manifest_files(paths: list[str], *, recursive: bool = False) -> list[str]:
    """The files `-f` names: a file (or `-`) as given; a directory's .yaml, .yml and .json files
    in name order, and with `recursive` those of its subdirectories (kubectl's `-f DIR -R`)."""
    files: list[str] = []
    for path in paths:
        folder = Path(path)
        if path == "-" or not folder.is_dir():
            files.append(path)
            continue
        found = folder.rglob("*") if recursive else folder.iterdir()
        listed = sorted(str(f) for f in found if f.suffix in MANIFEST_SUFFIXES and f.is_file())
        if not listed:
            raise UsageError(f"{path} holds no .yaml, .yml or .json file" + ("" if recursive else " (subdirectories are read with -R)"),
                             hint="pass a manifest file or a directory of manifests")
        files += listed
    return files


def check_files(pipeline: AdmissionPipeline, paths: list[str], *, default_namespace: str = "default", recursive: bool = False) -> list[CheckedObject]:
    results: list[CheckedObject] = []
    for path in manifest_files(paths, recursive=recursive):
        for label, document in read_documents(path):
            if not isinstance(document, dict) or not isinstance(document.get("kind"), str):
                raise UsageError(f"{label} is not a Kubernetes object (no kind)")
            request = admission_request(document, uid=f"check-{len(results)}", default_namespace=default_namespace)
            results.append(CheckedObject(source=label, kind=request.kind, namespace=request.namespace, name=request.name, decision=pipeline.decide(request)))
    return results


def check_review(pipeline: AdmissionPipeline, path: Path) -> CheckedObject:
    """The decision for a captured AdmissionReview, as the webhook would answer it."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read AdmissionReview {path}: {exc.strerror}") from None
    try:
        request = parse_review(body)
    except ReviewError as exc:
        raise UsageError(f"{path} is not an AdmissionReview the webhook can answer: {exc}",
                         hint="capture the request body the API server sent (kind AdmissionReview, apiVersion admission.k8s.io/v1, with request.uid)") from None
    return CheckedObject(source=str(path), kind=request.kind, namespace=request.namespace, name=request.name, decision=pipeline.decide(request))


def shown_outcome(decision: Decision) -> str:
    """ALLOW, EXEMPT (allowed without looking: an exempt namespace), WARN or DENY."""
    if decision.reason == "exempt-namespace":
        return "EXEMPT"
    return {"allow": "ALLOW", "deny": "DENY", "warn": "WARN", "error": "DENY"}[decision.outcome]


def render_table(results: list[CheckedObject]) -> str:
    rows = [("DECISION", "KIND", "NAMESPACE/NAME", "SOURCE")]
    for result in results:
        outcome = shown_outcome(result.decision)
        rows.append((outcome, result.kind, f"{result.namespace}/{result.name}", result.source))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    for result in results:
        decision = result.decision
        details = ([decision.message] if not decision.allowed else []) + decision.warnings
        for detail in details:
            lines.append(f"- {result.kind} {result.namespace}/{result.name}: {detail}")
    return printable_lines("\n".join(lines))  # messages quote registry and manifest text


def results_data(results: list[CheckedObject]) -> list[dict[str, Any]]:
    return [
        {
            "source": r.source, "kind": r.kind, "namespace": r.namespace, "name": r.name,
            "allowed": r.decision.allowed, "outcome": r.decision.outcome, "decision": shown_outcome(r.decision), "reason": r.decision.reason,
            "message": r.decision.message, "warnings": r.decision.warnings, "violations": r.decision.violations,
            "artifacts": r.decision.artifacts, "policy": r.decision.policy_name, "policyHash": r.decision.policy_hash,
        }
        for r in results
    ]
