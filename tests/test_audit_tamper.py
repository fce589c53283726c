"""The tamper suite: a real trail written by the running webhook (two worker processes, real
TLS, a real registry), then damaged in every way the issue lists; `audit verify` must name
each kind of damage and where it is."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from conftest import PASSWORD, run_cli
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.trust.keys import load_public_key_file, load_signing_key_file
from support.audit import append_forged, audited_webhook, copy_trail, decision_in_last_interval, post_reviews, push_signed_image, reseal
from webhook.audit.canonical import canonical_json
from webhook.audit.chain import GENESIS, parse_line, record_of, seal
from webhook.audit.verify import verify


@pytest.fixture(scope="module")
def trail(tmp_path_factory, registry, key_dir):
    """~120 decisions (allowed and denied) from two workers, stopped cleanly."""
    workdir = tmp_path_factory.mktemp("audited")
    signed = push_signed_image(registry.host, "audit/signed", key_dir)
    with Stores() as stores:
        push_image(stores.repository(parse_reference(f"{registry.host}/audit/unsigned:1")), {"f": b"not"}, tag="1")
    audited = audited_webhook(workdir, key_dir)
    images = [(signed if i % 3 else f"{registry.host}/audit/unsigned:1") if i % 5 else "docker.io/library/nginx:1" for i in range(120)]
    try:
        responses = post_reviews(audited.server, images)
    finally:
        audited.server.stop()
    assert sum(r["allowed"] for r in responses) > 10 and sum(not r["allowed"] for r in responses) > 10
    return audited


def _files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("audit-*.jsonl"), key=lambda p: p.stat().st_size, reverse=True)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def _decision_index(lines: list[bytes], nth: int = 0) -> int:
    found = [i for i, line in enumerate(lines) if b'"type":"decision"' in line]
    return found[len(found) // 2 + nth]


def _check(log_dir: Path, checkpoints: Path, pub: Path):
    return verify([log_dir], [load_public_key_file(pub)], checkpoint_files=[checkpoints])


@pytest.fixture
def damaged(trail, tmp_path):
    log_dir, checkpoints = copy_trail(trail, tmp_path)
    return log_dir, checkpoints, trail.audit_pub


def test_the_untouched_trail_is_intact(capsys, trail, damaged):
    log_dir, checkpoints, pub = damaged
    report = _check(log_dir, checkpoints, pub)
    assert report.ok, report.problems
    assert len(report.chains) == 2 and all(c.missing == 0 for c in report.chains.values())
    assert all(c.checkpoints_verified >= 1 and c.last_checkpoint_seq == c.last_seq - 1 for c in report.chains.values())  # shutdown checkpoint
    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--key", pub, "--checkpoints", checkpoints)
    assert code == 0 and "INTACT" in out and "0 problem(s)" in out


def _flip(line: bytes, offset: int) -> bytes:
    return line[:offset] + bytes([line[offset] ^ 0x01]) + line[offset + 1:]


POSITIONS = {
    "hash": lambda line: 20,
    "prev_hash": lambda line: 110,
    "record value": lambda line: line.index(b'"namespace":"') + 14,
    "record key": lambda line: line.index(b'"namespace"') + 2,
    "seq": lambda line: line.rindex(b',"seq":') + 7,
    "writer": lambda line: line.rindex(b'"writer":"') + 12,
    "opening brace": lambda line: 0,
    "closing brace": lambda line: len(line) - 1,
}


@pytest.mark.parametrize("position", list(POSITIONS))
def test_a_flipped_byte_anywhere_in_a_record_is_found(damaged, position):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = _decision_index(lines)
    lines[index] = _flip(lines[index], POSITIONS[position](lines[index]))
    _write(target, lines)
    report = _check(log_dir, checkpoints, pub)
    assert not report.ok
    first = report.problems[0]
    assert first.kind == "edited", report.problems[:3]
    assert f"{target}:{index + 1}" in first.message or (first.file == str(target) and first.line == index + 1)


def test_a_flipped_newline_merges_two_records_and_is_found(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    data = bytearray(target.read_bytes())
    lines = _lines(target)
    index = _decision_index(lines)
    newline_at = sum(len(line) + 1 for line in lines[:index + 1]) - 1
    data[newline_at] ^= 0x01
    target.write_bytes(bytes(data))
    report = _check(log_dir, checkpoints, pub)
    assert not report.ok and report.problems[0].kind == "edited"


def test_deleted_record(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = _decision_index(lines)
    seq = parse_line(lines[index])[2]
    del lines[index]
    _write(target, lines)
    report = _check(log_dir, checkpoints, pub)
    assert [p.kind for p in report.problems][:1] == ["deleted"]
    assert f"seq {seq} of" in report.problems[0].message and "missing" in report.problems[0].message


def test_reordered_records(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = _decision_index(lines)
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    _write(target, lines)
    report = _check(log_dir, checkpoints, pub)
    assert report.problems and report.problems[0].kind == "reordered" and "comes before" in report.problems[0].message


def test_duplicated_record(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = _decision_index(lines)
    lines.insert(index + 1, lines[index])
    _write(target, lines)
    report = _check(log_dir, checkpoints, pub)
    assert [p.kind for p in report.problems] == ["duplicated"] and "appears twice" in report.problems[0].message


def test_cut_off_tail_is_found_against_the_checkpoint_file(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    _write(target, lines[:-5])
    report = _check(log_dir, checkpoints, pub)
    assert [p.kind for p in report.problems] == ["truncated"]
    assert "record(s) cut off" in report.problems[0].message
    # Without the separately kept checkpoints, a clean cut at a line boundary cannot be seen: say so.
    assert verify([log_dir], [load_public_key_file(pub)]).ok


def test_a_line_cut_mid_record_is_found(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    data = target.read_bytes()
    target.write_bytes(data[:-40])
    report = _check(log_dir, checkpoints, pub)
    assert "truncated" in [p.kind for p in report.problems]
    assert any("ends in a partial line" in p.message for p in report.problems)


def test_spliced_record_of_another_writer(damaged):
    log_dir, checkpoints, pub = damaged
    busy, other = _files(log_dir)[:2]
    lines, stranger = _lines(busy), _lines(other)
    index = _decision_index(lines)
    lines.insert(index, stranger[1])
    _write(busy, lines)
    report = _check(log_dir, checkpoints, pub)
    assert report.problems[0].kind == "foreign-writer"
    assert f"{busy}:{index + 1} holds seq" in report.problems[0].message


def test_forged_and_altered_checkpoints(damaged, tmp_path, key_dir):
    log_dir, checkpoints, pub = damaged
    lines = _lines(checkpoints)
    document = json.loads(lines[-1])
    document["checkpoint"]["seq"] += 100  # claims more than was written
    forged = load_signing_key_file(key_dir / "other-team.key", password=lambda _: PASSWORD.encode())
    resigned = dict(document, keyId=forged.public.key_id,
                    signature=base64.b64encode(forged.sign(canonical_json(document["checkpoint"]))).decode())
    altered = json.loads(lines[0])
    altered["checkpoint"]["head"] = GENESIS  # signature no longer matches
    _write(checkpoints, lines + [canonical_json(resigned), canonical_json(altered)])
    report = _check(log_dir, checkpoints, pub)
    kinds = [p.kind for p in report.problems]
    assert kinds == ["bad-checkpoint", "bad-checkpoint"], report.problems
    assert f"key id {forged.public.key_id}" in report.problems[0].message


def test_whole_file_rewritten_with_fresh_hashes(damaged):
    """An attacker with the code but not the audit key edits one decision and re-seals the
    rest of the chain so every hash matches: the signed checkpoints still hold the old heads."""
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = _decision_index(lines)
    rewritten, previous = lines[:index], parse_line(lines[index - 1])
    prev_hash = "sha256:" + previous[0].decode()
    for line in lines[index:]:
        record = json.loads(record_of(line))
        if line is lines[index]:
            record["decision"].update(outcome="allow", allowed=True, message="", codes=[])
            record["user"]["username"] = "someone-else"
        fields = parse_line(line)
        sealed, prev_hash = seal(fields[3], fields[2], prev_hash, canonical_json(record))
        rewritten.append(sealed.rstrip(b"\n"))
    _write(target, rewritten)
    report = _check(log_dir, checkpoints, pub)
    assert not report.ok and {p.kind for p in report.problems} == {"rewritten"}
    assert "differs from the signed checkpoint" in report.problems[0].message


def test_a_deleted_chain_file_is_missed_by_its_checkpoints(capsys, damaged):
    log_dir, checkpoints, pub = damaged
    _files(log_dir)[-1].unlink()
    report = _check(log_dir, checkpoints, pub)
    assert [p.kind for p in report.problems] == ["missing-chain"] or {p.kind for p in report.problems} == {"missing-chain"}
    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--key", pub, "--checkpoints", checkpoints, "--output", "json")
    assert code == 1 and json.loads(out)["problems"][0]["kind"] == "missing-chain"


def test_cli_reports_the_damage_and_exits_1(capsys, damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    del lines[_decision_index(lines)]
    _write(target, lines)
    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--key", pub, "--checkpoints", checkpoints)
    assert code == 1 and "DELETED:" in out and "DAMAGED" in out


def test_without_a_key_nothing_is_called_verified(capsys, damaged):
    log_dir, checkpoints, _ = damaged
    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--checkpoints", checkpoints)
    assert code == 1 and "UNVERIFIED: integrity not verified: no audit key given" in out and "INTACT" not in out
    assert "0 verified checkpoint(s)" in out
    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--output", "json")
    document = json.loads(out)
    assert code == 1 and document["status"] == "UNVERIFIED" and document["ok"] is False and document["verified"] is False
    assert document["note"] == "integrity not verified: no audit key given" and document["checkpoints"]["verified"] == 0
    assert all(w["checkpointsVerified"] == 0 and w["lastCheckpointSeq"] is None for w in document["writers"])
    code, _, err = run_cli(capsys, "audit", "verify", log_dir / "nope")
    assert code == 2 and "does not exist" in err


def test_without_the_checkpoint_file_verify_says_it_used_only_in_chain_checkpoints(capsys, damaged):
    log_dir, _, pub = damaged
    code, out, _ = run_cli(capsys, "audit", "verify", log_dir, "--key", pub)
    assert code == 0 and "INTACT" in out and "only the checkpoints inside the chains were used" in out


# -- the schedule: a rewritten or continued trail, with the default settings -----------------------------------------

def _record(line: bytes) -> dict:
    return json.loads(record_of(line))


def _roll_back_and_flip(lines: list[bytes], index: int) -> list[bytes]:
    """Flip the decision at `index` to an allow, drop every checkpoint from there on, re-seal."""
    first = [True]

    def edit(record: dict) -> dict | None:
        if first[0]:
            first[0] = False
            record["decision"].update(outcome="allow", allowed=True, message="", codes=[])
            return record
        return None if record.get("type") == "checkpoint" else record

    return reseal(lines, index, edit)


def _drop_checkpoints_from(checkpoints: Path, writer: str, seq: int) -> None:
    kept = [line for line in _lines(checkpoints)
            if not (json.loads(line)["checkpoint"]["writer"] == writer and json.loads(line)["checkpoint"]["seq"] >= seq)]
    _write(checkpoints, kept)


def _decision_from_end(lines: list[bytes], from_end: int) -> int:
    return max(i for i, line in enumerate(lines[:len(lines) - from_end + 1]) if b'"type":"decision"' in line)


KEEPERS = ("in-chain checkpoints only", "checkpoint file rewritten too", "checkpoint file out of reach")


def _verify_as(keeper: str, log_dir: Path, checkpoints: Path, pub: Path):
    files = [] if keeper == "in-chain checkpoints only" else [checkpoints]
    return verify([log_dir], [load_public_key_file(pub)], checkpoint_files=files)


@pytest.mark.parametrize("keeper", KEEPERS)
@pytest.mark.parametrize("from_end", [25, 40, 55])
def test_a_flipped_decision_with_later_checkpoints_dropped_and_the_chain_resealed(damaged, keeper, from_end):
    """The issue's attack (a): more than one checkpoint interval is rewritten, so a checkpoint
    the signed schedule made due is missing, whatever else the attacker could reach."""
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = _decision_from_end(lines, from_end)
    writer, seq = parse_line(lines[index])[3], parse_line(lines[index])[2]
    _write(target, _roll_back_and_flip(lines, index))
    if keeper == "checkpoint file rewritten too":
        _drop_checkpoints_from(checkpoints, writer, seq)
    report = _verify_as(keeper, log_dir, checkpoints, pub)
    kinds = {p.kind for p in report.problems}
    assert not report.ok and report.status == "DAMAGED"
    if keeper == "checkpoint file out of reach":
        assert kinds & {"rewritten", "truncated", "after-final"}, report.problems
    else:
        assert "missing-checkpoint" in kinds, (report.problems, report.warnings)
        assert any("a checkpoint that was due is missing" in p.message and p.writer == writer for p in report.problems)


def test_a_rollback_within_one_interval_needs_the_checkpoints_kept_apart(damaged):
    """The limit, stated by verify: within one checkpoint interval a rewritten tail looks like
    a writer that crashed, unless the checkpoints kept apart (file or witness) say otherwise."""
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    index = decision_in_last_interval(lines)
    _write(target, _roll_back_and_flip(lines, index))
    alone = _verify_as("in-chain checkpoints only", log_dir, checkpoints, pub)
    assert any("protected by the hash chain only" in w and "compare with the checkpoint file or the witness" in w for w in alone.warnings)
    kept_apart = _verify_as("checkpoint file out of reach", log_dir, checkpoints, pub)
    assert not kept_apart.ok and {p.kind for p in kept_apart.problems} & {"rewritten", "after-final", "truncated"}


def _forged_allow(lines: list[bytes], **changes) -> dict:
    template = next(_record(line) for line in reversed(lines) if b'"type":"decision"' in line)
    template["decision"].update(outcome="allow", allowed=True, message="", codes=[])
    template["review"]["uid"] = "forged"
    template.update(changes)
    return template


@pytest.mark.parametrize("keeper", KEEPERS)
@pytest.mark.parametrize("count", [1, 3])
def test_records_appended_after_the_final_checkpoint_are_forged(damaged, keeper, count):
    """The issue's attack (b): a writer that shut down cleanly has no unprotected tail."""
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)
    assert _record(lines[-1])["checkpoint"]["final"] is True
    _write(target, append_forged(lines, [_forged_allow(lines) for _ in range(count)]))
    report = _verify_as(keeper, log_dir, checkpoints, pub)
    assert [p.kind for p in report.problems] == ["after-final"], report.problems
    assert f"{count} record(s) of" in report.problems[0].message and "follow its final checkpoint" in report.problems[0].message


