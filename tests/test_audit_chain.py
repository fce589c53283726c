"""The chain's building blocks on real files: canonical JSON (RFC 8785), sealing, the
durable writer (rotation, retention, checkpoints, group commit from threads and coroutines),
and redaction."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PASSWORD
from signer import FormatError, load_json
from signer.trust.keys import load_signing_key_file
from webhook.audit.canonical import CanonicalError, canonical_json, encode_prepared, prepare
from webhook.audit.chain import GENESIS, parse_line, seal
from webhook.audit.redaction import redact
from webhook.audit.trail import AuditTrail
from webhook.audit.verify import verify
from webhook.audit.writer import AuditSettings, AuditWriteError, AuditWriter, utc_now


def test_rfc8785_key_order_and_escapes():
    # RFC 8785 section 3.2.3: keys sorted by UTF-16 code units (the emoji sorts before U+FB33).
    sample = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",
              "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(canonical_json(sample)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json({"b": [1, True, None], "a": "\u0001\n\"\\/\u2028é"}) == '{"a":"\\u0001\\n\\"\\\\/\u2028é","b":[1,true,null]}'.encode()


@pytest.mark.parametrize("value, problem", [
    ({"latency": 1.5}, "float"), ({"n": 2**60}, "outside the exactly representable range"), ({"b": b"x"}, "bytes"),
    ({"a": ["x", 1.5]}, "float"), ({"a": [True, 1e300]}, "float"), ({"a": {"b": [None, -2**53]}}, "outside the exactly representable range"),
    ({"a": "\"quoted\" \\", "b": [1e16]}, "float"), ({"when": datetime.now(timezone.utc)}, "datetime"), ({1: "x"}, "not a string"),
])
def test_values_without_a_canonical_form_are_refused(value, problem):
    with pytest.raises(CanonicalError, match=problem):
        canonical_json(value)


def test_types_beyond_json_are_written_alike_by_both_paths_or_refused_by_both():
    """orjson (the fast path) writes enum members by value, UUIDs as text and subclasses of
    str, int, dict and list as their base; the exact path (taken for non-ASCII text) must write
    the same, or a record would be accepted or refused depending on its text."""
    import collections
    import enum
    import uuid

    class Text(str):
        def __str__(self):
            return "not what is stored"

    class Number(int):
        def __int__(self):
            return 99

    class Mixed(str, enum.Enum):
        A = "x"

    class Plain(enum.Enum):
        A = 3

    class Nothing(enum.Enum):
        UNKNOWN = None

    class Labelled(int, enum.Enum):  # its int is what orjson writes, not its value
        def __new__(cls, number, label):
            member = int.__new__(cls, number)
            member._value_ = label
            return member

        A = (1, "one")

    values = [Text("t"), Number(7), Mixed.A, Plain.A, Nothing.UNKNOWN, Labelled.A, uuid.UUID(int=1), collections.OrderedDict(b=1, a=2),
              type("L", (list,), {})([1])]
    for value in values:
        fast = canonical_json({"v": value})
        assert fast == encode_prepared(prepare({"v": value}))
        assert canonical_json({"v": value, "w": "\u00e9"}) == encode_prepared(prepare({"v": value, "w": "\u00e9"}))
    assert canonical_json({"v": Text("t"), "n": Number(7), "u": uuid.UUID(int=1)}) == b'{"n":7,"u":"00000000-0000-0000-0000-000000000001","v":"t"}'
    for refused in (type("T", (tuple,), {})((1,)), type("F", (float,), {})(1.0), {1, 2}, bytearray(b"x")):
        for extra in ({}, {"w": "\u00e9"}):
            with pytest.raises(CanonicalError):
                canonical_json({"v": refused, **extra})


def test_nan_and_infinity_never_reach_a_record():
    """They are not JSON: every reader of untrusted JSON refuses them, so no record field can
    hold one (the fast encoder, orjson, would write them as null, which the exact one refuses)."""
    for text in (b'{"latencyUs": NaN}', b'[Infinity]', b'{"a": [-Infinity]}'):
        with pytest.raises(FormatError, match="is not a JSON value"):
            load_json(text, what="a review")
    with pytest.raises(CanonicalError, match="float"):
        encode_prepared(prepare({"n": float("nan")}))


def test_lone_surrogates_are_made_valid():
    assert json.loads(canonical_json({"user": "eve\ud800"})) == {"user": "eve\ufffd"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_fast_path_always_equals_the_exact_path(value):
    assert canonical_json(value) == encode_prepared(prepare(value))


hostile_text = st.text(st.sampled_from('"\\/\n\x00\x1f\x7f\u2028é.eE+-1 tru:,[]{}'), max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | hostile_text | st.floats(allow_nan=False, allow_infinity=False),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4), max_leaves=16))
def test_a_float_anywhere_is_refused_and_everything_else_matches_the_exact_path(value):
    """Strings full of quotes, backslashes, digits, dots and the letters of true/false/null
    beside floats in every position: the check of what stands outside strings must tell them apart."""
    def has_float(item):
        if isinstance(item, float):
            return True
        if isinstance(item, dict):
            return any(has_float(v) for v in item.values())
        return isinstance(item, list) and any(has_float(v) for v in item)

    if has_float(value):
        with pytest.raises(CanonicalError, match="float"):
            canonical_json(value)
    else:
        assert canonical_json(value) == encode_prepared(prepare(value))


def test_sealed_lines_hash_what_any_reader_can_recompute():
    line, digest = seal("writer-1", 1, GENESIS, canonical_json({"type": "decision", "n": 1}))
    document = json.loads(line)
    assert document["hash"] == digest and list(document) == ["hash", "prev_hash", "record", "seq", "writer"]
    body = {k: v for k, v in document.items() if k != "hash"}
    import hashlib

    assert "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest() == digest  # re-derived from the parsed JSON
    assert parse_line(line.rstrip(b"\n"))[4] is True and parse_line(b'{"hash":"x"}') is None


@pytest.fixture
def audit_key(key_dir):
    return load_signing_key_file(key_dir / "second-signer.key", password=lambda _: PASSWORD.encode())


def test_rotation_keeps_one_chain_across_files(tmp_path, audit_key):
    writer = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl", key=audit_key, rotate_bytes=4096, checkpoint_records=50))
    for number in range(200):
        writer.append({"type": "test", "n": number, "pad": "x" * 100})
    writer.close()
    chains = sorted(tmp_path.glob("audit-*.jsonl"))
    assert len(chains) > 5
    report = verify([tmp_path], [audit_key.public])
    assert report.ok and report.records >= 200 and len(report.chains) == 1
    chain = next(iter(report.chains.values()))
    assert chain.first_seq == 1 and chain.missing == 0 and chain.checkpoints_verified >= 5  # every segment ends on a checkpoint


def _days_ago(days: float):
    """A writer clock that runs `days` behind: its checkpoints are signed that long ago."""
    return lambda: time.time() - days * 86400


def test_retention_removes_old_files_and_says_so(tmp_path, audit_key):
    checkpoints = tmp_path / "audit.checkpoints.jsonl"
    old = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl", key=audit_key, rotate_bytes=2048, checkpoint_path=checkpoints),
                      clock=_days_ago(91))
    for number in range(60):
        old.append({"type": "test", "n": number})
    old.close()
    files = [p for p in sorted(tmp_path.glob("audit-*.jsonl")) if p.stat().st_size]
    ancient = time.time() - 91 * 86400
    for path in files[:-1]:
        os.utime(path, (ancient, ancient))
    fresh = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl", key=audit_key, checkpoint_path=checkpoints))
    fresh.append({"type": "test", "n": "after"})
    fresh.close()
    assert [p for p in files[:-1] if p.exists()] == []
    retention = [json.loads(line)["record"] for path in tmp_path.glob("audit-*.jsonl") for line in path.read_bytes().splitlines()
                 if b'"type":"retention"' in line]
    assert retention and len(retention[0]["removed"]) == len(files) - 1 and retention[0]["retentionSeconds"] == 90 * 86400
    assert all(r["basis"] == "signed-checkpoint" and r["checkpoint"]["type"] == "checkpoint" for r in retention[0]["removed"])
    report = verify([tmp_path], [audit_key.public], checkpoint_files=[checkpoints])
    assert report.ok, report.problems  # the pruned start is accounted for by the retention record
    assert next(c for c in report.chains.values() if c.writer == old.writer_id).pruned_before is not None


def test_concurrent_appends_share_syncs_and_stay_ordered(tmp_path):
    writer = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))
    receipts = []

    def work(thread: int) -> None:
        for number in range(100):
            receipts.append(writer.append({"type": "test", "thread": thread, "n": number}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def from_coroutines() -> list:
        return await asyncio.gather(*(writer.append_async({"type": "test", "async": n}) for n in range(200)))

    receipts += asyncio.run(from_coroutines())
    writer.close()
    assert sorted(r.seq for r in receipts) == list(range(1, 1001))
    report = verify([tmp_path], [])
    assert not report.problems and report.status == "UNVERIFIED" and not report.ok  # no key: nothing is called verified


def test_a_closed_writer_refuses(tmp_path):
    writer = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))
    writer.close()
    with pytest.raises(AuditWriteError, match="closed"):
        writer.append({"type": "late"})


def test_secrets_are_redacted_before_they_reach_the_file(tmp_path):
    trail = AuditTrail(AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl")))
    trail.event("startup", password="hunter2", apiToken="abc123", nested={"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.payload"},
                message="pull https://bob:s3cret-pass@registry.example/v2/ failed with Bearer abcdefghijklmnop1; Basic Ym9iOnMzY3JldA==",
                error="-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----", harmless="kit://registry.example/models/x:1")
    trail.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit-*.jsonl"))
    for secret in (b"hunter2", b"abc123", b"eyJhbGciOiJIUzI1NiJ9", b"s3cret-pass", b"abcdefghijklmnop1", b"Ym9iOnMzY3JldA", b"MIIB"):
        assert secret not in raw
    assert b"kit://registry.example/models/x:1" in raw and redact({"ticket": "CHG-1"}) == {"ticket": "CHG-1"}
    record = json.loads(raw.splitlines()[0])["record"]
    assert {"field": "password", "kind": "secret-named field"} in record["redactions"]
    assert {"field": "message", "kind": "URL password"} in record["redactions"] and "https://bob:[redacted]@registry.example" in record["message"]


def test_a_record_that_cannot_be_encoded_is_an_audit_error_not_a_crash(tmp_path):
    trail = AuditTrail(AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl")))
    with pytest.raises(AuditWriteError, match="could not be encoded: float values"):
        trail.event("startup", uptime=1.5)
    assert trail.event("startup", uptime=2).seq == 1  # the writer carries on
    trail.close()


def _keyed_writer(directory, key, clock=time.time, **settings):
    """A writer with its checkpoint file among the chains (where verify([directory]) reads it)."""
    return AuditWriter(AuditSettings(path=directory / "audit.jsonl", key=key, checkpoint_path=directory / "audit.checkpoints.jsonl", **settings),
                       clock=clock)


def test_a_made_up_retention_record_excuses_nothing(tmp_path, audit_key):
    victim = _keyed_writer(tmp_path, audit_key, checkpoint_records=10)
    for number in range(40):
        victim.append({"type": "decision", "n": number})
    victim.close()
    for path in tmp_path.glob(f"audit-{victim.writer_id}-*.jsonl"):
        path.unlink()  # the deletion to hide
    forger = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))  # anyone can write a chain; nobody else can sign it
    forger.append({"type": "retention", "removed": [{"writer": victim.writer_id, "firstSeq": 1, "lastSeq": 10_000, "lastHash": GENESIS}]})
    forger.append({"type": "decision", "n": "made up"})
    forger.close()
    report = verify([tmp_path], [audit_key.public])
    kinds = {p.kind for p in report.problems}
    assert "missing-chain" in kinds and "unsigned" in kinds, report.problems
    assert any("excuses nothing" in w for w in report.warnings)


def test_a_real_retention_record_only_excuses_what_it_removed(tmp_path, audit_key):
    victim = _keyed_writer(tmp_path, audit_key, rotate_bytes=2048, checkpoint_records=5, clock=_days_ago(91))
    for number in range(80):
        victim.append({"type": "decision", "n": number})
    victim.close()
    segments = sorted(tmp_path.glob(f"audit-{victim.writer_id}-*.jsonl"))
    ancient = time.time() - 91 * 86400
    os.utime(segments[0], (ancient, ancient))
    pruner = _keyed_writer(tmp_path, audit_key)
    pruner.append({"type": "decision", "n": "pruner"})
    pruner.close()
    assert not segments[0].exists()
    assert verify([tmp_path], [audit_key.public]).ok  # the pruned start is excused by a signed retention record
    for path in segments[1:]:
        path.unlink()  # now delete the rest: no retention record covers that
    report = verify([tmp_path], [audit_key.public])
    assert [p.kind for p in report.problems] == ["missing-chain"], report.problems


def test_retention_never_removes_a_live_writers_open_file(tmp_path, audit_key):
    live = _keyed_writer(tmp_path, audit_key, clock=_days_ago(91))
    live.append({"type": "decision", "n": 1})
    ancient = time.time() - 91 * 86400
    os.utime(live.segment_path, (ancient, ancient))  # idle for longer than the retention period
    other = _keyed_writer(tmp_path, audit_key)
    other.append({"type": "decision", "n": 2})
    assert live.segment_path.exists()
    assert live.append({"type": "decision", "n": 3}).seq > 1
    live.close()
    other.close()
    assert verify([tmp_path], [audit_key.public]).ok


def test_a_record_whose_caller_gave_up_is_never_written(tmp_path, monkeypatch):
    """A review denied because its record was late must not appear in the trail as allowed."""
    writer = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))
    slow = writer._write_durably

    def sluggish(data: bytes):
        time.sleep(0.6)
        return slow(data)

    monkeypatch.setattr(writer, "_write_durably", sluggish)
    first = threading.Thread(target=writer.append, args=({"type": "decision", "n": "first"},))
    first.start()
    time.sleep(0.1)  # the first record is now being written
    with pytest.raises(AuditWriteError, match="not durable within 0.2s"):
        writer.append({"type": "decision", "n": "late"}, timeout=0.2)
    first.join()
    writer.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit-*.jsonl"))
    assert b'"first"' in raw and b'"late"' not in raw


def test_large_integers_anywhere_take_the_exact_path():
    with pytest.raises(CanonicalError, match="outside the exactly representable range"):
        canonical_json({"a": ["x", 2**60 + 1]})
    assert canonical_json({"uid": "0123456789012345678"}) == b'{"uid":"0123456789012345678"}'  # long digit runs in text are fine


# -- the checkpoint schedule, as the writer keeps it ------------------------------------------------------------------

def _chain_records(directory) -> list[dict]:
    return [json.loads(line)["record"] for path in sorted(directory.glob("audit-*.jsonl")) for line in path.read_bytes().splitlines()]


def _assert_schedule_kept(records: list[dict], records_between: int, seconds: float) -> None:
    """At most `records_between` records between checkpoints, and none stamped later than
    `seconds` after the checkpoint before it (superseded records aside)."""
    from webhook.audit.schedule import parse_time

    assert records[1]["type"] == "checkpoint", "a checkpoint right after the first record"
    last, count = None, 0
    for record in records:
        if record["type"] == "checkpoint":
            last, count = record, 0
            continue
        count += 1
        assert count <= records_between
        if last is not None:
            late = (parse_time(record["time"]) - parse_time(last["checkpoint"]["time"])).total_seconds()
            assert late <= seconds, (record, last)
    assert records[-1]["type"] == "checkpoint" and records[-1]["checkpoint"]["final"] is True


def test_batches_end_where_a_checkpoint_is_due(tmp_path, audit_key):
    writer = _keyed_writer(tmp_path, audit_key, checkpoint_records=7)

    async def burst() -> list:
        return await asyncio.gather(*(writer.append_async({"type": "test", "time": utc_now(), "n": n}) for n in range(600)))

    asyncio.run(burst())
    writer.close()
    records = _chain_records(tmp_path)
    _assert_schedule_kept(records, 7, 3600)
    assert all(r["checkpoint"]["schedule"] == {"records": 7, "milliseconds": 60000} for r in records if r["type"] == "checkpoint")
    report = verify([tmp_path], [audit_key.public])
    assert report.ok, report.problems


def test_a_quiet_period_is_closed_by_a_checkpoint_before_the_next_record(tmp_path, audit_key):
    writer = _keyed_writer(tmp_path, audit_key, checkpoint_seconds=0.3)
    writer.append({"type": "test", "time": utc_now(), "n": 1})
    time.sleep(0.6)
    writer.append({"type": "test", "time": utc_now(), "n": 2})
    writer.close()
    records = _chain_records(tmp_path)
    assert [r["type"] for r in records[:4]] == ["test", "checkpoint", "checkpoint", "test"]
    assert records[2]["checkpoint"]["seq"] == 2  # the quiet period's checkpoint signs the head as it stood
    _assert_schedule_kept(records, 1000, 0.3)
    assert verify([tmp_path], [audit_key.public]).ok


def test_the_schedule_holds_under_uneven_load(tmp_path, audit_key):
    writer = _keyed_writer(tmp_path, audit_key, checkpoint_records=5, checkpoint_seconds=0.2)
    stop = time.monotonic() + 1.5

    def work(thread: int) -> None:
        number = 0
        while time.monotonic() < stop:
            writer.append({"type": "test", "time": utc_now(), "thread": thread, "n": number})
            number += 1
            time.sleep((thread * 7 + number) % 5 * 0.03)  # bursts and pauses longer than the checkpoint interval

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    _assert_schedule_kept(_chain_records(tmp_path), 5, 0.2)
    assert verify([tmp_path], [audit_key.public]).ok


def test_a_checkpoint_that_cannot_be_signed_stops_the_records_after_it(tmp_path, audit_key, monkeypatch):
    """Fail closed: records past a due checkpoint would read as forged, so they are refused."""
    import webhook.audit.writer as writer_module

    def broken(*args, **kwargs):
        raise RuntimeError("the signing key is unavailable")

    monkeypatch.setattr(writer_module, "signed_checkpoint", broken)
    writer = _keyed_writer(tmp_path, audit_key)
    assert writer.append({"type": "test", "n": 1}).seq == 1
    with pytest.raises(AuditWriteError, match="could not write its due checkpoint"):
        writer.append({"type": "test", "n": 2})
    writer.close()
    assert [r["type"] for r in _chain_records(tmp_path)] == ["test"]


def test_checkpoints_without_a_schedule_are_read_with_a_warning(tmp_path, audit_key):
    """A trail written before checkpoints carried their schedule still verifies."""
    import base64

    lines, head = [], GENESIS
    for seq in range(1, 6):
        if seq in (2, 5):
            body = {"head": head, "seq": seq - 1, "time": "2026-01-01T00:00:00.000000Z", "writer": "old-writer"}
            record = {"checkpoint": body, "keyId": audit_key.public.key_id, "schema": "modelsign.audit/v1", "time": body["time"], "type": "checkpoint",
                      "signature": base64.b64encode(audit_key.sign(canonical_json(body))).decode()}
        else:
            record = {"type": "decision", "schema": "modelsign.audit/v1", "time": "2026-01-01T00:00:00.000000Z", "n": seq}
        line, head = seal("old-writer", seq, head, canonical_json(record))
        lines.append(line)
    (tmp_path / "audit-old-writer-000001.jsonl").write_bytes(b"".join(lines))
    report = verify([tmp_path], [audit_key.public])
    assert report.ok, report.problems
    assert any("carry no schedule (an older modelsign wrote them)" in w for w in report.warnings)


# -- a record whose caller gave up after its write began ------------------------------------------------------------

def _stalling(writer, marker: bytes, seconds: float, monkeypatch):
    real = writer._write_durably

    def stalled(data: bytes):
        if marker in data:
            time.sleep(seconds)  # storage that hangs while this record is being written
        return real(data)

    monkeypatch.setattr(writer, "_write_durably", stalled)


@pytest.mark.parametrize("caller", ["thread", "coroutine"])
def test_a_late_record_is_followed_by_the_record_that_supersedes_it(tmp_path, audit_key, monkeypatch, caller):
    from webhook.audit.writer import AuditRecordLate
    import webhook.audit.writer as writer_module

    monkeypatch.setattr(writer_module, "CLAIMED_GRACE_SECONDS", 0.2)
    writer = _keyed_writer(tmp_path, audit_key)
    trail = AuditTrail(writer)
    trail.event("startup")
    _stalling(writer, b'"late-review"', 1.0, monkeypatch)
    fields = {"review": {"uid": "late-review"}, "decision": {"id": "d-late", "outcome": "allow", "allowed": True}}
    with pytest.raises(AuditRecordLate, match="the record after it says this review was denied"):
        if caller == "thread":
            writer.append(canonical_json({"type": "decision", "time": "2026-01-01T00:00:00Z", **fields}), decision_id="d-late", timeout=0.2)
        else:
            asyncio.run(writer.append_async(canonical_json({"type": "decision", "time": "2026-01-01T00:00:00Z", **fields}),
                                            decision_id="d-late", timeout=0.2))
    trail.event("after")
    trail.close()
    entries = [json.loads(line) for path in sorted(tmp_path.glob("audit-*.jsonl")) for line in path.read_bytes().splitlines()]
    late = next(e for e in entries if e["record"].get("review", {}).get("uid") == "late-review")
    following = next(e for e in entries if e["seq"] == late["seq"] + 1)["record"]
    assert following["type"] == "superseded" and following["response"] == {
        "allowed": False, "reason": "audit-record-late", "message": "the review was answered (denied) before this record was durable"}
    assert following["supersedes"] == [{"decisionId": "d-late", "hash": late["hash"], "seq": late["seq"], "writer": late["writer"]}]
    report = verify([tmp_path], [audit_key.public])
    assert report.ok, report.problems
    assert [(p["seq"], p["decisionId"], p["response"]["allowed"]) for p in report.pairs] == [(late["seq"], "d-late", False)]


def test_a_write_that_finishes_within_the_grace_stands(tmp_path, monkeypatch):
    import webhook.audit.writer as writer_module

    monkeypatch.setattr(writer_module, "CLAIMED_GRACE_SECONDS", 1.0)
    writer = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))
    _stalling(writer, b'"slow"', 0.4, monkeypatch)
    receipt = writer.append({"type": "decision", "n": "slow"}, timeout=0.2)
    writer.close()
    assert receipt.seq == 1 and b"superseded" not in b"".join(p.read_bytes() for p in tmp_path.glob("audit-*.jsonl"))


def test_one_timer_per_loop_expires_each_append_at_its_own_deadline():
    """The writer's append timeouts share one timer per event loop (webhook/audit/deadlines.py):
    each waiting record still expires at its own deadline (a shorter timeout behind longer
    ones, or after the queue emptied with a later timer still armed), answered ones are never
    expired, the queue holds only what is in flight, and a finished loop is not kept alive."""
    import gc
    import weakref
    from types import SimpleNamespace

    from webhook.audit import deadlines

    async def scenario():
        loop = asyncio.get_running_loop()
        expired: dict[str, float] = {}
        started = loop.time()

        def expire(slot, timeout):
            expired[slot.name] = loop.time() - started
            slot.future.set_result(None)

        slots = {name: SimpleNamespace(name=name, future=loop.create_future()) for name in ("a", "b", "answered", "short", "c", "long", "after")}
        deadlines.watch(loop, slots["a"], 0.3, expire)
        deadlines.watch(loop, slots["b"], 0.4, expire)
        deadlines.watch(loop, slots["answered"], 0.4, expire)
        slots["answered"].future.set_result("receipt")
        deadlines.watch(loop, slots["short"], 0.1, expire)  # behind longer ones: its own timer
        await asyncio.sleep(0.2)
        deadlines.watch(loop, slots["c"], 0.3, expire)
        await asyncio.sleep(0.6)
        deadlines.watch(loop, slots["long"], 30.0, expire)  # answered at once; its timer stays armed for 30 s
        slots["long"].future.set_result("receipt")
        deadlines.watch(loop, slots["after"], 0.1, expire)  # the queue is empty: an earlier timer than the armed one
        await asyncio.sleep(0.5)
        for _ in range(1000):  # answered at once: the queue drops them as new ones arrive
            slot = SimpleNamespace(future=loop.create_future())
            slot.future.set_result("receipt")
            deadlines.watch(loop, slot, 5.0, expire)
        return expired, len(getattr(loop, deadlines._ATTRIBUTE)._waiting)

    expired, left = asyncio.run(scenario())
    assert sorted(expired) == ["a", "after", "b", "c", "short"]
    assert expired["short"] <= expired["a"] <= expired["b"] <= expired["c"] <= expired["after"]
    for name, due in (("short", 0.1), ("a", 0.3), ("b", 0.4), ("c", 0.5), ("after", 0.9)):
        assert expired[name] >= due - 0.002, (name, expired[name])  # never early (late only as far as a busy loop is)
    assert expired["after"] < 5.0  # not held back by the 30 s timer
    assert left == 1

    loops = []

    async def one_append():
        loop = asyncio.get_running_loop()
        loops.append(weakref.ref(loop))
        deadlines.watch(loop, SimpleNamespace(future=loop.create_future()), 60.0, lambda slot, timeout: None)

    for _ in range(20):
        asyncio.run(one_append())
    gc.collect()
    assert sum(ref() is not None for ref in loops) == 0
