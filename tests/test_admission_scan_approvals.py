"""Scan thresholds and approvals at admission: signed attestations in a real registry,
verified by the pipeline, decided by the Rego policy, explained with a fix hint; then the
same through the HTTPS webhook and `modelsign check`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from conftest import FIXTURES, PASSWORD, run_cli
from signer.evidence.approvals import approval_predicate, format_time
from signer.evidence.scan.scanning import vuln_predicate
from signer.evidence.scan.trivy import load_report, summarize_report
from signer.formats import mediatypes as mt
from signer.formats.digests import attestation_tag
from signer.modelkit.pack import pack_modelkit
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.attestations import attest
from signer.signatures.signing import sign_artifact
from signer.trust.keys import SigningKey, generate_key_pair, load_signing_key_file
from support.admission import isvc, pod, review
from support.webhook_server import start_webhook
from test_scanning import EVIL_PICKLE, KITFILE, make_context, safetensors_bytes
from webhook.admission.config import parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review
from webhook.certs import generate

NOW = datetime.now(timezone.utc)
CLEAN_REPORT = FIXTURES / "trivy" / "trivy__alpine-39-skip.json.golden"  # a real report with no findings
CLEAN_MODEL_FILES = {"scanner": "picklescan", "unsafeFiles": 0, "suspiciousFiles": 0, "truncated": False,
                     "files": [{"path": "model/weights.safetensors", "format": "safetensors", "safe": True, "layer": "model"}]}
KEY_NAMES = ("scanner", "approver-a", "approver-b")


def scan_predicate(report: Path = CLEAN_REPORT, *, age: timedelta = timedelta(0), model_files: dict | None = CLEAN_MODEL_FILES) -> dict:
    finished = format_time(NOW - age)
    return vuln_predicate(summarize_report(load_report(report)), model_files, scanner_version="0.59.1", db_version="test",
                          started=finished, finished=finished, parameters=["test"])


def approval(*, environment: str = "prod", namespaces: list[str] | None = None, approver: str = "alice", requester: str = "bob",
             issued: datetime | None = None, not_before: datetime | None = None, lifetime: timedelta = timedelta(days=30)) -> dict:
    return approval_predicate(decision="approved", environment=environment, namespaces=namespaces or ["prod-*"], approver=approver,
                              requester=requester, ticket="CHG-1234", reason="eval passed", now=issued or NOW, not_before=not_before,
                              expires_in_seconds=int(lifetime.total_seconds()))


def without_fixable_counts(predicate: dict) -> dict:
    del predicate["scanner"]["result"]["fixableSeverityCounts"]
    return predicate


def revocation(*, environment: str = "prod") -> dict:
    return approval_predicate(decision="revoked", environment=environment, namespaces=["*"], approver="carol", requester="",
                              ticket="CHG-1300", reason="bias found", now=NOW + timedelta(seconds=1))


class Keys:
    def __init__(self, directory: Path, shared: Path) -> None:
        self.dir = directory
        for name in KEY_NAMES:
            generate_key_pair(directory / name, PASSWORD.encode())
        self.signing = {name: load_signing_key_file(folder / f"{name}.key", password=lambda _: PASSWORD.encode())
                        for name, folder in [(n, directory) for n in KEY_NAMES] + [(n, shared) for n in ("ml-team", "other-team", "second-signer")]}

    def __getitem__(self, name: str) -> SigningKey:
        return self.signing[name]


def policy_text(key_dir: Path, keys_dir: Path, extra: str = "") -> str:
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: gated}}
allowedRegistries: ["127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
  other-team: {{file: {key_dir / 'other-team.pub'}}}
  scanner: {{file: {keys_dir / 'scanner.pub'}}}
  approver-a: {{file: {keys_dir / 'approver-a.pub'}}}
  approver-b: {{file: {keys_dir / 'approver-b.pub'}}}
environments:
  mappings:
    - {{name: prod, namespaces: ["prod-*", "critical"]}}
    - {{name: staging, namespaces: [staging]}}
rules:
  - name: signed-and-scanned
    require:
      signedBy: [ml-team]
      scan: {{signedBy: [scanner], maxAge: 168h, maxSeverity: {{CRITICAL: 0, HIGH: 3}}, unsafeModelFiles: deny, ignoreUnfixed: true}}
  - name: prod-approved
    namespaces: ["prod-*", unmapped]
    require:
      approval: {{signedBy: [approver-a, approver-b]}}
  - name: two-person
    namespaces: [critical]
    require:
      approval: {{signedBy: [approver-a, approver-b], environment: prod, minApprovers: 2}}
{extra}"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory, key_dir) -> Keys:
    return Keys(tmp_path_factory.mktemp("gate-keys"), key_dir)


@pytest.fixture(scope="module")
def kits(registry, tmp_path_factory, keys) -> dict[str, str]:
    """name -> kit://...@digest, each signed by ml-team, with the statements its name says."""
    safe_context = make_context(tmp_path_factory.mktemp("safe"), {"weights.safetensors": safetensors_bytes()})
    evil_context = make_context(tmp_path_factory.mktemp("evil"), {"pytorch_model.bin": EVIL_PICKLE})
    scan = ("scanner", mt.VULN_PREDICATE, scan_predicate())
    ok = ("approver-a", mt.APPROVAL_PREDICATE, approval())
    plans: dict[str, list[tuple[str, str, dict]]] = {
        "approved": [scan, ok],
        "no-scan": [ok],
        "old-scan": [("scanner", mt.VULN_PREDICATE, scan_predicate(age=timedelta(days=9))), ok],
        "untrusted-scanner": [("other-team", mt.VULN_PREDICATE, scan_predicate()), ok],
        "unknown-scanner": [("second-signer", mt.VULN_PREDICATE, scan_predicate()), ok],  # a key the policy does not know
        "critical-vulns": [("scanner", mt.VULN_PREDICATE, scan_predicate(FIXTURES / "trivy" / "trivy__photon-30.json.golden")), ok],
        "unfixed-only": [("scanner", mt.VULN_PREDICATE, scan_predicate(FIXTURES / "trivy" / "trivy__ubuntu-1804.json.golden")), ok],
        "image-style-scan": [("scanner", mt.VULN_PREDICATE, scan_predicate(model_files=None)), ok],
        "no-approval": [scan],
        "wrong-environment": [scan, ("approver-a", mt.APPROVAL_PREDICATE, approval(environment="staging", namespaces=["*"]))],
        "expired": [scan, ("approver-a", mt.APPROVAL_PREDICATE, approval(issued=NOW - timedelta(days=40)))],
        "not-yet-valid": [scan, ("approver-a", mt.APPROVAL_PREDICATE, approval(not_before=NOW + timedelta(days=1)))],
        "revoked": [scan, ok, ("approver-b", mt.APPROVAL_PREDICATE, revocation())],
        "non-approver": [scan, ("other-team", mt.APPROVAL_PREDICATE, approval())],
        "other-namespace": [scan, ("approver-a", mt.APPROVAL_PREDICATE, approval(namespaces=["prod-eu-*"]))],
        "same-key-twice": [scan, ("approver-a", mt.APPROVAL_PREDICATE, approval(namespaces=["*"])),
                           ("approver-a", mt.APPROVAL_PREDICATE, approval(approver="alice-again", namespaces=["*"]))],
        "requester-approves": [scan, ok, ("approver-b", mt.APPROVAL_PREDICATE, approval(approver="bob", requester="bob", namespaces=["*"]))],
        # approver-b asked for it (alice says so) and approved it himself, naming no requester
        "self-approved": [scan, ("approver-b", mt.APPROVAL_PREDICATE, approval(approver="bob", requester="", namespaces=["*"])),
                          ("approver-a", mt.APPROVAL_PREDICATE, approval(requester="approver-b", namespaces=["*"]))],
        "future-scan": [("scanner", mt.VULN_PREDICATE, scan_predicate(age=-timedelta(days=365))), ok],
        "half-scan": [("scanner", mt.VULN_PREDICATE, without_fixable_counts(scan_predicate(FIXTURES / "trivy" / "trivy__photon-30.json.golden"))), ok],
        "two-approvers": [scan, ("approver-a", mt.APPROVAL_PREDICATE, approval(namespaces=["*"])),
                          ("approver-b", mt.APPROVAL_PREDICATE, approval(approver="dave", namespaces=["*"]))],
        "replayed": [scan],
    }
    found = {}
    with Stores() as stores:
        for name, plan in plans.items():
            reference = parse_reference(f"kit://{registry.host}/models/{name}:1")
            digest = pack_modelkit(stores.repository(reference), safe_context, {**KITFILE, "package": {"name": name}}, tag="1").digest
            sign_artifact(stores, reference, keys["ml-team"])
            for index, (key, predicate_type, predicate) in enumerate(plan):
                attest(stores, reference, keys[key], predicate_type, predicate, form="bundle" if index % 2 else "legacy")
            found[name] = f"kit://{registry.host}/models/{name}@{digest}"
        evil = parse_reference(f"kit://{registry.host}/models/evil:1")
        digest = pack_modelkit(stores.repository(evil), evil_context, KITFILE, tag="1").digest
        sign_artifact(stores, evil, keys["ml-team"])
        evil_scan = scan_predicate(model_files={"scanner": "picklescan", "unsafeFiles": 1, "suspiciousFiles": 0, "truncated": False, "files": [
            {"path": "model/pytorch_model.bin", "format": "pickle", "safe": False, "dangerousImports": ["os.system"], "layer": "model"}]})
        attest(stores, evil, keys["scanner"], mt.VULN_PREDICATE, evil_scan)
        attest(stores, evil, keys["approver-a"], mt.APPROVAL_PREDICATE, approval())
        found["evil"] = f"kit://{registry.host}/models/evil@{digest}"
        # Replay: copy the approved kit's attestation manifest onto the other digest's .att tag.
        source = parse_reference(found["approved"].removeprefix("kit://"))
        target = parse_reference(found["replayed"].removeprefix("kit://"))
        repository = stores.repository(source)
        copied = repository.fetch_manifest(attestation_tag(source.digest))
        repository.push_manifest(copied.raw, copied.media_type, tag=attestation_tag(target.digest))
    return found