@pytest.mark.parametrize("dropped", [1, 2])
def test_the_final_checkpoint_replaced_by_a_forged_record(damaged, dropped):
    """Dropping the final checkpoint (and the shutdown record) to append: a record stamped
    past the signed schedule shows from the chain alone; the checkpoint file kept apart shows
    any replacement, or the cut."""
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)[:-dropped]
    _write(target, append_forged(lines, [_forged_allow(lines, time="2099-01-01T00:00:00.000000Z")]))
    alone = _verify_as("in-chain checkpoints only", log_dir, checkpoints, pub)
    assert [p.kind for p in alone.problems] == ["missing-checkpoint"] and "stamped 2099-01-01" in alone.problems[0].message
    _write(target, append_forged(lines, [_forged_allow(lines)]))  # stamped in time: only the kept checkpoints tell
    kept_apart = _verify_as("checkpoint file out of reach", log_dir, checkpoints, pub)
    if dropped == 1:
        assert [p.kind for p in kept_apart.problems] == ["after-final"] and "holds another record" in kept_apart.problems[0].message
    else:  # the shutdown record the final checkpoint signs is gone too
        assert [p.kind for p in kept_apart.problems] == ["rewritten", "truncated"], kept_apart.problems
    _write(target, lines)  # just cut
    assert "truncated" in {p.kind for p in _verify_as("checkpoint file out of reach", log_dir, checkpoints, pub).problems}


