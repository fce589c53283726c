"""The chain's building blocks on real files: canonical JSON (RFC 8785), sealing, the
durable writer (rotation, retention, checkpoints, group commit from threads and coroutines),
and redaction."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PASSWORD
from signer.keys import load_signing_key_file
from webhook.audit.canonical import CanonicalError, canonical_json, encode_prepared, prepare
from webhook.audit.chain import GENESIS, parse_line, seal
from webhook.audit.trail import AuditTrail, redact
from webhook.audit.verify import verify
from webhook.audit.writer import AuditSettings, AuditWriteError, AuditWriter


def test_rfc8785_key_order_and_escapes():
    # RFC 8785 section 3.2.3: keys sorted by UTF-16 code units (the emoji sorts before U+FB33).
    sample = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One",
              "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(canonical_json(sample)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json({"b": [1, True, None], "a": "\u0001\n\"\\/\u2028é"}) == '{"a":"\\u0001\\n\\"\\\\/\u2028é","b":[1,true,null]}'.encode()


@pytest.mark.parametrize("value, problem", [
    ({"latency": 1.5}, "float"), ({"n": 2**60}, "outside the exactly representable range"), ({"b": b"x"}, "bytes"), ({"n": float("nan")}, "not JSON compliant"),
])
def test_values_without_a_canonical_form_are_refused(value, problem):
    with pytest.raises(CanonicalError, match=problem):
        canonical_json(value)


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


def test_retention_removes_old_files_and_says_so(tmp_path, audit_key):
    old = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl", key=audit_key, rotate_bytes=2048))
    for number in range(60):
        old.append({"type": "test", "n": number})
    old.close()
    files = [p for p in sorted(tmp_path.glob("audit-*.jsonl")) if p.stat().st_size]
    ancient = time.time() - 91 * 86400
    for path in files[:-1]:
        os.utime(path, (ancient, ancient))
    fresh = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl", key=audit_key))
    fresh.append({"type": "test", "n": "after"})
    fresh.close()
    assert [p for p in files[:-1] if p.exists()] == []
    retention = [json.loads(line)["record"] for path in tmp_path.glob("audit-*.jsonl") for line in path.read_bytes().splitlines()
                 if b'"type":"retention"' in line]
    assert retention and len(retention[0]["removed"]) == len(files) - 1 and retention[0]["retentionSeconds"] == 90 * 86400
    report = verify([tmp_path], [audit_key.public], checkpoint_files=[tmp_path / "audit.checkpoints.jsonl"])
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
    assert verify([tmp_path], []).ok


def test_a_closed_writer_refuses(tmp_path):
    writer = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))
    writer.close()
    with pytest.raises(AuditWriteError, match="closed"):
        writer.append({"type": "late"})


def test_secrets_are_redacted_before_they_reach_the_file(tmp_path):
    trail = AuditTrail(AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl")))
    trail.event("startup", password="hunter2", apiToken="abc123", nested={"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.payload"},
                message="pull https://bob:s3cret-pass@registry.example/v2/ failed with Bearer abcdefghijklmnop; key AKIAABCDEFGHIJKLMNOP",
                pem="-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----", harmless="kit://registry.example/models/x:1")
    trail.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit-*.jsonl"))
    for secret in (b"hunter2", b"abc123", b"eyJhbGciOiJIUzI1NiJ9", b"s3cret-pass", b"abcdefghijklmnop", b"AKIAABCDEFGHIJKLMNOP", b"MIIB"):
        assert secret not in raw
    assert b"kit://registry.example/models/x:1" in raw and redact({"ticket": "CHG-1"}) == {"ticket": "CHG-1"}


def test_a_record_that_cannot_be_encoded_is_an_audit_error_not_a_crash(tmp_path):
    trail = AuditTrail(AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl")))
    with pytest.raises(AuditWriteError, match="could not be encoded: float values"):
        trail.event("startup", uptime=1.5)
    assert trail.event("startup", uptime=2).seq == 1  # the writer carries on
    trail.close()


def _keyed_writer(directory, key, **settings):
    return AuditWriter(AuditSettings(path=directory / "audit.jsonl", key=key, **settings))


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
    victim = _keyed_writer(tmp_path, audit_key, rotate_bytes=2048, checkpoint_records=5)
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
    live = _keyed_writer(tmp_path, audit_key)
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