@pytest.fixture(scope="module")
def pipeline(key_dir, keys) -> Iterator[AdmissionPipeline]:
    built = AdmissionPipeline(parse_policy(policy_text(key_dir, keys.dir), source="test"))
    yield built
    built.close()


def decide(pipeline: AdmissionPipeline, uri: str, namespace: str = "prod-1"):
    return pipeline.decide(parse_review(review("InferenceService", isvc(uri), namespace=namespace)))


def codes(decision) -> list[str]:
    return sorted(v["code"] for v in decision.violations)


def test_signed_scanned_approved_modelkit_is_admitted(pipeline, kits):
    decision = decide(pipeline, kits["approved"])
    assert decision.allowed and decision.outcome == "allow", decision.message
    evidence = decision.artifacts[0]["evidence"]
    assert [s["signer"] for s in evidence["scans"]] == ["scanner"] and evidence["scans"][0]["unsafeModelFiles"] == 0
    assert [(a["signer"], a["status"], a["environment"]) for a in evidence["approvals"]] == [("approver-a", "active", "prod")]


@pytest.mark.parametrize(
    "kit, code, words",
    [
        ("no-scan", "scan-missing", "no scan attestation by key scanner for {ref}"),
        ("untrusted-scanner", "scan-missing", "[1 scan(s) by other keys ignored]; scan it with `modelsign scan {ref} --key scanner.key`"),
        ("unknown-scanner", "scan-missing", "no scan attestation by key scanner for {ref} ({src}, rule signed-and-scanned); scan it with"),
        ("old-scan", "scan-too-old", "by key scanner is 9d old, rule signed-and-scanned accepts at most 7d; rescan it with `modelsign scan {ref}"),
        ("critical-vulns", "scan-over-threshold", "has 2 fixable CRITICAL vulnerability findings (CVE-2019-5481), rule signed-and-scanned allows 0"),
        ("image-style-scan", "scan-no-model-files", "did not examine its model files"),
        ("evil", "unsafe-model-files", "contains 1 unsafe model file(s) [model/pytorch_model.bin (imports os.system)]: files that can run code when loaded"),
        ("no-approval", "approval-missing", "no approval by any of keys approver-a, approver-b for {ref} ({src}) in environment prod; ask an approver: `modelsign approve {ref} --key approver-a.key --environment prod --namespace 'prod-1'"),
        ("wrong-environment", "approval-wrong-environment", "is approved by any of keys approver-a, approver-b for staging but not for environment prod"),
        ("expired", "approval-expired", "for environment prod by any of keys approver-a, approver-b is expired"),
        ("not-yet-valid", "approval-not-yet-valid", "is not valid yet (from " + format_time(NOW + timedelta(days=1)) + "); deploy after that"),
        ("future-scan", "scan-missing", "no scan attestation by key scanner for {ref}"),
        ("half-scan", "scan-missing", "no scan attestation by key scanner for {ref}"),
        ("revoked", "approval-revoked", "is revoked"),
        ("non-approver", "approval-missing", "[1 approval(s) by other keys ignored]"),
        ("other-namespace", "approval-namespace", "cover namespaces prod-eu-*, not prod-1; ask for an approval with --namespace prod-1"),
        ("replayed", "approval-missing", "no approval by any of keys approver-a, approver-b for {ref}"),
    ],
)
def test_each_failed_requirement_denies_with_its_own_message(pipeline, kits, kit, code, words):
    decision = decide(pipeline, kits[kit])
    assert not decision.allowed and decision.outcome == "deny"
    assert codes(decision) == [code], decision.message
    ref = kits[kit].removeprefix("kit://")
    expected = words.format(ref=ref, src="spec.predictor.model.storageUri")
    assert expected in decision.message, decision.message
    assert decision.message.startswith("modelsign denied InferenceService prod-1/llm: ")


