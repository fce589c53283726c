"""The audit trail as the running webhook writes it: one chain per worker, a durable record
behind every response, crashes, a full disk, an unwritable log, events besides decisions."""

from __future__ import annotations

import json
import os
import re
import resource
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from signer.trust.keys import load_public_key_file
from support.admission import pod, review
from support.audit import audited_webhook, post_reviews, push_signed_image, records
from webhook.audit.verify import verify


@pytest.fixture(scope="module")
def images(registry, key_dir) -> dict[str, str]:
    return {"signed": push_signed_image(registry.host, "audited/signed", key_dir), "denied": "docker.io/library/nginx:1"}


def _decisions(log_dir: Path) -> list[dict]:
    return [e for e in records(log_dir) if e["record"]["type"] == "decision"]


def test_two_workers_keep_two_intact_chains_with_a_record_per_response(tmp_path, key_dir, images):
    audited = audited_webhook(tmp_path, key_dir, workers=2)
    burst = [images["signed"] if i % 2 else images["denied"] for i in range(200)]
    try:
        responses = post_reviews(audited.server, burst, parallel=16)
    finally:
        audited.server.stop()
    report = verify([audited.log_dir], [load_public_key_file(audited.audit_pub)], checkpoint_files=[audited.checkpoints])
    assert report.ok, report.problems
    decisions = _decisions(audited.log_dir)
    writers = {e["writer"] for e in decisions}
    assert len(report.chains) == 2 and len(writers) == 2, "both workers answered reviews"
    assert len(decisions) == len(responses) == 200
    by_receipt = {f"{e['writer']}#{e['seq']}": e["record"] for e in decisions}
    for response in responses:
        record = by_receipt[response["auditAnnotations"]["audit-record"]]
        assert record["review"]["uid"] == response["uid"] and record["decision"]["allowed"] is response["allowed"]
        assert record["decision"]["id"] == response["auditAnnotations"]["decision-id"]
    allowed = next(r for r in (by_receipt[x["auditAnnotations"]["audit-record"]] for x in responses) if r["decision"]["allowed"])
    assert allowed["artifacts"][0]["digest"].startswith("sha256:") and allowed["artifacts"][0]["signers"] == ["ml-team"]
    assert allowed["artifacts"][0]["signatures"][0]  # the verified key id
    types = {e["record"]["type"] for e in records(audited.log_dir)}
    assert {"startup", "policy-load", "decision", "checkpoint", "shutdown"} <= types


def test_kill_9_during_a_burst_loses_no_answered_decision(tmp_path, key_dir, images):
    audited = audited_webhook(tmp_path, key_dir, workers=2)
    answered: list[tuple[str, bool]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        number = 0
        while not stop.is_set():
            uid = f"k{worker}-{number}"
            number += 1
            body = review("Pod", pod(images["signed"] if number % 2 else images["denied"]), uid=uid)
            try:
                with httpx.Client(base_url=audited.server.url, verify=ssl.create_default_context(cafile=str(audited.server.ca_file)), timeout=10) as http:
                    answer = http.post("/validate", content=body, headers={"Content-Type": "application/json"}).json()["response"]
            except (httpx.HTTPError, ValueError, KeyError):
                return  # the server is gone
            with lock:
                answered.append((answer["uid"], answer["allowed"]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    audited.server.kill_all()  # SIGKILL to the server and both workers, mid-burst
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answered) > 20
    report = verify([audited.log_dir], [load_public_key_file(audited.audit_pub)], checkpoint_files=[audited.checkpoints])
    assert report.ok, report.problems  # intact up to the last durable record: no torn line, no gap
    recorded = {e["record"]["review"]["uid"]: e["record"]["decision"]["allowed"] for e in _decisions(audited.log_dir)}
    missing = [(uid, allowed) for uid, allowed in answered if recorded.get(uid) is not allowed]
    assert not missing, f"{len(missing)} answered decision(s) without their record: {missing[:5]}"


def _small_filesystem(path: Path) -> str:
    """A 64 KiB tmpfs for the audit log (a real full disk); where mounting is not allowed, the
    caller limits file size instead (RLIMIT_FSIZE: the kernel refuses the write, EFBIG)."""
    path.mkdir()
    if os.environ.get("MODELSIGN_TEST_NO_MOUNT"):  # to exercise the fallback where mounting works
        return "rlimit"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True)
    return "tmpfs" if mounted.returncode == 0 else "rlimit"


def test_a_full_disk_denies_with_the_reason_and_keeps_the_chain_whole(tmp_path, key_dir, images):
    log_dir = tmp_path / "small"
    how = _small_filesystem(log_dir)
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))) if how == "rlimit" else None
    print(f"full-disk test uses {how}")
    try:
        audited = audited_webhook(tmp_path, key_dir, workers=1, log_dir=log_dir, preexec_fn=limit)
        try:
            responses = post_reviews(audited.server, [images["signed"]] * 80, parallel=4)
            metrics = httpx.get(f"{audited.server.url}/metrics", verify=ssl.create_default_context(cafile=str(audited.server.ca_file))).text
        finally:
            audited.server.stop()
        refused = [r for r in responses if "could not write the audit record" in (r.get("status") or {}).get("message", "")]
        assert refused and all(r["allowed"] is False for r in refused)
        assert "cannot write the audit log" in refused[0]["status"]["message"]
        failures = re.search(r'modelsign_audit_write_failures_total\{worker="\d+"\} (\d+)', metrics)
        assert failures and int(failures.group(1)) == len(refused)
        recorded = {e["record"]["review"]["uid"] for e in _decisions(log_dir)}
        assert all(r["uid"] in recorded for r in responses if r["allowed"]), "every admitted review has its record"
        report = verify([log_dir], [load_public_key_file(audited.audit_pub)])
        assert report.ok, report.problems  # failed batches were cut back: no torn or half-written line
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(log_dir)], check=False)


