"""Continuous compliance without a cluster: the scan's decisions (the admission pipeline
against the real registry), running-digest binding, the report formats (table, JSON,
wg-policy PolicyReport checked against the CRD schema), audit record fields, metrics, and the
webhook's interval loop and its settings. The scan against a real API server is in
tests/test_compliance_cluster.py."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from conftest import FIXTURES, run_cli
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from signer import UsageError
from webhook.admission.config import load_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.compliance.background import ComplianceLoop, ComplianceSettings, export_to_environment, failure_report
from webhook.compliance.binding import bind_running_digests, running_digest
from webhook.compliance.inventory import Inventory, ListingProblem, runs_nothing
from webhook.compliance.kinds import BUILT_IN_KINDS, KSERVE_GROUP, ListedKind
from webhook.compliance.policyreport import MAX_MESSAGE_CHARACTERS, policy_reports
from webhook.compliance.records import finding_record, record_findings
from webhook.compliance.render import render_table, report_data
from webhook.compliance.scan import scan, scan_pipeline
from webhook.server.metrics import Metrics

KINDS = {k.kind: k for k in BUILT_IN_KINDS}
RUNTIME = ListedKind(KSERVE_GROUP, "v1alpha1", "clusterservingruntimes", "ClusterServingRuntime", namespaced=False)
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
POLICY = """
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: unit}}
exemptNamespaces: [kube-system]
allowedRegistries: ["127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {key_dir}/ml-team.pub}}
  other-team: {{file: {key_dir}/other-team.pub}}
rules:
  - name: signed
    require: {{signedBy: [ml-team]}}
  - name: second-signature
    artifacts: ["*/warned/**"]
    mode: warn
    require: {{signedBy: [other-team]}}
"""


def pod(name: str, image: str, namespace: str = "ml", status: dict | None = None) -> dict:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
           "spec": {"containers": [{"name": "c0", "image": image}]}}
    if status is not None:
        obj["status"] = status
    return obj


def running(image_id: str) -> dict:
    return {"phase": "Running", "containerStatuses": [{"name": "c0", "image": "whatever", "imageID": image_id}]}


@pytest.fixture(scope="module")
def images(registry, ml_key) -> dict[str, str]:
    host = registry.host
    found = {"host": host}
    with Stores() as stores:
        for name, sign in (("apps/signed", True), ("apps/unsigned", False), ("warned/app", True)):
            reference = parse_reference(f"{host}/{name}:1")
            found[f"digest:{name}"] = str(push_image(stores.repository(reference), {"f": name.encode()}, tag="1").digest)
            if sign:
                sign_artifact(stores, reference, ml_key)
            found[name] = f"{host}/{name}:1"
    return found


@pytest.fixture(scope="module")
def pipeline(key_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("compliance-policy") / "policy.yaml"
    path.write_text(POLICY.format(key_dir=key_dir))
    built = scan_pipeline(load_policy(path))
    yield built
    built.close()


@pytest.fixture(scope="module")
def report(pipeline, images):
    signed = images["apps/signed"]
    runtime = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime", "metadata": {"name": "runtime"},
               "spec": {"containers": [{"name": "kserve-container", "image": signed}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "elsewhere", "namespace": "team"},
                  "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "evil.example/model:1"}]}}}}
    inventory = Inventory(
        objects=[(KINDS["Pod"], pod("good", signed, status=running(f"docker-pullable://{images['host']}/apps/signed@{images['digest:apps/signed']}"))),
                 (KINDS["Pod"], pod("moved", signed, status=running(f"{images['host']}/apps/signed@{images['digest:apps/unsigned']}"))),
                 (KINDS["Pod"], pod("unsigned", images["apps/unsigned"])),
                 (KINDS["Pod"], pod("warned", images["warned/app"])),
                 (KINDS["Deployment"], deployment),
                 (KINDS["Pod"], pod("dns", signed, namespace="kube-system")),
                 (RUNTIME, runtime)],
        problems=[ListingProblem(KINDS["StatefulSet"], "team", "GET /apis/apps/v1/namespaces/team/statefulsets: HTTP 403 Forbidden")],
        unserved=["serving.kserve.io LLMInferenceService is not served"], left_out=2)
    return scan(pipeline, inventory, scope="all namespaces")


def by_name(report, name: str) -> list:
    return [f for f in report.findings if f.resource.name == name]


# -- decisions ----------------------------------------------------------------------------------


def test_each_object_is_decided_by_the_admission_pipeline_as_it_runs(report, images):
    assert [(f.result, f.code) for f in by_name(report, "good")] == [("pass", "artifacts-verified")]
    moved, = by_name(report, "moved")  # the tag is signed, but the node runs another digest: that is what is checked
    assert (moved.result, moved.code, moved.digest, moved.digest_source) == ("fail", "not-signed", images["digest:apps/unsigned"], "running")
    unsigned, = by_name(report, "unsigned")
    assert (unsigned.result, unsigned.code, unsigned.digest_source) == ("fail", "not-signed", "resolved")
    assert any("no containerStatuses entry" in note for note in unsigned.notes)
    warned, = by_name(report, "warned")
    assert (warned.result, warned.rule, warned.code) == ("warn", "second-signature", "not-signed")
    elsewhere, = by_name(report, "elsewhere")
    assert (elsewhere.result, elsewhere.code, elsewhere.source) == ("fail", "registry-not-allowed", "spec.template.spec.containers[0].image")
    runtime, = by_name(report, "runtime")
    assert (runtime.result, runtime.resource.kind) == ("pass", "ClusterServingRuntime") and "spec's references" in runtime.notes[0]
    assert "template's references" in elsewhere.notes[0]
    exempt, = by_name(report, "kube-system")
    assert (exempt.result, exempt.resource.kind) == ("skip", "Namespace") and not by_name(report, "dns")
    listing, = [f for f in report.findings if f.code == "list-failed"]
    assert listing.result == "error" and listing.resource.namespace == "team" and "403" in listing.message
    assert report.counts() == {"pass": 2, "fail": 3, "warn": 1, "error": 1, "skip": 1} and not report.compliant


def test_the_pipeline_used_is_the_admission_pipeline_with_an_empty_cache(pipeline):
    assert isinstance(pipeline, AdmissionPipeline)
    fresh = scan_pipeline(pipeline.policy, engine=pipeline.engine)
    try:
        assert len(fresh.cache) == 0 and fresh.engine is pipeline.engine and fresh.cache is not pipeline.cache
    finally:
        fresh.close()


# -- running digests ----------------------------------------------------------------------------


@pytest.mark.parametrize("image_id, digest", [
    (f"registry.example/ml/model@{DIGEST_A}", DIGEST_A),  # containerd, CRI-O
    (f"docker-pullable://registry.example/ml/model@{DIGEST_A}", DIGEST_A),  # dockershim
    (DIGEST_A, None),  # the local image id only: not a manifest digest
    ("", None),
])
def test_the_running_digest_is_read_from_the_image_id(image_id, digest):
    assert running_digest(image_id) == digest


def test_binding_pins_each_reported_container_and_notes_the_rest():
    obj = pod("p", f"registry.example/ml/model:1@{DIGEST_B}", status=running(f"registry.example/ml/model@{DIGEST_A}"))
    obj["spec"]["initContainers"] = [{"name": "init", "image": "registry.example/ml/init:2"}]
    bound, bindings = bind_running_digests(obj)
    assert bound["spec"]["containers"][0]["image"] == f"registry.example/ml/model:1@{DIGEST_A}"
    assert obj["spec"]["containers"][0]["image"].endswith(DIGEST_B)  # the object listed is not changed
    assert [(b.source, b.digest) for b in bindings] == [("spec.containers[0].image", DIGEST_A), ("spec.initContainers[0].image", None)]
    assert f"the spec pins {DIGEST_B}" in bindings[0].note and "no initContainerStatuses entry" in bindings[1].note


def test_what_runs_nothing_is_left_out():
    owned = {"metadata": {"ownerReferences": [{"kind": "Deployment", "controller": True}]}}
    assert runs_nothing(KINDS["ReplicaSet"], owned) and not runs_nothing(KINDS["ReplicaSet"], {"metadata": {}})
    assert runs_nothing(KINDS["Pod"], {"status": {"phase": "Succeeded"}}) and not runs_nothing(KINDS["Pod"], {"status": {"phase": "Pending"}})
    assert runs_nothing(KINDS["Job"], {"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    assert not runs_nothing(KINDS["Deployment"], owned)


# -- formats ------------------------------------------------------------------------------------


def crd_schemas() -> dict[str, dict]:
    documents = yaml.safe_load_all((FIXTURES / "policyreport" / "crds.yaml").read_text())
    return {d["spec"]["names"]["kind"]: d["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for d in documents}


def test_policy_reports_follow_the_wg_policy_schema(report):
    reports = policy_reports(report)
    schemas = crd_schemas()
    assert [(r["kind"], r["metadata"].get("namespace")) for r in reports] == [
        ("PolicyReport", "ml"), ("PolicyReport", "team"), ("ClusterPolicyReport", None)]
    for document in reports:
        jsonschema.validate(document, schemas[document["kind"]])
        assert document["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and document["metadata"]["name"] == "modelsign-compliance"
        assert document["summary"] == {r: sum(1 for x in document["results"] if x["result"] == r) for r in ("pass", "fail", "warn", "error", "skip")}
        for result in document["results"]:
            assert all(isinstance(v, str) for v in result["properties"].values())
            assert result["policy"] == "unit" and result["source"] == "modelsign" and result["timestamp"]["nanos"] == 0
    ml = reports[0]
    moved = next(r for r in ml["results"] if r["resources"][0]["name"] == "moved")
    assert moved["resources"] == [{"apiVersion": "v1", "kind": "Pod", "name": "moved", "namespace": "ml", "uid": "uid-moved"}]
    assert (moved["result"], moved["rule"], moved["severity"]) == ("fail", "signed", "high")
    assert moved["properties"]["digestSource"] == "running" and moved["properties"]["field"] == "spec.containers[0].image"
    cluster = reports[2]
    assert {(r["resources"][0]["kind"], r["result"]) for r in cluster["results"]} == {("ClusterServingRuntime", "pass"), ("Namespace", "skip")}


def test_a_namespace_scanned_clean_gets_an_empty_report_and_long_messages_are_cut(report):
    reports = policy_reports(report, namespaces=["ml", "quiet"])
    quiet = next(r for r in reports if r["metadata"].get("namespace") == "quiet")
    assert quiet["results"] == [] and quiet["summary"] == {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    assert all(len(r["message"]) <= MAX_MESSAGE_CHARACTERS for d in reports for r in d["results"])
    long = failure_report("x" * (2 * MAX_MESSAGE_CHARACTERS))
    message = policy_reports(long)[-1]["results"][0]["message"]
    assert len(message) == MAX_MESSAGE_CHARACTERS and message.endswith("...")


def test_table_and_json(report):
    table = render_table(report)
    header, *rows = table.split("\n\n")[0].splitlines()
    assert header.split() == ["RESULT", "KIND", "NAMESPACE/NAME", "RULE", "FIELD", "DIGEST"]
    assert [row.split()[:5] for row in rows if " ml/moved " in row] == [["FAIL", "Pod", "ml/moved", "signed", "spec.containers[0].image"]]
    assert rows[0].split()[:3] == ["ERROR", "StatefulSet", "team/*"]  # a list that could not be read comes first
    assert "8 object(s)" not in table and "7 object(s) in all namespaces" in table and "2 pass, 3 fail, 1 warn, 1 error, 1 skip" in table
    assert "note: serving.kserve.io LLMInferenceService is not served" in table and "2 finished" in table
    document = report_data(report)
    assert document["summary"] == report.counts() and document["compliant"] is False and len(document["findings"]) == len(report.findings)
    assert {"resource", "result", "rule", "code", "message", "field", "digest", "digestSource", "decisionId", "notes"} <= set(document["findings"][0])


def test_every_finding_is_an_audit_record(report):
    written: list[tuple[str, dict]] = []
    assert record_findings(report, lambda kind, **fields: written.append((kind, fields)), trigger="test") == len(report.findings)
    assert {kind for kind, _ in written} == {"compliance"}
    moved = next(fields for _, fields in written if fields["resource"]["name"] == "moved")
    assert moved["finding"]["code"] == "not-signed" and moved["scan"]["trigger"] == "test" and moved["policy"]["name"] == "unit"
    assert moved["evidence"][0]["digest"] == moved["finding"]["digest"] and moved["evidence"][0]["signatures"] == []
    assert "artifacts" not in finding_record(report.findings[0], report, "test")  # not mistaken for a decision record by `audit verify`


# -- metrics, the interval loop, its settings ---------------------------------------------------


def test_metrics_count_findings_by_result_and_code(report):
    metrics = Metrics()
    metrics.record_compliance_scan("completed", [(f.result, f.code) for f in report.findings], 1700000000.0)
    metrics.record_compliance_scan("failed", [("error", "scan-failed")], 1700000600.0)
    text = metrics.render(None, 0)
    lines = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("modelsign_compliance")}
    worker = f'worker="{metrics._worker}"'
    assert lines[f'modelsign_compliance_findings_total{{code="not-signed",result="fail",{worker}}}'] == "2"
    assert lines[f'modelsign_compliance_scans_total{{outcome="failed",{worker}}}'] == "1"
    assert lines[f'modelsign_compliance_current_findings{{result="error",{worker}}}'] == "1"  # the last scan's
    assert lines[f'modelsign_compliance_last_scan_timestamp_seconds{{{worker}}}'] == "1700000600.000"


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def info(self, event: str, **fields) -> None:
        self.events.append((event, fields))

    warning = error = info


def test_one_worker_scans_and_a_scan_that_cannot_run_is_an_error_finding(tmp_path):
    written: list[tuple[str, dict]] = []
    metrics = Metrics()
    loops = [ComplianceLoop(ComplianceSettings(interval_seconds=60), pipeline=lambda: None, record=lambda kind, **f: written.append((kind, f)),
                            metrics=metrics, log=Log(), lock_key=str(tmp_path / "policy.yaml")) for _ in range(2)]
    try:
        assert [loop._leader() for loop in loops] == [True, False]  # the advisory lock: one scanner per pod
        report = loops[0].run_once()  # no policy loaded yet
        assert [(f.result, f.code) for f in report.findings] == [("error", "scan-failed")]
        assert written[0][1]["finding"]["message"].startswith("no valid policy is loaded")
        assert "modelsign_compliance_scans_total" in metrics.render(None, 0) and 'outcome="failed"' in metrics.render(None, 0)
        loops[0].stop()
        assert loops[1]._leader()  # the lock passes on when the scanning worker stops
    finally:
        for loop in loops:
            loop.stop()


def test_failure_report_names_what_failed():
    report = failure_report("the compliance scan failed: GET /api/v1/pods: HTTP 403 Forbidden", policy_name="p", policy_hash="h")
    assert report.counts()["error"] == 1 and policy_reports(report)[-1]["results"][0]["message"].endswith("403 Forbidden")


def test_interval_flags_are_checked_before_the_server_starts(monkeypatch, tmp_path):
    for name in ("MODELSIGN_COMPLIANCE_INTERVAL", "MODELSIGN_COMPLIANCE_KUBECONFIG", "MODELSIGN_COMPLIANCE_APPLY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="invalid duration"):
        export_to_environment(interval="ten minutes", kubeconfig=None, apply=False)
    with pytest.raises(UsageError, match="shorter than 10s"):
        export_to_environment(interval="5s", kubeconfig=None, apply=False)
    with pytest.raises(UsageError, match="need --compliance-interval"):
        export_to_environment(interval=None, kubeconfig=None, apply=True)
    with pytest.raises(UsageError, match="does not exist"):
        export_to_environment(interval="10m", kubeconfig=tmp_path / "missing", apply=False)
    export_to_environment(interval="10m", kubeconfig=None, apply=True)
    assert ComplianceSettings.from_environment() == ComplianceSettings(interval_seconds=600.0, kubeconfig=None, apply=True)


def test_report_cluster_errors_say_what_failed_and_how_to_fix_it(capsys, key_dir, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(key_dir=key_dir))
    code, _, err = run_cli(capsys, "report", "cluster", "--config", policy, "--kubeconfig", tmp_path / "missing-kubeconfig")
    assert code != 0 and "cannot use kubeconfig" in err and "hint:" in err and "Traceback" not in err
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "x", "contexts": [{"name": "x", "context": {
        "cluster": "c", "user": "u"}}], "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}], "users": [{"name": "u", "user": {}}]}))
    code, out, err = run_cli(capsys, "report", "cluster", "--config", policy, "--kubeconfig", broken, "-n", "ml", "-o", "json")
    document = json.loads(out)
    assert code == 1 and {f["result"] for f in document["findings"]} == {"error"}
    assert all("did not answer" in f["message"] for f in document["findings"])
    code, _, err = run_cli(capsys, "report", "cluster", "--config", policy, "--kubeconfig", broken, "--audit-key", tmp_path / "k.key")
    assert code != 0 and "need --audit-log" in err
