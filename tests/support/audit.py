"""Helpers for the audit-trail tests: an audited webhook, reviews in parallel, chain files."""

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
                    extra: list[str] | None = None, preexec_fn=None, expect_ready: bool = True) -> AuditedWebhook:
    """Start `modelsign webhook serve` with an audit log (real TLS, real worker processes)."""
    from signer.keys import generate_key_pair

    generate_key_pair(workdir / "audit", PASSWORD.encode(), force=True)
    generate("modelsign-webhook", "modelsign-system", workdir / "certs", extra_sans=["127.0.0.1"], force=True)
    policy = workdir / "policy.yaml"
    policy.write_text(policy_for(key_dir, name="audited"))
    log_dir = log_dir or workdir / "audit"
    checkpoints = workdir / "checkpoints" / "audit.checkpoints.jsonl"
    checkpoints.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--audit-log", str(log_dir / "audit.jsonl"), "--audit-key", str(workdir / "audit.key"), "--audit-checkpoints", str(checkpoints),
             "--audit-checkpoint-records", str(checkpoint_records), *(extra or [])]
    audited = AuditedWebhook(workdir=workdir, log_dir=log_dir, checkpoints=checkpoints, audit_pub=workdir / "audit.pub")
    audited.server = start_webhook(policy, workdir / "certs", workdir, workers=workers, extra=flags, preexec_fn=preexec_fn, expect_ready=expect_ready,
                                   env={"MODELSIGN_AUDIT_PASSWORD": PASSWORD})
    return audited


def push_signed_image(registry_host: str, repository: str, key_dir: Path) -> str:
    """A small image signed by ml-team in the test registry; returns its tag reference."""
    from signer.keys import load_signing_key_file
    from signer.oci.stores import Stores
    from signer.references import parse_reference
    from signer.samples import push_image
    from signer.signing import sign_artifact

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
