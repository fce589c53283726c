"""Retention: which chain files may go, decided from what the audit key signed.

Whoever can write the chain directory sets file times and can write any line, so neither a
file's mtime nor its own lines say how old it is or what it holds. With the audit key, a
file may be removed only if (`scan`, then `kept_because`)
  - it is one writer's intact chain: every line hashes to its `hash`, seqs are consecutive,
    each line links to the one before (a torn last line aside);
  - it holds a checkpoint record signed by the audit key for the line right before it; and
  - the signed `time` of its last such checkpoint is older than the retention period.
The retention record then names what the signature vouches for: the writer and the chain up
to that checkpoint record (`lastSeq`, `lastHash`), with the checkpoint record itself, so that
verify checks the signature and the age without the removed file (`unproven`). Lines after
it (the unsigned tail of a writer that was killed) go with the file and are only counted.

Without an audit key nothing can be checked: files are chosen by mtime and the entries say
so (`basis: "mtime"`); verify with a key never counts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from signer import PublicKey
from webhook.audit.canonical import CanonicalError, canonical_json
from webhook.audit.chain import parse_line, record_of, seal
from webhook.audit.checkpoints import Checkpoint, read_checkpoint
from webhook.audit.schedule import parse_time

MAX_LINE_BYTES = 64 * 1024 * 1024  # longer than any record the writer produces
SIGNED = "signed-checkpoint"
MTIME = "mtime"


@dataclass(frozen=True)
class Signed:
    """A checkpoint record in a chain file whose signature the audit key verifies."""

    seq: int  # of the checkpoint record (it signs seq - 1)
    hash: str  # of the checkpoint record's line
    record: dict[str, Any]  # the record as written
    time: str  # its signed time


@dataclass(frozen=True)
class Scan:
    """What a chain file holds, as far as the audit key vouches for it."""

    path: Path
    problem: str | None = None  # why it is not one writer's intact chain (then nothing below counts)
    writer: str = ""
    first_seq: int = 0
    end_seq: int = 0  # of its last whole line
    end_hash: str = ""
    signed: Signed | None = None  # its last checkpoint record signed by the audit key
    tail: int = 0  # whole lines after that checkpoint (all of them if there is none)
    torn: bool = False  # it ends in a partial line (a write cut short)

    @property
    def empty(self) -> bool:
        return self.problem is None and not self.writer


def scan(path: Path, key: PublicKey) -> Scan:
    """Read a chain file line by line (bounded memory), checking the chain and the signatures."""
    writer, first_seq, expected, previous = "", 0, 0, b""
    signed: Signed | None = None
    tail = number = 0
    with path.open("rb") as handle:
        while line := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if not line.endswith(b"\n"):
                if len(line) > MAX_LINE_BYTES:
                    return Scan(path, f"line {number} is longer than {MAX_LINE_BYTES} bytes")
                if not writer:
                    return Scan(path, "it holds only a partial line")
                return Scan(path, None, writer, first_seq, expected - 1, "sha256:" + previous.decode(), signed, tail, torn=True)
            parsed = parse_line(line[:-1])
            if parsed is None or not parsed[4]:
                return Scan(path, f"line {number} is not an intact chain record")
            digest, prev, seq, line_writer, _, control = parsed
            if not writer:
                writer, first_seq = line_writer, seq
            elif line_writer != writer or seq != expected or prev != previous:
                return Scan(path, f"line {number} does not continue the chain of the lines before it")
            expected, previous = seq + 1, digest
            checkpoint = _signed_checkpoint(line[:-1], key, writer, seq, prev) if control else None
            if checkpoint is not None:
                signed, tail = Signed(seq, "sha256:" + digest.decode(), checkpoint[0], checkpoint[1]), 0
            else:
                tail += 1
    return Scan(path, None, writer, first_seq, expected - 1, "sha256:" + previous.decode() if writer else "", signed, tail)


def _signed_checkpoint(line: bytes, key: PublicKey, writer: str, seq: int, prev: bytes) -> tuple[dict[str, Any], str] | None:
    """(record, signed time) if the line is a checkpoint record the key signed for the line before it."""
    try:
        record = json.loads(record_of(line))
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("type") != "checkpoint":
        return None
    checkpoint = read_checkpoint(record, [key], "retention")
    if checkpoint is None or not checkpoint.signature_ok:
        return None
    if checkpoint.writer != writer or checkpoint.seq != seq - 1 or checkpoint.head != "sha256:" + prev.decode():
        return None
    return record, checkpoint.time


def kept_because(found: Scan, cutoff: float) -> str | None:
    """Why the file must stay (None: it may go). `cutoff`: epoch seconds; checkpoints signed
    at or before it are older than the retention period."""
    if found.problem is not None:
        return f"it is not an intact chain ({found.problem}): run `modelsign audit verify` on it"
    if found.signed is None:
        return ("it holds no checkpoint signed by the audit key (written without --audit-key, with another key, or changed), "
                "so its age cannot be known")
    signed_at = parse_time(found.signed.time)
    if signed_at is None:
        return f"its last signed checkpoint has an unreadable time {found.signed.time!r}"
    if signed_at.timestamp() > cutoff:
        return f"its last signed checkpoint is from {found.signed.time}, within the retention period"
    return None


def entry(found: Scan) -> dict[str, Any]:
    """The retention record's entry for a file removed on the strength of its signed checkpoint."""
    assert found.signed is not None
    tail = {"endHash": found.end_hash, "endSeq": found.end_seq, "lines": found.tail, "torn": found.torn}
    return {"basis": SIGNED, "checkpoint": found.signed.record, "file": found.path.name, "firstSeq": found.first_seq,
            "lastHash": found.signed.hash, "lastSeq": found.signed.seq, "unsignedTail": tail, "writer": found.writer}


