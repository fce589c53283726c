"""Retention decides from what the audit key signed, never from what the chain directory says.

Whoever can write the chain directory sets mtimes, splits, copies, plants and splices files.
None of that may get the writer to remove a file younger than the retention period, nor to
sign a retention record that excuses a deletion; `audit verify` counts a retention record
only where the signed checkpoint it carries is older than the period. A killed writer's
unsigned tail is sealed by the next writer to start. Real files, real keys, real processes.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import PASSWORD
from signer.trust.keys import load_signing_key_file
from support.audit import backdate, killed_writer, reseal
from webhook.audit import writer as writer_module
from webhook.audit.retention import unproven
from webhook.audit.verify import verify
from webhook.audit.writer import AuditSettings, AuditWriter

DAY = 86400.0


@pytest.fixture
def audit_key(key_dir):
    return load_signing_key_file(key_dir / "second-signer.key", password=lambda _: PASSWORD.encode())


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(writer_module, "_warn", said.append)
    return said


@pytest.fixture
def trail(tmp_path) -> tuple[Path, Path]:
    """The chain directory and the checkpoint file, kept apart from it."""
    (tmp_path / "state").mkdir()
    return tmp_path / "audit", tmp_path / "state" / "audit.checkpoints.jsonl"


def _writer(trail, key, *, clock=time.time, **settings) -> AuditWriter:
    log_dir, checkpoints = trail
    return AuditWriter(AuditSettings(path=log_dir / "audit.jsonl", key=key, checkpoint_path=checkpoints, **settings), clock=clock)


def _files(log_dir: Path, writer: str | None = None) -> list[Path]:
    return sorted(log_dir.glob(f"audit-{writer}-*.jsonl" if writer else "audit-*.jsonl"))


def _records(log_dir: Path) -> list[dict]:
    return [json.loads(line)["record"] for path in _files(log_dir) for line in path.read_bytes().splitlines() if line.strip()]


def _retention(log_dir: Path) -> list[dict]:
    return [entry for record in _records(log_dir) if record["type"] == "retention" for entry in record["removed"]]


def _restart(trail, key, **settings) -> AuditWriter:
    """A webhook worker starting on the same volume: its writer prunes (and seals) at start."""
    fresh = _writer(trail, key, **settings)
    fresh.append({"type": "startup"})
    fresh.close()
    return fresh


def _check(trail, key):
    return verify([trail[0]], [key.public], checkpoint_files=[trail[1]])


def _recent_trail(trail, key, records: int = 60) -> AuditWriter:
    writer = _writer(trail, key, rotate_bytes=2048)
    for number in range(records):
        writer.append({"type": "decision", "n": number})
    writer.close()
    return writer


# -- a backdated mtime is no age --------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["every-file", "first-file", "last-file"])
def test_backdating_files_never_gets_them_removed(trail, audit_key, warnings, target):
    recent = _recent_trail(trail, audit_key)
    files = _files(trail[0])
    assert len(files) > 3
    chosen = {"every-file": files, "first-file": files[:1], "last-file": files[-1:]}[target]
    backdate(chosen)
    before = {path: path.read_bytes() for path in files}
    _restart(trail, audit_key)
    assert {path: path.read_bytes() for path in files} == before  # nothing removed, nothing changed
    assert _retention(trail[0]) == []
    assert sum("within the retention period" in w and "mtime" in w for w in warnings) == len(chosen), warnings
    report = _check(trail, audit_key)
    assert report.ok and report.chains[recent.writer_id].first_seq == 1, report.problems


def test_the_reviewers_erasure_of_a_review_no_longer_works(trail, audit_key):
    """F2 as reported: a clean run, every file backdated 91 days, a restart: the deny stays."""
    first = _writer(trail, audit_key)
    for number in range(5):
        first.append({"type": "decision", "review": {"uid": f"first-run-{number}"}, "decision": {"allowed": True}})
    first.append({"type": "decision", "review": {"uid": "EVIDENCE-TO-ERASE"}, "decision": {"allowed": False}})
    first.close()
    backdate(_files(trail[0]))
    _restart(trail, audit_key)
    uids = [r["review"]["uid"] for r in _records(trail[0]) if r["type"] == "decision"]
    assert "EVIDENCE-TO-ERASE" in uids and _retention(trail[0]) == []
    assert _check(trail, audit_key).ok


# -- only a signed age counts ------------------------------------------------------------------------------------

def _aging_trail(trail, key, *, start_days: float = 95.0, step_days: float = 0.5, records: int = 20) -> tuple[AuditWriter, dict[int, float]]:
    """One writer whose clock moves from `start_days` ago by `step_days` per record, a
    checkpoint every 3 records and a new file every few: files on both sides of 90 days.
    Returns the writer and each seq's stamp (epoch seconds)."""
    now = [time.time() - start_days * DAY]
    writer = _writer(trail, key, clock=lambda: now[0], rotate_bytes=1500, checkpoint_records=3, checkpoint_seconds=1e9)
    stamps = {}
    for number in range(records):
        stamps[writer.append({"type": "decision", "n": number}).seq] = now[0]
        now[0] += step_days * DAY
    writer.close()
    return writer, stamps


