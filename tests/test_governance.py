"""Governance as users bring it from the KitOps guide (issue 12): the security policy as written
(`policy convert`, a ConfigMap for `--config`, `policy validate`), approval requests with
states, evaluation gates, and predicates of a team's own reaching its own Rego rule.

Statements are signed and pushed to a real registry, read back and verified by the admission
pipeline, and decided by the embedded Rego engine."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, PASSWORD, run_cli
from signer.evidence.approvals import approval_predicate
from signer.evidence.evaluations import evaluation_facts, evaluation_predicate
from signer.evidence.requests import request_facts, request_predicate
from signer.formats import mediatypes as mt
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.attestations import attest
from signer.signatures.signing import sign_artifact
from signer.signatures.verification import VerifiedAttestation
from signer.trust.keys import generate_key_pair, load_signing_key_file
from support.admission import pod, review
from support.webhook_server import start_webhook
from webhook.admission.config import default_rego_sources, load_policy, parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review
from webhook.certs import generate

SEED = FIXTURES / "governance" / "security-policy.yaml"
REPO_ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(timezone.utc)
PEOPLE = ("eval-ci", "requester", "approver-a", "approver-b")
GOOD = {"performance": {"accuracy": 0.93, "latency_p95_ms": 120, "memory_mb": 2048},
        "fairness": {"demographic_parity": 0.86, "equalized_odds": 0.91, "fairness_score": 0.88},
        "dataset": "holdout-2026-10", "evaluator": "eval-ci"}
CARD = "https://example.com/model-card/v1"


# -- 1. the policy as written ------------------------------------------------------------------


def test_the_seed_policy_converts_with_a_line_by_line_report(capsys, tmp_path):
    seed = shutil.copy(SEED, tmp_path / "security-policy.yaml")
    code, out, err = run_cli(capsys, "policy", "convert", seed)
    assert code == 0, err
    lines = out.splitlines()
    # each finding names the line of the ConfigMap file, its status, the field and the value
    assert "  line 12  NEEDS INPUT    security.signing.trusted_keys[0]: ai-team@company.com" in lines
    assert "  line 16  MAPPED         security.scanning.vulnerability_threshold: HIGH" in lines
    assert "  line 17  NO EQUIVALENT  security.scanning.scan_on_push: True" in lines
    assert "  line 26  MAPPED         security.audit.retention_days: 90" in lines
    assert "needs an OIDC issuer" not in out  # the text says what to do instead:
    assert "--oidc-issuer ai-team@company.com=ISSUER" in out and "HIGH and above are denied" in out
    assert "--audit-retention-days 90" in out and "no admission meaning" in out
    assert "3 item(s) need you before the policy loads" in out
    written = tmp_path / "security-policy.admission-policy.yaml"
    policy = yaml.safe_load(written.read_text())
    assert policy["allowedRegistries"] == ["company-registry.com", "staging-registry.com"]
    assert policy["trustedKeys"]["ai-team"] == {"keyless": {"subject": "ai-team@company.com"}}
    assert policy["rules"][0]["require"]["scan"]["maxSeverity"] == {"CRITICAL": 0, "HIGH": 0}
    assert "# TODO line 12 security.signing.trusted_keys[0]" in written.read_text()
    # what needs input is left out, so the written policy does not load until it is supplied
    code, out, _ = run_cli(capsys, "policy", "validate", written)
    assert code == 1 and f"{written}:20: trustedKeys.ai-team.keyless: needs issuer or issuerRegExp" in out


def test_the_seed_converts_completely_with_issuers_and_a_scanner_key(capsys, tmp_path, key_dir):
    inner = tmp_path / "policy.yaml"  # the ConfigMap's inner file converts the same
    inner.write_text(yaml.safe_load(SEED.read_text())["data"]["policy.yaml"])
    out_file = tmp_path / "admission.yaml"
    code, out, err = run_cli(capsys, "policy", "convert", inner, "--out", out_file, "--oidc-issuer", "https://accounts.google.com",
                             "--scanner-key", key_dir / "other-team.pub", "--output", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["complete"] is True and report["written"] == str(out_file)
    assert report["policy"]["trustedKeys"]["mlops-team"] == {"keyless": {"subject": "mlops-team@company.com", "issuer": "https://accounts.google.com"}}
    assert {(f["line"], f["status"]) for f in report["findings"] if f["path"] == "security.signing.trusted_keys[1]"} == {(6, "mapped")}
    code, out, _ = run_cli(capsys, "policy", "validate", out_file)
    assert code == 0 and "valid (policy kitops-security-policy, 1 rule(s)" in out
    code, _, err = run_cli(capsys, "policy", "convert", inner, "--out", out_file)
    assert code == 2 and "exists" in err and "--force" in err


def test_misspelt_kitops_fields_are_reported_with_a_suggestion(capsys, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("security:\n  signing:\n    requried: true\n    trusted_keys: [ml-team]\n  scanning:\n    vulnerability_threshold: HIHG\n")
    code, out, err = run_cli(capsys, "policy", "convert", path)
    assert code == 0, err
    assert "security.signing.requried: True" in out and "(did you mean required?)" in out
    assert "not a severity (did you mean HIGH?)" in out
    assert "a key name, not a key: written as trustedKeys.ml-team {file: keys/ml-team.pub}" in out
    path.write_text("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\n")
    code, _, err = run_cli(capsys, "policy", "convert", path, "--force")
    assert code == 2 and "is not a KitOps security policy" in err


def test_check_given_the_kitops_policy_says_to_convert_it(capsys, tmp_path):
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod("company-registry.com/app:1")))
    code, _, err = run_cli(capsys, "check", "-f", manifest, "--config", SEED)
    assert code == 2 and "is a KitOps security policy, not a modelsign AdmissionPolicy" in err
    assert f"modelsign policy convert {SEED}" in err
    code, out, _ = run_cli(capsys, "policy", "validate", SEED)
    assert code == 1 and "is a KitOps security policy" in out and "modelsign policy convert" in out


SHIPPED = REPO_ROOT / "manifests" / "base" / "policy-configmap.yaml"


def _shipped_keys(tmp_path: Path, key_dir: Path) -> Path:
    """A stand-in for the Secret's mount (/etc/modelsign/keys): a public key under each file
    name the shipped policy names."""
    keys = tmp_path / "keys"
    keys.mkdir()
    inner = yaml.safe_load(yaml.safe_load(SHIPPED.read_text())["data"]["policy.yaml"])
    for key in inner["trustedKeys"].values():
        shutil.copy(key_dir / "ml-team.pub", keys / Path(key["file"]).name)
    return keys


def test_the_shipped_configmap_is_a_config(capsys, tmp_path, key_dir):
    shipped = SHIPPED
    keys = _shipped_keys(tmp_path, key_dir)
    policy = load_policy(shipped, key_dir=keys)
    assert policy.name == "default" and policy.spec.rules and "ml-team" in policy.spec.trusted_keys
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod("elsewhere.example.com/app:1")))
    code, out, err = run_cli(capsys, "check", "-f", manifest, "--config", shipped, "--key-dir", keys)
    assert code == 1 and "is from registry elsewhere.example.com, which is not in allowedRegistries" in out, out + err
    code, out, _ = run_cli(capsys, "policy", "validate", shipped, "--key-dir", keys)
    assert code == 0 and "valid (policy default" in out


def test_the_webhook_serves_the_shipped_configmap(tmp_path, key_dir):
    keys = _shipped_keys(tmp_path, key_dir)
    generate("modelsign-webhook", "modelsign-system", tmp_path / "certs", extra_sans=["127.0.0.1"])
    server = start_webhook(SHIPPED, tmp_path / "certs", tmp_path, workers=1, extra=["--key-dir", str(keys)])
    try:
        with server.client() as client:
            ready = client.get("/readyz").json()
            answer = client.post("/validate", content=review("Pod", pod("elsewhere.example.com/app:1"))).json()["response"]
        assert ready["policy"] == "default", ready
        assert answer["allowed"] is False and "not in allowedRegistries" in answer["status"]["message"]
    finally:
        server.stop()


def test_configmap_errors_name_the_line_of_the_configmap_file(capsys, tmp_path):
    broken = tmp_path / "cm.yaml"
    broken.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\ndata:\n  policy.yaml: |\n"
                      "    apiVersion: modelsign.dev/v1alpha1\n    kind: AdmissionPolicy\n    mode: enforce\n    mode: warn\n")
    code, out, _ = run_cli(capsys, "policy", "validate", broken)
    assert code == 1 and f"{broken} is not valid YAML at line 9, column 5: duplicate key 'mode' (first given at line 3)" in out
    broken.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p}\ndata:\n  other.txt: x\n")
    code, out, _ = run_cli(capsys, "policy", "validate", broken)
    assert code == 1 and "ConfigMap data has 0 YAML keys" in out


def test_validate_suggests_fields_values_and_key_names(capsys, tmp_path, key_dir):
    path = tmp_path / "p.yaml"
    path.write_text(f"""apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