def unproven(removed: dict[str, Any], keys: list[PublicKey], removed_at: Any, retention_seconds: Any) -> str | None:
    """Why a retention entry excuses nothing (None: it is proven): it must carry the checkpoint
    record that ends its range, signed by one of `keys`, whose signed time is at least
    `retention_seconds` before the removal (`removed_at`, the retention record's time)."""
    record = removed.get("checkpoint")
    if not isinstance(record, dict) or record.get("type") != "checkpoint":
        return "it carries no signed checkpoint (its writer had no audit key, or is older than this check)"
    checkpoint = read_checkpoint(record, keys, "retention record")
    if checkpoint is None or not checkpoint.signature_ok:
        return "the checkpoint it carries is not signed by the audit key"
    writer, last_seq, last_hash = removed.get("writer"), removed.get("lastSeq"), removed.get("lastHash")
    if checkpoint.writer != writer or type(last_seq) is not int or last_seq != checkpoint.seq + 1:
        return f"its range (writer {writer!r}, last seq {last_seq!r}) does not end at the checkpoint it carries"
    try:
        _, digest = seal(writer, last_seq, checkpoint.head, canonical_json(record))
    except CanonicalError:
        return "the checkpoint it carries cannot be encoded"
    if digest != last_hash:
        return "its last hash is not the hash of the checkpoint record it carries"
    signed_at, stamped = parse_time(checkpoint.time), parse_time(removed_at)
    if signed_at is None or stamped is None or type(retention_seconds) is not int or retention_seconds <= 0:
        return "its times or retention period are unreadable"
    if signed_at > stamped - timedelta(seconds=retention_seconds):
        return (f"its checkpoint was signed at {checkpoint.time}, less than the retention period ({retention_seconds}s) before the "
                f"removal at {removed_at}")
    return None


def excuses_checkpoint(removed: dict[str, Any], checkpoint: Checkpoint) -> bool:
    """Does a proven entry account for a signed checkpoint of its writer whose records are
    gone? Up to the entry's signed range; beyond it only a seal of exactly the end of the
    file it removed (a killed writer's tail, sealed by the next writer to start)."""
    last_seq = removed.get("lastSeq")
    if type(last_seq) is int and checkpoint.seq <= last_seq:
        return True
    tail = removed.get("unsignedTail")
    return (checkpoint.sealed_by is not None and isinstance(tail, dict) and tail.get("endSeq") == checkpoint.seq
            and tail.get("endHash") == checkpoint.head)