def _signed_age_days(path: Path) -> float:
    """Days since the last checkpoint in `path` was signed (what retention goes by)."""
    from datetime import datetime

    times = [json.loads(line)["record"]["checkpoint"]["time"] for line in path.read_bytes().splitlines() if b'"type":"checkpoint"' in line]
    return (time.time() - datetime.fromisoformat(times[-1].replace("Z", "+00:00")).timestamp()) / DAY


def test_files_go_exactly_when_their_last_signed_checkpoint_is_older_than_the_period(trail, audit_key, warnings):
    aging, _ = _aging_trail(trail, audit_key)
    files = _files(trail[0])
    old = [p for p in files if _signed_age_days(p) > 90]
    young = [p for p in files if _signed_age_days(p) < 90]
    assert old and young and len(old) + len(young) == len(files)
    backdate(files, days=200)  # every mtime says "ancient": only the signatures tell them apart
    _restart(trail, audit_key)
    assert [p for p in files if p.exists()] == young
    removed = _retention(trail[0])
    assert [r["file"] for r in removed] == [p.name for p in old]
    assert all(r["basis"] == "signed-checkpoint" and r["checkpoint"]["type"] == "checkpoint" and r["lastSeq"] == r["checkpoint"]["checkpoint"]["seq"] + 1
               for r in removed)
    report = _check(trail, audit_key)
    assert report.ok, report.problems
    assert report.chains[aging.writer_id].pruned_before == removed[-1]["lastSeq"] + 1


def test_a_retention_record_does_not_outlast_the_files_it_names(trail, audit_key):
    """The excuse covers what was removed and nothing after it: deleting the young files too shows."""
    aging, _ = _aging_trail(trail, audit_key)
    backdate(_files(trail[0]), days=200)
    _restart(trail, audit_key)
    young = _files(trail[0], aging.writer_id)
    young[0].unlink()
    kinds = {p.kind for p in _check(trail, audit_key).problems}
    assert "deleted" in kinds, kinds


# -- planted, copied, split and spliced files ----------------------------------------------------------------------

