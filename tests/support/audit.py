"""Helpers for the audit-trail tests: an audited webhook, reviews in parallel, chain files,
and the attacker's tools (re-sealing a chain from some line on, with fresh hashes)."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.admission import pod, policy_for, review
from support.webhook_server import RunningWebhook, start_webhook
from webhook.certs import generate

PASSWORD = "test-password"


@dataclass
class AuditedWebhook:
    workdir: Path
    log_dir: Path
    checkpoints: Path
    audit_pub: Path
    server: RunningWebhook | None = None


def audited_webhook(workdir: Path, key_dir: Path, *, workers: int = 2, checkpoint_records: int = 20, log_dir: Path | None = None,
                    extra: list[str] | None = None, preexec_fn=None, expect_ready: bool = True, policy_extra: str = "",
                    env: dict[str, str] | None = None, policy_text: str | None = None) -> AuditedWebhook:
    """Start `modelsign webhook serve` with an audit log (real TLS, real worker processes);
    the policy is `policy_for(key_dir, policy_extra)` unless `policy_text` is given."""
    from signer.trust.keys import generate_key_pair

    generate_key_pair(workdir / "audit", PASSWORD.encode(), force=True)
    generate("modelsign-webhook", "modelsign-system", workdir / "certs", extra_sans=["127.0.0.1"], force=True)
    policy = workdir / "policy.yaml"
    policy.write_text(policy_text if policy_text is not None else policy_for(key_dir, policy_extra, name="audited"))
    log_dir = log_dir or workdir / "audit"
    checkpoints = workdir / "checkpoints" / "audit.checkpoints.jsonl"
    checkpoints.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--audit-log", str(log_dir / "audit.jsonl"), "--audit-key", str(workdir / "audit.key"), "--audit-checkpoints", str(checkpoints),
             "--audit-checkpoint-records", str(checkpoint_records), *(extra or [])]
    audited = AuditedWebhook(workdir=workdir, log_dir=log_dir, checkpoints=checkpoints, audit_pub=workdir / "audit.pub")
    audited.server = start_webhook(policy, workdir / "certs", workdir, workers=workers, extra=flags, preexec_fn=preexec_fn, expect_ready=expect_ready,
                                   env={"MODELSIGN_AUDIT_PASSWORD": PASSWORD, **(env or {})})
    return audited


def push_signed_image(registry_host: str, repository: str, key_dir: Path) -> str:
    """A small image signed by ml-team in the test registry; returns its tag reference."""
    from signer.oci.samples import push_image
    from signer.oci.stores import Stores
    from signer.references import parse_reference
    from signer.signatures.signing import sign_artifact
    from signer.trust.keys import load_signing_key_file

    reference = f"{registry_host}/{repository}:1"
    with Stores() as stores:
        push_image(stores.repository(parse_reference(reference)), {"f": repository.encode()}, tag="1")
        sign_artifact(stores, parse_reference(reference), load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode()))
    return reference


def post_reviews(server: RunningWebhook, images: list[str], *, parallel: int = 8, namespaces: tuple[str, ...] = ("ml", "prod", "team-a"),
                 prefix: str = "uid") -> list[dict]:
    """One review per image, each on its own connection (so both workers get some), in
    parallel; returns the AdmissionReview responses in the order sent."""

    def send(index: int) -> dict:
        body = review("Pod", pod(images[index], name=f"p{index}"), namespace=namespaces[index % len(namespaces)], uid=f"{prefix}-{index}")
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(server.ca_file)), timeout=30) as client:
            answer = client.post("/validate", content=body, headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        return answer.json()["response"]

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(send, range(len(images))))


def chain_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.glob("audit-*.jsonl"))


def records(log_dir: Path) -> list[dict]:
    """Every chain entry as parsed JSON: {"hash", "prev_hash", "record", "seq", "writer"}."""
    return [json.loads(line) for path in chain_files(log_dir) for line in path.read_bytes().splitlines() if line.strip()]


def copy_trail(audited: AuditedWebhook, destination: Path) -> tuple[Path, Path]:
    """A private copy of the chains and the checkpoint file, to damage."""
    shutil.copytree(audited.log_dir, destination / "audit")
    (destination / "checkpoints").mkdir()
    shutil.copy(audited.checkpoints, destination / "checkpoints" / audited.checkpoints.name)
    return destination / "audit", destination / "checkpoints" / audited.checkpoints.name


def reseal(lines: list[bytes], start: int, edit=None) -> list[bytes]:
    """What an attacker without the audit key can do: lines[start:] renumbered from the seq
    after lines[start - 1] and re-hashed, so every link matches again. `edit(record) ->
    record | None` changes a record (None drops the line) before it is sealed."""
    from webhook.audit.canonical import canonical_json
    from webhook.audit.chain import GENESIS, parse_line, record_of, seal

    before = parse_line(lines[start - 1]) if start else None
    seq, prev = (before[2], "sha256:" + before[0].decode()) if before else (0, GENESIS)
    out = lines[:start]
    for line in lines[start:]:
        record = json.loads(record_of(line))
        record = edit(record) if edit else record
        if record is None:
            continue
        sealed, prev = seal(parse_line(line)[3], seq + 1, prev, canonical_json(record))
        seq += 1
        out.append(sealed.rstrip(b"\n"))
    return out


def append_forged(lines: list[bytes], records: list[dict]) -> list[bytes]:
    """Records sealed onto the end of a chain, linked to its last line."""
    from webhook.audit.canonical import canonical_json
    from webhook.audit.chain import parse_line, seal

    last = parse_line(lines[-1])
    seq, prev, writer, out = last[2], "sha256:" + last[0].decode(), last[3], list(lines)
    for record in records:
        sealed, prev = seal(writer, seq + 1, prev, canonical_json(record))
        seq += 1
        out.append(sealed.rstrip(b"\n"))
    return out


def decision_in_last_interval(lines: list[bytes], nth: int = 0) -> int:
    """The index of the `nth` decision after a chain file's last regular (not final)
    checkpoint: a rewrite from there on stays within one checkpoint interval."""
    last = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line and b'"final":false' in line)
    return [i for i, line in enumerate(lines) if i > last and b'"type":"decision"' in line][nth]


_KILLED_WRITER = """
import os, signal, sys, time
from pathlib import Path
from signer.trust.keys import load_signing_key_file
from webhook.audit.writer import AuditSettings, AuditWriter
log_dir, key_file, password, checkpoints, days, count = sys.argv[1:7]
writer = AuditWriter(AuditSettings(path=Path(log_dir) / "audit.jsonl", checkpoint_path=Path(checkpoints),
                                   key=load_signing_key_file(Path(key_file), password=lambda _: password.encode())),
                     clock=lambda: time.time() - float(days) * 86400)
for number in range(int(count)):
    writer.append({"type": "decision", "n": number})
sys.stdout.write(writer.writer_id)
sys.stdout.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_writer(log_dir: Path, key_file: Path, checkpoints: Path, *, records: int = 10, days_ago: float = 0.0) -> str:
    """A writer in its own process that writes `records` records (clock `days_ago` behind) and
    is then SIGKILLed: no final checkpoint, its tail after the first checkpoint unsigned.
    Returns its writer id."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(log_dir), str(key_file), PASSWORD, str(checkpoints), str(days_ago),
                           str(records)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9 and done.stdout, done.stderr
    return done.stdout


def backdate(paths, days: float = 91.0) -> None:
    """What whoever can write the chain directory does to a file's times."""
    import os
    import time

    then = time.time() - days * 86400
    for path in paths:
        os.utime(path, (then, then))