mode: enfroce
allowedRegistries: [r.example.com]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
rules:
  - name: r
    require:
      sigendBy: [ml-team]
      evaluation: {{signedBy: [ml-team], metrics: {{accuracy: {{minimum: 0.9}}}}}}
""")
    code, out, _ = run_cli(capsys, "policy", "validate", path, "--output", "json")
    errors = json.loads(out)["errors"]
    assert code == 1
    assert f"{path}:3: mode: Input should be 'enforce' or 'warn' (did you mean enforce?)" in errors
    assert f"{path}:10: rules[0].require.sigendBy: unknown field (did you mean signedBy?)" in errors
    assert f"{path}:11: rules[0].require.evaluation.metrics.accuracy.minimum: unknown field (did you mean min?)" in errors
    path.write_text(path.read_text().replace("enfroce", "enforce").replace("sigendBy: [ml-team]", "signedBy: [ml-teem]")
                    .replace("minimum", "min"))
    code, out, _ = run_cli(capsys, "policy", "validate", path)
    assert code == 1 and "rules[0].require.signedBy[0]: unknown key 'ml-teem' (did you mean ml-team?)" in out


# -- 2 and 3: requests, evaluations, admission ---------------------------------------------------


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("governance-keys")
    for name in PEOPLE:
        generate_key_pair(directory / name, PASSWORD.encode())
    return directory


def _key(people: Path, name: str):
    return load_signing_key_file(people / f"{name}.key", password=lambda _: PASSWORD.encode())


EVALUATED_RULE = """  - name: evaluated
    require:
      evaluation: {signedBy: [eval-ci], maxAge: 30d, metrics: {accuracy: {min: 0.9}, latency_p95_ms: {max: 150}, demographic_parity: {min: 0.8}}}
