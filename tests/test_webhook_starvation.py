"""Padded signature objects must not starve verification for everyone (hardening issue, part 3):
the attack over the real TLS webhook and a real docker-registry, the HTTP-layer deadline
guarantee, the remembered padding, and the fair scheduler's turn-taking."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from conftest import PASSWORD
from signer.formats import mediatypes as mt
from signer.oci.manifest import Descriptor
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.trust.keys import load_signing_key_file
from support.admission import pod, policy_for, review
from support.audit import audited_webhook, records
from support.faults import BlackHole
from support.opa_server import start_opa
from support.padding import attack_round, padded_payload, post_timed, push_attack, push_rejected_image, push_sig_layers, push_signed_pinned
from support.webhook_server import start_webhook
from webhook.admission.config import parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review
from webhook.admission.scheduler import FairScheduler
from webhook.certs import generate

DEADLINE = 4
MARGIN = 2.5  # the webhook's own margin is 0.5 s; the rest is for this shared 2-core machine


@pytest.fixture(scope="module")
def scene(registry, key_dir):
    """Three Pods' worth of padded images (no trusted key) and six signed, digest-pinned images."""
    key = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    with Stores() as stores:
        attack = push_attack(stores.repository(parse_reference(f"{registry.host}/starve/pad")))
        signed = [push_signed_pinned(stores, f"{registry.host}/starve/good{index}", key) for index in range(6)]
    return {"attack": attack, "signed": signed}


def test_padded_pods_do_not_starve_signed_pods_and_cost_nothing_the_second_time(tmp_path, registry, key_dir, scene):
    generate("modelsign-webhook", "modelsign-system", tmp_path / "certs", extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, f"deadlineSeconds: {DEADLINE}", name="starvation"))
    # One worker: the padding memo is per process, so the second round's cost is then exact.
    server = start_webhook(policy, tmp_path / "certs", tmp_path, workers=1)
    try:
        first = attack_round(server.url, server.ca_file, scene["attack"], scene["signed"], prefix="first")
        offset = registry.log_offset()
        second = attack_round(server.url, server.ca_file, scene["attack"], scene["signed"], prefix="second")
        requests = registry.requests_since(offset)
    finally:
        server.stop()
    for result in (first, second):
        assert result.worst_seconds < DEADLINE + MARGIN, [a.seconds for a in result.attack + result.signed]
        assert all(a.allowed for a in result.signed), [a.message for a in result.signed]
        for answer in result.attack:
            assert not answer.allowed and "signature objects are over modelsign's limits" in answer.message, answer.message[:500]
            assert "remove the excess signatures and referrers" in answer.message
    # The second round only resolved the attack tags (one HEAD each): no signature object was read again.
    attack_requests = [r for r in requests if "/starve/pad/" in r]
    assert attack_requests and all(r.startswith("HEAD /v2/starve/pad/manifests/p") for r in attack_requests), attack_requests[:5]
    assert len(attack_requests) <= 96


@pytest.mark.parametrize("count, reason", [
    (30, "bytes read and 30 signature checks made without finding a valid signature"),  # 1.8 MB: complete, but only padding costs that
    (100, "needs more than the 4194304 bytes of signature objects allowed"),  # 6 MB: stopped at the artifact's limit
])
def test_distinct_padding_within_the_caps_is_remembered_too(registry, key_dir, count, reason):
    """Different 60 KB payloads (each under its cap): the verification costs what only padding
    costs, so it is remembered and the next review of the digest reads nothing."""
    with Stores() as stores:
        repository = stores.repository(parse_reference(f"{registry.host}/starve/distinct{count}"))
        image = push_image(repository, {"f": f"distinct {count}".encode()}, tag="1")
        payloads = [padded_payload(image.digest, 60_000, salt=str(index)) for index in range(count)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(repository.push_blob, payloads))
        push_sig_layers(repository, image.digest, [Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, p) for p in payloads])
    pipeline = AdmissionPipeline(parse_policy(policy_for(key_dir), source="p"))
    body = review("Pod", pod(f"{registry.host}/starve/distinct{count}@{image.digest}"))
    try:
        first = pipeline.decide(parse_review(body))
        offset = registry.log_offset()
        again = pipeline.decide(parse_review(body))
    finally:
        pipeline.close()
    assert not first.allowed and reason in first.message and "remove the excess signatures and referrers" in first.message, first.message
    assert not again.allowed and again.message == first.message
    assert registry.requests_since(offset) == []