def test_ignore_unfixed_and_thresholds_below_the_limit(pipeline, kits):
    # ubuntu-1804: 4 MEDIUM + 1 LOW (unfixed), no HIGH/CRITICAL: under the thresholds.
    assert decide(pipeline, kits["unfixed-only"]).allowed


def test_malformed_and_future_scans_are_rejected_with_the_reason(pipeline, kits):
    reasons = [r["reason"] for r in decide(pipeline, kits["future-scan"]).artifacts[0]["evidence"]["rejected"]]
    assert any(r.startswith("scan attestation finished in the future") for r in reasons)
    reasons = [r["reason"] for r in decide(pipeline, kits["half-scan"]).artifacts[0]["evidence"]["rejected"]]
    assert "scan attestation has a malformed predicate" in reasons


def test_flooded_attestations_deny_rather_than_hide_a_revocation(registry, pipeline, keys, tmp_path):
    """A registry writer without keys pads the .att manifest so the revocation falls past
    the entries modelsign reads: the artifact is denied, not admitted."""
    with Stores() as stores:
        flood = parse_reference(f"kit://{registry.host}/models/flooded:1")
        context = make_context(tmp_path, {"weights.safetensors": safetensors_bytes()})
        digest = pack_modelkit(stores.repository(flood), context, {**KITFILE, "package": {"name": "flooded"}}, tag="1").digest
        sign_artifact(stores, flood, keys["ml-team"])
        for predicate_type, predicate, key in ((mt.VULN_PREDICATE, scan_predicate(), "scanner"), (mt.APPROVAL_PREDICATE, approval(), "approver-a"),
                                               (mt.APPROVAL_PREDICATE, revocation(), "approver-b")):
            attest(stores, flood, keys[key], predicate_type, predicate)
        repository = stores.repository(flood)
        manifest = repository.fetch_manifest(attestation_tag(digest))
        document = json.loads(manifest.raw)
        document["layers"] = [document["layers"][0]] * 120 + document["layers"]
        repository.push_manifest(json.dumps(document).encode(), manifest.media_type, tag=attestation_tag(digest))
    decision = decide(pipeline, f"kit://{registry.host}/models/flooded@{digest}")
    assert not decision.allowed and codes(decision) == ["verification-error"]
    assert "could not all be read" in decision.message and "a revocation or a newer scan might be missed" in decision.message