"""


def _policy(key_dir: Path, people: Path, extra_rules: str = EVALUATED_RULE) -> str:
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: governed}}
allowedRegistries: ["127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
  eval-ci: {{file: {people / 'eval-ci.pub'}}}
  approver-a: {{file: {people / 'approver-a.pub'}}}
  approver-b: {{file: {people / 'approver-b.pub'}}}
  requester: {{file: {people / 'requester.pub'}}}
rules:
  - name: signed
    require: {{signedBy: [ml-team]}}
  - name: prod-approved
    namespaces: ["prod-*"]
    require:
      approval: {{signedBy: [approver-a, approver-b], environment: prod}}
{extra_rules}"""


def _image(registry, ml_key, name: str) -> str:
    """A signed image in the registry; its pinned reference."""
    reference = parse_reference(f"{registry.host}/governance/{name}:1")
    with Stores() as stores:
        digest = push_image(stores.repository(reference), {"app/model.txt": name.encode()}, tag="1").digest
        sign_artifact(stores, reference, ml_key)
    return f"{registry.host}/governance/{name}@{digest}"


def _attach(pinned: str, key, predicate_type: str, predicate) -> None:
    with Stores() as stores:
        attest(stores, parse_reference(pinned), key, predicate_type, predicate)


def _decide(policy_text: str, image: str, namespace: str = "prod-1", rego: dict[str, str] | None = None):
    pipeline = AdmissionPipeline(parse_policy(policy_text, source="governed.yaml", rego_sources=rego))
    try:  # a fresh pipeline each time: no cached evidence from before the last statement
        return pipeline.decide(parse_review(review("Pod", pod(image), namespace=namespace)))
    finally:
        pipeline.close()


