"""The admission pipeline against a real registry: request -> evidence -> Rego -> response."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time

import pytest

from signer.modelkit.pack import pack_modelkit
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from support.admission import isvc, pod, policy_for, review
from support.registry import start_registry
from webhook.admission.config import parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review


@pytest.fixture(scope="module")
def artifacts(registry, tmp_path_factory, key_dir):
    """Signed and unsigned images and ModelKits in the real registry."""
    from signer.trust.keys import load_signing_key_file

    from conftest import PASSWORD

    ml = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    other = load_signing_key_file(key_dir / "other-team.key", password=lambda _: PASSWORD.encode())
    host = registry.host
    found = {}
    with Stores() as stores:
        for name, key in (("signed", ml), ("unsigned", None), ("wrongkey", other)):
            ref = parse_reference(f"{host}/apps/{name}:1")
            found[name] = push_image(stores.repository(ref), {"f": name.encode()}, tag="1")
            if key:
                sign_artifact(stores, ref, key)
        context = tmp_path_factory.mktemp("kit")
        (context / "model").mkdir()
        (context / "model" / "weights.safetensors").write_bytes(b"weights")
        kitfile = {"manifestVersion": "1.0.0", "package": {"name": "llm", "version": "1"}, "model": {"path": "./model"}}
        for name, key in (("kit-signed", ml), ("kit-unsigned", None)):
            ref = parse_reference(f"kit://{host}/models/{name}:1")
            found[name] = pack_modelkit(stores.repository(ref), context, kitfile, tag="1")
            if key:
                sign_artifact(stores, ref, key)
    return found


@pytest.fixture
def pipeline(key_dir):
    built = AdmissionPipeline(parse_policy(policy_for(key_dir), source="test"))
    yield built
    built.close()


def decide(pipeline: AdmissionPipeline, body: bytes):
    request = parse_review(body)
    return request, pipeline.decide(request)


def test_signed_image_is_admitted_and_unsigned_is_denied(pipeline, registry, artifacts):
    request, decision = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/signed:1")))
    assert decision.allowed and decision.outcome == "allow"
    assert decision.artifacts[0]["evidence"]["digest"] == artifacts["signed"].digest
    response = pipeline.response(request, decision)
    assert response["response"]["allowed"] is True and response["response"]["uid"] == "uid-1"
    assert response["response"]["auditAnnotations"]["decision"] == "allow"

    request, decision = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/unsigned:1")))
    assert not decision.allowed
    body = pipeline.response(request, decision)["response"]
    assert body["status"]["code"] == 403
    assert f"no signature by key ml-team for {registry.host}/apps/unsigned@{artifacts['unsigned'].digest}" in body["status"]["message"]
    assert f"sign it with `modelsign sign {registry.host}/apps/unsigned@{artifacts['unsigned'].digest} --key ml-team.key`" in body["status"]["message"]


def test_wrong_key_and_disallowed_registry(pipeline, registry, artifacts):
    _, decision = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/wrongkey:1")))
    assert not decision.allowed and "signature not made by any trusted key" in decision.message
    _, decision = decide(pipeline, review("Pod", pod("docker.io/library/nginx:1.25")))
    assert not decision.allowed and "not in allowedRegistries" in decision.message
    assert decision.artifacts[0]["evidence"]["digest"] is None  # never contacted


def test_every_container_kind_is_checked(pipeline, registry, artifacts):
    spec = {"initContainers": [{"name": "i", "image": f"{registry.host}/apps/unsigned:1"}],
            "containers": [{"name": "c", "image": f"{registry.host}/apps/signed:1"}]}
    deployment = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": spec}}}
    _, decision = decide(pipeline, review("Deployment", deployment))
    assert not decision.allowed and "spec.template.spec.initContainers[0].image" in decision.message


def test_inference_service_with_signed_and_unsigned_kit_models(pipeline, registry, artifacts):
    _, decision = decide(pipeline, review("InferenceService", isvc(f"kit://{registry.host}/models/kit-signed:1")))
    assert decision.allowed, decision.message
    _, decision = decide(pipeline, review("InferenceService", isvc(f"kit://{registry.host}/models/kit-unsigned:1")))
    assert not decision.allowed and "spec.predictor.model.storageUri" in decision.message
    _, decision = decide(pipeline, review("InferenceService", isvc("gs://bucket/model")))
    assert not decision.allowed and "gs://bucket/model (spec.predictor.model.storageUri) cannot be verified" in decision.message


def test_exempt_namespace_delete_and_status_need_no_verification(pipeline, registry, artifacts):
    unsigned = pod(f"{registry.host}/apps/unsigned:1")
    for body, reason in (
        (review("Pod", unsigned, namespace="kube-system"), "exempt-namespace"),
        (review("Pod", unsigned, operation="DELETE"), "delete"),
        (review("Pod", unsigned, operation="UPDATE", old=unsigned, sub_resource="status"), "subresource"),
    ):
        _, decision = decide(pipeline, body)
        assert decision.allowed and decision.reason == reason


def test_ephemeral_containers_subresource_is_verified(pipeline, registry, artifacts):
    old = pod(f"{registry.host}/apps/signed:1")
    new = json.loads(json.dumps(old))
    new["spec"]["ephemeralContainers"] = [{"name": "debug", "image": f"{registry.host}/apps/unsigned:1"}]
    _, decision = decide(pipeline, review("Pod", new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers"))
    assert not decision.allowed and "spec.ephemeralContainers[0].image" in decision.message


def test_updates_with_unchanged_artifacts_skip_verification(pipeline, registry, artifacts):
    old = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": f"{registry.host}/apps/unsigned:1"}]}}}}
    scaled = json.loads(json.dumps(old))
    scaled["spec"]["replicas"] = 5
    _, decision = decide(pipeline, review("Deployment", scaled, operation="UPDATE", old=old))
    assert decision.allowed and decision.reason == "unchanged-artifacts"
    changed = json.loads(json.dumps(old))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = f"{registry.host}/apps/wrongkey:1"
    _, decision = decide(pipeline, review("Deployment", changed, operation="UPDATE", old=old))
    assert not decision.allowed


def test_dry_run_and_v1beta1_are_answered_in_kind(pipeline, registry, artifacts):
    request, decision = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/signed:1"), dry_run=True, api_version="admission.k8s.io/v1beta1"))
    assert decision.dry_run and decision.allowed
    assert pipeline.response(request, decision)["apiVersion"] == "admission.k8s.io/v1beta1"


def test_warn_mode_admits_with_warnings(key_dir, registry, artifacts):
    warn = AdmissionPipeline(parse_policy(policy_for(key_dir, extra="mode: warn"), source="warn"))
    try:
        request, decision = decide(warn, review("Pod", pod(f"{registry.host}/apps/unsigned:1")))
        assert decision.allowed and decision.outcome == "warn"
        response = warn.response(request, decision)["response"]
        assert response["warnings"][0].startswith("modelsign would deny (warn mode): no signature by key ml-team")
        assert "status" not in response
    finally:
        warn.close()


def test_digest_is_bound_even_for_tags_and_cache_is_keyed_by_digest(pipeline, registry, artifacts, stores):
    _, first = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/signed:1")))
    _, second = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/signed@{artifacts['signed'].digest}")))
    assert first.allowed and second.allowed and second.cache_hits == 1
    # Re-point the tag at an unsigned image: the new digest is verified, not the cached one.
    push_image(stores.repository(parse_reference(f"{registry.host}/apps/signed")), {"f": b"evil"}, tag="1")
    _, third = decide(pipeline, review("Pod", pod(f"{registry.host}/apps/signed:1")))
    assert not third.allowed and third.artifacts[0]["evidence"]["digest"] != artifacts["signed"].digest
    push_image(stores.repository(parse_reference(f"{registry.host}/apps/signed")), {"f": b"signed"}, tag="1")  # restore


def test_concurrent_identical_lookups_share_one_verification(key_dir, registry, artifacts):
    fresh = AdmissionPipeline(parse_policy(policy_for(key_dir), source="fresh"))
    try:
        body = review("Pod", pod(f"{registry.host}/apps/signed@{artifacts['signed'].digest}"))
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            decisions = list(pool.map(lambda _: decide(fresh, body)[1], range(32)))
        assert all(d.allowed for d in decisions)
        stats = fresh.cache.stats
        assert stats.misses == 1 and stats.hits + stats.shared == 31
    finally:
        fresh.close()


def test_registry_stopped_mid_test_denies_within_the_deadline(key_dir, tmp_path, artifacts):
    own = start_registry(tmp_path / "registry")
    try:
        with Stores() as stores:
            push_image(stores.repository(parse_reference(f"{own.host}/apps/x")), {"f": b"x"}, tag="1")
        policy = parse_policy(policy_for(key_dir, extra="deadlineSeconds: 2\nregistry: {timeoutSeconds: 1, retries: 0}"), source="p")
        stopped = AdmissionPipeline(policy)
        own.stop()
        started = time.monotonic()
        _, decision = decide(stopped, review("Pod", pod(f"{own.host}/apps/x:1")))
        assert time.monotonic() - started < 2.5
        assert not decision.allowed and "cannot connect to registry" in decision.message and decision.registry_errors == 1
        stopped.close()
    finally:
        own.stop()


def test_a_hanging_registry_hits_the_deadline(key_dir):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()) for _ in range(16)], daemon=True).start()
    port = listener.getsockname()[1]
    policy = parse_policy(policy_for(key_dir, extra="deadlineSeconds: 1\nregistry: {timeoutSeconds: 5, retries: 0}"), source="p")
    hanging = AdmissionPipeline(policy)
    try:
        started = time.monotonic()
        _, decision = decide(hanging, review("Pod", pod(f"127.0.0.1:{port}/apps/x:1")))
        elapsed = time.monotonic() - started
        assert elapsed < 1.5, elapsed
        assert not decision.allowed and "did not finish within the 1s deadline" in decision.message
    finally:
        hanging.close()
        listener.close()


def test_policy_engine_failure_fails_closed(key_dir, registry, artifacts):
    from webhook.admission.engine.engines import PolicyEngineError

    class BrokenEngine:
        name = "broken"

        def decide(self, _, *, deadline=None):
            raise PolicyEngineError("OPA at http://opa:8181 did not answer")

    broken = AdmissionPipeline(parse_policy(policy_for(key_dir), source="p"), engine=BrokenEngine())
    try:
        _, decision = decide(broken, review("Pod", pod(f"{registry.host}/apps/signed:1")))
        assert not decision.allowed and decision.outcome == "error" and "OPA at http://opa:8181 did not answer" in decision.message
    finally:
        broken.close()


def test_objects_missing_on_create_are_denied(pipeline):
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u", "operation": "CREATE", "kind": {"kind": "Pod"}, "namespace": "ml"}}).encode()
    _, decision = decide(pipeline, body)
    assert not decision.allowed and "carries no object" in decision.message


def test_opa_server_mode_gives_the_same_decisions_and_fails_closed(key_dir, registry, artifacts, tmp_path):
    """Against a real OPA server (built by .ci/peers)."""
    import httpx

    from support.opa_server import start_opa

    opa = start_opa(tmp_path)
    policy = parse_policy(policy_for(key_dir, extra=f"opa: {{url: {opa.url}}}"), source="opa")
    remote = AdmissionPipeline(policy)
    try:
        assert remote.engine.name == "opa"
        _, allowed = decide(remote, review("Pod", pod(f"{registry.host}/apps/signed:1")))
        _, denied = decide(remote, review("Pod", pod(f"{registry.host}/apps/unsigned:1")))
        assert allowed.allowed and not denied.allowed and "no signature by key ml-team" in denied.message
        pushed = httpx.get(f"{opa.url}/v1/policies").json()["result"]
        assert "modelsign/modelsign.rego" in [p["id"] for p in pushed]
        assert httpx.get(f"{opa.url}/v1/data/modelsign/config/name").json()["result"] == "default"
        opa.restart()  # OPA forgets what was pushed: the webhook pushes the policy again and still decides
        _, again = decide(remote, review("Pod", pod(f"{registry.host}/apps/unsigned:1")))
        assert not again.allowed and "no signature" in again.message
        opa.stop()  # a decision not memoised yet (another namespace) needs OPA: deny with the reason
        _, down = decide(remote, review("Pod", pod(f"{registry.host}/apps/signed:1"), namespace="other"))
        assert not down.allowed and down.outcome == "error" and f"OPA at {opa.url}" in down.message
    finally:
        remote.close()
        opa.stop()


# -- bypass attempts (found in review) ------------------------------------------------------


def test_kserve_storage_uri_env_and_pod_annotations_are_checked(pipeline, registry, artifacts):
    signed = f"{registry.host}/apps/signed:1"
    custom = {"kind": "InferenceService", "metadata": {"name": "c"}, "spec": {"predictor": {"containers": [
        {"name": "kserve-container", "image": signed, "env": [{"name": "STORAGE_URI", "value": "s3://attacker/model"}]}]}}}
    _, decision = decide(pipeline, review("InferenceService", custom))
    assert not decision.allowed and "s3://attacker/model (spec.predictor.containers[0].env[0].value) cannot be verified" in decision.message
    annotated = pod(signed)
    annotated["metadata"]["annotations"] = {"internal.serving.kserve.io/storage-initializer-sourceuri": "s3://attacker/model"}
    _, decision = decide(pipeline, review("Pod", annotated))
    assert not decision.allowed and "internal.serving.kserve.io/storage-initializer-sourceuri" in decision.message


def test_changing_storage_parameters_is_not_an_unchanged_update(key_dir, registry):
    policy = parse_policy(policy_for(key_dir, extra='storageUris: {allow: ["storage://approved/models?bucket=ours"]}'), source="p")
    storage = AdmissionPipeline(policy)
    try:
        def spec(parameters):
            return {"kind": "InferenceService", "metadata": {"name": "s"}, "spec": {"predictor": {"sklearn": {"storage": {"key": "approved", "path": "models", "parameters": parameters}}}}}
        _, ok = decide(storage, review("InferenceService", spec({"bucket": "ours"})))
        assert ok.allowed, ok.message
        _, moved = decide(storage, review("InferenceService", spec({"bucket": "attacker"}), operation="UPDATE", old=spec({"bucket": "ours"})))
        assert not moved.allowed and moved.reason != "unchanged-artifacts" and "storage://approved/models?bucket=attacker" in moved.message
    finally:
        storage.close()


def test_unknown_kinds_mismatched_kinds_and_namespace_claims_are_denied(pipeline, registry, artifacts):
    unsigned = pod(f"{registry.host}/apps/unsigned:1")
    _, decision = decide(pipeline, review("ConfigMap", unsigned))
    assert not decision.allowed and "kind ConfigMap is not one modelsign checks" in decision.message
    body = json.loads(review("Deployment", unsigned))  # request says Deployment, object is a Pod
    _, decision = decide(pipeline, json.dumps(body).encode())
    assert not decision.allowed and "the object is a Pod but the request says Deployment" in decision.message
    claimed = json.loads(json.dumps(unsigned))
    claimed["metadata"]["namespace"] = "kube-system"  # exempt, but only the API server's namespace counts
    body = json.loads(review("Pod", claimed))
    body["request"]["namespace"] = ""
    _, decision = decide(pipeline, json.dumps(body).encode())
    assert not decision.allowed and decision.reason != "exempt-namespace"


def test_too_many_artifacts_in_one_object(pipeline, registry):
    _, decision = decide(pipeline, review("Pod", pod(*[f"{registry.host}/apps/x{i}:1" for i in range(101)])))
    assert not decision.allowed and "101 images and model URIs in one object, more than the 100" in decision.message


def test_a_stalled_request_does_not_starve_the_next(key_dir, registry, artifacts):
    """30 references to a registry that never answers: that request is denied at its deadline,
    the next request for a healthy registry is still verified, and the hanging registry is
    then treated as down for a few seconds instead of tying up threads again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    # The registry's own timeout (not the review's deadline) is what marks it unreachable.
    policy = parse_policy(policy_for(key_dir, extra="deadlineSeconds: 1\nregistry: {timeoutSeconds: 0.5, retries: 0}"), source="p")
    shared = AdmissionPipeline(policy)
    try:
        _, stalled = decide(shared, review("Pod", pod(*[f"127.0.0.1:{port}/apps/x{i}:1" for i in range(30)])))
        assert not stalled.allowed and "did not answer within 0.5s" in stalled.message and stalled.latency_ms < 1500
        _, next_one = decide(shared, review("Pod", pod(f"{registry.host}/apps/signed@{artifacts['signed'].digest}")))
        assert next_one.allowed, next_one.message
        waited = time.monotonic() + 5
        while shared.stores.unreachable(parse_reference(f"127.0.0.1:{port}/apps/y:1")) is None and time.monotonic() < waited:
            time.sleep(0.1)  # the stalled lookups time out and mark the registry down
        started = time.monotonic()
        _, again = decide(shared, review("Pod", pod(f"127.0.0.1:{port}/apps/y:1")))
        assert time.monotonic() - started < 0.5 and "did not answer within 0.5s" in again.message and "not contacted again" in again.message
        _, too_many = decide(shared, review("Pod", pod(*[f"{registry.host}/apps/z{i}:1" for i in range(33)])))
        assert not too_many.allowed and "33 distinct images and models in one object" in too_many.message
    finally:
        shared.close()
        listener.close()


def test_decision_memo_ignores_uid_and_skips_huge_inputs():
    from webhook.admission.engine.engines import MAX_MEMO_INPUT_BYTES, MemoizedEngine

    class Counting:
        name = "counting"
        calls = 0

        def decide(self, policy_input, *, deadline=None):
            Counting.calls += 1
            return {"exempt": False, "violations": []}

    memo = MemoizedEngine(Counting(), ttl_seconds=60, max_entries=100)
    memo.decide({"request": {"uid": "a", "namespace": "ml"}, "artifacts": []})
    memo.decide({"request": {"uid": "b", "namespace": "ml"}, "artifacts": []})
    assert Counting.calls == 1
    memo.decide({"request": {"uid": "c", "namespace": "other"}, "artifacts": []})
    assert Counting.calls == 2
    huge = {"request": {"uid": "d"}, "artifacts": [{"value": "x" * MAX_MEMO_INPUT_BYTES}]}
    memo.decide(huge)
    memo.decide(huge)
    assert Counting.calls == 4
