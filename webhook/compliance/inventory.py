"""What runs now: every Pod, workload and KServe object in scope, listed through the API.

Left out, because they run nothing: Pods that have finished (Succeeded, Failed), Jobs that
have completed or failed, and ReplicaSets and Jobs a controller owns (their owner is listed,
and so are their Pods). A kind the API server does not serve (no KServe CRDs) is noted, not
an error; a list the scan may not read is an error the report carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from signer import mapping, text
from webhook.compliance.kinds import BUILT_IN_KINDS, KSERVE_GROUP, KSERVE_LISTED, ListedKind
from webhook.compliance.kube import KubeError, request_json

PAGE_SIZE = 250
MAX_OBJECTS = 20000  # per scan: far above one cluster's model workloads, bounds the work of one scan
FINISHED_POD_PHASES = ("Succeeded", "Failed")
CONTROLLED_KINDS = ("ReplicaSet", "Job")


@dataclass(frozen=True)
class ListingProblem:
    """A list the scan could not read: reported as an `error` result, never skipped silently."""

    kind: ListedKind
    namespace: str | None
    message: str


@dataclass
class Inventory:
    objects: list[tuple[ListedKind, dict[str, Any]]] = field(default_factory=list)
    problems: list[ListingProblem] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)  # kinds whose API the cluster does not serve
    left_out: int = 0  # finished Pods and Jobs, controlled ReplicaSets and Jobs


def kserve_kinds(api: Any) -> tuple[list[ListedKind], list[str]]:
    """KServe's listed kinds at the version the cluster prefers for each; (kinds, notes)."""
    try:
        group = request_json(api, "GET", f"/apis/{KSERVE_GROUP}")
    except KubeError as exc:
        if exc.status == 404:
            return [], [f"{KSERVE_GROUP} is not served (no KServe CRDs): its kinds were not listed"]
        raise
    preferred = text(mapping(group.get("preferredVersion")).get("version"))
    versions = [text(mapping(v).get("version")) for v in group.get("versions") or []]
    chosen: dict[str, ListedKind] = {}
    for version in sorted(filter(None, versions), key=lambda v: v != preferred):  # the preferred version first
        resources = request_json(api, "GET", f"/apis/{KSERVE_GROUP}/{version}").get("resources") or []
        for resource in resources:
            resource = mapping(resource)
            kind, plural = text(resource.get("kind")), text(resource.get("name"))
            if kind in KSERVE_LISTED and "/" not in plural and kind not in chosen:
                chosen[kind] = ListedKind(KSERVE_GROUP, version, plural, kind, namespaced=resource.get("namespaced") is True)
    return sorted(chosen.values(), key=lambda k: k.kind), []


def runs_nothing(kind: ListedKind, obj: dict[str, Any]) -> bool:
    metadata, status = mapping(obj.get("metadata")), mapping(obj.get("status"))
    if kind.kind in CONTROLLED_KINDS and any(mapping(o).get("controller") is True for o in metadata.get("ownerReferences") or []):
        return True
    if kind.kind == "Pod":
        return text(status.get("phase")) in FINISHED_POD_PHASES
    if kind.kind == "Job":
        return any(text(mapping(c).get("type")) in ("Complete", "Failed") and mapping(c).get("status") == "True"
                   for c in status.get("conditions") or [])
    return False


def _pages(api: Any, path: str) -> Iterator[dict[str, Any]]:
    token = ""
    while True:
        query = [("limit", str(PAGE_SIZE))] + ([("continue", token)] if token else [])
        page = request_json(api, "GET", path, query=query)
        for item in page.get("items") or []:
            if isinstance(item, dict):
                yield item
        token = text(mapping(page.get("metadata")).get("continue"))
        if not token:
            return


def list_running(api: Any, namespaces: list[str] | None) -> Inventory:
    """Objects in `namespaces` (None: every namespace, and the cluster-scoped kinds)."""
    inventory = Inventory()
    kinds = list(BUILT_IN_KINDS)
    try:
        found, notes = kserve_kinds(api)
        kinds += found
        inventory.unserved += notes
    except KubeError as exc:
        inventory.problems.append(ListingProblem(ListedKind(KSERVE_GROUP, "", "", "InferenceService"), None,
                                                 f"cannot discover the KServe kinds: {exc.message}"))
    for kind in kinds:
        scopes: list[str | None] = [None] if namespaces is None or not kind.namespaced else list(namespaces)
        if namespaces is not None and not kind.namespaced:
            continue  # cluster-scoped objects belong to no namespace: listed with --all-namespaces
        for namespace in scopes:
            try:
                for obj in _pages(api, kind.path(namespace)):
                    if len(inventory.objects) >= MAX_OBJECTS:
                        raise KubeError(f"more than {MAX_OBJECTS} objects in scope; the rest were not listed",
                                        hint="scan fewer namespaces at a time with -n")
                    if runs_nothing(kind, obj):
                        inventory.left_out += 1
                    else:
                        inventory.objects.append((kind, {**obj, "apiVersion": kind.api_version, "kind": kind.kind}))
            except KubeError as exc:
                if exc.status == 404 and namespace is None and kind.group == KSERVE_GROUP:
                    inventory.unserved.append(f"{kind.kind} ({kind.api_version}) is not served")
                    continue
                hint = (f"grant the scan's identity `list` on {kind.plural}" + (f".{kind.group}" if kind.group else "") + " (manifests/base/rbac.yaml)"
                        if exc.status in (401, 403) else exc.hint)
                inventory.problems.append(ListingProblem(kind, namespace, exc.message + (f"; {hint}" if hint else "")))
    return inventory