def _plant(kind: str, trail, other_key, tmp_path) -> list[Path]:
    """Files the attacker puts into the chain directory, backdated; returns them."""
    log_dir = trail[0]
    source = tmp_path / "elsewhere"
    if kind == "unsigned-chain":  # anyone can write a chain without the key
        forger = AuditWriter(AuditSettings(path=source / "audit.jsonl"))
        forger.append({"type": "decision", "n": "made up"})
        forger.close()
        planted = [shutil.copy(p, log_dir / p.name) for p in _files(source)]
    elif kind == "other-key":  # a genuine-looking old chain, signed with another key
        other = AuditWriter(AuditSettings(path=source / "audit.jsonl", key=other_key), clock=lambda: time.time() - 120 * DAY)
        other.append({"type": "decision", "n": "other key"})
        other.close()
        planted = [shutil.copy(p, log_dir / p.name) for p in _files(source)]
    elif kind == "copy-of-a-recent-file":
        original = _files(log_dir)[-1]
        planted = [shutil.copy(original, log_dir / original.name.replace("-000", "-900"))]
    elif kind == "re-signed-in-the-past":  # checkpoint times moved back 120 days and the chain resealed: the signatures break
        original = _files(log_dir)[-1]
        lines = original.read_bytes().splitlines()

        def older(record: dict) -> dict:
            if record.get("type") == "checkpoint":
                record["checkpoint"]["time"] = record["time"] = "2000-01-01T00:00:00.000000Z"
            return record

        target = log_dir / original.name.replace("-000", "-800")
        target.write_bytes(b"\n".join(reseal(lines, 0, older)) + b"\n")
        planted = [target]
    elif kind == "split-file":  # a recent file cut in two: each part is the chain's, neither is old
        original = _files(log_dir)[-1]
        lines = original.read_bytes().splitlines(keepends=True)
        cut = next(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
        first, second = original, original.with_name(original.name.replace("-000", "-0005"))
        second.write_bytes(b"".join(lines[cut + 1:]))
        first.write_bytes(b"".join(lines[:cut + 1]))
        planted = [first, second]
    else:
        raise AssertionError(kind)
    backdate(planted, days=365)
    return [Path(p) for p in planted]


@pytest.mark.parametrize("kind", ["unsigned-chain", "other-key", "copy-of-a-recent-file", "re-signed-in-the-past", "split-file"])
def test_planted_or_reshaped_files_are_never_removed(trail, audit_key, other_key, tmp_path, warnings, kind):
    _recent_trail(trail, audit_key)
    planted = _plant(kind, trail, other_key, tmp_path)
    contents = {path: path.read_bytes() for path in _files(trail[0])}
    _restart(trail, audit_key)
    assert all(path.exists() and path.read_bytes() == data for path, data in contents.items())
    assert _retention(trail[0]) == []
    assert any(str(planted[0]) in w for w in warnings), warnings
    if kind in ("split-file",):
        assert _check(trail, audit_key).ok  # still the same chain, in more files
    elif kind in ("copy-of-a-recent-file", "re-signed-in-the-past"):
        for path in planted:
            path.unlink()
        assert _check(trail, audit_key).ok


@pytest.mark.parametrize("later_files", ["kept", "deleted"])
def test_recent_records_spliced_onto_an_old_file_are_not_erased(trail, audit_key, warnings, later_files):
    """The attacker moves the first records of a young file (up to its first checkpoint) onto
    the end of the last old file, backdates everything, and (second case) deletes the young
    files: the spliced file stays while the chain goes on; once it is the last one, its
    removal excuses only its signed range and the deletion shows."""
    aging, _ = _aging_trail(trail, audit_key)
    files = _files(trail[0])
    old = [p for p in files if _signed_age_days(p) > 90]
    young = [p for p in files if _signed_age_days(p) < 90]
    lines = young[0].read_bytes().splitlines(keepends=True)
    moved = next(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line) - 1  # the records before its first checkpoint and the one it signs
    assert moved >= 1
    old[-1].write_bytes(old[-1].read_bytes() + b"".join(lines[:moved]))
    young[0].write_bytes(b"".join(lines[moved:]))
    if later_files == "deleted":
        for path in young:
            path.unlink()
    backdate(_files(trail[0]), days=200)
    _restart(trail, audit_key)
    report = _check(trail, audit_key)
    if later_files == "kept":
        assert old[-1].exists() and any("goes on in a later file" in w for w in warnings), warnings
        assert report.ok, report.problems
    else:
        removed = next(r for r in _retention(trail[0]) if r["file"] == old[-1].name)
        assert removed["unsignedTail"]["lines"] == moved and removed["lastSeq"] < removed["unsignedTail"]["endSeq"]
        assert "missing-chain" in {p.kind for p in report.problems}, report.problems  # the young records' signed checkpoints are unexcused


def test_retention_never_reads_a_live_writers_file(trail, audit_key, warnings):
    live = _writer(trail, audit_key, clock=lambda: time.time() - 120 * DAY)
    live.append({"type": "decision", "n": 1})
    backdate([live.segment_path])
    _restart(trail, audit_key)
    assert live.segment_path.exists() and live.append({"type": "decision", "n": 2}).seq > 2
    live.close()
    assert _retention(trail[0]) == [] and _check(trail, audit_key).ok


# -- what verify accepts -----------------------------------------------------------------------------------------

def test_a_signed_retention_record_without_proof_excuses_nothing(trail, audit_key):
    """What the old writer wrote after an mtime was backdated: the range read from the file's
    own lines, covered by the writer's signed checkpoint. Verify no longer counts it."""
    victim = _recent_trail(trail, audit_key, records=10)
    path = _files(trail[0])[0]
    last = json.loads(path.read_bytes().splitlines()[-1])
    path.unlink()
    pruner = _writer(trail, audit_key)
    pruner.append({"type": "retention", "retentionSeconds": int(90 * DAY), "time": "2026-01-01T00:00:00.000000Z",
                   "removed": [{"file": path.name, "writer": victim.writer_id, "firstSeq": 1, "lastSeq": last["seq"], "lastHash": last["hash"]}]})
    pruner.close()
    report = _check(trail, audit_key)
    assert [p.kind for p in report.problems] == ["deleted"], report.problems  # the chain's start, unexcused
    assert any("excuses nothing: it carries no signed checkpoint" in w for w in report.warnings), report.warnings


@pytest.fixture
def proven(trail, audit_key) -> tuple[dict, str, int]:
    """A genuine retention entry, its record's time and retention period."""
    _aging_trail(trail, audit_key)
    backdate(_files(trail[0]), days=200)
    _restart(trail, audit_key)
    record = next(r for r in _records(trail[0]) if r["type"] == "retention")
    return record["removed"][0], record["time"], record["retentionSeconds"]


def _edited(entry: dict, change) -> dict:
    copy = json.loads(json.dumps(entry))
    change(copy)
    return copy


@pytest.mark.parametrize("change, reason", [
    (lambda e: e.pop("checkpoint"), "carries no signed checkpoint"),
    (lambda e: e.update(basis="mtime", checkpoint=None), "carries no signed checkpoint"),
    (lambda e: e["checkpoint"]["checkpoint"].update(time="1999-01-01T00:00:00.000000Z"), "not signed by the audit key"),
    (lambda e: e["checkpoint"].update(signature=e["checkpoint"]["signature"][::-1]), "not signed by the audit key"),
    (lambda e: e.update(lastSeq=e["lastSeq"] + 1), "does not end at the checkpoint"),
    (lambda e: e.update(writer="someone-else"), "does not end at the checkpoint"),
    (lambda e: e.update(lastHash="sha256:" + "0" * 64), "not the hash of the checkpoint record"),
    (lambda e: e["checkpoint"].update(time="2000-01-01T00:00:00.000000Z"), "not the hash of the checkpoint record"),
])
def test_verify_requires_the_signed_checkpoint_that_ends_the_range(proven, audit_key, change, reason):
    entry, removed_at, period = proven
    assert unproven(entry, [audit_key.public], removed_at, period) is None
    assert reason in (unproven(_edited(entry, change), [audit_key.public], removed_at, period) or "")


@pytest.mark.parametrize("removed_at, period, reason", [
    (None, int(90 * DAY), "unreadable"),
    ("yesterday", int(90 * DAY), "unreadable"),
    ("now", "90 days", "unreadable"),
    ("now", int(400 * DAY), "less than the retention period"),  # removed before its checkpoint was that old
    ("signed", int(90 * DAY), "less than the retention period"),  # removed at the moment it was signed
])
def test_verify_requires_the_checkpoint_to_be_older_than_the_period_at_removal(proven, audit_key, removed_at, period, reason):
    entry, actual, _ = proven
    when = {"now": actual, "signed": entry["checkpoint"]["checkpoint"]["time"]}.get(removed_at, removed_at)
    assert reason in (unproven(entry, [audit_key.public], when, period) or "")


def test_a_proven_entry_needs_the_audit_key(proven, other_key):
    entry, removed_at, period = proven
    assert "not signed by the audit key" in unproven(entry, [other_key.public], removed_at, period)


def test_an_entry_is_bound_to_its_checkpoint_record_bytes(proven, audit_key):
    entry, removed_at, period = proven
    moved = _edited(entry, lambda e: e["checkpoint"].update(schema="modelsign.audit/v0"))
    assert "not the hash of the checkpoint record" in unproven(moved, [audit_key.public], removed_at, period)


# -- killed writers: their tails are sealed ------------------------------------------------------------------------

def test_a_killed_writers_tail_is_sealed_by_the_next_writer(trail, audit_key, key_dir):
    killed = killed_writer(trail[0], key_dir / "second-signer.key", trail[1], records=10)
    report = _check(trail, audit_key)
    assert report.ok and any("protected by the hash chain only" in w for w in report.warnings)
    sealer = _restart(trail, audit_key)
    seals = [r for r in _records(trail[0]) if r["type"] == "tail-seal"]
    assert len(seals) == 1 and seals[0]["checkpoint"]["writer"] == killed and seals[0]["checkpoint"]["sealedBy"] == sealer.writer_id
    assert seals[0]["checkpoint"]["seq"] == 11  # record 1, checkpoint 2, records 3-11
    assert b'"sealedBy"' in trail[1].read_bytes()  # also kept apart from the chains
    report = _check(trail, audit_key)
    assert report.ok, report.problems
    assert any(f"were sealed by {sealer.writer_id}" in w for w in report.warnings), report.warnings
    _restart(trail, audit_key)
    assert len([r for r in _records(trail[0]) if r["type"] == "tail-seal"]) == 1  # sealed once, not at every start


@pytest.mark.parametrize("attack, kind", [("rewrite", "rewritten"), ("append", "after-final"), ("cut", "truncated")])
def test_a_sealed_tail_cannot_be_changed(trail, audit_key, key_dir, attack, kind):
    from support.audit import append_forged

    killed = killed_writer(trail[0], key_dir / "second-signer.key", trail[1], records=10)
    _restart(trail, audit_key)
    path = _files(trail[0], killed)[0]
    lines = path.read_bytes().splitlines()
    if attack == "rewrite":  # the deny after the last checkpoint becomes something else, links re-made
        lines = reseal(lines, 5, lambda record: {**record, "n": "forged"} if record.get("n") == 4 else record)
    elif attack == "append":
        lines = append_forged(lines, [{"type": "decision", "n": "added"}])
    else:
        lines = lines[:-2]
    path.write_bytes(b"\n".join(lines) + b"\n")
    kinds = {p.kind for p in _check(trail, audit_key).problems}
    assert kind in kinds, kinds


def test_a_backdated_killed_writer_is_sealed_not_erased(trail, audit_key, key_dir, warnings):
    """F3 + F2 as reported (f7): a worker killed, its file backdated, a new worker starts."""
    killed = killed_writer(trail[0], key_dir / "second-signer.key", trail[1], records=10)
    path = _files(trail[0], killed)[0]
    backdate([path])
    _restart(trail, audit_key)
    assert path.exists() and _retention(trail[0]) == []
    assert _check(trail, audit_key).ok


def test_an_old_killed_writers_file_goes_with_its_seal_excused(trail, audit_key, key_dir):
    killed = killed_writer(trail[0], key_dir / "second-signer.key", trail[1], records=10, days_ago=120)
    path = _files(trail[0], killed)[0]
    backdate([path], days=120)
    _restart(trail, audit_key)
    assert not path.exists()
    removed = _retention(trail[0])[0]
    assert removed["writer"] == killed and removed["lastSeq"] == 2 and removed["unsignedTail"]["lines"] == 9
    report = _check(trail, audit_key)  # the seal (in the checkpoint file) is accounted for by the removal of that very tail
    assert report.ok, report.problems


def test_a_writer_that_stopped_cleanly_is_not_sealed(trail, audit_key):
    _recent_trail(trail, audit_key, records=10)
    _restart(trail, audit_key)
    assert [r for r in _records(trail[0]) if r["type"] == "tail-seal"] == []


def test_a_seal_copied_into_another_chain_is_refused(trail, audit_key, key_dir):
    from support.audit import append_forged

    killed_writer(trail[0], key_dir / "second-signer.key", trail[1], records=10)
    sealer = _restart(trail, audit_key)
    seal = next(r for r in _records(trail[0]) if r["type"] == "tail-seal")
    other = _recent_trail(trail, audit_key, records=3)
    path = _files(trail[0], other.writer_id)[-1]
    path.write_bytes(b"\n".join(append_forged(path.read_bytes().splitlines(), [seal])) + b"\n")
    report = _check(trail, audit_key)
    assert any(p.kind == "bad-checkpoint" and "tail seal" in p.message and sealer.writer_id not in p.message for p in report.problems), report.problems


def test_without_an_audit_key_retention_goes_by_mtime_and_verify_says_unverified(tmp_path):
    old = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl", rotate_bytes=1024))
    for number in range(30):
        old.append({"type": "decision", "n": number})
    old.close()
    files = _files(tmp_path)
    backdate(files[:-1])
    fresh = AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl"))
    fresh.append({"type": "startup"})
    fresh.close()
    assert [p for p in files if p.exists()] == files[-1:]
    assert {r["basis"] for r in _retention(tmp_path)} == {"mtime"}
    assert verify([tmp_path], []).status == "UNVERIFIED"
