"""Digest pinning (`POST /mutate`): what runs is what was verified.

A validating webhook sees `registry/model:1.0`, verifies the digest the tag names now, and the
kubelet pulls the tag later, by which time it may name something else. The mutating webhook
closes that gap as policy-controller, Kyverno, Connaisseur, Ratify and Kubewarden do: each tag
reference whose digest carries a signature by a trusted key becomes `reference@sha256:…` (a
JSONPatch with a `test` of the value verified), so the validating webhook and the kubelet see
the digest. Nothing else is touched: a reference already pinned, not verified, from a
disallowed registry or failing verification stays as written, and the validating webhook
decides about it. Pods and KServe objects are pinned by default; workload templates only on
request (`pinDigests.templates`), since GitOps tools compare templates with Git.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from webhook.admission.evidence import Evidence
from webhook.admission.extract import KSERVE_KINDS, POD_TEMPLATE_KINDS, extract
from webhook.admission.pipeline import MAX_DISTINCT_REFERENCES
from webhook.admission.review import AdmissionRequest
from webhook.admission.targets import Target, classify


@dataclass
class Pinning:
    pinning_id: str
    patch: list[dict[str, Any]] = field(default_factory=list)  # JSONPatch operations
    pinned: list[dict[str, str]] = field(default_factory=list)  # {source, from, to}
    reason: str = "pinned"  # or why nothing was looked at: "not-pinned-kind", "exempt-namespace", ...
    latency_ms: float = 0.0


def pinned_value(target: Target, digest: str) -> str:
    """The field's text with the digest added: an image keeps its tag for people to read
    (`repo:1.0@sha256:…`, the digest is what runtimes pull); a storage URI drops it
    (`kit://host/repo@sha256:…`), since not every model downloader accepts both."""
    text = str(target.found.value).strip()
    reference = target.reference
    assert reference is not None and reference.digest is None
    if target.found.role == "model" and reference.tag is not None:
        text = text[: text.rfind(":")]
    return f"{text}@{digest}"


def plan(targets: list[Target], evidence: dict[str, Evidence]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(JSONPatch, pinned) for the targets whose verified evidence names a digest."""
    patch: list[dict[str, Any]] = []
    pinned: list[dict[str, str]] = []
    for target in targets:
        if target.kind != "oci" or target.reference is None or target.reference.digest is not None:
            continue
        found = evidence.get(target.key)
        if found is None or not found.registry_allowed or found.error is not None or not found.digest or not found.signatures:
            continue
        value = pinned_value(target, found.digest)
        pointer = target.found.pointer
        patch += [{"op": "test", "path": pointer, "value": target.found.value}, {"op": "replace", "path": pointer, "value": value}]
        pinned.append({"source": target.found.source, "from": str(target.found.value), "to": value})
    return patch, pinned


def pinned_kinds(settings: Any) -> set[str]:
    kinds: set[str] = set()
    if settings.pods:
        kinds.add("Pod")
    if settings.kserve:
        kinds |= KSERVE_KINDS
    if settings.templates:
        kinds |= POD_TEMPLATE_KINDS | {"CronJob"}
    return kinds


class DigestPinner:
    """Runs on an `AdmissionPipeline`: its exemptions, limits, verification cache and deadline."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.kinds = pinned_kinds(pipeline.policy.spec.pin_digests)

    def pin(self, request: AdmissionRequest) -> Pinning:
        started = time.monotonic()
        result = Pinning(pinning_id=str(uuid.uuid4()))
        skip = self._skip(request)
        if skip is not None:
            result.reason = skip
        else:
            targets = [classify(found) for found in extract(request.kind, request.object)]
            wanted = [t for t in targets if t.kind == "oci" and t.reference is not None and t.reference.digest is None]
            if len({t.key for t in wanted}) > MAX_DISTINCT_REFERENCES or not wanted:
                result.reason = "too-many-references" if wanted else "nothing-to-pin"
            else:
                deadline = started + self.pipeline.policy.spec.deadline_seconds
                evidence = self.pipeline.gatherer.gather(wanted, deadline)
                result.patch, result.pinned = plan(wanted, evidence)
                result.reason = "pinned" if result.pinned else "nothing-verified"
        result.latency_ms = round((time.monotonic() - started) * 1000, 3)
        return result

    def _skip(self, request: AdmissionRequest) -> str | None:
        if request.operation not in ("CREATE", "UPDATE") or request.object is None:
            return "not-create-or-update"
        if request.kind not in self.kinds:
            return "not-pinned-kind"
        if request.sub_resource and request.sub_resource != "ephemeralcontainers":
            return "subresource"
        exempt = self.pipeline.exempt(request.namespace)
        return "exempt-namespace" if exempt else None
