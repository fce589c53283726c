"""`modelsign check`, `modelsign certs`, and the kustomize manifests."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from conftest import FIXTURES, PASSWORD, run_cli
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from signer.trust.keys import load_signing_key_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def check_env(tmp_path_factory, registry, key_dir):
    workdir = tmp_path_factory.mktemp("check")
    key = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    with Stores() as stores:
        push_image(stores.repository(parse_reference(f"{registry.host}/chk/signed")), {"f": b"s"}, tag="1")
        sign_artifact(stores, parse_reference(f"{registry.host}/chk/signed:1"), key)
        push_image(stores.repository(parse_reference(f"{registry.host}/chk/unsigned")), {"f": b"u"}, tag="1")
    policy = workdir / "policy.yaml"
    policy.write_text(f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*"]
storageUris: {{allow: ["pvc://**"]}}
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
rules:
  - name: models-signed
    require: {{signedBy: [ml-team]}}
""")
    return workdir, policy


def test_check_allows_signed_and_denies_unsigned(capsys, check_env, registry):
    workdir, policy = check_env
    manifests = workdir / "deploy.yaml"
    manifests.write_text(f"""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: good, namespace: ml}}
spec:
  predictor:
    containers: [{{name: c, image: "{registry.host}/chk/signed:1"}}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: bad}}
    spec: {{template: {{spec: {{containers: [{{name: c, image: "{registry.host}/chk/unsigned:1"}}]}}}}}}
""")
    code, out, err = run_cli(capsys, "check", "-f", manifests, "--config", policy)
    assert code == 1, err
    assert re.search(r"ALLOW\s+InferenceService\s+ml/good", out) and re.search(r"DENY\s+Deployment\s+default/bad", out)
    assert f"no signature by key ml-team for {registry.host}/chk/unsigned@sha256:" in out
    code, out, _ = run_cli(capsys, "check", "-f", manifests, "--config", policy, "--output", "json")
    results = json.loads(out)
    assert [r["allowed"] for r in results] == [True, False] and results[1]["source"].endswith("#1.items[0]")


def test_check_accepts_stdin_and_json(capsys, check_env, registry, monkeypatch):
    import io

    _, policy = check_env
    document = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": f"{registry.host}/chk/signed:1"}]}}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(document)))
    code, out, err = run_cli(capsys, "check", "-f", "-", "--config", policy)
    assert code == 0, err
    assert re.search(r"ALLOW\s+Pod\s+default/p", out)


@pytest.mark.parametrize("name", ["bentoml__bentoml.yaml", "v1beta1__custom__torchserve__canary.yaml", "test__e2e__graph__test-resources__ig_test_switch_scenario_10.yaml"])
def test_check_reports_broken_yaml_with_its_line(capsys, check_env, name):
    _, policy = check_env
    code, _, err = run_cli(capsys, "check", "-f", FIXTURES / "kserve" / name, "--config", policy)
    assert code == 2 and "is not valid YAML at line" in err and "Traceback" not in err


def test_check_over_the_kserve_corpus_denies_unverifiable_sources(capsys, check_env):
    _, policy = check_env
    code, out, _ = run_cli(capsys, "check", "-f", FIXTURES / "kserve" / "v1beta1__sklearn__v1__sklearn.yaml", "-f", FIXTURES / "kserve" / "v1beta1__torchserve__v1__bloom__bloom-560m.yaml", "--config", policy)
    assert code == 1
    assert "gs://kfserving-examples/models/sklearn/1.0/model (spec.predictor.sklearn.storageUri) cannot be verified" in out
    assert re.search(r"ALLOW\s+InferenceService\s+default/torchserve-bloom-560m", out)  # pvc:// is allowed by this policy


def test_check_needs_a_valid_policy(capsys, tmp_path):
    (tmp_path / "p.yaml").write_text("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nmode: x\n")
    code, _, err = run_cli(capsys, "check", "-f", FIXTURES / "kserve" / "storage__hf__hf_isvc.yaml", "--config", tmp_path / "p.yaml")
    assert code == 2 and "mode" in err


def test_certs_generate_and_rotate(capsys, tmp_path):
    out = tmp_path / "certs"
    code, text, _ = run_cli(capsys, "certs", "generate", "--service", "modelsign-webhook", "--namespace", "ml-system", "--out", out, "--san", "10.0.0.5", "--output", "json")
    assert code == 0
    result = json.loads(text)
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "modelsign-webhook.ml-system.svc" in names.get_values_for_type(x509.DNSName)
    assert base64.b64decode(result["caBundle"]) == (out / "ca.crt").read_bytes()
    assert oct((out / "tls.key").stat().st_mode & 0o777) == "0o600" and oct((out / "ca.key").stat().st_mode & 0o777) == "0o600"
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert run_cli(capsys, "certs", "generate", "--out", out)[0] == 2  # refuses to overwrite the CA
    assert run_cli(capsys, "certs", "generate", "--out", out, "--namespace", "ml-system", "--reuse-ca")[0] == 0
    rotated = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    assert rotated.serial_number != cert.serial_number
    rotated.verify_directly_issued_by(ca)
    assert (out / "ca.crt").read_bytes() == ca.public_bytes(__import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM)


@pytest.mark.parametrize("target", ["manifests", "manifests/overlays/cert-manager"])
def test_kustomize_renders_and_validates(tmp_path, target):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the manifests (installed on the CI machine)"
    rendered = subprocess.run([kubectl, "kustomize", str(ROOT / target)], capture_output=True, text=True, check=True).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Secret", "Deployment", "Service",
            "PodDisruptionBudget", "NetworkPolicy", "ValidatingWebhookConfiguration"} <= kinds
    webhook = next(d for d in documents if d["kind"] == "ValidatingWebhookConfiguration")["webhooks"][0]
    assert webhook["failurePolicy"] == "Fail" and webhook["sideEffects"] == "None" and webhook["timeoutSeconds"] <= 10
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    validator = Path(sys.executable).parent / "kubernetes-validate"  # installed with the test extras
    validated = subprocess.run([str(validator), "--strict", "--quiet", "-k", "1.32.0", str(path)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # The policy shipped in the ConfigMap is a valid AdmissionPolicy (keys aside, which are cluster secrets).
    from webhook.admission.config import PolicySpec

    configmap = next(d for d in documents if d["kind"] == "ConfigMap")
    PolicySpec.model_validate(yaml.safe_load(configmap["data"]["policy.yaml"]))
