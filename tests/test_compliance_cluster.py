"""Continuous compliance against a real kube-apiserver and etcd (marker `cluster`), with the
real modelsign webhook in the admission chain and the real docker-registry over TLS.

Workloads are admitted by the webhook through `kubectl`, then their evidence goes stale: an
approval expires, another is revoked, a scan ages past maxAge, a signing key is taken out of
the policy. `modelsign report cluster` must flag each (where Kyverno's background scans kept
saying "pass"), bind Pods to the digests their status says run, write PolicyReports the API
server accepts, and the webhook must do the same on its interval: audit records and metrics.
No kubelets run here, so Pods stay Pending: their status is written as an admin would,
through the status subresource.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, PASSWORD, run_cli
from signer.evidence.approvals import approval_predicate, format_time
from signer.evidence.scan.scanning import vuln_predicate
from signer.evidence.scan.trivy import load_report, summarize_report
from signer.formats import mediatypes as mt
from signer.oci.registry import RegistryOptions
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.attestations import attest
from signer.signatures.signing import sign_artifact
from signer.trust.keys import generate_key_pair, load_signing_key_file
from support.audit import audited_webhook, records
from support.cluster import Cluster, start_cluster
from test_cluster import CORPUS, pod, register, workload

pytestmark = pytest.mark.cluster

LIFETIME = timedelta(seconds=40)  # of the expiring approval, and the scan's maxAge: long enough to admit first
CLEAN_REPORT = FIXTURES / "trivy" / "trivy__alpine-39-skip.json.golden"  # a real trivy report with no findings


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    started = start_cluster(tmp_path_factory.mktemp("compliance-cluster"))
    started.install_crds(sorted((CORPUS / "crds").glob("*.yaml")) + [FIXTURES / "policyreport" / "crds.yaml"])
    for name in ("ml", "serving", "modelsign-system"):
        started.create_namespace(name)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("compliance-keys")
    for name in ("approver", "scanner"):
        generate_key_pair(directory / name, PASSWORD.encode())
    return directory


def policy_text(key_dir: Path, keys: Path, ca_file: Path, *, signer: str = "ml-team") -> str:
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: compliance}}
allowedRegistries: ["127.0.0.1:*"]
registry: {{caFile: {ca_file}}}
trustedKeys:
  {signer}: {{file: {key_dir / (signer + '.pub')}}}
  approver: {{file: {keys / 'approver.pub'}}}
  scanner: {{file: {keys / 'scanner.pub'}}}
environments:
  mappings: [{{name: prod, namespaces: ["*"]}}]
rules:
  - name: signed
    require: {{signedBy: [{signer}]}}
  - name: approved-for-prod
    artifacts: ["*/approved/**", "*/revoked/**"]
    require: {{approval: {{signedBy: [approver]}}}}
  - name: scanned
    artifacts: ["*/scanned/**"]
    require: {{scan: {{signedBy: [scanner], maxAge: {int(LIFETIME.total_seconds())}s}}}}
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory, key_dir, keys, tls_registry) -> Path:
    path = tmp_path_factory.mktemp("compliance-policy") / "policy.yaml"
    path.write_text(policy_text(key_dir, keys, tls_registry.ca_file))
    return path


@pytest.fixture(scope="module")
def webhook(cluster, key_dir, keys, tls_registry, tmp_path_factory):
    """The webhook in the admission chain, scanning the cluster every 10 s and writing the
    PolicyReports (one worker, so one scrape of /metrics sees the scanning worker's counters)."""
    workdir = tmp_path_factory.mktemp("compliance-webhook")
    audited = audited_webhook(workdir, key_dir, workers=1, policy_text=policy_text(key_dir, keys, tls_registry.ca_file),
                              extra=["--compliance-interval", "10s", "--compliance-kubeconfig", str(cluster.kubeconfig), "--compliance-apply"])
    register(cluster, audited.server.url, (workdir / "certs" / "ca.crt").read_bytes())
    yield audited
    audited.server.stop()


def _key(path: Path):
    return load_signing_key_file(path, password=lambda _: PASSWORD.encode())


@pytest.fixture(scope="module")
def refs(webhook, tls_registry, key_dir, keys) -> dict[str, str]:
    """Signed images in the TLS registry: plain, approved until NOW+LIFETIME, approved (to be
    revoked), scanned 5 s before NOW (stale at NOW+LIFETIME-5s); and an unsigned digest in the
    signed image's repository."""
    now = datetime.now(timezone.utc)
    ml, approver, scanner = _key(key_dir / "ml-team.key"), _key(keys / "approver.key"), _key(keys / "scanner.key")
    host = tls_registry.host
    found = {"host": host, "expires": now + LIFETIME}
    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        for name in ("apps/signed", "approved/app", "revoked/app", "scanned/app"):
            reference = parse_reference(f"{host}/{name}:1")
            found[f"digest:{name}"] = str(push_image(stores.repository(reference), {"f": name.encode()}, tag="1").digest)
            sign_artifact(stores, reference, ml)
            found[name] = f"{host}/{name}:1"
        found["digest:apps/signed:unsigned"] = str(push_image(stores.repository(parse_reference(f"{host}/apps/signed:2")), {"f": b"other"}, tag="2").digest)
        for name, lifetime in (("approved/app", LIFETIME), ("revoked/app", timedelta(days=1))):
            attest(stores, parse_reference(f"{host}/{name}@{found['digest:' + name]}"), approver, mt.APPROVAL_PREDICATE,
                   approval_predicate(decision="approved", environment="prod", namespaces=["*"], approver="alice", requester="bob", ticket="CHG-7",
                                      reason="eval passed", now=now, not_before=None, expires_in_seconds=int(lifetime.total_seconds())))
        finished = format_time(now - timedelta(seconds=5))
        attest(stores, parse_reference(f"{host}/scanned/app@{found['digest:scanned/app']}"), scanner, mt.VULN_PREDICATE,
               vuln_predicate(summarize_report(load_report(CLEAN_REPORT)), None, scanner_version="0.59.1", db_version="test", started=finished,
                              finished=finished, parameters=["test"]))
    return found


def report(capsys, cluster: Cluster, policy: Path, *args: str, kubeconfig: Path | None = None) -> tuple[int, dict | str, str]:
    code, out, err = run_cli(capsys, "report", "cluster", "--config", policy, "--kubeconfig", kubeconfig or cluster.kubeconfig, *args)
    return code, (json.loads(out) if "json" in args else yaml.safe_load(out) if "yaml" in args else out), err


def findings_of(document: dict, name: str) -> list[dict]:
    return [f for f in document["findings"] if f["resource"]["name"] == name]


def set_running_image(cluster: Cluster, name: str, image_id: str, namespace: str = "ml") -> None:
    """What a kubelet would report for container c0 (as an admin, through the status subresource)."""
    image = json.loads(cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=True).stdout)["spec"]["containers"][0]["image"]
    status = {"status": {"phase": "Running", "containerStatuses": [
        {"name": "c0", "image": image, "imageID": image_id, "ready": True, "restartCount": 0, "started": True,
         "state": {"running": {"startedAt": format_time(datetime.now(timezone.utc))}}}]}}
    cluster.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status), check=True)


