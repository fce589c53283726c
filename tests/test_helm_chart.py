"""The Helm chart (manifests/helm/modelsign): `helm lint` and `helm template` with the real helm
built by `.ci/peers`, the rendered objects schema-checked by kubernetes-validate and applied to
a real kube-apiserver, next to the kustomize base (server-side dry run)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.cluster import require_peer, start_cluster

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "manifests" / "helm" / "modelsign"
KUBE_VERSION = "1.37.2"  # the kube-apiserver .ci/peers builds; helm built from its module would otherwise assume 1.20
DIGEST = "sha256:" + "ab" * 32


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(require_peer("helm")), *args], capture_output=True, text=True, timeout=120)


def render(*values: str, namespace: str = "modelsign-system", release: str = "modelsign") -> list[dict]:
    result = helm("template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION, *values)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(documents: list[dict], kind: str) -> dict:
    (found,) = [d for d in documents if d["kind"] == kind]
    return found


def schema_check(documents: list[dict], path: Path) -> None:
    """kubernetes-validate --strict against Kubernetes 1.37's schemas (cert-manager's kinds have none there)."""
    path.write_text(yaml.safe_dump_all([d for d in documents if not d["apiVersion"].startswith("cert-manager.io/")]))
    validator = Path(sys.executable).parent / "kubernetes-validate"  # installed with the test extras
    validated = subprocess.run([str(validator), "--strict", "--quiet", "-k", "1.37.0", str(path)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr


def policy_of(documents: list[dict]) -> dict:
    return yaml.safe_load(one(documents, "ConfigMap")["data"]["policy.yaml"])


def test_helm_lint_passes_strict():
    result = helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_values_render_a_pvc_backed_audit_trail_and_a_policy_that_verifies_the_webhooks_own_image(tmp_path):
    documents = render()
    schema_check(documents, tmp_path / "rendered.yaml")
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Secret", "Deployment", "Service",
                            "PodDisruptionBudget", "NetworkPolicy", "PersistentVolumeClaim", "PersistentVolumeClaim",
                            "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"])
    deployment = one(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "ghcr.io/modelsign/modelsign:0.1.0"
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert not any(arg in ("webhook", "serve") for arg in container["args"]), "the image's entrypoint is `modelsign webhook serve`"
    claims = {d["metadata"]["name"]: d for d in documents if d["kind"] == "PersistentVolumeClaim"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name in ("audit", "audit-checkpoints"):
        assert volumes[name]["persistentVolumeClaim"]["claimName"] == f"modelsign-{name}"
        assert claims[f"modelsign-{name}"]["spec"]["accessModes"] == ["ReadWriteMany"]  # both replicas write to it
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["audit"] == "/var/log/modelsign" and mounts["audit-checkpoints"] == "/var/lib/modelsign/audit-checkpoints"
    # the policy: valid, exempts the release's namespace, and verifies the webhook's own image
    from webhook.admission.config import PolicySpec

    policy = policy_of(documents)
    PolicySpec.model_validate(policy)
    assert "modelsign-system" in policy["exemptNamespaces"]
    own = next(r for r in policy["rules"] if r["name"] == "modelsign-release")
    assert own["artifacts"] == ["ghcr.io/modelsign/modelsign"] and own["require"]["signedBy"] == ["modelsign-release"]
    assert "ghcr.io" in policy["allowedRegistries"]
    assert policy["trustedKeys"]["modelsign-release"] == {"file": "/etc/modelsign/keys/modelsign-release.pub"}
    assert "modelsign-release.pub" in one(documents, "Secret")["stringData"]
    # ... and the webhook configurations never send it its own namespace (the bootstrap deadlock)
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (webhook,) = one(documents, kind)["webhooks"]
        names = next(e for e in webhook["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name")
        assert names["operator"] == "NotIn" and set(policy["exemptNamespaces"]) == set(names["values"])
        assert webhook["failurePolicy"] == "Fail" and webhook["clientConfig"]["service"]["name"] == "modelsign-webhook"


def test_digest_cert_manager_single_replica_and_emptydir_values(tmp_path):
    documents = render("--set", f"image.digest={DIGEST}", "--set", "tls.certManager.enabled=true", "--set", "replicas=1",
                       "--set", "audit.persistence.enabled=false", "--set", "audit.checkpoints.persistence.accessModes={ReadWriteOnce}",
                       namespace="security", release="edge")
    schema_check(documents, tmp_path / "rendered.yaml")
    deployment = one(documents, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/modelsign/modelsign@{DIGEST}"
    assert deployment["spec"]["replicas"] == 1 and not [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["audit"] and volumes["audit-checkpoints"]["persistentVolumeClaim"]["claimName"] == "edge-modelsign-audit-checkpoints"
    certificates = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Certificate"}
    assert certificates["edge-modelsign-webhook"]["spec"]["secretName"] == "edge-modelsign-webhook-tls"
    assert "edge-modelsign-webhook.security.svc" in certificates["edge-modelsign-webhook"]["spec"]["dnsNames"]
    validating = one(documents, "ValidatingWebhookConfiguration")
    assert validating["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "security/edge-modelsign-webhook"
    assert "caBundle" not in validating["webhooks"][0]["clientConfig"]
    assert "security" in policy_of(documents)["exemptNamespaces"]


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "image.digest=latest"], "give the manifest digest as sha256:<64 hex>"),
    (["--set", "audit.persistence.accessModes={ReadWriteOnce}"], "replicas > 1 share the audit claim"),
    (["--set", "selfVerification.key=release-ci"], 'selfVerification.key "release-ci" is not in trustedKeys'),
    (["--set-string", "tls.certificate=PEM"], "tls.certificate is set but tls.key is not"),
])
def test_bad_values_fail_with_what_to_change(values, message):
    result = helm("template", "modelsign", str(CHART), "--kube-version", KUBE_VERSION, *values)
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.cluster
def test_chart_applies_to_a_real_api_server_and_the_kustomize_base_passes_a_server_side_dry_run(tmp_path):
    from webhook.certs import generate

    certs = tmp_path / "certs"
    generate("modelsign-webhook", "modelsign-helm", certs, extra_sans=[], force=True)
    cluster = start_cluster(tmp_path / "cluster")
    try:
        # kustomize base first (its Namespace for real, the rest as a server-side dry run)
        rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests")], capture_output=True, text=True, check=True).stdout
        documents = [d for d in yaml.safe_load_all(rendered) if d]
        cluster.apply([d for d in documents if d["kind"] == "Namespace"]).check_returncode()
        dry_run = cluster.apply([d for d in documents if d["kind"] != "Namespace"], "--dry-run=server")
        assert dry_run.returncode == 0, dry_run.stderr
        assert "persistentvolumeclaim/modelsign-audit created (server dry run)" in dry_run.stdout, dry_run.stdout
        # the chart, for real, with certificates from `modelsign certs generate`
        cluster.kubectl("create", "namespace", "modelsign-helm", check=True)
        chart = render("--set", f"tls.caBundle={base64.b64encode((certs / 'ca.crt').read_bytes()).decode()}",
                       "--set-file", f"tls.certificate={certs / 'tls.crt'}", "--set-file", f"tls.key={certs / 'tls.key'}",
                       "--set", f"image.digest={DIGEST}", namespace="modelsign-helm")
        applied = cluster.apply(chart)
        assert applied.returncode == 0, applied.stderr
        stored = {(d["kind"], d["metadata"]["name"]) for d in chart}
        for kind, name in stored:
            namespace = [] if kind in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration") \
                else ["-n", "modelsign-helm"]
            cluster.kubectl("get", kind, name, *namespace, "-o", "name", check=True)
        served = yaml.safe_load(cluster.kubectl("get", "validatingwebhookconfiguration", "modelsign", "-o", "yaml", check=True).stdout)
        assert base64.b64decode(served["webhooks"][0]["clientConfig"]["caBundle"]) == (certs / "ca.crt").read_bytes()
        tls = yaml.safe_load(cluster.kubectl("get", "secret", "modelsign-webhook-tls", "-n", "modelsign-helm", "-o", "yaml", check=True).stdout)
        assert base64.b64decode(tls["data"]["tls.crt"]) == (certs / "tls.crt").read_bytes()
        # the service account may read what the continuous compliance scan lists, and change nothing
        account = [f"--as=system:serviceaccount:modelsign-helm:{served['webhooks'][0]['clientConfig']['service']['name']}"]
        # (KServe kinds are granted too; can-i answers "no" for a resource whose CRD is not installed)
        for verb, resource in (("list", "pods"), ("list", "deployments.apps"), ("list", "cronjobs.batch"), ("get", "namespaces")):
            allowed = cluster.kubectl("auth", "can-i", verb, resource, "-A", *account)
            assert allowed.stdout.strip() == "yes", (verb, resource, allowed.stdout, allowed.stderr)
        for verb, resource in (("create", "pods"), ("delete", "deployments.apps"), ("create", "policyreports.wgpolicyk8s.io"), ("get", "secrets")):
            assert cluster.kubectl("auth", "can-i", verb, resource, "-A", *account).stdout.strip() == "no", (verb, resource)
    finally:
        cluster.stop()