def test_replayed_attestation_is_rejected_for_its_subject(pipeline, kits):
    rejected = decide(pipeline, kits["replayed"]).artifacts[0]["evidence"]
    assert rejected["approvals"] == []  # the copied approval names the other digest


def test_two_person_rule(pipeline, kits):
    for kit, distinct in (("same-key-twice", 1), ("requester-approves", 0), ("self-approved", 1)):
        decision = decide(pipeline, kits[kit], namespace="critical")
        assert codes(decision) == ["approval-insufficient"], (kit, decision.message)
        assert f"has {distinct} distinct approver(s) for environment prod (the requester never counts), rule two-person needs 2" in decision.message
    assert decide(pipeline, kits["same-key-twice"]).allowed  # one approver is enough in prod-*
    assert decide(pipeline, kits["two-approvers"], namespace="critical").allowed
    decision = decide(pipeline, kits["approved"], namespace="critical")  # its approval covers prod-* only
    assert codes(decision) == ["approval-namespace"]


def test_environment_comes_from_the_namespace(pipeline, kits):
    assert decide(pipeline, kits["wrong-environment"], namespace="staging").allowed  # no approval rule there
    decision = decide(pipeline, kits["approved"], namespace="unmapped")
    assert codes(decision) == ["approval-no-environment"]
    assert "namespace unmapped maps to no environment" in decision.message


