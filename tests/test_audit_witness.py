"""The checkpoint witness on a real registry (Debian's docker-registry): every signed
checkpoint pushed as its own OCI artifact, `audit verify --witness` reading them back, what
it catches that a checkpoint file on the attacker's volume cannot, and a witness that is
down never holding up an admission."""

from __future__ import annotations

import json
import ssl
import uuid

import httpx
import pytest

from conftest import run_cli
from signer.formats import mediatypes as mt
from signer.oci.stores import Stores
from signer.references import parse_image_reference
from signer.trust.keys import load_public_key_file
from support.admission import pod, review
from support.audit import audited_webhook, copy_trail, decision_in_last_interval, post_reviews, push_signed_image, records, reseal
from support.registry import free_port
from webhook.audit.chain import parse_line
from webhook.audit.verify import verify
from webhook.audit.witness import ARTIFACT_TYPE, WitnessSettings, read_witness, witness_tag

ANSWER_WITHIN_SECONDS = 5.0


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory, registry, key_dir):
    """A trail whose checkpoints were also pushed to a witness repository."""
    workdir = tmp_path_factory.mktemp("witnessed")
    signed = push_signed_image(registry.host, "witnessed/signed", key_dir)
    repository = f"{registry.host}/audit/witness-{uuid.uuid4().hex[:8]}"
    audited = audited_webhook(workdir, key_dir, workers=2, extra=["--audit-witness", repository])
    try:
        responses = post_reviews(audited.server, [signed] * 60)
    finally:
        audited.server.stop()
    assert all(r["allowed"] for r in responses)
    return audited, repository


def _witness(repository: str):
    return read_witness(WitnessSettings(repository))[0]


def test_every_checkpoint_is_witnessed_and_verifies(capsys, witnessed):
    audited, repository = witnessed
    kept = [json.loads(line)["checkpoint"] for line in audited.checkpoints.read_text().splitlines()]
    entries = _witness(repository)
    assert sorted(e.tag for e in entries) == sorted(witness_tag(c["writer"], c["seq"]) for c in kept)
    assert sum(1 for c in kept if c["final"]) == 2  # both workers shut down cleanly, and said so
    with Stores() as stores:
        reference = parse_image_reference(repository)
        manifest = stores.repository(reference).fetch_manifest(witness_tag(kept[-1]["writer"], kept[-1]["seq"]))
    assert manifest is not None and manifest.artifact_type == ARTIFACT_TYPE and manifest.config.media_type == mt.OCI_EMPTY
    assert manifest.annotations["dev.modelsign.audit.writer"] == kept[-1]["writer"] and manifest.annotations["dev.modelsign.audit.seq"] == str(kept[-1]["seq"])
    assert manifest.annotations["dev.modelsign.audit.final"] == ("true" if kept[-1]["final"] else "false")
    code, out, _ = run_cli(capsys, "audit", "verify", audited.log_dir, "--key", audited.audit_pub, "--witness", repository)
    assert code == 0 and "INTACT" in out and f"witness {repository}: {len(kept)} checkpoint tag(s) read" in out
    shutdown = [e["record"] for e in records(audited.log_dir) if e["record"]["type"] == "shutdown"]
    assert all(r["witness"]["witness"] == repository and r["witness"]["failed"] == 0 for r in shutdown)


@pytest.mark.parametrize("nth", [0, -1])
def test_the_witness_catches_a_rewrite_the_volume_owner_made_consistent(tmp_path, witnessed, nth):
    """Whoever owns the audit volume rewrites the last interval of a chain and drops the
    checkpoints that would give it away, from the chain and from the checkpoint file beside
    it: nothing on that volume tells. The witness does."""
    audited, repository = witnessed
    log_dir, checkpoints = copy_trail(audited, tmp_path)
    target = max(log_dir.glob("audit-*.jsonl"), key=lambda p: p.stat().st_size)
    lines = target.read_bytes().split(b"\n")[:-1]
    index = decision_in_last_interval(lines, nth)  # within one checkpoint interval: the chain alone cannot tell
    writer, seq = parse_line(lines[index])[3], parse_line(lines[index])[2]

    def flip(record: dict) -> dict | None:
        if record.get("type") == "checkpoint":
            return None
        if record.get("type") == "decision" and record["review"]["uid"] == json.loads(lines[index])["record"]["review"]["uid"]:
            record["decision"].update(outcome="deny", allowed=False, message="edited")
        return record

    target.write_bytes(b"\n".join(reseal(lines, index, flip)) + b"\n")
    kept = [line for line in checkpoints.read_text().splitlines()
            if not (json.loads(line)["checkpoint"]["writer"] == writer and json.loads(line)["checkpoint"]["seq"] >= seq)]
    checkpoints.write_text("".join(line + "\n" for line in kept))
    keys = [load_public_key_file(audited.audit_pub)]
    assert not verify([log_dir], keys, checkpoint_files=[checkpoints]).problems  # the volume alone cannot tell
    report = verify([log_dir], keys, checkpoint_files=[checkpoints], witness=_witness(repository))
    assert not report.ok and {p.kind for p in report.problems} & {"rewritten", "truncated", "after-final"}, report.problems
    assert all(p.writer == writer for p in report.problems)


