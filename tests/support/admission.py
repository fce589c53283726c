"""AdmissionReview bodies and the objects in them, for the webhook tests."""

from __future__ import annotations

import json
from pathlib import Path


def policy_for(key_dir: Path, extra: str = "", registries: str = '["127.0.0.1:*"]', name: str = "default") -> str:
    """An AdmissionPolicy requiring ml-team's signature (the test key in `key_dir`)."""
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: {name}}}
exemptNamespaces: [kube-system]
allowedRegistries: {registries}
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
rules:
  - name: models-signed
    require: {{signedBy: [ml-team]}}
{extra}
"""


def review(kind: str, obj: dict, *, operation: str = "CREATE", namespace: str = "ml", old: dict | None = None, sub_resource: str | None = None,
           dry_run: bool = False, api_version: str = "admission.k8s.io/v1", uid: str = "uid-1") -> bytes:
    request = {"uid": uid, "kind": {"group": "", "version": "v1", "kind": kind}, "operation": operation, "namespace": namespace,
               "name": obj.get("metadata", {}).get("name", "x"), "object": obj, "oldObject": old, "dryRun": dry_run,
               "userInfo": {"username": "alice", "groups": ["devs"]}}
    if sub_resource:
        request["subResource"] = sub_resource
    return json.dumps({"apiVersion": api_version, "kind": "AdmissionReview", "request": request}).encode()


def pod(*images: str, name: str = "p") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}}


def isvc(storage_uri: str) -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "llm"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri}}}}