def test_an_unwritable_audit_log_denies_every_review(tmp_path, key_dir, images):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log directory should be")
    audited = audited_webhook(tmp_path, key_dir, workers=1, log_dir=blocker / "audit", expect_ready=False)
    try:
        with audited.server.client() as client:
            ready = client.get("/readyz")
            answer = client.post("/validate", content=review("Pod", pod(images["signed"]), uid="u-unwritable")).json()["response"]
    finally:
        audited.server.stop()
    assert ready.status_code == 503 and "cannot open the audit log" in ready.json()["auditError"]
    assert answer["allowed"] is False and "could not write the audit record: cannot open the audit log" in answer["status"]["message"]


def test_dry_runs_bad_requests_policy_reloads_and_no_secrets(tmp_path, key_dir, images):
    audited = audited_webhook(tmp_path, key_dir, workers=1)
    secret_image = "https://deployer:hunter2-secret@registry.example/models/x:1"
    try:
        with audited.server.client() as client:
            dry = client.post("/validate", content=review("Pod", pod(images["signed"]), uid="u-dry", dry_run=True)).json()["response"]
            client.post("/validate", content=review("Pod", pod(secret_image), uid="u-secret"))
            assert client.post("/validate", content=b"{not json").status_code == 400
            policy = tmp_path / "policy.yaml"
            policy.write_text(policy.read_text().replace("  ml-team:", f"  other-team: {{file: {key_dir / 'other-team.pub'}}}\n  ml-team:"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "other-team" not in json.dumps(client.get("/readyz").json()):
                time.sleep(0.2)
    finally:
        audited.server.stop()
    assert dry["allowed"] is True
    entries = [e["record"] for e in records(audited.log_dir)]
    dry_record = next(r for r in entries if r["type"] == "decision" and r["review"]["uid"] == "u-dry")
    assert dry_record["review"]["dryRun"] is True and dry_record["user"]["username"] == "alice"
    assert any(r["type"] == "bad-request" and "not valid JSON" in r["error"] for r in entries)
    loads = [r for r in entries if r["type"] == "policy-load"]
    assert len(loads) == 2 and all(r["ok"] for r in loads) and loads[1]["previous"]["hash"] == loads[0]["policy"]["hash"]
    change = next(r for r in entries if r["type"] == "keys-change")
    assert [k["name"] for k in change["added"]] == ["other-team"] and change["removed"] == [] and change["added"][0]["fingerprint"]
    raw = b"".join(p.read_bytes() for p in audited.log_dir.iterdir())
    assert b"hunter2" not in raw and b"[redacted]" in raw


def test_checkpoints_go_to_the_state_directory_by_default(tmp_path, key_dir, images):
    """Not beside the chains: ${MODELSIGN_STATE_DIR}/audit-checkpoints/<NAME>.checkpoints.jsonl."""
    from support.webhook_server import start_webhook
    from signer.trust.keys import generate_key_pair
    from support.admission import policy_for
    from webhook.certs import generate

    generate_key_pair(tmp_path / "audit", b"test-password")
    generate("modelsign-webhook", "modelsign-system", tmp_path / "certs", extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir))
    state = tmp_path / "state"
    server = start_webhook(policy, tmp_path / "certs", tmp_path, workers=1,
                           extra=["--audit-log", str(tmp_path / "audit" / "audit.jsonl"), "--audit-key", str(tmp_path / "audit.key")],
                           env={"MODELSIGN_AUDIT_PASSWORD": "test-password", "MODELSIGN_STATE_DIR": str(state)})
    try:
        with server.client() as client:
            assert client.post("/validate", content=review("Pod", pod(images["signed"]), uid="u-default")).json()["response"]["allowed"]
    finally:
        server.stop()
    checkpoints = state / "audit-checkpoints" / "audit.checkpoints.jsonl"
    assert checkpoints.read_text().count('"final":true') == 1 and not list((tmp_path / "audit").glob("*.checkpoints.jsonl"))
    assert "audit_placement_warning" not in server.log()
    assert verify([tmp_path / "audit"], [load_public_key_file(tmp_path / "audit.pub")], checkpoint_files=[checkpoints]).ok


def test_a_checkpoint_file_that_cannot_be_created_stops_the_server(capsys, tmp_path, monkeypatch):
    from conftest import run_cli

    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    monkeypatch.setenv("MODELSIGN_STATE_DIR", str(blocker))
    code, _, err = run_cli(capsys, "webhook", "serve", "--config", tmp_path / "p.yaml", "--tls-cert", tmp_path / "c", "--tls-key", tmp_path / "k",
                           "--audit-log", tmp_path / "audit" / "audit.jsonl")
    assert code == 2 and f"cannot create the audit checkpoint file {blocker}/audit-checkpoints/audit.checkpoints.jsonl" in err
    assert "pass --audit-checkpoints FILE on a volume the chain writers' directory cannot reach" in err


def test_checkpoints_beside_the_chains_are_warned_about_in_the_log_and_the_trail(tmp_path, key_dir, images):
    log_dir = tmp_path / "audit"
    audited = audited_webhook(tmp_path, key_dir, workers=1, extra=["--audit-checkpoints", str(log_dir / "sub" / "audit.checkpoints.jsonl")])
    audited.server.stop()
    warning = next(e["record"] for e in records(log_dir) if e["record"]["type"] == "audit-warning")
    assert "is in the audit log directory" in warning["warning"] and "--audit-checkpoints FILE on a volume" in warning["warning"]
    assert '"event": "audit_placement_warning"' in audited.server.log()
