"""`modelsign audit verify`: is every writer's chain whole, and does it match the signed
checkpoints?

Damage is reported by kind, at the first record where it shows:
  edited            a record no longer hashes to its `hash`, or is not a chain line at all
  rewritten         a record was re-hashed after an edit: the next record, or a signed
                    checkpoint, still holds the old hash
  deleted           sequence numbers are missing (in the middle, or at the start without a
                    retention record that explains it)
  reordered         records appear out of sequence order
  duplicated        the same record appears twice
  truncated         the chain ends before a signed checkpoint says it reached; or its last
                    line was cut mid-record
  foreign-writer    a record of another writer sits in this writer's file
  bad-checkpoint    a checkpoint whose signature does not verify with the audit key
  missing-chain     signed checkpoints name a writer none of whose records were given
  unsigned          (with the audit key) a chain that no signed checkpoint covers at all
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from signer.keys import PublicKey
from webhook.audit.chain import _RECORD_START, GENESIS, record_of, scan_lines
from webhook.audit.checkpoints import Checkpoint, read_checkpoint

MAX_PROBLEMS = 1000
_DECISION_STARTS = (b'{"artifacts":', b'{"decision":')  # decision records' first keys, in canonical order


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    writer: str | None = None
    file: str | None = None
    line: int | None = None
    seq: int | None = None


@dataclass
class Chain:
    """One writer's records, in the order the files and lines hold them."""

    writer: str
    files: list[str] = field(default_factory=list)
    # (seq, hash hex, prev_hash hex, intact, file, line)
    entries: list[tuple[int, bytes, bytes, bool, str, int]] = field(default_factory=list)
    hashes: dict[int, bytes] = field(default_factory=dict)  # seq -> hash hex
    first_seq: int | None = None
    last_seq: int | None = None
    head: str | None = None
    records: int = 0
    missing: int = 0
    checkpoints_verified: int = 0
    last_checkpoint_seq: int | None = None
    pruned_before: int | None = None
    first_prev: bytes = b""
    decisions: int = 0

    def summary(self) -> dict[str, Any]:
        return {"writer": self.writer, "files": self.files, "firstSeq": self.first_seq, "lastSeq": self.last_seq, "records": self.records,
                "gaps": self.missing, "head": self.head, "checkpointsVerified": self.checkpoints_verified,
                "lastCheckpointSeq": self.last_checkpoint_seq, "prunedBefore": self.pruned_before}


@dataclass
class VerifyReport:
    chains: dict[str, Chain] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    records: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "records": self.records,
            "writers": [c.summary() for c in sorted(self.chains.values(), key=lambda c: c.writer)],
            "checkpoints": {"total": len(self.checkpoints), "verified": sum(1 for c in self.checkpoints if c.signature_ok)},
            "problems": [p.__dict__ for p in self.problems], "warnings": self.warnings,
        }


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories contribute their *.jsonl files."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    return found


def verify(paths: Iterable[Path], keys: list[PublicKey], *, checkpoint_files: Iterable[Path] = ()) -> VerifyReport:
    report = VerifyReport()
    retention: list[dict[str, Any]] = []
    files = expand(paths)
    for path in files:
        _read_file(path, keys, report, retention)
    for path in checkpoint_files:
        _read_file(path, keys, report, retention, checkpoints_only=True)
    for chain in report.chains.values():
        _walk(chain, report)
    _check_against_checkpoints(report)
    trusted = _trusted_retention(report, retention, keys)
    _check_chain_starts(report, trusted)
    _check_missing_chains(report, trusted)
    _check_coverage(report, keys)
    if not keys:
        report.warnings.append("no --key: checkpoint signatures were not verified")
    if not report.checkpoints:
        report.warnings.append("no checkpoints found: a cut-off tail or a consistently rewritten file cannot be detected "
                               "(run the webhook with --audit-key, and keep the checkpoint file apart from the chains)")
    return report


