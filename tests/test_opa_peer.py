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