# -- admitted, then stale -------------------------------------------------------------------------


def test_admitted_workloads_are_flagged_once_their_evidence_goes_stale(cluster, webhook, refs, policy, key_dir, keys, tls_registry, capsys, tmp_path):
    for obj in (pod("signed", refs["apps/signed"]), workload("Deployment", "approved", refs["approved/app"]),
                pod("revoked", refs["revoked/app"]), workload("CronJob", "scanned", refs["scanned/app"])):
        result = cluster.apply(obj)
        assert result.returncode == 0, result.stderr  # admitted by the webhook: the evidence is good now
    code, before, _ = report(capsys, cluster, policy, "-n", "ml", "-o", "json")
    assert code == 0 and before["compliant"], before
    assert {(f["resource"]["kind"], f["resource"]["name"], f["result"]) for f in before["findings"]} == {
        ("Pod", "signed", "pass"), ("Deployment", "approved", "pass"), ("Pod", "revoked", "pass"), ("CronJob", "scanned", "pass")}
    code, as_yaml, _ = report(capsys, cluster, policy, "-n", "ml", "-o", "yaml")  # the same data as json, as every command's -o yaml
    assert code == 0 and as_yaml["summary"] == before["summary"] and as_yaml["scope"] == before["scope"]
    assert sorted((f["resource"]["name"], f["code"], f["digest"]) for f in as_yaml["findings"]) == sorted(
        (f["resource"]["name"], f["code"], f["digest"]) for f in before["findings"])

    approver = _key(keys / "approver.key")
    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:  # the approval is revoked after admission
        attest(stores, parse_reference(f"{refs['host']}/revoked/app@{refs['digest:revoked/app']}"), approver, mt.APPROVAL_PREDICATE,
               approval_predicate(decision="revoked", environment="prod", namespaces=["*"], approver="carol", requester="", ticket="CHG-8",
                                  reason="bias found"))
    time.sleep(max(0.0, (refs["expires"] - datetime.now(timezone.utc)).total_seconds()) + 1)  # the approval expires, the scan ages past maxAge

    code, after, _ = report(capsys, cluster, policy, "-n", "ml", "-o", "json")
    assert code == 1 and not after["compliant"]
    codes = {f["resource"]["name"]: {(x["result"], x["code"]) for x in findings_of(after, f["resource"]["name"])} for f in after["findings"]}
    assert codes == {"signed": {("pass", "artifacts-verified")}, "approved": {("fail", "approval-expired")},
                     "revoked": {("fail", "approval-revoked")}, "scanned": {("fail", "scan-too-old")}}
    expired = findings_of(after, "approved")[0]
    assert expired["rule"] == "approved-for-prod" and expired["field"] == "spec.template.spec.containers[0].image"
    assert expired["digest"] == refs["digest:approved/app"] and "expired" in expired["message"]
    assert any("template" in note for note in expired["notes"])  # a workload is checked by its template's reference

    # The signing key is removed from the policy (a new team key replaces it): what it signed fails.
    rotated = tmp_path / "rotated.yaml"
    rotated.write_text(policy_text(key_dir, keys, tls_registry.ca_file, signer="other-team"))
    code, table, _ = report(capsys, cluster, rotated, "-n", "ml")
    assert code == 1
    assert [line.split()[:4] for line in table.splitlines() if line.split()[1:3] == ["Pod", "ml/signed"]] == [["FAIL", "Pod", "ml/signed", "signed"]]
    assert "no signature by key other-team" in table, table


