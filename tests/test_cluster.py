"""`kubectl` against a real Kubernetes API server whose admission chain calls the real
modelsign webhook over TLS (marker `cluster`).

etcd and kube-apiserver are built by `.ci/peers` from pinned module versions; the webhook
configurations are the project's own (`kubectl kustomize manifests/`), with only their
client config pointed at the test webhook. No controllers run: Pods stay Pending, which is
all admission needs. What `kubectl` prints is what users see, so the tests read it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from conftest import PASSWORD
from signer.evidence.approvals import approval_predicate
from signer.formats import mediatypes as mt
from signer.modelkit.pack import pack_modelkit
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.attestations import attest
from signer.signatures.signing import sign_artifact
from signer.trust.keys import generate_key_pair, load_signing_key_file
from support.audit import audited_webhook, records
from support.cluster import Cluster, start_cluster
from support.faults import BlackHole
from support.registry import free_port

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "kserve"  # copies of the shared corpus (tests/fixtures/README.md)
VALIDATING, MUTATING = "artifacts.modelsign.dev", "digests.modelsign.dev"


# -- the cluster, the artifacts, the webhook ------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    started.install_crds(sorted((CORPUS / "crds").glob("*.yaml")))
    for name, labels in (("ml", {"modelsign.dev/environment": "dev"}), ("prod-1", {"modelsign.dev/environment": "prod"}),
                         ("prod-2", {"modelsign.dev/environment": "staging"}), ("exempt-team", {"modelsign.dev/exempt": "true"})):
        started.create_namespace(name, labels)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def approver(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("approver")
    generate_key_pair(directory / "approver", PASSWORD.encode())
    return directory


@pytest.fixture(scope="module")
def refs(registry, key_dir, approver, tmp_path_factory) -> dict[str, str]:
    """Tag references in the real registry: signed and unsigned images, signed, unsigned and
    approved ModelKits."""
    ml = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    approve = load_signing_key_file(approver / "approver.key", password=lambda _: PASSWORD.encode())
    host = registry.host
    found: dict[str, str] = {"host": host}
    context = tmp_path_factory.mktemp("kit-context")
    (context / "model").mkdir()
    (context / "model" / "weights.safetensors").write_bytes(b"weights")
    kitfile = {"manifestVersion": "1.0.0", "package": {"name": "llm", "version": "1"}, "model": {"path": "./model"}}
    with Stores() as stores:
        for name, sign in (("signed", True), ("unsigned", False), ("other", True)):
            reference = parse_reference(f"{host}/apps/{name}:1")
            found[f"image-{name}"] = str(push_image(stores.repository(reference), {"f": name.encode()}, tag="1").digest)
            if sign:
                sign_artifact(stores, reference, ml)
            found[name] = f"{host}/apps/{name}:1"
        for name, sign in (("kit-signed", True), ("kit-unsigned", False), ("kit-approved", True)):
            reference = parse_reference(f"kit://{host}/models/{name}:1")
            (context / "model" / "weights.safetensors").write_bytes(name.encode())
            found[f"digest-{name}"] = pack_modelkit(stores.repository(reference), context, kitfile, tag="1").digest
            if sign:
                sign_artifact(stores, reference, ml)
            found[name] = f"kit://{host}/models/{name}:1"
        attest(stores, parse_reference(f"kit://{host}/models/kit-approved@{found['digest-kit-approved']}"), approve, mt.APPROVAL_PREDICATE,
               approval_predicate(decision="approved", environment="prod", namespaces=["*"], approver="alice", requester="bob",
                                  ticket="CHG-1", reason="eval passed", now=datetime.now(timezone.utc), not_before=None, expires_in_seconds=3600))
    return found


def policy_text(key_dir: Path, approver: Path, cluster: Cluster, extra: str = "") -> str:
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: cluster}}
allowedRegistries: ["127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
  approver: {{file: {approver / 'approver.pub'}}}
environments:
  namespaceLabel: modelsign.dev/environment
  kubeconfig: {cluster.kubeconfig}
rules:
  - name: signed
    require: {{signedBy: [ml-team]}}
  - name: models-approved-for-prod
    artifacts: ["*/models/**"]
    namespaces: ["prod-*"]
    require: {{approval: {{signedBy: [approver]}}}}
{extra}
"""


