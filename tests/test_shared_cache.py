"""The shared verification cache against a real redis-server: entries authenticated (planted,
altered, copied, stale: a miss, never an allow), single-flight across processes, an outage
and a Redis that never answers (the webhook verifies on its own), and two real webhook
processes sharing one cache in front of a real registry."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from datetime import datetime, timezone

import pytest

from signer import AttestationReport, Rejection, SignatureReport, VerifiedSignature
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from signer.trust.keys import load_signing_key_file
from conftest import PASSWORD, run_cli
from support.admission import pod, policy_for, review
from support.faults import BlackHole, FaultProxy
from support.redis_server import shared_cache_flags, start_redis
from support.webhook_server import start_webhook
from test_webhook_server import _counter, _scrape_all_workers, post
from webhook.admission.cache import SingleFlightCache
from webhook.admission.report_codec import decode_reports, encode_reports
from webhook.admission.shared_cache import SharedStatements, SharedVerificationCache, connect
from webhook.admission.statement_memory import StatementMemory
from webhook.certs import generate

SECRET = b"k" * 32
KEY = ("127.0.0.1:5000/models/llm", "sha256:" + "a" * 64, "sha256:" + "b" * 64)


def verified() -> tuple[SignatureReport, AttestationReport]:
    signature = VerifiedSignature(form="legacy", signer="ml-team", key_id="kid", keyless=None, docker_reference=KEY[0],
                                  annotations={"team": "ml"}, location="tag sha256-aaa.sig", signed_names=(KEY[0],))
    return SignatureReport(reference=KEY[0], digest=KEY[1], verified=(signature,), rejected=()), AttestationReport(digest=KEY[1], verified=(), rejected=())


def unsigned() -> tuple[SignatureReport, AttestationReport]:
    return (SignatureReport(reference=KEY[0], digest=KEY[1], verified=(), rejected=(Rejection("tag sha256-aaa.sig", "no signature"),)),
            AttestationReport(digest=KEY[1], verified=(), rejected=()))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    running = start_redis(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


@pytest.fixture
def client(redis_server):
    client = connect(redis_server.url, timeout_seconds=1.0)
    client.flushdb()
    yield client
    client.close()


class Counting:
    """A verification that counts its calls (and can be slow)."""

    def __init__(self, result, delay: float = 0.0) -> None:
        self.result, self.delay, self.calls = result, delay, 0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.result


def shared(client, secret: bytes = SECRET, **kwargs) -> SharedVerificationCache:
    return SharedVerificationCache(client, secret, SingleFlightCache(), **kwargs)


def test_reports_survive_the_codec_exactly():
    from signer.trust.keyless import KeylessSigner

    keyless = KeylessSigner(subjects=("ci@example.com",), issuer="https://issuer", integrated_time=datetime(2026, 1, 2, tzinfo=timezone.utc), log_index=7)
    reports = (SignatureReport(reference="r", digest=KEY[1], verified=(VerifiedSignature("bundle", "ci", None, keyless, None, {}, "loc"),),
                               rejected=(Rejection("l", "why"),), ignored=("x",), over_limits=("y",)), unsigned()[1])
    assert decode_reports(encode_reports(reports)) == reports


def test_a_second_process_uses_the_first_ones_verification(client):
    first, second = shared(client), shared(client)
    compute = Counting(verified())
    value, cached = first.get_or_compute(KEY, compute, ttl=lambda _: 60)
    assert (value, cached) == (verified(), False)
    value, cached = second.get_or_compute(KEY, compute, ttl=lambda _: 60)
    assert (value, cached) == (verified(), True)
    assert compute.calls == 1
    assert (first.shared_stats.misses, second.shared_stats.hits) == (1, 1)


def test_single_flight_across_processes(client, redis_server):
    """Six 'processes' (separate local caches and Redis connections) look up one digest at
    once while it verifies slowly: one verification for all of them."""
    caches = [shared(connect(redis_server.url, timeout_seconds=1.0)) for _ in range(6)]
    compute = Counting(verified(), delay=0.5)
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda i: caches[i % 6].get_or_compute(KEY, compute, ttl=lambda _: 60, wait_seconds=10)[0], range(12)))
    assert results == [verified()] * 12
    assert compute.calls == 1
    assert sum(c.shared_stats.waits for c in caches) >= 1


def test_a_failed_verification_lets_a_waiter_verify_instead(client):
    first, second = shared(client), shared(client)

    def failing():
        time.sleep(0.3)
        raise RuntimeError("registry went away")

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        failed = pool.submit(first.get_or_compute, KEY, failing, lambda _: 60, wait_seconds=5)
        time.sleep(0.1)
        compute = Counting(verified())
        waited = pool.submit(second.get_or_compute, KEY, compute, lambda _: 60, wait_seconds=5)
        with pytest.raises(RuntimeError):
            failed.result()
        assert waited.result()[0] == verified()
    assert compute.calls == 1


@pytest.mark.parametrize("forgery", ["other-key", "altered", "copied", "garbage", "stale", "wrong-shape"])
def test_planted_entries_are_misses_never_allows(client, forgery):
    """Whoever can write to Redis plants a 'verified' entry for an unsigned digest: the
    webhook verifies for itself and gets 'unsigned'."""
    cache = shared(client)
    redis_key = cache.redis_key(KEY)
    if forgery == "other-key":
        planted = shared(client, secret=b"x" * 32).seal(redis_key, KEY, verified(), 60)
    elif forgery == "altered":
        good = cache.seal(redis_key, KEY, unsigned(), 60)
        planted = good.replace(b'"verified":[]', b'"verified":[{}]', 1)
        assert planted != good
    elif forgery == "copied":  # a genuine entry of another (signed) digest, copied under this key
        other = (KEY[0], "sha256:" + "c" * 64, KEY[2])
        planted = cache.seal(cache.redis_key(other), other, verified(), 60)
    elif forgery == "garbage":
        planted = b"\x00" * 40 + b"{not json"
    elif forgery == "stale":  # genuine, but expired: replayed after its time
        planted = shared(client, wall_clock=lambda: time.time() - 3600).seal(redis_key, KEY, verified(), 60)
    else:  # authenticated, but not the shape of a report (a writer with the key and a bug)
        body = b'{"expires":9999999999,"key":' + str(list(KEY)).replace("'", '"').encode() + b',"value":[{"ok":true},{}]}'
        planted = cache._mac(redis_key, body) + body
    client.set(redis_key, planted)
    compute = Counting(unsigned())
    value, cached = cache.get_or_compute(KEY, compute, ttl=lambda _: 60)
    assert value == unsigned() and not value[0].ok and cached is False
    assert compute.calls == 1 and cache.shared_stats.hits == 0
    if forgery in ("other-key", "altered", "copied", "garbage", "wrong-shape"):
        assert cache.shared_stats.rejected == 1


def test_redis_outage_falls_back_to_the_process_cache(tmp_path):
    running = start_redis(tmp_path)
    client = connect(running.url, timeout_seconds=0.5)
    cache = shared(client, retry_seconds=60)
    compute = Counting(verified())
    assert cache.get_or_compute(KEY, compute, ttl=lambda _: 60)[0] == verified()
    running.stop()
    cache.local.clear()
    other = (KEY[0], "sha256:" + "d" * 64, KEY[2])
    assert cache.get_or_compute(other, compute, ttl=lambda _: 60)[0] == verified()
    assert cache.get_or_compute(other, compute, ttl=lambda _: 60) == (verified(), True)  # the process's own cache still works
    assert compute.calls == 2 and cache.shared_stats.errors == 1  # and Redis is left alone after the first failure


def test_a_redis_that_never_answers_costs_one_timeout_then_is_skipped():
    hole = BlackHole()
    try:
        cache = shared(connect(f"redis://{hole.host}/0", timeout_seconds=0.2), retry_seconds=60)
        compute = Counting(unsigned())
        for digest in ("e", "f", "0"):
            key = (KEY[0], "sha256:" + digest * 64, KEY[2])
            assert cache.get_or_compute(key, compute, ttl=lambda _: 60, wait_seconds=5)[0] == unsigned()
        assert compute.calls == 3 and cache.shared_stats.errors == 1
    finally:
        hole.stop()


def test_a_short_key_is_refused(client):
    from signer import UsageError

    with pytest.raises(UsageError, match="at least 32"):
        shared(client, secret=b"short")


def test_registry_backoff_notes_are_shared_and_authenticated(client):
    first, second = shared(client), shared(client)
    until = time.time() + 30
    first.note_throttled("registry.example.com", until)
    assert second.throttled_until("registry.example.com") == pytest.approx(until)
    assert shared(client, secret=b"y" * 32).throttled_until("registry.example.com") is None  # another key: not believed
    assert second.throttled_until("other.example.com") is None


# -- two real webhook processes sharing one cache ----------------------------------------------


@pytest.fixture(scope="module")
def images(registry, key_dir):
    key = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    with Stores() as stores:
        signed = push_image(stores.repository(parse_reference(f"{registry.host}/shared/signed")), {"f": b"shared-s"}, tag="1")
        sign_artifact(stores, parse_reference(f"{registry.host}/shared/signed:1"), key)
        unsigned_image = push_image(stores.repository(parse_reference(f"{registry.host}/shared/unsigned")), {"f": b"shared-u"}, tag="1")
    return {"signed": signed, "unsigned": unsigned_image}


def test_two_webhook_processes_verify_each_digest_once_and_refuse_planted_entries(tmp_path, registry, key_dir, images, redis_server, client):
    certs = tmp_path / "certs"
    generate("modelsign-webhook", "modelsign-system", certs, extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, name="shared-cache-test"))
    flags = shared_cache_flags(redis_server, tmp_path, SECRET)
    proxy = FaultProxy(registry.host)
    proxy.delay_seconds = 0.2  # a slow registry: lookups overlap, as in a burst
    servers = [start_webhook(policy, certs, tmp_path, workers=2, extra=flags) for _ in range(2)]
    try:
        body = review("Pod", pod(f"{proxy.host}/shared/signed@{images['signed'].digest}"))

        def one(i: int) -> bool:
            with servers[i % 2].client() as http:
                return post(http, body).json()["response"]["allowed"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            assert list(pool.map(one, range(48))) == [True] * 48
        signature_fetches = [r for r in proxy.seen if r.endswith(".sig")]
        metrics = {f"{n}-{w}": t for n, s in enumerate(servers) for w, t in _scrape_all_workers(s).items()}
        errors = sum(_counter(t, "modelsign_shared_cache_lookups_total", result="error") for t in metrics.values())
        # One verification for 2 processes x 2 workers; a worker whose Redis call timed out on a
        # loaded machine verifies alone, and says so in its error count.
        assert len(signature_fetches) == 1 + errors and errors < len(metrics) - 1, (proxy.seen, errors)
        assert sum(_counter(t, "modelsign_shared_cache_lookups_total", result="miss") for t in metrics.values()) >= 1
        assert sum(_counter(t, "modelsign_shared_cache_lookups_total", result="hit") for t in metrics.values()) >= 1

        # Planted: the signed digest's genuine entry copied over the unsigned digest's entry,
        # and a forged one under another key; a fresh process must still deny.
        unsigned_body = review("Pod", pod(f"{proxy.host}/shared/unsigned@{images['unsigned'].digest}"))
        with servers[0].client() as http:
            assert post(http, unsigned_body).json()["response"]["allowed"] is False
        keys = [k for k in client.keys("modelsign:v1:verify:*") if not k.endswith(b":lock")]
        genuine = {k: client.get(k) for k in keys}
        signed_entry = next(v for v in genuine.values() if b'"verified":[{' in v)
        for key in keys:
            client.set(key, signed_entry)
    finally:
        for server in servers:
            server.stop()
    fresh = start_webhook(policy, certs, tmp_path, workers=1, extra=flags)
    try:
        with fresh.client() as http:
            answer = post(http, unsigned_body).json()["response"]
            assert answer["allowed"] is False and "signed" in answer["status"]["message"]
            text = http.get("/metrics").text
        assert _counter(text, "modelsign_shared_cache_lookups_total", result="rejected") >= 1
    finally:
        fresh.stop()
        proxy.stop()


# -- statements once verified, remembered by every replica (statement_memory.py) ----------------

REJECTION = {"id": "sha256:r", "decision": "rejected", "environment": "prod", "signer": "approver"}
APPROVAL = {"id": "sha256:a", "decision": "approved", "environment": "prod", "signer": "approver"}
EVAL_OLD = {"id": "sha256:e1", "signer": "eval-ci", "evaluatedAt": "2026-11-01T00:00:00Z"}
EVAL_NEW = {"id": "sha256:e2", "signer": "eval-ci", "evaluatedAt": "2026-11-02T00:00:00Z"}


def replica(client, secret: bytes = SECRET) -> StatementMemory:
    """A webhook process's statement memory, sharing through Redis (a fresh one: another replica,
    or the same one after a restart)."""
    return StatementMemory(shared=SharedStatements(shared(client, secret)))


def test_a_statement_one_replica_saw_is_missed_by_every_other_and_after_a_restart(client):
    first = replica(client)
    assert first.check(KEY[1], [REJECTION, APPROVAL], [EVAL_NEW]) is None
    # the rejection and the newest evaluation are then removed from the registry (push rights suffice)
    for other in (replica(client), replica(client)):  # another replica; this one restarted
        denied = other.check(KEY[1], [APPROVAL], [EVAL_OLD])
        assert denied is not None and "rejected for environment prod by approver" in denied and "the evaluation by eval-ci of 2026-11-02" in denied
    assert replica(client).check(KEY[1], [REJECTION, APPROVAL], [EVAL_NEW]) is None  # restored: nothing missing
    assert replica(client).check("sha256:" + "9" * 64, [], []) is None  # a digest nobody saw statements on costs no place
    assert client.dbsize() == 1


def test_planted_or_altered_shared_statements_never_deny(client):
    """Whoever can write to Redis can make replicas forget (each keeps its own memory) but
    cannot make them deny: values without the key's MAC, moved to another field or another
    digest, are ignored."""
    key = SharedStatements.redis_key(KEY[1])
    body = json.dumps({"digest": KEY[1], "field": "denial:sha256:forged", "kind": "denial", "id": "sha256:forged", "what": "forged",
                       "seenAt": time.time()}, separators=(",", ":"), sort_keys=True).encode()
    client.hset(key, mapping={"denial:sha256:forged": b"\0" * 32 + body, "junk": b"junk", "empty": b""})
    other_key = StatementMemory(shared=SharedStatements(shared(client, b"x" * 32)))
    assert other_key.check(KEY[1], [REJECTION], []) is None  # a replica with another key writes values the others refuse
    genuine = replica(client)
    assert genuine.check("sha256:" + "7" * 64, [REJECTION], []) is None
    elsewhere = client.hgetall(SharedStatements.redis_key("sha256:" + "7" * 64))
    client.hset(key, mapping={b"denial:sha256:moved": next(iter(elsewhere.values()))})  # another digest's genuine value
    client.hset(key, mapping={b"denial:sha256:other": next(iter(elsewhere.values()))})
    memory = replica(client)
    assert memory.check(KEY[1], [], []) is None
    assert memory.shared._cache.shared_stats.rejected >= 6


def test_forget_statements_lifts_a_denial_everywhere_and_a_replay_does_not_bring_it_back(client, redis_server, tmp_path, capsys):
    running = replica(client)  # a replica that keeps running through the forget (its own memory too)
    assert running.check(KEY[1], [REJECTION], []) is None
    saved = client.hgetall(SharedStatements.redis_key(KEY[1]))  # an attacker who can read Redis keeps a copy
    denied = replica(client).check(KEY[1], [], [])  # the removal denies on every replica, and says how to lift it
    assert denied is not None and f"run `modelsign webhook forget-statements {KEY[1]}` against the shared cache" in denied
    secret = tmp_path / "key"
    secret.write_bytes(SECRET)
    code, out, err = run_cli(capsys, "webhook", "forget-statements", KEY[1], "--shared-cache", redis_server.url, "--shared-cache-key-file", secret,
                             "-o", "json")
    assert code == 0 and json.loads(out) == {"digest": KEY[1], "forgotten": 1}, err
    assert running.check(KEY[1], [], []) is None  # the running replica read the mark and forgot too: it writes nothing back
    assert replica(client).check(KEY[1], [], []) is None  # and so does every fresh one
    client.hset(SharedStatements.redis_key(KEY[1]), mapping=saved)  # replayed: older than the mark, ignored
    assert replica(client).check(KEY[1], [], []) is None
    client.hdel(SharedStatements.redis_key(KEY[1]), "forgotten")  # the mark deleted: a replica that read it keeps it
    assert running.check(KEY[1], [], []) is None
    assert running.check(KEY[1], [REJECTION], []) is None and replica(client).check(KEY[1], [], []) is not None  # re-attached: remembered again


def test_forget_statements_refuses_the_wrong_key_and_anything_but_a_digest(client, redis_server, tmp_path, capsys):
    assert replica(client).check(KEY[1], [REJECTION], []) is None
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"w" * 32)
    code, _, err = run_cli(capsys, "webhook", "forget-statements", KEY[1], "--shared-cache", redis_server.url, "--shared-cache-key-file", wrong)
    assert code == 2 and "authenticates with this key" in err
    assert replica(client).check(KEY[1], [], []) is not None  # nothing was forgotten
    code, _, err = run_cli(capsys, "webhook", "forget-statements", "latest", "--shared-cache", redis_server.url, "--shared-cache-key-file", wrong)
    assert code == 2 and "is not a digest" in err


def test_remembered_statements_expire_after_the_keep_period_and_are_refreshed_while_seen(client):
    clock = [1_000_000.0]
    cache = shared(client, wall_clock=lambda: clock[0])
    store = SharedStatements(cache, keep_seconds=100, refresh_seconds=10)
    assert StatementMemory(shared=store).check(KEY[1], [REJECTION], []) is None
    clock[0] += 50
    assert StatementMemory(shared=store).check(KEY[1], [REJECTION], []) is None  # seen again: its seenAt is refreshed (due: 50 > 10)
    clock[0] += 90  # 140 after the first sighting, 90 after the last
    assert StatementMemory(shared=store).check(KEY[1], [], []) is not None
    clock[0] += 200  # nobody saw it for longer than the keep period: forgotten, a replay of it too
    assert StatementMemory(shared=store).check(KEY[1], [], []) is None


def test_reading_remembered_statements_is_bounded_in_redis(client):
    """A planted hash of many fields or giant names or values, or a key of another type, is
    refused in Redis itself: the webhook neither receives it nor holds it, keeps its own
    memory, and keeps using the shared cache (no pause)."""
    key = SharedStatements.redis_key(KEY[1])
    memory = replica(client)
    for plant in ({f"f{i}": b"x" for i in range(300)}, {"denial:big": b"x" * 5_000_000}, {b"n" * 4_000_000: b"x"}):
        client.delete(key)
        client.hset(key, mapping=plant)
        assert memory.shared.recall(KEY[1]) is None and memory.check(KEY[1], [REJECTION], []) is None
    client.delete(key)
    client.set(key, b"not a hash")
    assert memory.shared.recall(KEY[1]) is None
    assert memory.shared._cache.shared_stats.errors == 0 and memory.shared._cache._available()
    client.delete(key)
    assert memory.shared.recall(KEY[1]).statements == []


def test_same_second_evaluations_are_ordered_as_the_policy_orders_them(client):
    """Two evaluations by one signer in the same second: the newest is the one with the greater
    statement id, for the policy and for the memory, so dropping it is noticed."""
    low = {"id": "sha256:0000", "signer": "eval-ci", "evaluatedAt": "2026-11-02T00:00:00Z"}
    high = {"id": "sha256:ffff", "signer": "eval-ci", "evaluatedAt": "2026-11-02T00:00:00Z"}
    memory = replica(client)
    assert memory.check(KEY[1], [], [high]) is None
    denied = replica(client).check(KEY[1], [], [low])
    assert denied is not None and "the evaluation by eval-ci of 2026-11-02T00:00:00Z (statement sha256:ffff)" in denied
    assert replica(client).check(KEY[1], [], [high]) is None


def test_shared_statements_when_redis_is_down_are_the_process_memory(tmp_path):
    running = start_redis(tmp_path)
    client = connect(running.url, timeout_seconds=0.5)
    memory = replica(client)
    running.stop()
    assert memory.check(KEY[1], [REJECTION], []) is None  # no exception: Redis is skipped
    denied = memory.check(KEY[1], [], [])
    assert denied is not None and "rejected" in denied  # the process still remembers on its own
    assert memory.shared._cache.shared_stats.errors == 1


def test_a_rejection_removed_from_the_registry_still_denies_on_another_webhook_process(tmp_path, registry, key_dir, redis_server, client):
    """End to end: webhook process A sees a rejection; the `.att` tag is re-pushed without it
    (push rights suffice); a fresh process B (another replica, or A restarted) still denies,
    naming it. A process without the shared cache admits: what sharing the memory adds."""
    from datetime import timedelta

    from signer.evidence.approvals import approval_predicate
    from signer.formats import mediatypes as mt
    from signer.signatures.attestations import attest
    from signer.trust.keys import generate_key_pair
    from test_statement_memory import drop_attestations

    generate_key_pair(tmp_path / "approver", PASSWORD.encode())
    approver = load_signing_key_file(tmp_path / "approver.key", password=lambda _: PASSWORD.encode())
    ml = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Stores() as stores:
        reference = parse_reference(f"{registry.host}/shared/approved-model:1")
        repository = stores.repository(reference)
        digest = push_image(repository, {"w": b"shared-memory"}, tag="1").digest
        sign_artifact(stores, reference, ml)
        pinned = parse_reference(f"{registry.host}/shared/approved-model@{digest}")
        for decision, at in (("approved", now), ("rejected", now + timedelta(seconds=2))):
            attest(stores, pinned, approver, mt.APPROVAL_PREDICATE,
                   approval_predicate(decision=decision, environment="prod", namespaces=["*"], approver="carol", requester="bob", ticket="CHG-9",
                                      reason="bias found", now=at, not_before=None, expires_in_seconds=3600 if decision == "approved" else None))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
  approver: {{file: {tmp_path / 'approver.pub'}}}
rules:
  - name: approved
    require: {{signedBy: [ml-team], approval: {{signedBy: [approver], environment: prod}}}}
""")
    certs = tmp_path / "certs"
    generate("modelsign-webhook", "modelsign-system", certs, extra_sans=["127.0.0.1"])
    flags = shared_cache_flags(redis_server, tmp_path, SECRET)
    body = review("Pod", pod(f"{registry.host}/shared/approved-model@{digest}"))

    def answer(extra: list[str]) -> dict:
        server = start_webhook(policy, certs, tmp_path, workers=1, extra=extra)
        try:
            with server.client() as http:
                return post(http, body).json()["response"]
        finally:
            server.stop()

    first = answer(flags)
    assert first["allowed"] is False and "rejected" in first["status"]["message"], first
    with Stores() as stores:
        assert drop_attestations(stores.repository(reference), digest, lambda p: p.get("decision") == "rejected") == 1
    client.delete(*client.keys("modelsign:v1:verify:*"))  # the verification cache would hide the push until it expires anyway
    second = answer(flags)
    assert second["allowed"] is False, second
    assert "the rejected for environment prod by approver" in second["status"]["message"] and "no longer in the registry" in second["status"]["message"]
    assert answer([])["allowed"] is True  # alone, a fresh process knows nothing of the rejection


def test_a_warm_local_hit_asks_redis_nothing(client):
    """Reports from this process's own cache were checked against the shared memory when they
    were verified: re-reading them costs no Redis round trip (the warm admission path)."""
    assert replica(client).check(KEY[1], [REJECTION], []) is None  # another replica saw the rejection
    warm = replica(client)
    calls_before = client.info("stats")["total_commands_processed"]
    assert warm.check(KEY[1], [], [], recall=False) is None
    assert client.info("stats")["total_commands_processed"] - calls_before == 1  # only the INFO call itself
    assert warm.check(KEY[1], [], []) is not None  # verified afresh: asks, and denies