def test_a_pod_is_checked_at_the_digest_it_runs(cluster, webhook, refs, policy, capsys):
    """The mutating webhook pinned the spec at the signed digest; the node reports it runs
    another digest of the repository (one nobody signed): that digest is what gets checked."""
    for name in ("runs-signed", "runs-other"):
        assert cluster.apply(pod(name, refs["apps/signed"], namespace="serving")).returncode == 0
    host = refs["host"]
    set_running_image(cluster, "runs-signed", f"{host}/apps/signed@{refs['digest:apps/signed']}", namespace="serving")
    set_running_image(cluster, "runs-other", f"docker-pullable://{host}/apps/signed@{refs['digest:apps/signed:unsigned']}", namespace="serving")
    code, document, _ = report(capsys, cluster, policy, "-n", "serving", "-o", "json")
    assert code == 1
    good, = findings_of(document, "runs-signed")
    assert good["result"] == "pass"
    assert any(refs["digest:apps/signed"] in note for note in good["notes"])
    bad, = findings_of(document, "runs-other")
    assert (bad["result"], bad["code"], bad["digest"], bad["digestSource"]) == ("fail", "not-signed", refs["digest:apps/signed:unsigned"], "running")
    assert any(f"the spec pins {refs['digest:apps/signed']}" in note for note in bad["notes"]), bad["notes"]