def register(cluster: Cluster, url: str, ca_bundle: bytes, *, timeout_seconds: int | None = None) -> None:
    """The project's webhook configurations (`kubectl kustomize manifests/`), with the client
    config pointed at `url` (there is no kube-proxy here, so no Service routing)."""
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests")], capture_output=True, text=True, check=True).stdout
    configs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")]
    assert {c["kind"] for c in configs} == {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
    for config in configs:
        for webhook in config["webhooks"]:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": url + path, "caBundle": base64.b64encode(ca_bundle).decode()}
            if timeout_seconds is not None:
                webhook["timeoutSeconds"] = timeout_seconds
    result = cluster.apply(configs)
    assert result.returncode == 0, result.stderr
    time.sleep(1.5)  # the API server picks webhook configurations up from its informer


@pytest.fixture(scope="module")
def webhook(cluster, refs, key_dir, approver, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster-webhook")
    audited = audited_webhook(workdir, key_dir, workers=2, policy_text=policy_text(key_dir, approver, cluster))
    register(cluster, audited.server.url, (workdir / "certs" / "ca.crt").read_bytes())
    yield audited
    audited.server.stop()


# -- helpers ------------------------------------------------------------------------------


def pod(name: str, *images: str, namespace: str = "ml") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}}


def workload(kind: str, name: str, image: str, namespace: str = "ml") -> dict:
    template = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}], "restartPolicy": "Never"}}
    if kind == "Deployment":
        template["spec"]["restartPolicy"] = "Always"
        spec = {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template}
        api = "apps/v1"
    elif kind == "Job":
        spec, api = {"template": template}, "batch/v1"
    else:
        spec, api = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}, "batch/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def isvc(name: str, storage_uri: str, namespace: str = "ml") -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": name, "namespace": namespace},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri}}}}


def denial(result: subprocess.CompletedProcess) -> str:
    """The modelsign message kubectl printed for a denied request."""
    assert result.returncode != 0, f"expected a denial, kubectl said: {result.stdout}"
    marker = f'admission webhook "{VALIDATING}" denied the request: '
    assert marker in result.stderr, result.stderr
    return result.stderr.split(marker, 1)[1].strip()


def decision_records(audited) -> list[dict]:
    return [e["record"] for e in records(audited.log_dir) if e["record"]["type"] == "decision"]


def stored(cluster: Cluster, kind: str, name: str, namespace: str = "ml") -> dict:
    return json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=True).stdout)


# -- admission through kubectl --------------------------------------------------------------


def test_signed_pod_is_admitted_and_pinned_to_the_digest_it_was_verified_at(cluster, webhook, refs):
    result = cluster.apply(pod("signed", refs["signed"]))
    assert result.returncode == 0 and "pod/signed created" in result.stdout, result.stderr
    image = stored(cluster, "pod", "signed")["spec"]["containers"][0]["image"]
    assert image == f"{refs['signed']}@{refs['image-signed']}"


def test_unsigned_pod_is_denied_with_modelsigns_message_verbatim(cluster, webhook, refs):
    message = denial(cluster.apply(pod("unsigned", refs["unsigned"])))
    assert "no signature by key ml-team" in message and f"sign it with `modelsign sign {refs['host']}/apps/unsigned@" in message
    recorded = [r for r in decision_records(webhook) if r["review"]["name"] == "unsigned" and not r["decision"]["allowed"]]
    assert recorded and recorded[-1]["decision"]["message"] == message  # what the user read is what the trail holds


def test_a_pod_from_a_registry_not_allowed_is_denied(cluster, webhook):
    message = denial(cluster.apply(pod("elsewhere", "docker.io/library/nginx:1.25")))
    assert "which is not in allowedRegistries" in message and "add docker.io to allowedRegistries" in message


