"""A decision record that becomes durable only after its review was answered: the webhook
(in-process, real pipeline, real registry) denies for want of a record, the writer follows
the late record with one that supersedes it, and verify and every export format show the
response actually given."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from pathlib import Path

from starlette.testclient import TestClient

from conftest import PASSWORD, run_cli
from signer.trust.keys import generate_key_pair
from support.admission import pod, policy_for, review
from support.audit import push_signed_image, records
from webhook.audit.writer import APPEND_TIMEOUT_SECONDS, CLAIMED_GRACE_SECONDS, AuditWriter
from webhook.server.app import Settings, create_app


def test_a_late_decision_record_is_shown_with_the_answer_given(tmp_path, monkeypatch, capsys, registry, key_dir):
    signed = push_signed_image(registry.host, "late/signed", key_dir)
    generate_key_pair(tmp_path / "audit", PASSWORD.encode())
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, name="late"))
    log_dir, checkpoints = tmp_path / "audit-log", tmp_path / "checkpoints" / "audit.checkpoints.jsonl"
    for name, value in (("MODELSIGN_AUDIT_LOG", log_dir / "audit.jsonl"), ("MODELSIGN_AUDIT_KEY", tmp_path / "audit.key"),
                        ("MODELSIGN_AUDIT_CHECKPOINTS", checkpoints), ("MODELSIGN_AUDIT_PASSWORD", PASSWORD)):
        monkeypatch.setenv(name, str(value))
    real = AuditWriter._write_durably

    def stalled(self, data: bytes):
        if b'"late-review"' in data and b'"type":"decision"' in data:  # the disk hangs while this decision is written, past the caller's patience
            time.sleep(APPEND_TIMEOUT_SECONDS + CLAIMED_GRACE_SECONDS + 0.6)
        return real(self, data)

    monkeypatch.setattr(AuditWriter, "_write_durably", stalled)
    with TestClient(create_app(Settings(policy_path=policy), watch=False)) as client:
        late = client.post("/validate", content=review("Pod", pod(signed), uid="late-review")).json()["response"]
        after = client.post("/validate", content=review("Pod", pod(signed), uid="after")).json()["response"]
    assert late["allowed"] is False and "could not write the audit record" in late["status"]["message"]
    assert "the record after it says this review was denied" in late["status"]["message"]
    assert after["allowed"] is True

    entries = records(log_dir)
    recorded = next(e for e in entries if e["record"]["type"] == "decision" and e["record"]["review"]["uid"] == "late-review")
    assert recorded["record"]["decision"]["allowed"] is True  # written after all, as "allow"...
    superseding = next(e for e in entries if e["seq"] == recorded["seq"] + 1 and e["writer"] == recorded["writer"])["record"]
    decision_id = recorded["record"]["decision"]["id"]
    assert superseding["type"] == "superseded" and superseding["response"]["allowed"] is False  # ...and at once said otherwise
    assert superseding["supersedes"] == [{"decisionId": decision_id, "hash": recorded["hash"], "seq": recorded["seq"], "writer": recorded["writer"]}]
    failure = next(e["record"] for e in entries if e["record"]["type"] == "audit-failure")
    assert failure["decisionId"] == decision_id and failure["response"] == {"allowed": False, "reason": "audit-record-late"}

    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--key", tmp_path / "audit.pub", "--checkpoints", checkpoints)
    assert code == 0 and "INTACT" in out
    assert f"superseded: {recorded['writer']}#{recorded['seq']} (decision {decision_id}) was answered allowed=false (audit-record-late)" in out

    code, _, err = run_cli(capsys, "audit", "export", log_dir, "--format", "csv", "--format", "jsonl", "--format", "html", "--format", "pdf",
                           "-o", tmp_path / "export", "--key", tmp_path / "audit.pub", "--checkpoints", checkpoints)
    assert code == 0, err

    def exported(suffix: str) -> Path:  # each export names its files audit-report-<report id>.<format>
        return next((tmp_path / "export").glob(f"audit-report-*.{suffix}"))

    rows = {row["review_uid"]: row for row in csv.DictReader(io.StringIO(exported("csv").read_text(), newline=""))}
    assert rows["late-review"]["allowed"] == "false" and rows["late-review"]["outcome"] == "deny" and rows["late-review"]["reason"] == "audit-record-late"
    assert rows["late-review"]["recorded_outcome"] == "allow" and rows["late-review"]["superseded_by"] == f"{recorded['writer']}#{recorded['seq'] + 1}"
    assert rows["after"]["allowed"] == "true" and rows["after"]["superseded_by"] == ""
    lines = {json.loads(line)["review"]["uid"]: json.loads(line) for line in exported("jsonl").read_text().splitlines()}
    assert lines["late-review"]["responseGiven"]["allowed"] is False and lines["late-review"]["hash"] == recorded["hash"]
    assert "responseGiven" not in lines["after"]
    html = exported("html").read_text()
    assert "audit record late" in html and f"{recorded['writer']}#{recorded['seq']}" in html and "Denials (1)" in html
    text = subprocess.run(["pdftotext", "-layout", str(exported("pdf")), "-"], capture_output=True, text=True, check=True).stdout
    assert "audit record late" in text and "Denials (1)" in text
    manifest = json.loads(exported("manifest.json").read_text())
    assert manifest["integrity"]["superseded"] == 1 and manifest["integrity"]["status"] == "INTACT"