def test_many_containers_of_one_heavily_rejected_image_do_not_hold_the_policy_engine(tmp_path, registry, key_dir, scene):
    """Found by trying to break it: 200 containers of one image with 100 rejected `.sig` layers
    and 100 subject-less referrers (a few KiB, no signature checks, so no padding limit) kept
    the worker's one Rego interpreter busy for tens of seconds, and every other review on that
    worker was denied. Now the engine sees a few rejected entries and their count, objects are
    capped at 100 images, and a worker evaluates on several interpreters."""
    with Stores() as stores:
        image = push_rejected_image(stores.repository(parse_reference(f"{registry.host}/starve/rejected")), "1")
    generate("modelsign-webhook", "modelsign-system", tmp_path / "certs", extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, f"deadlineSeconds: {DEADLINE}", name="engine"))
    server = start_webhook(policy, tmp_path / "certs", tmp_path, workers=1)
    try:
        result = attack_round(server.url, server.ca_file, [[image] * 100] * 6, scene["signed"], signed_every=0.1, prefix="engine")
    finally:
        server.stop()
    assert all(a.allowed for a in result.signed), [a.message for a in result.signed if not a.allowed]
    assert result.worst_seconds < DEADLINE + MARGIN, [a.seconds for a in result.attack + result.signed]
    assert all(not a.allowed and "100 signature(s) rejected" not in a.message and "200 signature(s) rejected" in a.message
               for a in result.attack), result.attack[0].message


def test_a_decision_not_made_in_time_is_a_recorded_deny(tmp_path, key_dir, registry, scene):
    """The pipeline is stuck past its deadline (here a real OPA server, stopped with SIGSTOP,
    that never answers within its 2 s timeout; the deadline is 1 s): the app answers a deny
    with the reason at the deadline plus its margin, and the audit trail records that deny."""
    opa = start_opa(tmp_path)
    opa.pause()
    audited = audited_webhook(tmp_path, key_dir, workers=1, policy_extra=f"deadlineSeconds: 1\nopa: {{url: {opa.url}, timeoutSeconds: 2}}")
    try:
        with audited.server.client() as client:
            started = time.monotonic()
            answer = client.post("/validate", content=review("Pod", pod(scene["signed"][0]), uid="late"),
                                 headers={"Content-Type": "application/json"}).json()["response"]
            elapsed = time.monotonic() - started
    finally:
        audited.server.stop()
        opa.stop()
    assert elapsed < 1 + 0.5 + 1.0, elapsed
    assert answer["allowed"] is False and "did not decide within the 1s deadline" in answer["status"]["message"]
    recorded = [e["record"] for e in records(audited.log_dir) if e["record"]["type"] == "decision" and e["record"]["review"]["uid"] == "late"]
    assert [r["decision"]["reason"] for r in recorded] == ["deadline"] and recorded[0]["decision"]["allowed"] is False


def test_the_scheduler_caps_each_review_and_serves_reviews_in_turn():
    scheduler = FairScheduler(workers=4, per_lane=2)
    release = threading.Event()
    running = {"a": 0, "most_a": 0}
    lock = threading.Lock()

    def slow() -> None:
        with lock:
            running["a"] += 1
            running["most_a"] = max(running["most_a"], running["a"])
        release.wait(5)
        with lock:
            running["a"] -= 1

    try:
        busy = scheduler.lane()
        hogging = [busy.submit(slow) for _ in range(10)]
        time.sleep(0.2)
        started = time.monotonic()
        quick = scheduler.lane().submit(lambda: "verified")
        assert quick.result(timeout=1) == "verified" and time.monotonic() - started < 0.5  # served although 8 tasks queue ahead of it
        assert running["most_a"] == 2  # one review holds at most its share of the threads
        busy.close()  # its answer went out: what has not started never runs
        release.set()
        assert sum(f.cancelled() for f in hogging) == 8 and all(f.result(timeout=2) is None for f in hogging if not f.cancelled())
    finally:
        release.set()
        scheduler.shutdown()


def test_reviews_blocked_on_a_hanging_registry_do_not_hold_up_new_ones(tmp_path, key_dir, scene):
    """50 reviews wait on a registry that never answers (more than starlette's 40 shared
    threadpool tokens): a signed Pod sent meanwhile is answered at once, the 50 by their deadline."""
    hole = BlackHole()
    generate("modelsign-webhook", "modelsign-system", tmp_path / "certs", extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, "deadlineSeconds: 3\nregistry: {timeoutSeconds: 5, retries: 0}", name="hanging"))
    server = start_webhook(policy, tmp_path / "certs", tmp_path, workers=1)
    try:
        with concurrent.futures.ThreadPoolExecutor(51) as pool:
            blocked = [pool.submit(post_timed, server.url, server.ca_file, review("Pod", pod(f"{hole.host}/hang/x{i}:1"), uid=f"hang-{i}"))
                       for i in range(50)]
            time.sleep(0.7)
            signed = post_timed(server.url, server.ca_file, review("Pod", pod(scene["signed"][0]), uid="signed"))
            hung = [f.result() for f in blocked]
    finally:
        server.stop()
        hole.stop()
    assert signed.allowed and signed.seconds < 1.5, signed
    assert all(not a.allowed and a.seconds < 3 + MARGIN for a in hung), sorted(a.seconds for a in hung)[-3:]