def test_warn_mode_admits_with_the_same_messages(key_dir, keys, kits):
    warned = AdmissionPipeline(parse_policy(policy_text(key_dir, keys.dir).replace("metadata: {name: gated}", "metadata: {name: gated}\nmode: warn"), source="test"))
    try:
        decision = decide(warned, kits["expired"])
    finally:
        warned.close()
    assert decision.allowed and decision.outcome == "warn"
    assert any("modelsign would deny (warn mode)" in w and "is expired" in w for w in decision.warnings)


def test_container_images_need_no_model_file_scan(registry, key_dir, keys):
    with Stores() as stores:
        reference = parse_reference(f"{registry.host}/apps/scanned-image:1")
        push_image(stores.repository(reference), {"f": b"app"}, tag="1")
        sign_artifact(stores, reference, keys["ml-team"])
        attest(stores, reference, keys["scanner"], mt.VULN_PREDICATE, scan_predicate(model_files=None))
    gate = AdmissionPipeline(parse_policy(policy_text(key_dir, keys.dir), source="test"))
    try:
        decision = gate.decide(parse_review(review("Pod", pod(f"{registry.host}/apps/scanned-image:1"), namespace="staging")))
    finally:
        gate.close()
    assert decision.allowed, decision.message


# -- namespace labels through the kubernetes client --------------------------------------------
# Read from the real API server in tests/test_cluster.py (labels, caching, a refusal); here only
# what needs no API server: an address where nothing answers.


def test_unreachable_api_server_denies(key_dir, keys, kits):
    text = policy_text(key_dir, keys.dir).replace("environments:\n", "environments:\n  namespaceLabel: env\n  apiServer: http://127.0.0.1:9\n")
    gate = AdmissionPipeline(parse_policy(text, source="test"))
    try:
        decision = decide(gate, kits["approved"])
    finally:
        gate.close()
    assert not decision.allowed and "cannot read labels of namespace prod-1" in decision.message


# -- the CLI side of approvals -----------------------------------------------------------------


def test_cli_approve_list_revoke(capsys, registry, key_dir, keys):
    reference = f"kit://{registry.host}/models/cli-approved:1"
    with Stores() as stores:
        context = make_context(Path(keys.dir) / "cli-kit", {"weights.safetensors": safetensors_bytes()})
        pack_modelkit(stores.repository(parse_reference(reference)), context, KITFILE, tag="1")
    approver = keys.dir / "approver-a"
    code, out, err = run_cli(capsys, "approve", reference, "--key", f"{approver}.key", "--environment", "prod", "--namespace", "prod-*",
                             "--expires", "30d", "--ticket", "CHG-1234", "--reason", "eval passed", "--requester", "bob", "--approver", "alice")
    assert code == 0, err
    code, out, err = run_cli(capsys, "approvals", "list", reference, "--key", f"{approver}.pub", "--output", "json")
    assert code == 0, err
    listed = json.loads(out)["approvals"]
    assert [(a["status"], a["decision"], a["environment"], a["namespaces"], a["approver"], a["requester"], a["ticket"]) for a in listed] == [
        ("active", "approved", "prod", ["prod-*"], "alice", "bob", "CHG-1234")]
    assert code == 0 and run_cli(capsys, "revoke", reference, "--key", f"{keys.dir / 'approver-b'}.key", "--ticket", "CHG-1300", "--environment", "prod")[0] == 0
    code, out, _ = run_cli(capsys, "approvals", "list", reference, "--key", f"{approver}.pub", "--key", f"{keys.dir / 'approver-b'}.pub")
    assert code == 0 and "revoked" in out and "revocation" in out and "CHG-1300" in out
    code, _, err = run_cli(capsys, "approve", reference, "--key", f"{approver}.key", "--environment", "prod", "--expires", "soon", "--ticket", "X")
    assert code == 2 and "invalid duration 'soon'" in err
    code, _, err = run_cli(capsys, "approve", reference, "--key", f"{approver}.key", "--environment", "prod", "--expires", "1d", "--ticket", "X",
                           "--not-before", "tomorrow")
    assert code == 2 and "is not an RFC 3339 time" in err