def _metrics_file(tmp_path: Path, name: str, document: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_a_request_from_pending_through_rejection_to_approval_and_admission(capsys, tmp_path, registry, ml_key, key_dir, people):
    image = _image(registry, ml_key, "fraud")
    policy = _policy(key_dir, people)
    unfair = {**GOOD, "fairness": {**GOOD["fairness"], "demographic_parity": 0.72}}
    code, out, err = run_cli(capsys, "evaluate", image, "--key", people / "eval-ci.key", "--metrics", _metrics_file(tmp_path, "m1.json", unfair))
    assert code == 0, err
    assert "demographic_parity 0.72" in out
    evaluation_id = out.split("  id ")[1].split()[0]

    denied = _decide(policy, image)
    assert not denied.allowed, denied.message
    assert sorted(v["code"] for v in denied.violations) == ["approval-missing", "evaluation-below-min"], denied.message
    below = next(v for v in denied.violations if v["code"] == "evaluation-below-min")
    assert (below["metric"], below["actual"], below["min"]) == ("demographic_parity", 0.72, 0.8)
    assert "has demographic_parity 0.72; rule evaluated requires at least 0.8" in denied.message

    code, out, err = run_cli(capsys, "approval", "request", image, "--key", people / "requester.key", "--requester", "data-scientist",
                             "--environment", "prod", "--namespace", "prod-*", "--approver", "mlops-lead", "--approver", "risk-officer",
                             "--approvals", "1", "--ticket", "CHG-2001", "--evidence-key", people / "eval-ci.pub", "--output", "json")
    assert code == 0, err
    request_id = json.loads(out)["statement_digest"]
    listed = _listing(capsys, image, people)
    [request] = listed["requests"]
    assert (request["state"], request["required"], request["approvers"]) == ("PENDING", 1, ["mlops-lead", "risk-officer"])
    assert request["evidence"] == [{"type": "evaluation", "id": evaluation_id}]

    # the requester never answers their own request; an approver not named cannot either
    code, _, err = run_cli(capsys, "approval", "approve", image, "--key", people / "requester.key", "--approver", "data-scientist",
                           "--request", request_id[:19], "--requester-key", people / "requester.pub")
    assert code == 2 and "data-scientist asked for this approval" in err
    code, _, err = run_cli(capsys, "approval", "approve", image, "--key", people / "approver-b.key", "--approver", "mallory",
                           "--request", request_id[:19], "--requester-key", people / "requester.pub")
    assert code == 2 and "mallory is not among the approvers" in err
    code, _, err = run_cli(capsys, "approval", "reject", image, "--key", people / "approver-a.key", "--approver", "mlops-lead",
                           "--request", request_id[:19], "--requester-key", people / "requester.pub")
    assert code == 2 and "--reason" in err

    code, out, err = run_cli(capsys, "approval", "reject", image, "--key", people / "approver-a.key", "--approver", "mlops-lead",
                             "--request", request_id[:19], "--requester-key", people / "requester.pub",
                             "--reason", "demographic parity 0.72 is below 0.8", "--output", "json")
    assert code == 0, err
    rejected_at = json.loads(out)["predicate"]["approvedAt"]
    [request] = _listing(capsys, image, people)["requests"]
    assert request["state"] == "REJECTED" and [e["action"] for e in request["history"]] == ["requested", "rejected"]

    _after(rejected_at)  # stamped to the second: the new evaluation (and the approval) must come after the first one
    run_cli(capsys, "evaluate", image, "--key", people / "eval-ci.key", "--metrics", _metrics_file(tmp_path, "m2.json", GOOD))
    rejected = _decide(policy, image)
    assert [v["code"] for v in rejected.violations] == ["approval-rejected"]
    assert "was rejected for environment prod by mlops-lead (key approver-a)" in rejected.message
    assert "demographic parity 0.72 is below 0.8" in rejected.message
    assert _decide(policy, image, namespace="staging").allowed  # a rejection is for its environment

    code, _, err = run_cli(capsys, "approval", "approve", image, "--key", people / "approver-b.key", "--approver", "risk-officer",
                           "--request", request_id[:19], "--requester-key", people / "requester.pub", "--reason", "re-evaluated")
    assert code == 0, err
    admitted = _decide(policy, image)
    assert admitted.allowed, admitted.message
    [request] = _listing(capsys, image, people)["requests"]
    assert request["state"] == "APPROVED" and [e["action"] for e in request["history"]] == ["requested", "rejected", "approved"]
    code, out, _ = run_cli(capsys, "approvals", "list", image, "--key", people / "requester.pub", "--key", people / "approver-a.pub",
                           "--key", people / "approver-b.pub")
    assert "APPROVED  request " + request_id[:19] in out
    assert "REJECTED  by mlops-lead (key approver-a): demographic parity 0.72 is below 0.8" in out
    assert "APPROVED  by risk-officer (key approver-b), until " in out


def _after(stamp: str) -> None:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    time.sleep(max((moment - datetime.now(timezone.utc)).total_seconds() + 1.05, 0))


def _listing(capsys, image: str, people: Path) -> dict:
    code, out, err = run_cli(capsys, "approvals", "list", image, "--key", people / "requester.pub", "--key", people / "approver-a.pub",
                             "--key", people / "approver-b.pub", "--output", "json")
    assert code == 0, err
    return json.loads(out)


def test_request_states_expired_revoked_and_two_approvers(capsys, registry, ml_key, key_dir, people):
    image = _image(registry, ml_key, "states")
    requester, a, b = (_key(people, n) for n in ("requester", "approver-a", "approver-b"))
    past = NOW - timedelta(days=40)
    old = request_predicate(environment="staging", namespaces=[], requester="bob", approvers=[], count=1, ticket="CHG-1",
                            lifetime_seconds=86400, now=past)
    _attach(image, requester, mt.APPROVAL_REQUEST_PREDICATE, old)
    two = request_predicate(environment="prod", namespaces=["prod-*"], requester="bob", approvers=[], count=2, ticket="CHG-2",
                            lifetime_seconds=86400, now=NOW - timedelta(minutes=5))
    _attach(image, requester, mt.APPROVAL_REQUEST_PREDICATE, two)
    listed = _listing(capsys, image, people)
    ids = {r["ticket"]: r["id"] for r in listed["requests"]}
    _attach(image, a, mt.APPROVAL_PREDICATE, approval_predicate(decision="approved", environment="staging", namespaces=["*"], approver="alice",
                                                                requester="bob", ticket="CHG-1", now=past + timedelta(hours=1),
                                                                expires_in_seconds=86400, request_id=ids["CHG-1"]))
    _attach(image, a, mt.APPROVAL_PREDICATE, approval_predicate(decision="approved", environment="prod", namespaces=["prod-*"], approver="alice",
                                                                requester="bob", ticket="CHG-2", expires_in_seconds=86400,
                                                                request_id=ids["CHG-2"]))
    states = {r["ticket"]: r for r in _listing(capsys, image, people)["requests"]}
    assert states["CHG-1"]["state"] == "EXPIRED" and states["CHG-1"]["history"][-1]["action"] == "expired"
    assert (states["CHG-2"]["state"], states["CHG-2"]["approvals"]) == ("PENDING", 1)  # two distinct approvers needed
    # the requester approving under another key still never counts
    _attach(image, b, mt.APPROVAL_PREDICATE, approval_predicate(decision="approved", environment="prod", namespaces=["prod-*"], approver="bob",
                                                                requester="bob", ticket="CHG-2", expires_in_seconds=86400,
                                                                request_id=ids["CHG-2"]))
    assert {r["ticket"]: r["state"] for r in _listing(capsys, image, people)["requests"]}["CHG-2"] == "PENDING"
    _attach(image, b, mt.APPROVAL_PREDICATE, approval_predicate(decision="approved", environment="prod", namespaces=["prod-*"], approver="dave",
                                                                requester="bob", ticket="CHG-2", expires_in_seconds=86400,
                                                                request_id=ids["CHG-2"]))
    assert {r["ticket"]: r["state"] for r in _listing(capsys, image, people)["requests"]}["CHG-2"] == "APPROVED"
    code, _, err = run_cli(capsys, "revoke", image, "--key", people / "approver-b.key", "--environment", "prod", "--ticket", "CHG-3",
                           "--reason", "drift found")
    assert code == 0, err
    states = {r["ticket"]: r for r in _listing(capsys, image, people)["requests"]}
    assert states["CHG-2"]["state"] == "REVOKED" and states["CHG-2"]["history"][-1]["detail"] == "drift found"


def test_malformed_statements_are_listed_and_deny_with_the_reason(capsys, registry, ml_key, key_dir, people):
    image = _image(registry, ml_key, "malformed")
    _attach(image, _key(people, "requester"), mt.APPROVAL_REQUEST_PREDICATE, {"environment": "prod", "approvers": "everyone"})
    _attach(image, _key(people, "eval-ci"), mt.EVALUATION_PREDICATE,
            {"evaluator": "eval-ci", "evaluatedAt": "2026-11-01T00:00:00Z", "dataset": {"name": "d"}, "metrics": {"accuracy": "high"}})
    _attach(image, _key(people, "eval-ci"), mt.EVALUATION_PREDICATE,
            {"evaluator": "eval-ci", "evaluatedAt": "2026-11-01T00:00:00Z", "dataset": {"name": "d"}, "metrics": {"accuracy": 10**30}})
    future = evaluation_predicate(metrics={"accuracy": 0.99, "latency_p95_ms": 1}, fairness={"demographic_parity": 1}, evaluator="eval-ci",
                                  dataset_name="d", now=NOW + timedelta(days=1))
    _attach(image, _key(people, "eval-ci"), mt.EVALUATION_PREDICATE, future)
    listed = _listing(capsys, image, people)
    assert listed["requests"] == [] and len(listed["unreadable"]) == 1 and "has a malformed predicate" in listed["unreadable"][0]
    decision = _decide(_policy(key_dir, people), image, namespace="dev")
    assert not decision.allowed and [v["code"] for v in decision.violations] == ["evaluation-missing"]
    assert "[3 statement(s) not counted: " in decision.message and "evaluation attestation has a malformed predicate" in decision.message
    assert "evaluation attestation is dated in the future" in decision.message


def test_evaluation_requirements_deny_naming_what_failed(registry, ml_key, key_dir, people):
    image = _image(registry, ml_key, "slow")
    policy = _policy(key_dir, people)
    missing = _decide(policy, image, namespace="dev")
    assert [v["code"] for v in missing.violations] == ["evaluation-missing"]
    assert "no evaluation attestation by key eval-ci" in missing.message and "modelsign evaluate" in missing.message
    slow = evaluation_predicate(metrics={"accuracy": 0.95, "latency_p95_ms": 180}, fairness={"demographic_parity": 0.9}, evaluator="eval-ci",
                                dataset_name="holdout")
    _attach(image, _key(people, "eval-ci"), mt.EVALUATION_PREDICATE, slow)
    _attach(image, ml_key, mt.EVALUATION_PREDICATE, evaluation_predicate(metrics={"accuracy": 0.99, "latency_p95_ms": 10},
                                                                         fairness={"demographic_parity": 1}, evaluator="ml", dataset_name="x"))
    decision = _decide(policy, image, namespace="dev")
    assert [(v["code"], v["metric"], v["actual"], v["max"]) for v in decision.violations] == [("evaluation-above-max", "latency_p95_ms", 180, 150)]
    assert "has latency_p95_ms 180; rule evaluated requires at most 150" in decision.message
    old = evaluation_predicate(metrics={"accuracy": 0.95, "latency_p95_ms": 100}, fairness={"demographic_parity": 0.9}, evaluator="eval-ci",
                               dataset_name="holdout", now=NOW - timedelta(days=1))
    _attach(image, _key(people, "eval-ci"), mt.EVALUATION_PREDICATE, old)  # older than the slow one: the newest counts
    assert [v["code"] for v in _decide(policy, image, namespace="dev").violations] == ["evaluation-above-max"]


# A team's own rule on its own predicate (README "Predicates of your own"): name the type under
# require.attestations, and its verified statements reach input.artifacts[_].evidence.attestations.
MODEL_CARD_REGO = """package modelsign

import rego.v1

violations contains v if {
	some a in input.artifacts
	some card in a.evidence.attestations
	card.type == "https://example.com/model-card/v1"
	not card.predicate.license in {"apache-2.0", "mit"}
	v := {"source": a.source, "value": a.value, "code": "license-not-allowed", "enforce": true,
		"message": concat("", ["model card of ", a.name, " says license ", card.predicate.license, "; use an apache-2.0 or mit model"])}
}
"""


def test_a_teams_own_rego_rule_reads_its_own_predicate(registry, ml_key, key_dir, people):
    policy = _policy(key_dir, people, f"""  - name: model-card
    require:
      attestations: [{{type: "{CARD}", signedBy: [ml-team]}}]
""")
    rego = {**default_rego_sources(), "model_card.rego": MODEL_CARD_REGO}
    image = _image(registry, ml_key, "carded")
    assert [v["code"] for v in _decide(policy, image, namespace="dev", rego=rego).violations] == ["attestation-missing"]
    _attach(image, ml_key, CARD, {"license": "proprietary", "intendedUse": "fraud scoring"})
    denied = _decide(policy, image, namespace="dev", rego=rego)
    assert [v["code"] for v in denied.violations] == ["license-not-allowed"]
    assert f"model card of {image.split('@')[0]} says license proprietary" in denied.message
    other = _image(registry, ml_key, "carded-ok")
    _attach(other, ml_key, CARD, {"license": "apache-2.0"})
    assert _decide(policy, other, namespace="dev", rego=rego).allowed


def _statement(predicate_type: str, predicate) -> VerifiedAttestation:
    return VerifiedAttestation(predicate_type=predicate_type, predicate=predicate, form="legacy", signer="k", key_id="id", keyless=None,
                               location="r:sha256-x.att#0", statement_digest="sha256:" + "a" * 64)


HOSTILE = [None, "text", 5, [], {"environment": 5}, {"evidence": 5, "approvers": "all"}, {"metrics": "high"}, {"metrics": {"a": True}},
           {"metrics": {"a": float("nan")}}, {"metrics": {"a": 2**70}}, {"metrics": {"bad name": 1}}, {"fairness": [1]},
           {"environment": "prod", "requester": "bob", "requestedAt": "2026-01-01T00:00:00Z", "approvers": {"names": ["a"], "count": 2},
            "approvalLifetimeSeconds": 60},
           {"evaluatedAt": "2026-01-01T00:00:00Z", "dataset": {"name": "d"}, "metrics": {"a": 1}, "fairness": {"a": 2}}]


@pytest.mark.parametrize("predicate", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_request_and_evaluation_predicates_are_malformed_not_crashes(predicate):
    assert request_facts(_statement(mt.APPROVAL_REQUEST_PREDICATE, predicate)) is None
    assert evaluation_facts(_statement(mt.EVALUATION_PREDICATE, predicate)) is None


def test_a_metrics_file_is_checked_before_anything_is_signed(capsys, tmp_path, people, registry):
    image = f"{registry.host}/governance/never:1"
    for document, words in (({"performance": {"accuracy": "high"}}, "metric accuracy is 'high', not a finite number"),
                            ({"performance": {"accuracy": 0.9}, "fairnes": {}}, "unknown key(s) fairnes"),
                            ({"performance": {"a": 1}, "fairness": {"a": 2}}, "a appear(s) both as performance and fairness metrics"),
                            ({"accuracy": 0.9, "dataset": {"name": "d", "digest": "sha256:12"}}, "dataset digest 'sha256:12' is not sha256:<64 hex>"),
                            ({"dataset": "d"}, "an evaluation needs at least one metric")):
        code, _, err = run_cli(capsys, "evaluate", image, "--key", people / "eval-ci.key", "--metrics", _metrics_file(tmp_path, "m.json", document))
        assert code == 2 and words in err, err