def test_a_signed_checkpoint_copied_into_a_forged_tail_does_not_count(damaged):
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    lines = _lines(target)[:-2]
    copied = next(_record(line) for line in lines if b'"type":"checkpoint"' in line)
    forged = [_forged_allow(lines)] * 3 + [copied] + [_forged_allow(lines)] * 3
    _write(target, append_forged(lines, forged))
    report = _verify_as("in-chain checkpoints only", log_dir, checkpoints, pub)
    assert any(p.kind == "bad-checkpoint" and "it was copied there" in p.message for p in report.problems), report.problems


def _append_sealed_with_seq(target: Path, seq_text: bytes) -> None:
    """A correctly hashed line linked to the file's last one, claiming `seq_text` as its seq:
    what anyone who can write the trail can add (the hash has no key)."""
    import hashlib

    lines = _lines(target)
    claimed, _, _, writer, _, _ = parse_line(lines[-1])
    body = (b'{"prev_hash":"sha256:' + claimed + b'","record":' + record_of(lines[_decision_index(lines)]) + b',"seq":' + seq_text
            + b',"writer":"' + writer.encode() + b'"}')
    _write(target, lines + [b'{"hash":"sha256:' + hashlib.sha256(body).hexdigest().encode() + b'",' + body[1:]])


@pytest.mark.parametrize("seq_text, kind", [(b"1" + b"0" * 15, "deleted"), (b"9" * 17, "edited"), (b"9" * 5000, "edited")])
def test_a_seq_far_ahead_is_reported_without_listing_the_gap(damaged, seq_text, kind):
    """10**15 is a gap counted, not listed (listing it took every byte of memory); past 2**53, or
    too many digits for int(), the line is not a chain line at all. Both paths, the same verdict."""
    log_dir, checkpoints, pub = damaged
    target = _files(log_dir)[0]
    _append_sealed_with_seq(target, seq_text)
    fast = verify([log_dir], [load_public_key_file(pub)], checkpoint_files=[checkpoints])
    full = verify([log_dir], [load_public_key_file(pub)], checkpoint_files=[checkpoints], fast=False)
    assert fast.to_json() == full.to_json()
    assert fast.status != "INTACT" and kind in [p.kind for p in fast.problems], fast.problems
    if kind == "deleted":
        [gap] = [p for p in fast.problems if p.kind == "deleted"]
        assert "-999999999999999 of" in gap.message and "record(s))" in gap.message
