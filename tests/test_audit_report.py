"""The audit report as an auditor's workpaper, from a trail two real webhook runs wrote (the
first enforcing, the second in warn mode with another policy, and a stretch with no webhook
running between them): scope, the policy in force per hash, population and sample, the
controls tested, the report's identity, the evidence pack, and the PDF checked by its pixels."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import PASSWORD, run_cli
from signer.trust.keys import load_public_key_file, load_signing_key_file
from support.admission import policy_for
from support.audit import AuditedWebhook, audited_webhook, post_reviews, push_signed_image
from support.webhook_server import start_webhook
from webhook.audit.trail import AuditTrail
from webhook.audit.writer import AuditSettings, AuditWriter

IDENTITY = {"MODELSIGN_CLUSTER": "prod-eu-1", "POD_NAME": "modelsign-webhook-7d9f", "POD_NAMESPACE": "modelsign-system", "NODE_NAME": "node-3"}
DENY_RED = (0xC6, 0x28, 0x28)
ALLOW_GREEN = (0x2E, 0x7D, 0x32)
WARN_POLICY_EXTRA = "mode: warn\n"


def write_two_runs(workdir: Path, registry_host: str, key_dir: Path) -> AuditedWebhook:
    """Run 1 enforces policy A; it stops; nothing runs for 2 s; run 2 warns under policy B
    (one more exempt namespace). Then an in-process writer records an approved deployment."""
    signed = push_signed_image(registry_host, "report/signed", key_dir)
    images = [signed if i % 3 else "docker.io/library/nginx:1" for i in range(18)]
    audited = audited_webhook(workdir, key_dir, env=IDENTITY)
    try:
        post_reviews(audited.server, images, namespaces=("prod", "ml"), prefix="run1")
    finally:
        audited.server.stop()
    time.sleep(2)  # the gap the report must show: no writer runs now
    warn_policy = workdir / "policy-warn.yaml"
    warn_policy.write_text(policy_for(key_dir, name="audited-warn").replace("exemptNamespaces: [kube-system]",
                                                                           "exemptNamespaces: [kube-system, sandbox]\nmode: warn"))
    flags = ["--audit-log", str(audited.log_dir / "audit.jsonl"), "--audit-key", str(workdir / "audit.key"), "--audit-checkpoints",
             str(audited.checkpoints), "--audit-checkpoint-records", "20"]
    server = start_webhook(warn_policy, workdir / "certs", workdir, extra=flags, env={"MODELSIGN_AUDIT_PASSWORD": PASSWORD, **IDENTITY})
    try:
        post_reviews(server, images, namespaces=("prod", "ml", "sandbox"), prefix="run2")
    finally:
        server.stop()
    key = load_signing_key_file(workdir / "audit.key", password=lambda _: PASSWORD.encode())
    trail = AuditTrail(AuditWriter(AuditSettings(path=audited.log_dir / "audit.jsonl", key=key, checkpoint_path=audited.checkpoints)))
    trail.event("decision", review={"uid": "approved-1", "dryRun": False, "operation": "CREATE", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                                    "namespace": "prod", "name": "fraud-model"},
                user={"username": "deployer", "uid": "", "groups": []},
                artifacts=[{"reference": "registry.example/risk/fraud-model:2.1@sha256:" + "4" * 64, "digest": "sha256:" + "4" * 64,
                            "signers": ["ml-team"], "signatures": ["k"], "scans": [],
                            "approvals": [{"id": "sha256:" + "5" * 64, "signer": "approver", "approver": "carol", "requester": "bob", "ticket": "CHG-4711",
                                           "environment": "prod", "status": "active", "expiresAt": "2099-01-01T00:00:00Z"}]}],
                decision={"id": "d-approved", "outcome": "allow", "allowed": True, "mode": "warn", "reason": "verified", "codes": [],
                          "message": "1 artifact(s) verified", "warnings": []},
                policy={"name": "audited-warn", "hash": "sha256:" + "6" * 64}, latencyUs=900)
    trail.close()
    return audited


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registry, key_dir):
    return write_two_runs(tmp_path_factory.mktemp("two-runs"), registry.host, key_dir)


@pytest.fixture(autouse=True)
def _audit_password(monkeypatch):
    monkeypatch.setenv("MODELSIGN_AUDIT_PASSWORD", PASSWORD)


@pytest.fixture(scope="module")
def pack(runs, tmp_path_factory):
    """One evidence pack (csv + pdf + json) and an HTML report of the whole trail."""
    from webhook.cli import main  # run_cli needs capsys, which a module fixture has not

    out = tmp_path_factory.mktemp("pack")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELSIGN_AUDIT_PASSWORD", PASSWORD)
        code = main([str(a) for a in ("audit", "export", runs.log_dir, "--format", "pack", "--format", "html", "-o", out, "--key", runs.audit_pub,
                                      "--checkpoints", runs.checkpoints, "--signing-key", runs.workdir / "audit.key", "--sample", "100",
                                      "--failure-policy", "Fail", "--generated-by", "Dana Auditor (Example LLP)")])
    assert code == 0
    [manifest] = out.glob("*.manifest.json")
    base = manifest.name.removesuffix(".manifest.json")
    text = subprocess.run(["pdftotext", "-layout", str(out / f"{base}.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    return {"dir": out, "base": base, "manifest": json.loads(manifest.read_text()), "resource": json.loads((out / f"{base}.json").read_text()),
            "html": (out / f"{base}.html").read_text(), "pdf_text": text, "pdf": out / f"{base}.pdf", "csv": (out / f"{base}.csv").read_text()}


def _csv_rows(pack) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(pack["csv"], newline="")))


def test_the_pack_is_csv_pdf_and_a_json_resource_under_one_signed_manifest(pack, runs, capsys):
    base = pack["base"]
    assert sorted(f["name"] for f in pack["manifest"]["files"]) == sorted(f"{base}.{fmt}" for fmt in ("csv", "pdf", "json", "html"))
    resource = pack["resource"]
    assert resource["schema"] == "modelsign.audit-report/v1" and resource["reportId"] == pack["manifest"]["reportId"]
    listed = {f["name"]: f["sha256"] for f in resource["files"]}
    assert set(listed) >= {f"{base}.csv", f"{base}.pdf"}
    assert all(hashlib.sha256((pack["dir"] / name).read_bytes()).hexdigest() == digest for name, digest in listed.items())
    code, text, _ = run_cli(capsys, "audit", "verify-export", pack["dir"], "--key", runs.audit_pub)
    assert code == 0 and "export intact" in text and "signature: valid" in text


def test_scope_names_the_cluster_webhook_writers_period_and_gap(pack):
    scope = pack["resource"]["scope"]
    assert scope["cluster"] == "prod-eu-1" and scope["webhook"] == "artifacts.modelsign.dev"
    assert scope["pods"] == "modelsign-system/modelsign-webhook-7d9f" and scope["failurePolicy"] == "Fail"
    started = [w for w in scope["writers"] if w["identity"]]
    assert len(started) == 4 and all(w["shutdownRecorded"] for w in started)  # 2 workers per run, each stopped cleanly
    [gap] = scope["gaps"]
    # run 1's writers are the ones that started before the gap ended (its start and end may share a second)
    gap_end = datetime.fromisoformat(gap["to"].replace("Z", "+00:00"))
    run1_end = max(w["stopped"] for w in started if datetime.fromisoformat(w["started"]) < gap_end)
    assert gap["from"] == run1_end[:19] + "Z" and "no writer was running" in gap["why"] and "stopped cleanly" in gap["why"]
    for text in (pack["html"], " ".join(pack["pdf_text"].split())):
        assert "prod-eu-1" in text and "rejected every request the webhook configuration matches" in text
        assert "no writer was running" in text and "mode over the period" in text


def test_mode_and_exempt_namespaces_over_the_period(pack):
    rows = _csv_rows(pack)
    modes = {mode: sum(1 for r in rows if r["mode"] == mode) for mode in ("enforce", "warn")}
    assert modes["enforce"] and modes["warn"]
    text = " ".join(pack["pdf_text"].split())
    assert f"enforce: {modes['enforce']} decision(s), warn: {modes['warn']} decision(s)" in text
    exempt = {p["name"]: p["facts"]["exemptNamespaces"] for p in pack["resource"]["policies"] if p["facts"] and "exemptNamespaces" in p["facts"]}
    assert exempt == {"audited": ["kube-system"], "audited-warn": ["kube-system", "sandbox"]}
    sandbox = [r for r in rows if r["namespace"] == "sandbox"]
    assert sandbox and all(r["reason"] == "exempt-namespace" for r in sandbox)


def test_the_policy_in_force_per_hash_has_its_rules_and_keys(pack, key_dir):
    fingerprint = load_public_key_file(key_dir / "ml-team.pub", name="ml-team").key_id
    loaded = [p for p in pack["resource"]["policies"] if p["facts"] and "rules" in p["facts"]]
    assert {p["name"] for p in loaded} == {"audited", "audited-warn"} and len({p["hash"] for p in loaded}) == 2
    for policy in loaded:
        assert policy["facts"]["rules"][0]["name"] == "models-signed" and policy["facts"]["rules"][0]["require"]["signedBy"] == ["ml-team"]
        [key] = policy["facts"]["keys"]
        assert key == {"name": "ml-team", "fingerprint": fingerprint, "kind": "key", "source": f"file {key_dir / 'ml-team.pub'}",
                       "usedBy": ["models-signed (signature)"]}
    assert {p["facts"]["mode"] for p in loaded} == {"enforce", "warn"}
    for text in (pack["html"], pack["pdf_text"]):
        assert fingerprint in text and all(p["hash"] in text for p in loaded) and "models-signed (signature)" in text


def test_population_and_sample_are_stated_with_tickets_approvers_and_repositories(pack):
    decisions = len(_csv_rows(pack))
    population = pack["resource"]["population"]
    assert population["size"] == decisions and population["sampleSize"] == min(100, decisions) and "random.Random(seed).sample" in population["method"]
    statement = f"Population {decisions} (the period's decisions matching the filters), sample {population['sampleSize']}, seed {population['seed']}, method:"
    assert statement in " ".join(pack["pdf_text"].split()) and statement.replace("'", "&#x27;") in pack["html"]
    [approved] = [s for s in pack["resource"]["sample"] if s["tickets"]]
    assert (approved["tickets"], approved["approvers"], approved["repositories"]) == ("CHG-4711", "carol", "registry.example/risk/fraud-model")
    sample_html = pack["html"].split('id="sample"', 1)[1].split("</section>", 1)[0]
    assert "<td>CHG-4711</td><td>carol</td>" in sample_html and "registry.example/risk/fraud-model" in sample_html
    assert "CHG-4711" in pack["pdf_text"] and "carol" in pack["pdf_text"]
    assert re.search(r"<td class=time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ</td>", sample_html)  # td.time: white-space nowrap


def test_each_control_says_what_was_tested_how_many_passed_and_the_exceptions(pack):
    rows = _csv_rows(pack)
    controls = {c["criterion"]: c for c in pack["resource"]["controls"]}
    assert list(controls) == ["CC6.8", "CC7.1", "CC7.2", "CC8.1"]
    warned = [r for r in rows if r["outcome"] == "warn"]
    checked = [r for r in rows if r["reason"] != "exempt-namespace"]
    cc68 = controls["CC6.8"]
    assert warned and len(cc68["exceptions"]) == len(warned) and all("admitted in warn mode despite registry-not-allowed" in e["exception"]
                                                                       for e in cc68["exceptions"])
    assert cc68["population"] == len(checked) and cc68["passed"] == len(checked) - len(warned)
    assert cc68["outOfScope"] == len(rows) - len(checked)
    assert controls["CC8.1"]["population"] == 1 and controls["CC8.1"]["passed"] == 1
    cc72 = controls["CC7.2"]
    assert cc72["population"] == pack["manifest"]["integrity"]["records"] and cc72["passed"] == cc72["population"]
    gap = pack["resource"]["scope"]["gaps"][0]
    assert [e["exception"] for e in cc72["exceptions"]] == [f"no webhook record for {gap['duration']} (to {gap['to']}): {gap['why']}"]
    soc2 = pack["html"].split('id="soc2"', 1)[1].split("</section>", 1)[0]
    assert f"<td class=num>{len(checked)}</td><td class=num>{len(checked) - len(warned)}</td><td class=num>{len(warned)}</td>" in soc2


def test_the_report_identity(pack, runs):
    fingerprint = load_public_key_file(runs.audit_pub, name="audit").key_id
    manifest, resource = pack["manifest"], pack["resource"]
    assert manifest["reportId"] == resource["reportId"] and pack["base"] == f"audit-report-{manifest['reportId']}"
    assert manifest["generatedBy"] == resource["generatedBy"] == "Dana Auditor (Example LLP)"
    assert manifest["auditKeys"] == [f"{fingerprint} (audit.pub)"] and manifest["modelsignVersion"] == resource["modelsignVersion"]
    for text in (pack["html"], pack["pdf_text"]):
        assert manifest["reportId"] in text and fingerprint in text and "Dana Auditor (Example LLP)" in text and manifest["modelsignVersion"] in text


def _pages(pdf: Path, directory: Path) -> list:
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(directory / "page")], check=True, capture_output=True)
    return [Image.open(path).convert("RGB") for path in sorted(directory.glob("page-*.png"))]


def _near(rgb: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 14 for a, b in zip(rgb, target))


def _header_bands(image) -> list[tuple[int, int, int]]:
    """(last y, x0, x1) of each table heading row: a band of the light grey heading fill."""
    width, height = image.size
    pixels = image.load()
    bands: list[tuple[int, int, int]] = []
    previous = False
    for y in range(height):
        grey = [x for x in range(width) if _near(pixels[x, y], (235, 235, 235))]
        is_band = len(grey) > width // 4
        if is_band:
            bands[-1:] = [(y, grey[0], grey[-1])] if previous else [*bands[-1:], (y, grey[0], grey[-1])]
        previous = is_band
    return bands


def test_pdf_tables_are_white_and_only_the_charts_are_coloured(pack, tmp_path):
    pages = _pages(pack["pdf"], tmp_path)
    chart_page = next(i for i, text in enumerate(pack["pdf_text"].split("\f")) if "Decisions over time" in text)
    colours = [image.getcolors(maxcolors=1 << 20) for image in pages]
    red = [sum(n for n, rgb in page if _near(rgb, DENY_RED)) for page in colours]
    green = [sum(n for n, rgb in page if _near(rgb, ALLOW_GREEN)) for page in colours]
    assert red[chart_page] > 200 and green[chart_page] > 200, (red, green)
    assert all(count == 0 for i, count in enumerate(red) if i != chart_page), red  # before the fix, every table cell was this red
    sampled = 0
    for image in pages:
        pixels = image.load()
        for y, x0, x1 in _header_bands(image):
            if y + 10 >= image.size[1]:
                continue
            cells = [pixels[x, row] for row in range(y + 2, y + 10) for x in range(x0 + 2, x1 - 2)]  # the first body row(s)
            white = sum(1 for rgb in cells if min(rgb) >= 230)  # paper, or the faint edge of a glyph
            tinted = [rgb for rgb in cells if max(rgb) - min(rgb) > 12]
            assert white > 0.6 * len(cells) and not tinted, (y, white, len(cells), tinted[:5])  # white paper, black text, grey rules
            sampled += 1
    assert sampled >= 8  # identity, scope (3), policy (2 per hash), controls (2), sample, integrity, ...


def test_pdf_times_stay_on_one_line(pack):
    pages = pack["pdf_text"].split("\f")
    sample_page = next(p for p in pages if "Population and sample" in p)
    one_line = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", sample_page)
    assert len(one_line) >= sum(1 for line in sample_page.splitlines() if re.search(r"\b(allow|deny|warn)\b", line))
    assert not re.search(r"^\s*\d\d:\d\d:\d\d(\.\d+)?Z", pack["pdf_text"], re.MULTILINE)  # no time cut off onto a line of its own


def test_the_timeline_bucket_follows_the_period():
    from datetime import datetime, timedelta, timezone

    from webhook.audit.report import timeline_buckets

    start = datetime(2026, 11, 1, 23, 0, tzinfo=timezone.utc)
    record = {"type": "decision", "time": "2026-11-01T23:07:30Z", "decision": {"outcome": "deny"}}
    for length, unit, first_label in ((timedelta(minutes=3), "5 seconds", "23:00:00"), (timedelta(minutes=40), "minute", "23:00"),
                                      (timedelta(hours=30), "hour", "11-01 23:00"), (timedelta(days=40), "day", "2026-11-01")):
        found_unit, buckets = timeline_buckets([record], start, start + length)
        assert found_unit == unit and buckets[0][0] == first_label and 2 <= len(buckets) <= 49, (length, found_unit, len(buckets))
        assert sum(counts["deny"] for _, counts in buckets) == (1 if length > timedelta(minutes=8) else 0)


def test_policy_facts_name_keyless_owners_and_what_each_rule_trusts_a_key_for():
    from webhook.admission.config import parse_policy
    from webhook.audit.canonical import canonical_json
    from webhook.audit.policy_facts import policy_facts

    cosign = Path(__file__).parent / "fixtures" / "cosign"
    policy = parse_policy(f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
metadata: {{name: facts}}
mode: warn
exemptNamespaces: [kube-system, sandbox]
allowedRegistries: ["registry.example.com"]
trustedKeys:
  ml-team: {{file: {cosign / 'kwctl__cosign1.pub'}}}
  release-ci: {{keyless: {{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "^https://github.com/acme/.*"}}, trustedRoot: {{file: {cosign / 'cosign__trusted_root_pgi.json'}}}}}
rules:
  - name: prod-models
    namespaces: [prod]
    require: {{signedBy: [release-ci], scan: {{signedBy: [ml-team], maxSeverity: {{CRITICAL: 0}}}}, approval: {{signedBy: [ml-team], environment: prod}}}}
""", source="test")
    facts = policy_facts(policy)
    canonical_json(facts)  # a record holds it: no floats, nothing without a canonical form
    assert (facts["mode"], facts["exemptNamespaces"], facts["allowedRegistries"]) == ("warn", ["kube-system", "sandbox"], ["registry.example.com"])
    keys = {k["name"]: k for k in facts["keys"]}
    assert keys["release-ci"]["kind"] == "keyless" and keys["release-ci"]["fingerprint"] == policy.key_fingerprints["release-ci"]
    assert keys["release-ci"]["source"] == "issuer https://token.actions.githubusercontent.com subject ^https://github.com/acme/.*"
    assert keys["release-ci"]["usedBy"] == ["prod-models (signature)"] and keys["ml-team"]["usedBy"] == ["prod-models (scan, approval)"]
    assert facts["rules"][0]["namespaces"] == ["prod"] and facts["rules"][0]["require"]["scan"]["maxSeverity"] == {"CRITICAL": 0}


