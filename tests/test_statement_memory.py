"""Removing a statement from the registry does not turn a deny into an allow.

Found by trying to break it: anyone who may push to a repository can re-push its
`sha256-<hex>.att` tag without a layer (no key, no delete right). Dropping a rejection, a
revocation or the newest (failing) evaluation then admitted the model. The webhook now
remembers, per digest, what it verified against it, and denies naming what went missing.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import PASSWORD
from signer.evidence.approvals import approval_predicate
from signer.evidence.evaluations import evaluation_predicate
from signer.formats import mediatypes as mt
from signer.formats.digests import attestation_tag
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.attestations import attest
from signer.signatures.signing import sign_artifact
from signer.trust.keys import generate_key_pair, load_signing_key_file
from support.admission import pod, review
from webhook.admission.config import parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review
from webhook.admission.statement_memory import StatementMemory


def _predicate(envelope: dict) -> dict:
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]


def drop_attestations(repository, digest: str, drop) -> int:
    """What an attacker with push rights does: re-push the .att tag without the layers `drop` picks."""
    tag = attestation_tag(digest)
    manifest = repository.fetch_manifest(tag)
    document = json.loads(manifest.raw)
    kept = [layer for layer in document["layers"] if not drop(_predicate(json.loads(repository.fetch_blob(layer["digest"]))))]
    removed = len(document["layers"]) - len(kept)
    document["layers"] = kept
    repository.push_manifest(json.dumps(document).encode(), manifest.media_type, tag=tag)
    return removed


@pytest.fixture(scope="module")
def keys(tmp_path_factory, key_dir):
    directory = tmp_path_factory.mktemp("memory-keys")
    for name in ("approver", "evalci"):
        generate_key_pair(directory / name, PASSWORD.encode())
    load = lambda name: load_signing_key_file(directory / f"{name}.key", password=lambda _: PASSWORD.encode())  # noqa: E731
    return {"dir": directory, "approver": load("approver"), "evalci": load("evalci"),
            "ml": load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())}


def policy_for(registry, key_dir, keys):
    return parse_policy(f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
  approver: {{file: {keys['dir'] / 'approver.pub'}}}
  eval-ci: {{file: {keys['dir'] / 'evalci.pub'}}}
rules:
  - name: signed
    require: {{signedBy: [ml-team]}}
  - name: approved
    artifacts: ["{registry.host}/models/approved-*"]
    require: {{approval: {{signedBy: [approver], environment: prod}}}}
  - name: evaluated
    artifacts: ["{registry.host}/models/evaluated-*"]
    require: {{evaluation: {{signedBy: [eval-ci], maxAge: 30d, metrics: {{accuracy: {{min: 0.9}}}}}}}}
""", source="memory")


def decide(pipeline: AdmissionPipeline, image: str):
    return pipeline.decide(parse_review(review("Pod", pod(image))))


def _approval(decision: str, now: datetime) -> dict:
    return approval_predicate(decision=decision, environment="prod", namespaces=["*"], approver="carol", requester="bob", ticket="CHG-9",
                              reason="r", now=now, not_before=None, expires_in_seconds=3600 if decision == "approved" else None)