def _read_file(path: Path, keys: list[PublicKey], report: VerifyReport, retention: list[dict[str, Any]], *, checkpoints_only: bool = False) -> None:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.add(Problem("missing-chain", f"cannot read {name}: {exc.strerror}", file=name))
        return
    parsed: list[tuple[int, str, bytes, bytes, bool, int, bool]] = []
    lines = 0
    for entry in scan_lines(data):
        number, start, stop = entry[0], entry[1], entry[2]
        lines = number
        if len(entry) == 4:
            line = data[start:stop]
            if line.startswith(b'{"checkpoint":'):
                _external_checkpoint(line, keys, report, f"{name}:{number}")
            elif line.strip():
                report.add(Problem("edited", f"{name}:{number} is not a chain record (damaged or inserted)", file=name, line=number))
            continue
        if checkpoints_only:
            continue
        _, _, _, seq, writer, claimed, prev, intact, control = entry  # type: ignore[misc]
        if intact and control:
            _chain_control_record(record_of(data[start:stop]), keys, report, retention, f"{name}:{number}", writer, seq)
        parsed.append((seq, writer, claimed, prev, intact, number, data.startswith(_DECISION_STARTS, start + _RECORD_START)))
    torn = data[data.rfind(b"\n") + 1:]  # text after the last newline: a line cut mid-write
    if torn.strip():
        report.add(Problem("truncated", f"{name} ends in a partial line ({len(torn)} bytes without a newline): cut mid-record", file=name, line=lines + 1))
    if not parsed:
        return
    owner = Counter(p[1] for p in parsed).most_common(1)[0][0]
    chain = report.chains.setdefault(owner, Chain(owner))
    chain.files.append(name)
    for seq, writer, claimed, prev, intact, number, decision in parsed:
        if writer != owner and intact:
            report.add(Problem("foreign-writer", f"{name}:{number} holds seq {seq} of writer {writer}, in the chain file of {owner}",
                               writer=owner, file=name, line=number, seq=seq))
            continue
        if writer != owner:  # a writer field that does not hash is an edit of this writer's record
            report.add(Problem("edited", f"record at {name}:{number} does not match its hash (its writer field reads {writer!r})",
                               writer=owner, file=name, line=number, seq=seq))
            writer = owner
        chain.entries.append((seq, claimed, prev, intact, name, number))
        chain.decisions += decision