def test_gaps_say_whether_the_writer_before_stopped_or_vanished():
    from datetime import datetime, timedelta, timezone

    from webhook.audit.scope import Run, gaps

    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    runs = [Run("a", t0, t0 + timedelta(minutes=1), True, {}), Run("b", t0 + timedelta(minutes=5), t0 + timedelta(minutes=6), False, {}),
            Run("c", t0 + timedelta(minutes=5), t0 + timedelta(minutes=5, seconds=30), True, {})]
    found = gaps(runs, t0 - timedelta(minutes=1), t0 + timedelta(minutes=10))
    assert [(g["from"], g["to"], g["duration"]) for g in found] == [
        ("2026-10-31T23:59:00Z", "2026-11-01T00:00:00Z", "1 min 0 s"), ("2026-11-01T00:01:00Z", "2026-11-01T00:05:00Z", "4 min 0 s"),
        ("2026-11-01T00:06:00Z", "2026-11-01T00:10:00Z", "4 min 0 s")]
    assert found[0]["why"] == "before the first record of any writer in the trail"
    assert found[1]["why"] == "no writer was running: a stopped cleanly (shutdown record)"
    assert found[2]["why"].startswith("no record after the last one of b, which has no shutdown record: it was killed")
    assert gaps(runs, t0, t0 + timedelta(seconds=50)) == []