@pytest.mark.parametrize("removed", ["rejected", "revoked"])
def test_a_removed_rejection_or_revocation_still_denies(registry, key_dir, keys, removed):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Stores() as stores:
        reference = parse_reference(f"{registry.host}/models/approved-{removed}:1")
        repository = stores.repository(reference)
        digest = push_image(repository, {"w": f"memory-{removed}".encode()}, tag="1").digest
        sign_artifact(stores, reference, keys["ml"])
        pinned = parse_reference(f"{registry.host}/models/approved-{removed}@{digest}")
        attest(stores, pinned, keys["approver"], mt.APPROVAL_PREDICATE, _approval("approved", now))
        attest(stores, pinned, keys["approver"], mt.APPROVAL_PREDICATE, _approval(removed, now + timedelta(seconds=2)))
        pipeline = AdmissionPipeline(policy_for(registry, key_dir, keys))
        try:
            image = f"{registry.host}/models/approved-{removed}@{digest}"
            first = decide(pipeline, image)
            assert not first.allowed and [v["code"] for v in first.violations] == [f"approval-{removed}"]
            assert drop_attestations(repository, digest, lambda p: p.get("decision") == removed) == 1
            pipeline.cache.clear()  # the cached result would hide the push for up to 30 s anyway
            second = decide(pipeline, image)
            assert not second.allowed and [v["code"] for v in second.violations] == ["verification-error"]
            assert f"the {removed} for environment prod by approver" in second.message and "is no longer in the registry" in second.message
        finally:
            pipeline.close()
        # without the memory (a restart), the push would have paid off: what the memory is for
        fresh = AdmissionPipeline(policy_for(registry, key_dir, keys))
        try:
            assert decide(fresh, image).allowed
        finally:
            fresh.close()


def test_dropping_the_newest_failing_evaluation_still_denies(registry, key_dir, keys):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Stores() as stores:
        reference = parse_reference(f"{registry.host}/models/evaluated-m:1")
        repository = stores.repository(reference)
        digest = push_image(repository, {"w": b"memory-eval"}, tag="1").digest
        sign_artifact(stores, reference, keys["ml"])
        pinned = parse_reference(f"{registry.host}/models/evaluated-m@{digest}")
        for accuracy, when in ((0.95, now - timedelta(days=1)), (0.70, now)):
            attest(stores, pinned, keys["evalci"], mt.EVALUATION_PREDICATE,
                   evaluation_predicate(metrics={"accuracy": accuracy}, fairness={}, evaluator="ci", dataset_name="holdout", now=when))
        pipeline = AdmissionPipeline(policy_for(registry, key_dir, keys))
        try:
            image = f"{registry.host}/models/evaluated-m@{digest}"
            assert [v["code"] for v in decide(pipeline, image).violations] == ["evaluation-below-min"]
            assert drop_attestations(repository, digest, lambda p: p.get("metrics", {}).get("accuracy") == 0.70) == 1
            pipeline.cache.clear()
            again = decide(pipeline, image)
            assert not again.allowed and "the evaluation by eval-ci of" in again.message and "no longer in the registry" in again.message
        finally:
            pipeline.close()


def test_memory_keeps_newer_statements_and_forgets_the_least_recently_used():
    memory = StatementMemory(max_digests=2)
    rejection = {"id": "sha256:r", "decision": "rejected", "environment": "prod", "signer": "approver"}
    approval = {"id": "sha256:a", "decision": "approved", "environment": "prod", "signer": "approver"}
    old, new = {"id": "sha256:e1", "signer": "ci", "evaluatedAt": "2026-11-01T00:00:00Z"}, {"id": "sha256:e2", "signer": "ci", "evaluatedAt": "2026-11-02T00:00:00Z"}
    assert memory.check("sha256:d1", [rejection, approval], [new]) is None
    assert memory.check("sha256:d1", [rejection, approval], [new]) is None  # unchanged: nothing missing
    assert memory.check("sha256:d1", [approval], [new]) is not None  # the rejection went away
    assert memory.check("sha256:d1", [rejection], [old]) is not None  # an older evaluation replaced the newest
    assert memory.check("sha256:d1", [rejection], [new]) is None
    for junk in range(100):  # unsigned or unevaluated digests take no place, so they cannot evict d1
        assert memory.check(f"sha256:junk{junk}", [], []) is None
    assert memory.check("sha256:d1", [approval], [new]) is not None
    other = {**rejection, "id": "sha256:r2"}
    assert memory.check("sha256:d2", [other], []) is None
    assert memory.check("sha256:d3", [other], []) is None  # d1 is the least recently used: forgotten
    assert memory.check("sha256:d1", [], []) is None