def test_a_moved_or_foreign_tag_in_the_witness_is_reported(capsys, tmp_path, registry, witnessed):
    audited, repository = witnessed
    copy = f"{registry.host}/audit/witness-copy-{uuid.uuid4().hex[:8]}"
    entries = _witness(repository)
    with Stores() as stores:
        source = stores.repository(parse_image_reference(repository))
        target = stores.repository(parse_image_reference(copy))
        for entry in entries:  # a faithful copy of the witness...
            manifest = source.fetch_manifest(entry.tag)
            for blob in (manifest.config, *manifest.layers):
                target.push_blob(source.fetch_blob(blob.digest))
            target.push_manifest(manifest.raw, mt.OCI_MANIFEST, tag=entry.tag)
        body = json.loads(entries[0].line)["checkpoint"]
        moved = witness_tag(body["writer"], body["seq"] + 10_000)  # ...plus one checkpoint under another checkpoint's tag
        target.push_manifest(source.fetch_manifest(entries[0].tag).raw, mt.OCI_MANIFEST, tag=moved)
        target.push_manifest(source.fetch_manifest(entries[0].tag).raw, mt.OCI_MANIFEST, tag="latest")
    code, out, _ = run_cli(capsys, "audit", "verify", audited.log_dir, "--key", audited.audit_pub, "--witness", copy)
    assert code == 1 and f"WITNESS: witness {copy}:{moved} holds the checkpoint of writer {body['writer']} seq {body['seq']}" in out
    assert "the tag was moved or the content forged" in out and "1 other tag(s) ignored (latest)" in out


def test_a_witness_that_is_down_never_delays_admission(tmp_path, registry, key_dir):
    signed = push_signed_image(registry.host, "witness-down/signed", key_dir)
    nowhere = f"127.0.0.1:{free_port()}/audit/witness"  # nothing listens there
    audited = audited_webhook(tmp_path, key_dir, workers=1, checkpoint_records=5, extra=["--audit-witness", nowhere])
    answers = []
    try:
        tls = ssl.create_default_context(cafile=str(audited.server.ca_file))
        with httpx.Client(base_url=audited.server.url, verify=tls, timeout=ANSWER_WITHIN_SECONDS) as client:
            for number in range(40):
                answers.append(client.post("/validate", content=review("Pod", pod(signed), uid=f"down-{number}")).json()["response"])
    finally:
        audited.server.stop()
    assert all(a["allowed"] for a in answers)
    shutdown = next(e["record"] for e in records(audited.log_dir) if e["record"]["type"] == "shutdown")
    assert shutdown["witness"]["witness"] == nowhere and shutdown["witness"]["pushed"] == 0
    assert "cannot push an audit checkpoint to the witness" in audited.server.log()
    assert verify([audited.log_dir], [load_public_key_file(audited.audit_pub)], checkpoint_files=[audited.checkpoints]).ok


@pytest.mark.parametrize("flags, message", [
    (["--audit-witness", "registry.example.com/audit/witness"], "--audit-witness needs --audit-key"),
    (["--audit-key", "KEY", "--audit-witness", "registry.example.com/audit/witness:v1"], "must be REGISTRY/REPOSITORY, without a tag"),
    (["--audit-key", "KEY", "--audit-witness", "witness"], "must be REGISTRY/REPOSITORY"),
])
def test_witness_flags_are_checked_before_the_server_starts(capsys, tmp_path, flags, message):
    flags = [str(tmp_path / "audit.key") if f == "KEY" else f for f in flags]
    code, _, err = run_cli(capsys, "webhook", "serve", "--config", tmp_path / "p.yaml", "--tls-cert", tmp_path / "c", "--tls-key", tmp_path / "k",
                           "--audit-log", tmp_path / "audit" / "audit.jsonl", "--audit-checkpoints", tmp_path / "cp" / "c.jsonl", *flags)
    assert code == 2 and message in err