def test_kserve_objects_and_exempt_namespaces_are_in_the_cluster_wide_report(cluster, webhook, refs, policy, capsys):
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "predictor", "namespace": "serving"},
            "spec": {"predictor": {"containers": [{"name": "kserve-container", "image": refs["apps/signed"]}]}}}
    assert cluster.apply(isvc).returncode == 0
    assert cluster.apply(pod("system", refs["apps/signed"], namespace="modelsign-system")).returncode == 0
    code, document, _ = report(capsys, cluster, policy, "-A", "-o", "json")
    found = {(f["resource"]["kind"], f["resource"].get("namespace", ""), f["resource"]["name"]): f for f in document["findings"]}
    assert found[("InferenceService", "serving", "predictor")]["result"] == "pass"
    exempt = found[("Namespace", "", "modelsign-system")]
    assert exempt["result"] == "skip" and "1 object(s) were not checked" in exempt["message"]
    assert not any(key[1] == "modelsign-system" for key in found)  # objects in exempt namespaces are not decided one by one
    assert "ClusterServingRuntime" not in {key[0] for key in found}  # served, but there are none


def test_policy_reports_are_accepted_by_the_api_server_and_replaced_on_the_next_run(cluster, webhook, refs, policy, capsys):
    code, out, err = run_cli(capsys, "report", "cluster", "--config", policy, "--kubeconfig", cluster.kubeconfig, "-A", "-o", "policyreport", "--apply")
    assert "created PolicyReport ml/modelsign-compliance" in err or "replaced PolicyReport ml/modelsign-compliance" in err, err
    stored = json.loads(cluster.kubectl("get", "policyreports.wgpolicyk8s.io", "modelsign-compliance", "-n", "ml", "-o", "json", check=True).stdout)
    assert stored["summary"]["fail"] == sum(1 for r in stored["results"] if r["result"] == "fail") >= 1
    result = next(r for r in stored["results"] if r["resources"][0]["name"] == "approved")
    assert (result["policy"], result["rule"], result["result"], result["source"]) == ("compliance", "approved-for-prod", "fail", "modelsign")
    assert result["properties"]["code"] == "approval-expired" and isinstance(result["timestamp"]["seconds"], int)
    cluster_report = json.loads(cluster.kubectl("get", "clusterpolicyreports.wgpolicyk8s.io", "modelsign-compliance", "-o", "json", check=True).stdout)
    assert any(r["result"] == "skip" for r in cluster_report["results"])
    # The table kubectl prints comes from the CRD's printer columns: the counts are the summary's.
    printed = cluster.kubectl("get", "policyreports.wgpolicyk8s.io", "-n", "ml", check=True).stdout
    assert "modelsign-compliance" in printed and str(stored["summary"]["fail"]) in printed

    assert cluster.kubectl("delete", "deployment", "approved", "-n", "ml").returncode == 0
    run_cli(capsys, "report", "cluster", "--config", policy, "--kubeconfig", cluster.kubeconfig, "-A", "--apply")
    again = json.loads(cluster.kubectl("get", "policyreports.wgpolicyk8s.io", "modelsign-compliance", "-n", "ml", "-o", "json", check=True).stdout)
    assert not any(r["resources"][0]["name"] == "approved" for r in again["results"])  # replaced whole: no stale result survives


def test_a_scan_without_permission_reports_errors_with_the_fix(cluster, webhook, policy, capsys):
    code, document, _ = report(capsys, cluster, policy, "-n", "ml", "-o", "json", kubeconfig=cluster.unprivileged_kubeconfig)
    assert code == 1 and document["findings"]
    assert {f["result"] for f in document["findings"]} == {"error"}
    assert all("403" in f["message"] and "grant the scan's identity `list`" in f["message"] for f in document["findings"] if f["code"] == "list-failed")