@pytest.mark.parametrize("kind", ["Deployment", "Job", "CronJob"])
def test_workloads_signed_and_unsigned(cluster, webhook, refs, kind):
    name = kind.lower()
    assert cluster.apply(workload(kind, f"{name}-ok", refs["signed"])).returncode == 0
    template = stored(cluster, kind.lower(), f"{name}-ok")
    containers = (template["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else template["spec"])["template"]["spec"]["containers"]
    assert containers[0]["image"] == refs["signed"], "templates are not pinned unless pinDigests.templates is set"
    message = denial(cluster.apply(workload(kind, f"{name}-bad", refs["unsigned"])))
    assert f"modelsign denied {kind} ml/{name}-bad" in message and "no signature by key ml-team" in message


def test_server_side_dry_run_gets_the_same_answer_and_stores_nothing(cluster, webhook, refs):
    message = denial(cluster.apply(pod("dry", refs["unsigned"]), "--dry-run=server"))
    assert "no signature by key ml-team" in message
    allowed = cluster.apply(pod("dry-ok", refs["signed"]), "--dry-run=server")
    assert allowed.returncode == 0 and "(server dry run)" in allowed.stdout
    assert cluster.kubectl("get", "pod", "dry-ok", "-n", "ml").returncode != 0
    assert any(r["review"]["name"] == "dry" and r["review"]["dryRun"] for r in decision_records(webhook))


# -- KServe ---------------------------------------------------------------------------------


def test_inference_services_signed_unsigned_unverifiable_and_pinned(cluster, webhook, refs):
    assert cluster.apply(isvc("kit-ok", refs["kit-signed"])).returncode == 0
    uri = stored(cluster, "inferenceservice", "kit-ok")["spec"]["predictor"]["model"]["storageUri"]
    assert uri == f"kit://{refs['host']}/models/kit-signed@{refs['digest-kit-signed']}"
    assert "no signature by key ml-team" in denial(cluster.apply(isvc("kit-bad", refs["kit-unsigned"])))
    sample = yaml.safe_load((CORPUS / "storage__uri__sklearn.yaml").read_text())
    sample["metadata"]["namespace"] = "ml"
    message = denial(cluster.apply(sample))
    assert "cannot be verified by modelsign (scheme 'https')" in message and "storageUris.allow" in message


def test_approvals_follow_the_namespace_label_read_from_the_api_server(cluster, webhook, refs):
    assert cluster.apply(isvc("approved", refs["kit-approved"], namespace="prod-1")).returncode == 0
    message = denial(cluster.apply(isvc("not-approved", refs["kit-signed"], namespace="prod-1")))
    assert "no approval by key approver" in message and "in environment prod" in message
    message = denial(cluster.apply(isvc("staging-label", refs["kit-approved"], namespace="prod-2")))
    assert "but not for environment staging" in message  # the label, not a name pattern, chose the environment


@pytest.mark.parametrize("sample, words", [
    ("config__runtimes__kserve-sklearnserver.yaml", "which is not in allowedRegistries"),
    ("multimodelserving__sklearn__trainedmodels.yaml", "cannot be verified by modelsign"),
    ("llmisvc__opt-125m-cpu__llm-inference-service-facebook-opt-125m-cpu.yaml", "cannot be verified by modelsign"),
])
def test_kserve_corpus_samples_are_checked_by_the_real_api_server(cluster, webhook, sample, words):
    documents = [d for d in yaml.safe_load_all((CORPUS / sample).read_text()) if d]
    for document in documents:
        if document["kind"] != "ClusterServingRuntime":
            document["metadata"]["namespace"] = "ml"
    assert words in denial(cluster.apply(documents))


# -- what kubectl does to existing objects ---------------------------------------------------


def test_debug_scale_set_image_restart_label_and_delete(cluster, webhook, refs):
    assert cluster.apply(workload("Deployment", "ops", refs["signed"])).returncode == 0
    assert cluster.apply(pod("ops", refs["signed"])).returncode == 0
    debug = cluster.kubectl("debug", "-n", "ml", "pod/ops", "--image", refs["unsigned"], "-c", "dbg-bad", "--attach=false")
    assert debug.returncode != 0 and "no signature by key ml-team" in debug.stderr
    debug = cluster.kubectl("debug", "-n", "ml", "pod/ops", "--image", refs["signed"], "-c", "dbg-ok", "--attach=false")
    assert debug.returncode == 0, debug.stderr
    ephemeral = stored(cluster, "pod", "ops")["spec"]["ephemeralContainers"]
    assert [e["image"] for e in ephemeral] == [f"{refs['signed']}@{refs['image-signed']}"]  # pinned through the subresource too
    assert cluster.kubectl("scale", "-n", "ml", "deployment/ops", "--replicas=3").returncode == 0
    set_image = cluster.kubectl("set", "image", "-n", "ml", "deployment/ops", f"c={refs['unsigned']}")
    assert set_image.returncode != 0 and "no signature by key ml-team" in set_image.stderr
    assert cluster.kubectl("rollout", "restart", "-n", "ml", "deployment/ops").returncode == 0  # artifacts unchanged
    assert cluster.kubectl("label", "-n", "ml", "pod/ops", "team=ml").returncode == 0
    assert cluster.kubectl("delete", "-n", "ml", "pod/ops", "--wait=false").returncode == 0


def test_pinning_is_idempotent_and_survives_a_moved_tag(cluster, webhook, refs):
    manifest = pod("moved", refs["other"])
    assert cluster.apply(manifest).returncode == 0
    first = stored(cluster, "pod", "moved")
    pinned = first["spec"]["containers"][0]["image"]
    assert pinned == f"{refs['other']}@{refs['image-other']}"
    # kubectl sends the tag again (live differs from the file), the webhook pins it to the
    # same digest, and the API server stores nothing new
    again = cluster.apply(manifest)
    assert again.returncode == 0, again.stderr
    assert stored(cluster, "pod", "moved")["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    already = cluster.apply(pod("already-pinned", pinned))  # a digest reference is left as it is
    assert already.returncode == 0 and stored(cluster, "pod", "already-pinned")["spec"]["containers"][0]["image"] == pinned
    with Stores() as stores:  # the tag now names something else, unsigned
        push_image(stores.repository(parse_reference(refs["other"])), {"f": b"moved"}, tag="1")
    assert stored(cluster, "pod", "moved")["spec"]["containers"][0]["image"] == pinned
    # applying the tag again now means the new content, which must pass on its own
    assert "no signature by key ml-team" in denial(cluster.apply(manifest))
    assert stored(cluster, "pod", "moved")["spec"]["containers"][0]["image"] == pinned


def test_a_namespace_labelled_exempt_is_never_sent_to_the_webhook(cluster, webhook, refs):
    assert cluster.apply(pod("free", refs["unsigned"], namespace="exempt-team")).returncode == 0
    assert not any(r["review"]["namespace"] == "exempt-team" for r in decision_records(webhook))


# -- the two audit logs point at each other ---------------------------------------------------


def test_the_api_servers_audit_event_and_modelsigns_record_name_each_other(cluster, webhook, refs):
    assert cluster.apply(pod("audited", refs["signed"])).returncode == 0
    deadline = time.monotonic() + 10
    event = None
    while event is None and time.monotonic() < deadline:
        event = next((e for e in cluster.audit_events() if e.get("stage") == "ResponseComplete" and e["verb"] == "create"
                      and e.get("objectRef", {}).get("resource") == "pods" and e.get("objectRef", {}).get("name") == "audited"), None)
        time.sleep(0.2)
    assert event is not None, "the API server recorded the create"
    annotations = event["annotations"]
    writer, seq = annotations[f"{VALIDATING}/audit-record"].split("#")
    entry = next(e for e in records(webhook.log_dir) if e["writer"] == writer and e["seq"] == int(seq))
    assert entry["record"]["decision"]["id"] == annotations[f"{VALIDATING}/decision-id"]
    assert annotations[f"{VALIDATING}/decision"] == "allow" and entry["record"]["review"]["name"] == "audited"
    assert annotations[f"{MUTATING}/pinned"] == "1"
    # ...and back: from modelsign's record to the Kubernetes event, by the decision id
    back = [e for e in cluster.audit_events() if e.get("annotations", {}).get(f"{VALIDATING}/decision-id") == entry["record"]["decision"]["id"]]
    assert [e["auditID"] for e in back] == [event["auditID"]]
    pinned = next(e["record"] for e in records(webhook.log_dir) if e["record"]["type"] == "pinning"
                  and e["record"]["pinningId"] == annotations[f"{MUTATING}/pinning-id"])
    assert pinned["pinned"][0]["to"].endswith(refs["image-signed"])


# -- failure modes ------------------------------------------------------------------------------


def test_a_webhook_that_is_down_fails_closed(cluster, webhook, refs):
    register(cluster, f"https://127.0.0.1:{free_port()}", (webhook.workdir / "certs" / "ca.crt").read_bytes())  # nothing listens there
    try:
        result = cluster.apply(pod("nobody-home", refs["signed"]))
    finally:
        register(cluster, webhook.server.url, (webhook.workdir / "certs" / "ca.crt").read_bytes())
    assert result.returncode != 0 and "failed calling webhook" in result.stderr and "connection refused" in result.stderr, result.stderr
    assert cluster.kubectl("get", "pod", "nobody-home", "-n", "ml").returncode != 0


def test_a_webhook_slower_than_the_api_servers_timeout_fails_closed(cluster, webhook, refs):
    """A registry that never answers keeps modelsign busy past the API server's 1 s timeout."""
    hanging = BlackHole()
    register(cluster, webhook.server.url, (webhook.workdir / "certs" / "ca.crt").read_bytes(), timeout_seconds=1)
    try:
        result = cluster.apply(pod("too-slow", f"{hanging.host}/apps/x:1"))
    finally:
        register(cluster, webhook.server.url, (webhook.workdir / "certs" / "ca.crt").read_bytes())
        hanging.stop()
    assert result.returncode != 0 and ("context deadline exceeded" in result.stderr or "timeout" in result.stderr.lower()), result.stderr
    assert cluster.kubectl("get", "pod", "too-slow", "-n", "ml").returncode != 0


def test_a_policy_reloaded_while_kubectl_runs_never_breaks_an_answer(cluster, webhook, refs, key_dir, approver):
    policy_file = webhook.workdir / "policy.yaml"
    original = policy_file.read_text()
    answers: list[subprocess.CompletedProcess] = []
    stop = threading.Event()

    def applying() -> None:
        number = 0
        while not stop.is_set():
            answers.append(cluster.apply(pod(f"reload-{number}", refs["unsigned"]), "--dry-run=server"))
            number += 1

    thread = threading.Thread(target=applying)
    thread.start()
    try:
        for mode in ("warn", "enforce", "warn", "enforce"):
            policy_file.write_text(policy_text(key_dir, approver, cluster, f"mode: {mode}"))
            time.sleep(1.2)  # the webhook looks for changes every 0.5 s
    finally:
        stop.set()
        thread.join()
        policy_file.write_text(original)
        time.sleep(1.2)
    assert len(answers) >= 5
    for answer in answers:  # each is one policy's answer: admitted with a warning, or denied with the reason
        if answer.returncode == 0:
            assert "modelsign would deny (warn mode)" in answer.stderr, answer.stderr
        else:
            assert "no signature by key ml-team" in denial(answer)
    assert any(a.returncode == 0 for a in answers) and any(a.returncode != 0 for a in answers)


def test_namespace_labels_are_read_once_per_cache_period_and_a_refusal_denies(cluster, refs, key_dir, approver):
    """The pipeline reads labels through the kubernetes client from the real API server: once
    per `labelCacheSeconds` (counted in the API server's own audit log), and an API server that
    refuses (RBAC) is a deny that says which permission is missing."""
    from webhook.admission.config import parse_policy
    from webhook.admission.pipeline import AdmissionPipeline
    from webhook.admission.review import parse_review
    from support.admission import review as admission_review

    cluster.create_namespace("prod-cached", {"modelsign.dev/environment": "prod"})
    pipeline = AdmissionPipeline(parse_policy(policy_text(key_dir, approver, cluster), source="cluster"))
    try:
        for uid in ("one", "two", "three"):
            decision = pipeline.decide(parse_review(admission_review("InferenceService", isvc("x", refs["kit-approved"]), namespace="prod-cached", uid=uid)))
            assert decision.allowed, decision.message
    finally:
        pipeline.close()
    reads = [e for e in cluster.audit_events() if e.get("stage") == "ResponseComplete" and e["verb"] == "get"
             and e.get("objectRef", {}).get("resource") == "namespaces" and e.get("objectRef", {}).get("name") == "prod-cached"
             and not e.get("userAgent", "").startswith("kubectl")]  # kubectl apply read it too, creating it
    assert len(reads) == 1 and reads[0]["user"]["username"] == "admin"
    refused = AdmissionPipeline(parse_policy(policy_text(key_dir, approver, cluster).replace(str(cluster.kubeconfig), str(cluster.unprivileged_kubeconfig)),
                                             source="cluster"))
    try:
        decision = refused.decide(parse_review(admission_review("InferenceService", isvc("x", refs["kit-approved"]), namespace="prod-1")))
    finally:
        refused.close()
    assert not decision.allowed and decision.outcome == "error"
    assert "cannot read labels of namespace prod-1: HTTP 403" in decision.message and "get on namespaces" in decision.message


def _kserve_object(kind: str, name: str, uri: str) -> dict:
    """A minimal object of each KServe kind naming `uri` as its model (or image, for runtimes)."""
    metadata = {"name": name} if kind == "ClusterServingRuntime" else {"name": name, "namespace": "prod-1"}
    if kind == "InferenceService":
        return isvc(name, uri, namespace="prod-1")
    if kind == "TrainedModel":
        return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind, "metadata": metadata,
                "spec": {"inferenceService": "parent", "model": {"framework": "sklearn", "storageUri": uri, "memory": "1Gi"}}}
    if kind == "LLMInferenceService":
        return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": {"model": {"uri": uri, "name": name}}}
    # ServingRuntime / ClusterServingRuntime: the runtime's container, with the model in STORAGE_URI
    image = uri.removeprefix("kit://") if uri.startswith("kit://") else uri
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind, "metadata": metadata,
            "spec": {"supportedModelFormats": [{"name": "sklearn", "version": "1"}],
                     "containers": [{"name": "kserve-container", "image": image, "env": [{"name": "STORAGE_URI", "value": uri}]}]}}


@pytest.mark.parametrize("kind", ["InferenceService", "TrainedModel", "LLMInferenceService", "ServingRuntime", "ClusterServingRuntime"])
@pytest.mark.parametrize("variant, words", [
    ("kit-approved", None), ("kit-unsigned", "no signature by key ml-team"), ("kit-signed", "no approval by key approver"),
    ("disallowed", "which is not in allowedRegistries"),
])
def test_every_kserve_kind_with_signed_unsigned_unapproved_and_disallowed_models(cluster, webhook, refs, kind, variant, words):
    """prod-1 needs an approval for models/**: approved passes, signed-but-unapproved and unsigned
    are denied, and a registry not on the list is denied before anything is fetched."""
    uri = "kit://docker.io/library/model:1" if variant == "disallowed" else refs[variant]
    name = f"{kind.lower()}-{variant}"
    result = cluster.apply(_kserve_object(kind, name, uri))
    if kind == "ClusterServingRuntime" and variant == "kit-signed":
        words = None  # cluster-scoped: namespace "", which the prod-* approval rule does not cover
    if words is None:
        assert result.returncode == 0, result.stderr
    else:
        assert words in denial(result)
