"""Retention and tail seals in the running webhook (real TLS, worker processes, a real registry
as the witness): the reviewer's F2 and F7 against the real thing. Backdating files and
restarting (or killing) workers erases nothing, and `audit verify --key --checkpoints
--witness` stays truthful; files the audit key proves old are removed and verify accepts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from support.admission import pod, review
from support.audit import PASSWORD, AuditedWebhook, audited_webhook, backdate, chain_files, post_reviews, push_signed_image, records, reseal
from support.webhook_server import RunningWebhook, start_webhook


@pytest.fixture(scope="module")
def signed(registry, key_dir) -> str:
    return push_signed_image(registry.host, "retention/signed", key_dir)


def _restart(audited: AuditedWebhook, *, workers: int = 1, extra: list[str] | None = None) -> RunningWebhook:
    """The same volume, key, checkpoint file (and flags) as `audited`: a pod or worker restart."""
    flags = ["--audit-log", str(audited.log_dir / "audit.jsonl"), "--audit-key", str(audited.workdir / "audit.key"),
             "--audit-checkpoints", str(audited.checkpoints), "--audit-checkpoint-records", "20", *(extra or [])]
    return start_webhook(audited.workdir / "policy.yaml", audited.workdir / "certs", audited.workdir, workers=workers, extra=flags,
                         env={"MODELSIGN_AUDIT_PASSWORD": PASSWORD})


def _verify_cli(audited: AuditedWebhook, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webhook.cli", "audit", "verify", str(audited.log_dir), "--key", str(audited.audit_pub),
                           "--checkpoints", str(audited.checkpoints), *extra, "--output", "json"], capture_output=True, text=True, timeout=120)


def _decision_uids(audited: AuditedWebhook) -> set[str]:
    return {e["record"]["review"]["uid"] for e in records(audited.log_dir) if e["record"]["type"] == "decision"}


def test_backdating_the_trail_and_restarting_erases_nothing(tmp_path, key_dir, registry, signed):
    """F2 as reported: one clean run with the witness, every chain file backdated 91 days, a restart."""
    witness = f"{registry.host}/audit/retention-{uuid.uuid4().hex[:8]}"
    audited = audited_webhook(tmp_path, key_dir, workers=1, extra=["--audit-witness", witness])
    try:
        post_reviews(audited.server, [signed] * 5, prefix="first-run")
        with audited.server.client() as client:
            denied = client.post("/validate", content=review("Pod", pod(f"{registry.host}/scratch/unsigned:1"), uid="EVIDENCE-TO-ERASE")).json()
    finally:
        audited.server.stop()
    assert denied["response"]["allowed"] is False
    first = chain_files(audited.log_dir)
    backdate(first)
    server = _restart(audited, extra=["--audit-witness", witness])
    try:
        post_reviews(server, [signed], prefix="second-run")
    finally:
        server.stop()
    assert all(path.exists() for path in first)
    assert "EVIDENCE-TO-ERASE" in _decision_uids(audited)
    assert not [e for e in records(audited.log_dir) if e["record"]["type"] == "retention"]
    assert "audit retention keeps" in server.log() and "within the retention period" in server.log()
    done = _verify_cli(audited, "--witness", witness)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["status"] == "INTACT", done.stdout + done.stderr
    assert len(report["writers"]) == 2


def test_the_webhook_removes_what_the_audit_key_proves_old(tmp_path, key_dir, signed):
    audited = audited_webhook(tmp_path, key_dir, workers=1)
    try:
        post_reviews(audited.server, [signed] * 4, prefix="old")
    finally:
        audited.server.stop()
    first = chain_files(audited.log_dir)
    time.sleep(3.0)  # older than the 1.7 s period below, by the signed time of their last checkpoint
    server = _restart(audited, extra=["--audit-retention-days", "0.00002"])
    try:
        post_reviews(server, [signed], prefix="new")
    finally:
        server.stop()
    assert not any(path.exists() for path in first)
    removed = [r for e in records(audited.log_dir) if e["record"]["type"] == "retention" for r in e["record"]["removed"]]
    assert [r["file"] for r in removed] == [p.name for p in first] and all(r["basis"] == "signed-checkpoint" for r in removed)
    done = _verify_cli(audited)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "INTACT", done.stdout + done.stderr


def _writers(log_dir: Path) -> set[str]:
    return {p.name.removeprefix("audit-").rsplit("-", 1)[0] for p in chain_files(log_dir)}


def test_a_killed_worker_is_sealed_and_its_backdated_file_kept(tmp_path, key_dir, signed):
    """F7 as reported, with the worker killed directly (F3 can no longer freeze one): backdate
    every chain file, SIGKILL a worker, let uvicorn replace it. Nothing is erased, the new
    worker seals the killed one's tail, and rewriting that tail afterwards shows."""
    audited = audited_webhook(tmp_path, key_dir, workers=2)
    server = audited.server
    try:
        post_reviews(server, [signed] * 10, prefix="before")
        before = _decision_uids(audited)
        backdate(chain_files(audited.log_dir))
        writers = _writers(audited.log_dir)
        killed = sorted(writers)[0]
        os.kill(int(killed.split(".")[1]), signal.SIGKILL)  # writer ids are host.pid.start.random
        deadline = time.monotonic() + 30
        while len(_writers(audited.log_dir)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_writers(audited.log_dir)) == 3, "uvicorn started a new worker"
        time.sleep(1.0)  # its start: retention pass and seal
        post_reviews(server, [signed] * 4, prefix="after")
    finally:
        server.stop()
    assert before <= _decision_uids(audited)
    entries = records(audited.log_dir)
    assert not [e for e in entries if e["record"]["type"] == "retention"]
    seals = [e["record"]["checkpoint"] for e in entries if e["record"]["type"] == "tail-seal"]
    assert [s["writer"] for s in seals] == [killed], seals
    done = _verify_cli(audited)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["status"] == "INTACT", done.stdout + done.stderr
    assert any("were sealed by" in w for w in report["warnings"]), report["warnings"]
    # The chain-directory attacker now rewrites a decision in the killed worker's tail and re-links it.
    path = next(p for p in chain_files(audited.log_dir) if killed in p.name)
    lines = path.read_bytes().splitlines()
    last_checkpoint = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    target = next(i for i, line in enumerate(lines) if i > last_checkpoint and b'"type":"decision"' in line)

    def forged(record: dict) -> dict:
        if record.get("type") == "decision" and record["review"]["uid"] == json.loads(lines[target])["record"]["review"]["uid"]:
            record["decision"].update(outcome="deny", allowed=False, message="forged: this review was denied")
        return record

    path.write_bytes(b"\n".join(reseal(lines, target, forged)) + b"\n")
    done = _verify_cli(audited)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and "rewritten" in {p["kind"] for p in report["problems"]}, done.stdout
