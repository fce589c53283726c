"""Audit verification at scale: the fast path (files summarised after hashing, scan.py) gives
exactly the verdicts of walking every entry, on an untouched trail and on every kind of
damage; so do verification on several processes and on a real local Dask cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from signer import generate_key_pair, load_public_key_file, load_signing_key_file
from support.audit import reseal
from webhook.audit.chain import parse_line
from webhook.audit.trail import AuditTrail
from webhook.audit.verify import verify
from webhook.audit.writer import AuditSettings, AuditWriter

WRITERS = 3
RECORDS = 300


def decision(number: int) -> dict:
    return {"review": {"uid": f"uid-{number}", "operation": "CREATE", "namespace": "prod", "name": f"llm-{number}"},
            "decision": {"id": f"d-{number}", "outcome": "allow" if number % 3 else "deny", "allowed": bool(number % 3), "reason": "verified"},
            "artifacts": [{"reference": "registry.example.com/models/llm:1", "digest": "sha256:" + "a" * 64}], "policy": {"name": "p", "hash": "h"}}


@pytest.fixture(scope="module")
def trail(tmp_path_factory) -> Path:
    """Three writers, each chain rotated over several files, signed checkpoints every 50
    records in the chains and in a checkpoint file kept apart."""
    root = tmp_path_factory.mktemp("scale-trail")
    generate_key_pair(root / "audit", b"pw", force=True)
    key = load_signing_key_file(root / "audit.key", password=lambda _: b"pw")
    (root / "checkpoints").mkdir()
    for _ in range(WRITERS):
        settings = AuditSettings(path=root / "logs" / "audit.jsonl", key=key, checkpoint_records=50, rotate_bytes=40_000,
                                 checkpoint_path=root / "checkpoints" / "checkpoints.jsonl")
        audit = AuditTrail(AuditWriter(settings))
        for number in range(RECORDS):
            audit.event("decision", **decision(number))
        audit.close()
    return root


def _files(logs: Path) -> dict[str, list[Path]]:
    """Chain files per writer, in order."""
    chains: dict[str, list[Path]] = {}
    for path in sorted(logs.glob("*.jsonl")):
        chains.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    return chains


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _middle(logs: Path, writer: int = 0, nth: int = 1) -> Path:
    return list(_files(logs).values())[writer][nth]


def _flip(offset: int):
    def damage(logs: Path) -> None:
        path = _middle(logs)
        lines = _lines(path)
        line = lines[3]
        at = offset if offset >= 0 else len(line) + offset
        lines[3] = line[:at] + bytes([line[at] ^ 0x01]) + line[at + 1:]
        _write(path, lines)
    return damage


def _edit_lines(edit):
    def damage(logs: Path) -> None:
        path = _middle(logs)
        _write(path, edit(_lines(path)))
    return damage


def _delete_first_line_of_a_file(logs: Path) -> None:
    path = _middle(logs, nth=2)
    _write(path, _lines(path)[1:])


def _cut_tail(logs: Path) -> None:
    path = list(_files(logs).values())[1][-1]
    _write(path, _lines(path)[:-5])


def _torn_last_line(logs: Path) -> None:
    path = list(_files(logs).values())[1][-1]
    data = path.read_bytes()
    path.write_bytes(data[:-40])


def _foreign_line(logs: Path) -> None:
    chains = list(_files(logs).values())
    stolen = _lines(chains[1][1])[4]
    path = chains[0][1]
    lines = _lines(path)
    _write(path, lines[:5] + [stolen] + lines[5:])


def _resealed_from_the_middle(logs: Path) -> None:
    path = _middle(logs)
    lines = _lines(path)
    _write(path, reseal(lines, 6, lambda record: {**record, "decision": {**record["decision"], "allowed": True}} if record.get("type") == "decision" else record))


def _delete_a_middle_file(logs: Path) -> None:
    _middle(logs, nth=2).unlink()


def _delete_the_first_file(logs: Path) -> None:
    _middle(logs, nth=0).unlink()


def _copy_a_file(logs: Path) -> None:
    path = _middle(logs, nth=1)
    shutil.copy(path, path.with_name(path.name.replace(".jsonl", "-copy.jsonl")))


def _swap_two_files(logs: Path) -> None:
    first, second = _middle(logs, nth=1), _middle(logs, nth=2)
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)


def _join_two_files(logs: Path) -> None:
    first, second = _middle(logs, nth=1), _middle(logs, nth=2)
    first.write_bytes(first.read_bytes() + second.read_bytes())
    second.unlink()


def _checkpoint_among_chains(logs: Path, checkpoints: Path) -> None:
    shutil.copy(checkpoints, logs / "zz-checkpoints.jsonl")


def _drop_external_checkpoints(logs: Path, checkpoints: Path) -> None:
    lines = _lines(checkpoints)
    _write(checkpoints, lines[: len(lines) // 2])


DAMAGE = {
    "untouched": (lambda logs: None, False),
    "blank-line": (_edit_lines(lambda lines: lines[:4] + [b""] + lines[4:]), False),
    "flip-hash": (_flip(20), True),
    "flip-prev": (_flip(110), True),
    "flip-record": (_flip(200), True),
    "flip-seq": (_flip(-30), True),
    "flip-writer": (_flip(-5), True),
    "flip-brace": (_flip(0), True),
    "garbage-line": (_edit_lines(lambda lines: lines[:4] + [b"not a record"] + lines[4:]), True),
    "deleted": (_edit_lines(lambda lines: lines[:4] + lines[5:]), True),
    "reordered": (_edit_lines(lambda lines: lines[:4] + [lines[5], lines[4]] + lines[6:]), True),
    "duplicated": (_edit_lines(lambda lines: lines[:5] + [lines[4]] + lines[5:]), True),
    "first-line-of-a-file": (_delete_first_line_of_a_file, True),
    "cut-tail": (_cut_tail, True),
    "torn": (_torn_last_line, True),
    "foreign-writer": (_foreign_line, True),
    "resealed": (_resealed_from_the_middle, True),
    "middle-file-deleted": (_delete_a_middle_file, True),
    "first-file-deleted": (_delete_the_first_file, True),
    "file-copied": (_copy_a_file, True),
    "files-swapped": (_swap_two_files, False),  # the same records under each other's names: the chain is whole
    "files-joined": (_join_two_files, False),
}


@pytest.fixture
def copy(trail, tmp_path) -> tuple[Path, Path, list]:
    shutil.copytree(trail / "logs", tmp_path / "logs")
    shutil.copytree(trail / "checkpoints", tmp_path / "checkpoints")
    return tmp_path / "logs", tmp_path / "checkpoints" / "checkpoints.jsonl", [load_public_key_file(trail / "audit.pub")]


def _both(logs: Path, checkpoints: Path, keys: list, **kwargs) -> tuple[dict, dict]:
    fast = verify([logs], keys, checkpoint_files=[checkpoints], **kwargs).to_json()
    full = verify([logs], keys, checkpoint_files=[checkpoints], fast=False).to_json()
    return fast, full


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_fast_and_full_paths_give_the_same_verdict(copy, name):
    logs, checkpoints, keys = copy
    damage, damaged = DAMAGE[name]
    damage(logs)
    fast, full = _both(logs, checkpoints, keys)
    assert json.dumps(fast, sort_keys=True) == json.dumps(full, sort_keys=True)
    assert fast["status"] == ("DAMAGED" if damaged else "INTACT"), fast["problems"]
    assert sum(w["records"] for w in fast["writers"]) >= WRITERS * RECORDS - 50  # every chain was read (a damaged one may lose some)


@pytest.mark.parametrize("damage", [_checkpoint_among_chains, _drop_external_checkpoints])
def test_checkpoint_placement_gives_the_same_verdict(copy, damage):
    logs, checkpoints, keys = copy
    damage(logs, checkpoints)
    fast, full = _both(logs, checkpoints, keys)
    assert fast == full


@pytest.mark.parametrize("name", ["untouched", "flip-record", "resealed", "middle-file-deleted"])
def test_verify_on_several_processes_is_the_same(copy, name):
    logs, checkpoints, keys = copy
    DAMAGE[name][0](logs)
    single = verify([logs], keys, checkpoint_files=[checkpoints]).to_json()
    parallel = verify([logs], keys, checkpoint_files=[checkpoints], jobs=2).to_json()
    assert parallel == single


def test_verify_on_a_local_dask_cluster_is_the_same(copy):
    """The per-file work on Dask's distributed scheduler (a real LocalCluster: a scheduler and
    two worker processes), on a trail with one damaged record."""
    from distributed import Client, LocalCluster

    logs, checkpoints, keys = copy
    DAMAGE["flip-record"][0](logs)
    single = verify([logs], keys, checkpoint_files=[checkpoints]).to_json()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        distributed = verify([logs], keys, checkpoint_files=[checkpoints], dask_client=client).to_json()
    assert distributed == single
    assert single["status"] == "DAMAGED" and [p["kind"] for p in single["problems"]] == ["edited"]


def test_the_fast_path_summarises_clean_files(copy):
    """What makes it fast: a clean file comes back as a summary, not one entry per record."""
    from webhook.audit.scan import scan_file

    logs, _, _ = copy
    path = _middle(logs)
    scan = scan_file(str(path))
    lines = [parse_line(line) for line in _lines(path)]
    assert scan.clean and len(scan.entries) == 1 and scan.count == len(lines)
    assert scan.last_seq == lines[-1][2] and scan.last_hash == lines[-1][0]
    assert not scan_file(str(path), full=True).clean


def test_an_export_over_a_period_reads_only_the_files_it_touches(tmp_path):
    """One writer's chain over three files a week apart: a period in the middle week touches
    only the middle file, and exporting from it alone gives the same records."""
    from datetime import datetime, timezone

    from webhook.audit.canonical import canonical_json
    from webhook.audit.chain import GENESIS, seal
    from webhook.audit.export import Selection, load_trail, touches

    seq, prev, files = 0, GENESIS, []
    for week in range(3):
        path = tmp_path / f"audit-w-{week + 1:06d}.jsonl"
        lines = []
        for hour in range(0, 48, 4):
            seq += 1
            record = {"type": "decision", "time": f"2026-10-{1 + 7 * week + hour // 24:02d}T{hour % 24:02d}:00:00Z", **decision(seq)}
            line, prev = seal("w", seq, prev, canonical_json(record))
            lines.append(line)
        path.write_bytes(b"".join(lines))
        files.append(path)
    selection = Selection(since=datetime(2026, 10, 8, tzinfo=timezone.utc), until=datetime(2026, 10, 9, tzinfo=timezone.utc))
    assert [touches(path, selection) for path in files] == [False, True, False]
    everything = load_trail([tmp_path], selection)
    touched = load_trail([tmp_path], selection, period_files_only=True)
    assert [r["_seq"] for r in touched.records] == [r["_seq"] for r in everything.records] == list(range(13, 19))


def _without_incremental(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "incremental"}


def test_incremental_verify_reads_only_new_files_and_gives_the_full_verdict(copy, trail, tmp_path):
    logs, checkpoints, keys = copy
    key = load_signing_key_file(trail / "audit.key", password=lambda _: b"pw")
    state = tmp_path / "verify-state.json"
    first = verify([logs], keys, checkpoint_files=[checkpoints], state=state, state_key=key)
    assert first.ok and first.incremental["filesReused"] == 0 and first.incremental["filesRemembered"] == len(list(logs.glob("*.jsonl")))
    old_files = len(list(logs.glob("*.jsonl")))
    audit = AuditTrail(AuditWriter(AuditSettings(path=logs / "audit.jsonl", key=key, checkpoint_records=50, rotate_bytes=40_000,
                                                 checkpoint_path=checkpoints)))
    for number in range(30):
        audit.event("decision", **decision(number))
    audit.close()
    again = verify([logs], keys, checkpoint_files=[checkpoints], state=state, state_key=key)
    full = verify([logs], keys, checkpoint_files=[checkpoints])
    assert again.incremental["filesReused"] == old_files and again.incremental["filesRead"] == 1
    assert again.incremental["recordsRead"] < again.incremental["recordsSkipped"] / 10
    assert _without_incremental(again.to_json()) == full.to_json() and again.ok


def test_incremental_verify_still_finds_damage_in_what_is_new(copy, trail, tmp_path):
    logs, checkpoints, keys = copy
    key = load_signing_key_file(trail / "audit.key", password=lambda _: b"pw")
    state = tmp_path / "verify-state.json"
    verify([logs], keys, checkpoint_files=[checkpoints], state=state, state_key=key)
    DAMAGE["flip-record"][0](logs)  # a file changed since: read again (its size is the same, its time is not)
    again = verify([logs], keys, checkpoint_files=[checkpoints], state=state, state_key=key)
    full = verify([logs], keys, checkpoint_files=[checkpoints])
    assert _without_incremental(again.to_json()) == full.to_json() and [p.kind for p in again.problems] == ["edited"]
    assert again.incremental["filesRead"] == 1


@pytest.mark.parametrize("forgery", ["altered", "other-key", "garbage"])
def test_a_state_that_is_not_signed_by_the_audit_key_is_ignored(copy, trail, tmp_path, forgery):
    """Whoever edits the state (to make verify skip a rewritten file) is ignored: everything is read."""
    from webhook.audit import verify_state

    logs, checkpoints, keys = copy
    key = load_signing_key_file(trail / "audit.key", password=lambda _: b"pw")
    state = tmp_path / "verify-state.json"
    verify([logs], keys, checkpoint_files=[checkpoints], state=state, state_key=key)
    if forgery == "altered":
        document = json.loads(state.read_bytes())
        document["state"]["files"][0]["scan"]["count"] += 1
        state.write_text(json.dumps(document))
    elif forgery == "other-key":
        generate_key_pair(tmp_path / "other", b"pw", force=True)
        verify_state.save(state, load_signing_key_file(tmp_path / "other.key", password=lambda _: b"pw"), [])
    else:
        state.write_bytes(b"{not json")
    again = verify([logs], keys, checkpoint_files=[checkpoints], state=state, state_key=key)
    assert again.incremental["filesReused"] == 0 and any("ignored, every file was read" in w for w in again.warnings)
    assert again.ok


def test_the_cli_says_what_incremental_verify_skipped(capsys, copy, trail, tmp_path, monkeypatch):
    from conftest import run_cli

    logs, checkpoints, _ = copy
    monkeypatch.setenv("MODELSIGN_AUDIT_PASSWORD", "pw")
    state = tmp_path / "state.json"
    flags = ("--key", trail / "audit.pub", "--checkpoints", checkpoints, "--state", state, "--state-key", trail / "audit.key", "--jobs", "2")
    code, out, _ = run_cli(capsys, "audit", "verify", logs, *flags)
    assert code == 0 and "incremental: 0 file(s)" in out
    code, out, _ = run_cli(capsys, "audit", "verify", logs, *flags)
    files = len(list(logs.glob("*.jsonl")))
    assert code == 0 and f"incremental: {files} file(s)" in out and "without reading them; 0 file(s)" in out and "INTACT" in out
    code, out, err = run_cli(capsys, "audit", "verify", logs, "--key", trail / "audit.pub", "--state", state)
    assert code != 0 and "--state needs --state-key" in (out + err)


@pytest.mark.parametrize("key", ["apiKey", "api.key", "auth.orization", "x-to.ken", "tok\x00en", "tok\nen", "priv_ate.key", "co-okie",
                                 "tok\u00e9en", "to\u212aen", "Pass\"word", "client\\secret", "\u0130\u0307d-token"])
def test_the_quick_secret_test_finds_every_key_redact_clears(key):
    """The append path skips the redaction walk when the encoded record cannot need it. A key
    that is_secret_key names only once its punctuation, escapes or non-ASCII letters are
    dropped (`api.key`) must still send the record through the walk (it once did not)."""
    from webhook.audit.canonical import canonical_json
    from webhook.audit.redaction import may_need_redaction, redact

    record = {"labels": {key: "hunter2-value"}, "reference": "registry.example/model@sha256:" + "a" * 64}
    assert redact(record) != record
    assert may_need_redaction(canonical_json(record))


def test_the_quick_secret_test_lets_a_plain_decision_record_skip_the_walk():
    from webhook.audit.canonical import canonical_json
    from webhook.audit.redaction import may_need_redaction, redact

    record = {"type": "decision", "time": "2026-11-30T00:00:00Z", **decision(7)}
    assert redact(record) == record and not may_need_redaction(canonical_json(record))


def test_a_record_the_quick_test_passes_is_one_redact_leaves_alone():
    """Generated records, keys and values built from secret names cut by punctuation, escapes,
    non-ASCII letters and credential shapes: whenever the quick test says no, redact agrees."""
    from hypothesis import given, settings, strategies as st

    from webhook.audit.canonical import canonical_json
    from webhook.audit.redaction import _SECRET_NAMES, may_need_redaction, redact

    names = [name[:cut] + glue + name[cut:] for name in _SECRET_NAMES for cut in (0, 2, len(name) // 2) for glue in ("", ".", "\x00", "\u00e9")]
    pieces = st.sampled_from(names + ["BEARER ", "Basic ", "abcdefgh1234", "https://", "u:p", "@", "-----BEGIN RSA PRIVATE KEY-----", "\u212a",
                                      "\u0130", "\"", "\\", "\n", "x", " ", "\u00e9", "https:", "HTTP:", "s3:", "ws", "/", "//", "\t",
                                      "host", ":5000", "?", "#"])
    text = st.lists(pieces, max_size=5).map("".join)
    keys = st.one_of(text, st.sampled_from(["message", "error", "warnings", "detail", "hint", "reference", "name"]))
    records = st.recursive(st.none() | st.integers(0, 9) | text,
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3), max_leaves=10)

    @settings(max_examples=1500, deadline=None)
    @given(st.dictionaries(keys, records, max_size=4))
    def check(record):
        if not may_need_redaction(canonical_json(record)):
            assert redact(record) == record

    check()


def test_a_look_up_in_a_summarised_file_answers_only_for_the_bytes_that_were_summarised(trail, tmp_path):
    """`audit verify` reads a summarised file again for hashes its summary did not keep; if the
    file was swapped since (same size: a flipped byte, or another chain re-hashed), it answers
    nothing, so the swap cannot vouch for the checkpoint (verify then reports the seq)."""
    from webhook.audit.scan import hashes_of, scan_file

    path = tmp_path / "chain.jsonl"
    shutil.copy(_middle(trail / "logs"), path)
    scan = scan_file(str(path))
    assert scan.clean
    inner = scan.entries[0][0] + 3
    assert inner not in scan.hashes
    expected = parse_line(_lines(path)[3])[0]
    assert hashes_of(scan, {inner}) == {inner: expected}
    lines = _lines(path)
    _write(path, reseal(lines, 3, edit=lambda r: {**r, "decision": {**r["decision"], "reason": "verifiex"}} if "decision" in r else r))
    assert path.stat().st_size == scan.size and hashes_of(scan, {inner}) == {}
    damaged = bytearray(b"".join(line + b"\n" for line in lines))
    damaged[len(damaged) // 2] ^= 1
    path.write_bytes(bytes(damaged))
    assert hashes_of(scan, {inner}) == {}


def _sealed_chain(writer: str, seqs: list[int], records: list[dict], *, writers: dict[int, str] | None = None, relink: bool = True) -> bytes:
    from webhook.audit.canonical import canonical_json
    from webhook.audit.chain import GENESIS, seal

    prev, out = "sha256:" + "1" * 64, []
    for index, (seq, record) in enumerate(zip(seqs, records)):
        line, digest = seal((writers or {}).get(index, writer), seq, prev if relink else GENESIS, canonical_json(record))
        out.append(line)
        prev = digest
    return b"".join(out)


@pytest.mark.parametrize("writer", ["w", "bench-00", "100%", "%d%s%%", "x" * 300])
def test_the_fast_path_summarises_only_whole_consecutive_single_writer_chains(writer, tmp_path):
    """The fast path checks each line's tail together with the next line's head (one
    comparison per line). Chains crossing 9 -> 10 and 99 -> 100 (the tail grows a digit), writer
    names that look like format strings, records that imitate a tail, every one-byte change,
    and chains that are sealed but skip, repeat or change writer: summarised only when whole."""
    import random

    from webhook.audit.scan import _summarise, scan_file

    rng = random.Random(writer)
    records = []
    for n in range(130):
        record = {"type": "decision", "decision": {"id": f"d-{n}", "allowed": True}, "note": f',"seq":{n},"writer":"{writer}"}}\n{{"hash":'}
        records.append({"checkpoint": {"n": n}, "type": "checkpoint"} if n % 40 == 7 else record)
    whole = _sealed_chain(writer, list(range(5, 135)), records)
    summary = _summarise("f", whole)
    assert summary is not None and summary.count == 130 and summary.last_seq == 134 and summary.writer == writer
    assert summary.decisions == 130 - len([r for r in records if "checkpoint" in r])
    assert [event[4] for event in summary.events] == [5 + n for n in range(130) if n % 40 == 7]
    for _ in range(300):
        at = rng.randrange(len(whole))
        changed = bytearray(whole)
        changed[at] = (changed[at] + rng.randrange(1, 256)) % 256
        assert _summarise("f", bytes(changed)) is None, at
    broken = {
        "skips": list(range(5, 60)) + list(range(61, 136)),
        "repeats": list(range(5, 60)) + [59] + list(range(60, 134)),
        "from-zero-padded": list(range(0, 130)),
    }
    for name, seqs in broken.items():
        assert _summarise("f", _sealed_chain(writer, seqs, records)) is None, name
    assert _summarise("f", _sealed_chain(writer, list(range(5, 135)), records, writers={64: writer + "x"})) is None
    assert _summarise("f", _sealed_chain(writer, list(range(5, 135)), records, relink=False)) is None
    path = tmp_path / "chain.jsonl"
    path.write_bytes(whole)
    full = scan_file(str(path), full=True)
    assert [entry[0] for entry in full.entries] == list(range(5, 135)) and all(entry[4] for entry in full.entries)
    assert full.entries[-1][2] == summary.last_hash and sorted(summary.hashes) == sorted({5, 134} | {s - d for s in (12, 52, 92, 132) for d in (0, 1)})