def _chain_control_record(raw: bytes, keys: list[PublicKey], report: VerifyReport, retention: list[dict[str, Any]], where: str,
                          writer: str, seq: int) -> None:
    """Checkpoints (signature checked) and retention records inside a chain. A retention
    record is remembered with the chain and seq that carry it: it only counts once a signed
    checkpoint of that chain covers it (see _trusted_retention)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return
    if not isinstance(record, dict):
        return
    if record.get("type") == "retention":
        retention += [{**r, "_by": writer, "_at": seq} for r in record.get("removed") or [] if isinstance(r, dict)]
    elif record.get("type") == "checkpoint":
        checkpoint = read_checkpoint(record, keys, where)
        if checkpoint is not None:
            _note_checkpoint(checkpoint, keys, report)


def _external_checkpoint(line: bytes, keys: list[PublicKey], report: VerifyReport, where: str) -> None:
    try:
        checkpoint = read_checkpoint(json.loads(line), keys, where)
    except ValueError:
        checkpoint = None
    if checkpoint is None:
        report.add(Problem("bad-checkpoint", f"{where} is not a readable checkpoint", file=where.rsplit(":", 1)[0]))
        return
    _note_checkpoint(checkpoint, keys, report)


def _note_checkpoint(checkpoint: Checkpoint, keys: list[PublicKey], report: VerifyReport) -> None:
    if keys and not checkpoint.signature_ok:
        report.add(Problem("bad-checkpoint", f"checkpoint at {checkpoint.where} (writer {checkpoint.writer}, seq {checkpoint.seq}) "
                           f"is not signed by the audit key (key id {checkpoint.key_id or 'none'})", writer=checkpoint.writer, seq=checkpoint.seq))
        return
    report.checkpoints.append(checkpoint)


def _walk(chain: Chain, report: VerifyReport) -> None:
    entries = chain.entries
    first_seq_of: dict[str, int] = {}
    for entry in entries:
        first_seq_of.setdefault(entry[4], entry[0])
    chain.files.sort(key=lambda f: first_seq_of.get(f, 0))
    order = {f: i for i, f in enumerate(chain.files)}
    entries.sort(key=lambda e: (order[e[4]], e[5]))
    chain.hashes = {e[0]: e[1] for e in entries}
    report.records += len(entries)
    if not entries:
        return
    writer = chain.writer
    first_seq, _, first_prev, _, _, _ = entries[0]
    chain.first_seq, chain.first_prev, chain.records = first_seq, first_prev, len(entries)
    if first_seq == 1 and first_prev != GENESIS.removeprefix("sha256:").encode():
        report.add(Problem("edited", f"seq 1 of {writer} does not start from the genesis hash", writer=writer, file=entries[0][4], line=entries[0][5], seq=1))
    present = chain.hashes
    expected, previous_hash, previous_seq = first_seq, first_prev, 0
    flagged: set[int] = set()
    for seq, digest, prev, intact, name, number in entries:
        if seq == expected and intact and prev == previous_hash:  # the common case, first
            expected, previous_hash, previous_seq = seq + 1, digest, seq
            continue
        where = f"{name}:{number}"
        if not intact:
            report.add(Problem("edited", f"record seq {seq} of {writer} at {where} does not match its hash: it was changed after it was written",
                               writer=writer, file=name, line=number, seq=seq))
        elif seq == previous_seq and digest == previous_hash:
            report.add(Problem("duplicated", f"record seq {seq} of {writer} appears twice (again at {where})", writer=writer, file=name, line=number, seq=seq))
            continue
        elif seq < expected:
            if seq not in flagged:
                report.add(Problem("reordered", f"record seq {seq} of {writer} at {where} comes after seq {expected - 1}", writer=writer, file=name, line=number, seq=seq))
                flagged.add(seq)
            continue
        elif seq > expected:
            missing = [s for s in range(expected, seq) if s not in present]
            if missing:
                chain.missing += len(missing)
                span = f"seq {missing[0]}" if len(missing) == 1 else f"seq {missing[0]}-{missing[-1]}"
                report.add(Problem("deleted", f"{span} of {writer} missing before {where} ({len(missing)} record(s))", writer=writer, file=name, line=number, seq=seq))
            else:
                report.add(Problem("reordered", f"record seq {seq} of {writer} at {where} comes before seq {expected}", writer=writer, file=name, line=number, seq=seq))
                flagged.update(range(expected, seq))
        elif prev != previous_hash and seq != first_seq:
            report.add(Problem("rewritten", f"record seq {seq} of {writer} at {where} links to a different seq {seq - 1} than the one present: "
                               f"seq {seq - 1} was rewritten (or replaced)", writer=writer, file=name, line=number, seq=seq - 1))
        if seq >= expected:
            expected = seq + 1
        previous_hash, previous_seq = digest, seq
    chain.last_seq = max(present)
    chain.head = "sha256:" + present[chain.last_seq].decode()


def _check_against_checkpoints(report: VerifyReport) -> None:
    """Each signed checkpoint against the chain it names. Checkpoints of absent chains, or
    below a chain's first record, are settled with the retention records afterwards."""
    seen: set[tuple[str, int, str]] = set()
    beyond: dict[str, Checkpoint] = {}  # per writer, the furthest checkpoint past the chain's end
    for checkpoint in report.checkpoints:
        key = (checkpoint.writer, checkpoint.seq, checkpoint.head)
        if key in seen:
            continue
        seen.add(key)
        chain = report.chains.get(checkpoint.writer)
        if chain is None or not chain.entries or checkpoint.seq < (chain.first_seq or 1):
            continue
        hashes = chain.hashes
        if checkpoint.seq > (chain.last_seq or 0):
            if checkpoint.writer not in beyond or checkpoint.seq > beyond[checkpoint.writer].seq:
                beyond[checkpoint.writer] = checkpoint
        elif checkpoint.seq in hashes and "sha256:" + hashes[checkpoint.seq].decode() != checkpoint.head:
            report.add(Problem("rewritten", f"record seq {checkpoint.seq} of {checkpoint.writer} differs from the signed checkpoint ({checkpoint.where}): "
                               "the chain was rewritten", writer=checkpoint.writer, seq=checkpoint.seq))
        elif checkpoint.seq in hashes:
            chain.checkpoints_verified += 1
            chain.last_checkpoint_seq = max(chain.last_checkpoint_seq or 0, checkpoint.seq)
    for writer, checkpoint in beyond.items():
        end = report.chains[writer].last_seq or 0
        report.add(Problem("truncated", f"the chain of {writer} ends at seq {end}, but a signed checkpoint ({checkpoint.where}, "
                           f"{checkpoint.time}) covers seq {checkpoint.seq}: {checkpoint.seq - end} record(s) cut off", writer=writer, seq=checkpoint.seq))