def test_a_period_covers_only_the_writers_and_policies_that_ran_in_it(pack, runs, capsys, tmp_path):
    from datetime import datetime

    gap = pack["resource"]["scope"]["gaps"][0]
    since = datetime.fromisoformat(gap["from"].replace("Z", "+00:00")) + (datetime.fromisoformat(gap["to"].replace("Z", "+00:00"))
                                                                          - datetime.fromisoformat(gap["from"].replace("Z", "+00:00"))) / 2
    code, _, err = run_cli(capsys, "audit", "export", runs.log_dir, "--format", "json", "-o", tmp_path / "second-run.json", "--key", runs.audit_pub,
                           "--checkpoints", runs.checkpoints, "--since", since.isoformat(), "--until", "2099-01-01")
    assert code == 0, err
    resource = json.loads((tmp_path / "second-run.json").read_text())
    writers = resource["scope"]["writers"]
    assert len(writers) == 3 and all(w["started"] >= since.isoformat() for w in writers)  # run 2's two workers and the in-process writer
    assert {p["name"] for p in resource["policies"] if p["facts"] and "rules" in p["facts"]} == {"audited-warn"}
    assert not any(p["inForceAtStart"] for p in resource["policies"])  # no webhook ran at the start of this period
    first = resource["scope"]["gaps"][0]
    assert first["from"] == since.strftime("%Y-%m-%dT%H:%M:%SZ") and first["why"].startswith("no writer was running")
