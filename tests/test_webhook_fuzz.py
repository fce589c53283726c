"""Property-based fuzzing of POST /validate with random and mutated AdmissionReviews:
no 5xx, no exception escapes, and every answer is a valid AdmissionReview or a 400."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from conftest import FIXTURES
from test_webhook_extract import _review_body
from webhook.admission.review import API_VERSIONS
from webhook.server.app import Settings, create_app

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
SEEDS = [json.loads(_review_body(path)) for path in sorted((FIXTURES / "admissionreview").iterdir())]
SEEDS = [seed for seed in SEEDS if isinstance(seed, dict) and isinstance(seed.get("request"), dict)]
INTERESTING = ["Pod", "Deployment", "CronJob", "InferenceService", "ServingRuntime", "TrainedModel", "LLMInferenceService", 5, None]


@pytest.fixture(scope="module")
def client(tmp_path_factory, key_dir):
    workdir = tmp_path_factory.mktemp("fuzz")
    policy = workdir / "policy.yaml"
    policy.write_text(f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*", "docker.io"]
deadlineSeconds: 2
registry: {{timeoutSeconds: 0.5, retries: 0}}
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
rules:
  - name: all
    require: {{signedBy: [ml-team]}}
""")
    app = create_app(Settings(policy_path=policy), watch=False)
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def check_answer(response) -> None:
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    body = response.json()
    if response.status_code == 400:
        assert isinstance(body.get("error"), str)
        return
    assert body["kind"] == "AdmissionReview" and body["apiVersion"] in API_VERSIONS
    assert isinstance(body["response"]["uid"], str) and isinstance(body["response"]["allowed"], bool)
    if not body["response"]["allowed"]:
        assert body["response"]["status"]["message"]


def mutate(document, rng: random.Random, value):
    """Replace, delete or retype one random node of `document`."""
    document = json.loads(json.dumps(document))
    nodes = []

    def walk(node, path):
        nodes.append(path)
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, path + [key])
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, path + [index])

    walk(document, [])
    path = rng.choice(nodes[1:]) if len(nodes) > 1 else []
    if not path:
        return value
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    action = rng.random()
    if action < 0.3 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action < 0.5 and path[-1] in ("kind", "image", "storageUri", "uri"):
        parent[path[-1]] = rng.choice(INTERESTING + ["127.0.0.1:1/x:1", "kit://127.0.0.1:1/m:1", "gs://b/m", "UPPER/Case", "a" * 300])
    else:
        parent[path[-1]] = value
    return document


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=json_values)
def test_random_json_bodies(client, body):
    check_answer(client.post("/validate", content=json.dumps(body)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), value=json_values, rng=st.randoms(use_true_random=False), rounds=st.integers(min_value=1, max_value=4))
def test_mutated_corpus_reviews(client, seed, value, rng, rounds):
    document = seed
    for _ in range(rounds):
        document = mutate(document, rng, value)
    check_answer(client.post("/validate", content=json.dumps(document)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2000))
def test_random_bytes(client, raw):
    check_answer(client.post("/validate", content=raw))