@pytest.mark.parametrize("predicate, kept", [
    ({"decision": "approved", "environment": "prod", "approvedAt": "2026-01-01T00:00:00Z"}, False),  # no expiry
    ({"decision": "maybe", "environment": "prod", "approvedAt": "2026-01-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z"}, False),
    ({"decision": "approved", "environment": ["prod"], "approvedAt": "2026-01-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z"}, False),
    ({"decision": "approved", "environment": "prod", "approvedAt": "yesterday", "expiresAt": "2099-01-01T00:00:00Z"}, False),
    ("not an object", False),
    ({"decision": "approved", "environment": "prod", "approvedAt": "2026-01-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z"}, True),
])
def test_hostile_approval_predicates_are_ignored(registry, pipeline, keys, predicate, kept):
    name = f"hostile-approval-{abs(hash(json.dumps(predicate))) % 10**8}"
    with Stores() as stores:
        reference = parse_reference(f"{registry.host}/models/{name}:1")
        push_image(stores.repository(reference), {"f": name.encode()}, tag="1")
        sign_artifact(stores, reference, keys["ml-team"])
        attest(stores, reference, keys["scanner"], mt.VULN_PREDICATE, scan_predicate())
        attest(stores, reference, keys["approver-a"], mt.APPROVAL_PREDICATE, predicate)
    decision = pipeline.decide(parse_review(review("Pod", pod(f"{registry.host}/models/{name}:1"), namespace="prod-1")))
    assert decision.allowed is kept, decision.message
    if not kept:
        assert codes(decision) == ["approval-missing"]


def test_hostile_scan_predicate_is_ignored_and_explained(registry, pipeline, keys):
    with Stores() as stores:
        reference = parse_reference(f"{registry.host}/models/hostile-scan:1")
        push_image(stores.repository(reference), {"f": b"hostile-scan"}, tag="1")
        sign_artifact(stores, reference, keys["ml-team"])
        attest(stores, reference, keys["scanner"], mt.VULN_PREDICATE, {"scanner": {"result": {"severityCounts": "lots"}}})
        attest(stores, reference, keys["approver-a"], mt.APPROVAL_PREDICATE, approval())
    decision = pipeline.decide(parse_review(review("Pod", pod(f"{registry.host}/models/hostile-scan:1"), namespace="prod-1")))
    assert codes(decision) == ["scan-missing"]
    assert any(r["reason"] == "scan attestation has a malformed predicate" for r in decision.artifacts[0]["evidence"]["rejected"])


# -- end to end: the HTTPS webhook and `modelsign check` ----------------------------------------


@pytest.fixture(scope="module")
def gated_files(tmp_path_factory, key_dir, keys) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("gated-webhook")
    policy = workdir / "policy.yaml"
    policy.write_text(policy_text(key_dir, keys.dir))
    generate("modelsign-webhook", "modelsign-system", workdir / "certs", extra_sans=["127.0.0.1"])
    return workdir, policy


def test_end_to_end_through_the_https_webhook(gated_files, kits):
    workdir, policy = gated_files
    server = start_webhook(policy, workdir / "certs", workdir, workers=1)
    try:
        with server.client() as client:
            answers = {}
            for kit in ("approved", "evil", "expired", "critical-vulns"):
                body = review("InferenceService", isvc(kits[kit]), namespace="prod-1", uid=f"uid-{kit}")
                response = client.post("/validate", content=body, headers={"Content-Type": "application/json"})
                assert response.status_code == 200
                answers[kit] = response.json()["response"]
    finally:
        server.stop()
    assert answers["approved"]["allowed"] is True and answers["approved"]["uid"] == "uid-approved"
    for kit, words in (("evil", "unsafe model file"), ("expired", "is expired"), ("critical-vulns", "2 fixable CRITICAL vulnerability findings")):
        assert answers[kit]["allowed"] is False and answers[kit]["status"]["code"] == 403
        assert words in answers[kit]["status"]["message"]


def test_end_to_end_through_modelsign_check(capsys, gated_files, kits):
    workdir, policy = gated_files
    manifests = workdir / "deploy.yaml"
    documents = [isvc(kits[kit]) | {"metadata": {"name": kit, "namespace": "prod-1"}} for kit in ("approved", "revoked", "old-scan")]
    manifests.write_text("---\n".join(json.dumps(d) + "\n" for d in documents))
    code, out, err = run_cli(capsys, "check", "-f", manifests, "--config", policy)
    assert code == 1, err
    assert "ALLOW" in out and "InferenceService  prod-1/approved" in out.replace("  ", "  ")
    assert "is revoked" in out and "9d old" in out
    code, out, _ = run_cli(capsys, "check", "-f", manifests, "--config", policy, "--output", "json")
    assert [r["allowed"] for r in json.loads(out)] == [True, False, False]