def test_findings_are_audit_records_the_trail_verifies(cluster, webhook, policy, capsys, tmp_path):
    from signer.trust.keys import generate_key_pair as make_keys

    make_keys(tmp_path / "audit", PASSWORD.encode())
    checkpoints = tmp_path / "checkpoints" / "report.checkpoints.jsonl"
    code, document, _ = report(capsys, cluster, policy, "-n", "ml", "-o", "json", "--audit-log", str(tmp_path / "trail" / "audit.jsonl"),
                               "--audit-key", str(tmp_path / "audit.key"), "--audit-checkpoints", str(checkpoints))
    written = [e["record"] for e in records(tmp_path / "trail") if e["record"]["type"] == "compliance"]
    assert len(written) == len(document["findings"]) and {r["scan"]["id"] for r in written} == {document["scanId"]}
    revoked = next(r for r in written if r["resource"]["name"] == "revoked")
    assert revoked["finding"]["code"] == "approval-revoked" and revoked["scan"]["trigger"] == "report-cluster"
    assert revoked["evidence"][0]["approvals"] and {a["status"] for a in revoked["evidence"][0]["approvals"]} >= {"revoked"}
    code, out, _ = run_cli(capsys, "audit", "verify", tmp_path / "trail", "--key", tmp_path / "audit.pub", "--checkpoints", checkpoints)
    assert code == 0, out


def test_the_webhook_scans_on_its_interval_records_and_counts_findings(cluster, webhook, refs, capsys):
    """Last in this module: it stops the webhook to verify its trail."""
    deadline = time.monotonic() + 60
    flagged: list[dict] = []
    while time.monotonic() < deadline and not flagged:
        flagged = [e["record"] for e in records(webhook.log_dir)
                   if e["record"]["type"] == "compliance" and e["record"]["finding"]["code"] in ("approval-revoked", "scan-too-old")]
        time.sleep(1)
    assert flagged, "the webhook's interval scan recorded no stale-evidence finding within 60 s"
    assert {r["scan"]["trigger"] for r in flagged} == {"interval"}
    scans = {e["record"]["scan"]["id"] for e in records(webhook.log_dir) if e["record"]["type"] == "compliance"}
    written = json.loads(cluster.kubectl("get", "clusterpolicyreports.wgpolicyk8s.io", "modelsign-compliance", "-o", "json", check=True).stdout)
    while time.monotonic() < deadline and written["metadata"]["annotations"]["modelsign.dev/scan-id"] not in scans:  # the CLI wrote it last
        time.sleep(1)
        scans = {e["record"]["scan"]["id"] for e in records(webhook.log_dir) if e["record"]["type"] == "compliance"}
        written = json.loads(cluster.kubectl("get", "clusterpolicyreports.wgpolicyk8s.io", "modelsign-compliance", "-o", "json", check=True).stdout)
    assert written["metadata"]["annotations"]["modelsign.dev/scan-id"] in scans  # --compliance-apply: the webhook's own scan
    with webhook.server.client() as client:
        metrics = client.get("/metrics").text
        assert cluster.apply(pod("still-admitted", refs["apps/signed"])).returncode == 0  # admission kept answering meanwhile
    counted = [line for line in metrics.splitlines() if line.startswith("modelsign_compliance_findings_total{") and 'result="fail"' in line]
    assert any('code="approval-revoked"' in line and float(line.rsplit(" ", 1)[1]) >= 1 for line in counted), metrics
    assert any(line.startswith("modelsign_compliance_scans_total{") and 'outcome="completed"' in line for line in metrics.splitlines())
    webhook.server.stop()
    code, out, _ = run_cli(capsys, "audit", "verify", webhook.log_dir, "--key", webhook.audit_pub, "--checkpoints", webhook.checkpoints)
    assert code == 0, out