def _trusted_retention(report: VerifyReport, retention: list[dict[str, Any]], keys: list[PublicKey]) -> list[dict[str, Any]]:
    """Retention records count only where a verified signed checkpoint of the chain that
    carries them covers them: otherwise anyone could write one to excuse a deletion. Without
    keys nothing is signed, so they are taken as written (and verify says so)."""
    if not keys:
        return retention
    trusted = []
    for entry in retention:
        carrier = report.chains.get(str(entry.get("_by")))
        if carrier is not None and (carrier.last_checkpoint_seq or 0) >= int(entry.get("_at") or 0):
            trusted.append(entry)
        else:
            report.warnings.append(f"a retention record of {entry.get('_by')} (seq {entry.get('_at')}) is not covered by a signed checkpoint, "
                                   "so it excuses nothing")
    return trusted


def _check_chain_starts(report: VerifyReport, retention: list[dict[str, Any]]) -> None:
    for chain in report.chains.values():
        if not chain.entries or chain.first_seq == 1:
            continue
        first = chain.entries[0]
        expected_hash = "sha256:" + chain.first_prev.decode()
        pruned = next((r for r in retention if r.get("writer") == chain.writer and r.get("lastSeq") == (chain.first_seq or 0) - 1
                       and r.get("lastHash") == expected_hash), None)
        if pruned is not None:
            chain.pruned_before = chain.first_seq
        else:
            report.add(Problem("deleted", f"the chain of {chain.writer} starts at seq {chain.first_seq} ({first[4]}:{first[5]}); seq 1-{(chain.first_seq or 1) - 1} "
                               "are missing and no signed retention record accounts for them", writer=chain.writer, file=first[4], line=first[5], seq=chain.first_seq))


def _check_missing_chains(report: VerifyReport, retention: list[dict[str, Any]]) -> None:
    """Signed checkpoints of writers whose records are gone: excused only up to the last seq
    a (trusted) retention record says was removed."""
    reported: set[str] = set()
    for checkpoint in report.checkpoints:
        chain = report.chains.get(checkpoint.writer)
        if chain is not None and chain.entries:
            continue
        removed_up_to = max((int(r.get("lastSeq") or 0) for r in retention if r.get("writer") == checkpoint.writer), default=0)
        if checkpoint.seq <= removed_up_to or checkpoint.writer in reported:
            continue
        reported.add(checkpoint.writer)
        report.add(Problem("missing-chain", f"a signed checkpoint ({checkpoint.where}, {checkpoint.time}) covers seq {checkpoint.seq} of writer "
                           f"{checkpoint.writer}, but none of its records were given (deleted, or pass its files too)", writer=checkpoint.writer, seq=checkpoint.seq))


def _check_coverage(report: VerifyReport, keys: list[PublicKey]) -> None:
    """How much of each chain a signature vouches for. A chain with no signed checkpoint at
    all, where the audit key is known, is a problem: a writer signs right after its first
    record, so anyone could have written such a chain. Records after a chain's last checkpoint are protected by the chain alone (a clean stop
    writes a final checkpoint; a crash leaves up to one checkpoint interval uncovered)."""
    if not keys:
        return
    for chain in report.chains.values():
        if not chain.entries:
            continue
        if chain.last_checkpoint_seq is None:
            report.add(Problem("unsigned", f"writer {chain.writer} has {chain.records} record(s) ({chain.decisions} decision(s)) and no signed "
                               "checkpoint: writers sign their chain's start at once, so these cannot be told from made-up records",
                               writer=chain.writer, file=chain.files[0] if chain.files else None))
            continue
        tail = (chain.last_seq or 0) - chain.last_checkpoint_seq - 1  # the checkpoint record itself follows the seq it covers
        if tail > 0:
            report.warnings.append(f"{tail} record(s) of {chain.writer} after its last signed checkpoint (seq {chain.last_checkpoint_seq}) "
                                   "are protected by the hash chain only")
