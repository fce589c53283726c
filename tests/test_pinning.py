"""Digest pinning (`POST /mutate`): each verified tag reference becomes `…@sha256:…`, nothing
else is touched, and the patch is what the API server can apply (the real API server is in
tests/test_cluster.py)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, PASSWORD
from signer.modelkit.pack import pack_modelkit
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from signer.trust.keys import load_signing_key_file
from support.admission import isvc, pod, policy_for, review
from support.webhook_server import start_webhook
from webhook.admission.config import parse_policy
from webhook.admission.extract import KNOWN_KINDS, extract
from webhook.admission.pinning import DigestPinner
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review
from webhook.certs import generate


def apply_patch(document: dict, patch: list[dict]) -> dict:
    """RFC 6902 `test` and `replace`, the two operations the webhook sends."""
    result = copy.deepcopy(document)
    for operation in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        parent = result
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if operation["op"] == "test":
            assert parent[last] == operation["value"], operation
        else:
            assert operation["op"] == "replace"
            parent[last] = operation["value"]
    return result


@pytest.fixture(scope="module")
def refs(registry, key_dir, tmp_path_factory):
    ml = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    host = registry.host
    found = {}
    with Stores() as stores:
        for name, sign in (("signed", True), ("unsigned", False)):
            reference = parse_reference(f"{host}/pin/{name}:1")
            found[name] = (f"{host}/pin/{name}:1", push_image(stores.repository(reference), {"f": name.encode()}, tag="1").digest)
            if sign:
                sign_artifact(stores, reference, ml)
        context = tmp_path_factory.mktemp("kit")
        (context / "model").mkdir()
        (context / "model" / "weights.safetensors").write_bytes(b"w")
        kitfile = {"manifestVersion": "1.0.0", "package": {"name": "m", "version": "1"}, "model": {"path": "./model"}}
        reference = parse_reference(f"kit://{host}/pin/kit:v1")
        found["kit"] = (f"kit://{host}/pin/kit:v1", pack_modelkit(stores.repository(reference), context, kitfile, tag="v1").digest)
        sign_artifact(stores, reference, ml)
    return found


def pinner_for(key_dir: Path, extra: str = "") -> tuple[AdmissionPipeline, DigestPinner]:
    pipeline = AdmissionPipeline(parse_policy(policy_for(key_dir, extra), source="pin"))
    return pipeline, DigestPinner(pipeline)


def test_verified_tags_in_a_pod_are_pinned_and_nothing_else(key_dir, refs):
    pipeline, pinner = pinner_for(key_dir)
    obj = pod(refs["signed"][0], refs["unsigned"][0], "docker.io/library/nginx:1", f"{refs['signed'][0].rsplit(':', 1)[0]}@{refs['signed'][1]}")
    try:
        result = pinner.pin(parse_review(review("Pod", obj)))
    finally:
        pipeline.close()
    assert result.reason == "pinned" and [p["source"] for p in result.pinned] == ["spec.containers[0].image"]
    pinned = apply_patch(obj, result.patch)
    assert pinned["spec"]["containers"][0]["image"] == f"{refs['signed'][0]}@{refs['signed'][1]}"
    assert [c["image"] for c in pinned["spec"]["containers"][1:]] == [c["image"] for c in obj["spec"]["containers"][1:]]


def test_a_model_uri_drops_its_tag_and_env_and_annotations_are_pinned_too(key_dir, refs):
    uri, digest = refs["kit"]
    obj = isvc(uri)
    obj["spec"]["predictor"]["containers"] = [{"name": "c", "image": refs["signed"][0], "env": [{"name": "STORAGE_URI", "value": uri}]}]
    obj["metadata"]["annotations"] = {"internal.serving.kserve.io/storage-initializer-sourceuri": uri}
    pipeline, pinner = pinner_for(key_dir)
    try:
        result = pinner.pin(parse_review(review("InferenceService", obj)))
    finally:
        pipeline.close()
    pinned = apply_patch(obj, result.patch)
    expected = f"{uri.rsplit(':', 1)[0]}@{digest}"
    assert pinned["spec"]["predictor"]["model"]["storageUri"] == expected
    assert pinned["spec"]["predictor"]["containers"][0]["env"][0]["value"] == expected
    assert pinned["metadata"]["annotations"]["internal.serving.kserve.io/storage-initializer-sourceuri"] == expected  # "/" in the key: ~1
    assert pinned["spec"]["predictor"]["containers"][0]["image"] == f"{refs['signed'][0]}@{refs['signed'][1]}"


@pytest.mark.parametrize("extra, pinned", [("", 0), ("pinDigests: {templates: true}", 1)])
def test_workload_templates_are_pinned_only_on_request(key_dir, refs, extra, pinned):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"template": {"spec": {"containers": [{"name": "c", "image": refs["signed"][0]}]}}}}
    pipeline, pinner = pinner_for(key_dir, extra)
    try:
        result = pinner.pin(parse_review(review("Deployment", deployment)))
    finally:
        pipeline.close()
    assert len(result.pinned) == pinned and (result.reason == "not-pinned-kind") is (pinned == 0)


@pytest.mark.parametrize("change", ["exempt", "delete", "status", "pods-off"])
def test_what_is_not_pinned(key_dir, refs, change):
    extra = "pinDigests: {pods: false}" if change == "pods-off" else ""
    pipeline, pinner = pinner_for(key_dir, extra)
    body = review("Pod", pod(refs["signed"][0]), namespace="kube-system" if change == "exempt" else "ml",
                  operation="DELETE" if change == "delete" else "CREATE", sub_resource="status" if change == "status" else None)
    try:
        result = pinner.pin(parse_review(body))
    finally:
        pipeline.close()
    assert result.patch == [] and result.pinned == []


def test_pinning_twice_changes_nothing_the_second_time(key_dir, refs):
    pipeline, pinner = pinner_for(key_dir)
    obj = pod(refs["signed"][0])
    try:
        once = apply_patch(obj, pinner.pin(parse_review(review("Pod", obj))).patch)
        again = pinner.pin(parse_review(review("Pod", once)))
    finally:
        pipeline.close()
    assert again.patch == [] and again.reason == "nothing-to-pin"


def _corpus_objects() -> list[tuple[str, dict]]:
    """(file name, object) for every object of a kind modelsign checks in the corpus copies
    (the deliberately broken files are left to the robustness tests)."""
    found = []
    for path in sorted((FIXTURES / "kserve").glob("*.yaml")) + sorted((FIXTURES / "admissionreview").glob("*.json")):
        try:
            documents = list(yaml.safe_load_all(path.read_text())) if path.suffix == ".yaml" else [json.loads(path.read_text())]
        except (yaml.YAMLError, ValueError):
            continue
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == "AdmissionReview":
                document = (document.get("request") or {}).get("object")
            if isinstance(document, dict) and isinstance(document.get("kind"), str) and document["kind"] in KNOWN_KINDS:
                found.append((path.name, document))
    return found


@pytest.mark.parametrize("name, obj", _corpus_objects(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_extracted_field_is_where_its_pointer_says(name, obj):
    """The JSON Pointer of every field found in the corpus objects resolves to its value (the
    storage spec's synthesized storage:// value is the one exception: it is never pinned)."""
    fields = [f for f in extract(obj["kind"], obj) if f.path[-1] != "storage"]
    for found in fields:
        node = obj
        for part in found.pointer.split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        assert node == found.value, (name, found)


def test_the_mutate_endpoint_answers_with_a_json_patch_over_tls(tmp_path, key_dir, refs):
    generate("modelsign-webhook", "modelsign-system", tmp_path / "certs", extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, name="pin"))
    server = start_webhook(policy, tmp_path / "certs", tmp_path, workers=1)
    obj = pod(refs["signed"][0], refs["unsigned"][0])
    try:
        with server.client() as client:
            answer = client.post("/mutate", content=review("Pod", obj), headers={"Content-Type": "application/json"}).json()["response"]
            bad = client.post("/mutate", content=b"{}", headers={"Content-Type": "application/json"})
    finally:
        server.stop()
    assert answer["allowed"] is True and answer["patchType"] == "JSONPatch" and answer["auditAnnotations"]["pinned"] == "1"
    pinned = apply_patch(obj, json.loads(base64.b64decode(answer["patch"])))
    assert pinned["spec"]["containers"][0]["image"].endswith(refs["signed"][1])
    assert pinned["spec"]["containers"][1]["image"] == refs["unsigned"][0]
    assert bad.status_code == 400
