"""The kinds a compliance scan lists: Pods, the workloads that make them, and KServe's kinds
where its CRDs are served. Each is re-decided by the admission pipeline, so this is the
pipeline's own list of kinds (webhook/admission/extract.py), narrowed to what runs."""

from __future__ import annotations

from dataclasses import dataclass

from webhook.admission.extract import KNOWN_KINDS, KSERVE_KINDS

KSERVE_GROUP = "serving.kserve.io"
# Built-in kinds at the API version every supported Kubernetes serves. ReplicaSets and Jobs that
# a Deployment or CronJob controls are left out (the owner is reported; their Pods are too).
BUILT_IN = (
    ("", "v1", "pods", "Pod"),
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("apps", "v1", "replicasets", "ReplicaSet"),
    ("batch", "v1", "jobs", "Job"),
    ("batch", "v1", "cronjobs", "CronJob"),
)
# LLMInferenceServiceConfig holds templates that other objects merge in: it runs nothing itself.
KSERVE_LISTED = frozenset(KSERVE_KINDS - {"LLMInferenceServiceConfig"})
assert {kind for *_, kind in BUILT_IN} <= KNOWN_KINDS and KSERVE_LISTED <= KNOWN_KINDS


@dataclass(frozen=True)
class ListedKind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None) -> str:
        """The list URL: one namespace, or every namespace (cluster-scoped kinds ignore it)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


BUILT_IN_KINDS = tuple(ListedKind(group, version, plural, kind) for group, version, plural, kind in BUILT_IN)
