"""The real OPA (`opa`, built by .ci/peers) and the project's Rego: `opa test`, `opa check
--strict`, and the same decisions as the embedded engine on every corpus object."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES
from support.admission import policy_for, review
from support.cluster import require_peer
from support.opa_server import start_opa
from webhook.admission.config import parse_policy
from webhook.admission.engine.engines import OpaEngine, RegoEngine
from webhook.admission.extract import KNOWN_KINDS
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review

pytestmark = pytest.mark.peers
POLICIES = Path(__file__).resolve().parents[1] / "policies"


def test_opa_runs_the_rego_unit_tests_and_the_strict_check():
    opa = str(require_peer("opa"))
    tested = subprocess.run([opa, "test", str(POLICIES), "-v"], capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0 and "FAIL" not in tested.stdout, tested.stdout + tested.stderr
    assert tested.stdout.count(": PASS") >= 10
    checked = subprocess.run([opa, "check", "--strict", str(POLICIES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _corpus_reviews() -> list[tuple[str, bytes]]:
    """An AdmissionReview for every corpus object of a kind modelsign checks (KServe samples,
    and the objects of the corpus AdmissionReviews)."""
    reviews = []
    for path in sorted((FIXTURES / "kserve").glob("*.yaml")):
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue  # the deliberately broken samples: their own tests
        reviews += [(f"{path.name}#{i}", review(d["kind"], d)) for i, d in enumerate(documents) if d.get("kind") in KNOWN_KINDS]
    for path in sorted((FIXTURES / "admissionreview").glob("*.json")):
        try:
            body = json.loads(path.read_text())
            parse_review(json.dumps(body).encode())
        except Exception:  # noqa: BLE001 - the corpus's broken reviews are tested elsewhere
            continue
        reviews.append((path.name, json.dumps(body).encode()))
    return reviews


@pytest.fixture(scope="module")
def engines(key_dir, tmp_path_factory):
    # Nothing is fetched: no corpus registry is allowed (every image is "registry-not-allowed"),
    # some storage schemes are, so both engines walk every rule the corpus can reach.
    policy = parse_policy(policy_for(key_dir, 'storageUris: {allow: ["pvc://**", "gs://kfserving-examples/**"]}\nrequireDigest: true',
                                     registries="[]"), source="differential")
    server = start_opa(tmp_path_factory.mktemp("opa"))
    rego = AdmissionPipeline(policy, engine=RegoEngine(policy.rego_sources, policy.data_document()))
    opa = AdmissionPipeline(policy, engine=OpaEngine(server.url, "modelsign/decision", 2.0, policy.rego_sources, policy.data_document()))
    yield rego, opa
    rego.close()
    opa.close()
    server.stop()


@pytest.mark.parametrize("name, body", _corpus_reviews(), ids=lambda value: value if isinstance(value, str) else "")
def test_embedded_rego_and_the_opa_server_decide_every_corpus_object_alike(engines, name, body):
    rego, opa = engines
    embedded, server = (pipeline.decide(parse_review(body)) for pipeline in engines)
    assert (embedded.allowed, embedded.outcome, embedded.reason) == (server.allowed, server.outcome, server.reason), name
    key = lambda v: (v["source"], v["code"])  # noqa: E731
    assert sorted(embedded.violations, key=key) == sorted(server.violations, key=key), name
    assert embedded.message == server.message


def _governed_artifact(evidence: dict) -> dict:
    base = {"registryAllowed": True, "digest": "sha256:" + "1" * 64, "error": None, "rejected": [], "rejectedCount": 0, "scans": [],
            "signatures": [{"signer": "ml-team", "keyId": "k", "form": "legacy", "annotations": {}, "names": ["r.example.com/m"], "nameMatches": True}],
            "approvals": [], "evaluations": [], "attestations": [], "attestationsRejected": []}
    return {"source": "spec.containers[0].image", "value": 'r.example.com/m:1', "role": "image", "kind": "oci", "problem": None, "scheme": "",
            "name": "r.example.com/m", "registry": "r.example.com", "tag": "1", "pinnedByDigest": False, "signedNames": [],
            "evidence": {**base, **evidence}}


def _evaluation(metrics: dict, age: int = 60, signer: str = "ml-team") -> dict:
    return {"id": "sha256:" + "e" * 64, "signer": signer, "keyId": "k", "evaluator": 'ci "quoted" \\ 100%', "evaluatedAt": "2026-11-01T00:00:00Z",
            "ageSeconds": age, "dataset": "holdout\x01", "datasetDigest": None, "metrics": metrics, "metricCount": len(metrics)}


def _approval(decision: str, at: str, status: str) -> dict:
    return {"id": at, "signer": "ml-team", "keyId": "k", "identity": "", "decision": decision, "environment": "prod", "namespaces": ["*"],
            "approver": "alice", "requester": "bob", "ticket": "CHG-1", "status": status, "requestId": "", "reason": 'bias "72%"\n',
            "approvedAt": at, "notBefore": at, "expiresAt": None, "expiresInSeconds": None, "approverId": "k"}


GOVERNED_EVIDENCE = [
    {"evaluations": [_evaluation({"accuracy": 0.95, "latency_p95_ms": 100})]},
    {"evaluations": [_evaluation({"accuracy": 0.85, "latency_p95_ms": 180})]},
    {"evaluations": [_evaluation({"accuracy": 0.95})]},
    {"evaluations": [_evaluation({"accuracy": 0.95, "latency_p95_ms": 100}, age=10**7)]},
    {"evaluations": [_evaluation({"accuracy": 0.95, "latency_p95_ms": 100}, signer="other")],
     "attestationsRejected": [{"type": "https://modelsign.dev/attestation/evaluation/v1", "location": 'x"%\\', "reason": "malformed"}]},
    {"evaluations": [_evaluation({"accuracy": 0.95, "latency_p95_ms": 100})],
     "approvals": [_approval("approved", "2026-11-01T00:00:00Z", "rejected"), _approval("rejected", "2026-11-02T00:00:00Z", "rejection")]},
    {"evaluations": [_evaluation({"accuracy": 0.95, "latency_p95_ms": 100})],
     "attestations": [{"type": "https://example.com/card/v1", "id": "sha256:c", "signer": "ml-team", "keyId": "k", "predicate": {'li"c\\%': ["\x00"]}}]},
]


def test_both_engines_decide_evaluations_rejections_and_named_attestations_alike(key_dir, tmp_path):
    policy = parse_policy(policy_for(key_dir, """  - name: governed
    namespaces: ["prod-*"]
    require:
      evaluation: {signedBy: [ml-team], maxAge: 1d, metrics: {accuracy: {min: 0.9}, latency_p95_ms: {max: 150}}}
      approval: {signedBy: [ml-team], environment: prod}
      attestations: [{type: "https://example.com/card/v1", signedBy: [ml-team]}]
""", registries='["r.example.com"]'), source="differential-governed")
    server = start_opa(tmp_path)
    rego = RegoEngine(policy.rego_sources, policy.data_document())
    opa = OpaEngine(server.url, "modelsign/decision", 5.0, policy.rego_sources, policy.data_document())
    try:
        seen = set()
        for evidence in GOVERNED_EVIDENCE:
            policy_input = {"request": {"uid": "u", "namespace": "prod-1", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"}},
                            "artifacts": [_governed_artifact(evidence)]}
            embedded, peer = rego.decide(policy_input), opa.decide(policy_input)
            key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
            assert sorted(embedded.violations, key=key) == sorted(peer.violations, key=key)
            assert all(v["value"] == "r.example.com/m:1" for v in embedded.violations)  # details never overwrite the artifact
            seen.update(v["code"] for v in embedded.violations)
        assert {"evaluation-above-max", "evaluation-below-min", "evaluation-metric-missing", "evaluation-too-old", "evaluation-missing",
                "approval-rejected", "approval-missing", "attestation-missing"} <= seen
    finally:
        server.stop()
