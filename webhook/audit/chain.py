"""The chain line format.

Each line of a chain file is the canonical JSON (RFC 8785) of
    {"hash": H, "prev_hash": P, "record": R, "seq": N, "writer": W}
followed by "\n", where
    H = "sha256:" + hex(sha256(C({"prev_hash": P, "record": R, "seq": N, "writer": W})))
P is the previous line's H (64 zeros before seq 1), N counts from 1 per writer, and W is the
writer instance. Because the keys sort as hash < prev_hash < record < seq < writer, the
hashed bytes are the line itself with its `"hash":"…",` member removed, so a verifier hashes
bytes without re-encoding, and any reader can re-derive them from the parsed JSON.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterator


SCHEMA = "modelsign.audit/v1"
GENESIS = "sha256:" + "0" * 64
WRITER_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# A writer counts from 1 and never reaches this; a line claiming more is not a chain line
# (its number would otherwise make verify count or list 10**15 missing records).
MAX_SEQ_DIGITS = 16
MAX_SEQ = 2**53 - 1

_HASH_MEMBER = len('{"hash":"sha256:') + 64 + len('",')  # 82: bytes before `"prev_hash"`
_PREV_START = _HASH_MEMBER + len('"prev_hash":"sha256:')  # 102
_RECORD_START = _PREV_START + 64 + len('","record":')  # 177
_HASH_LEAD = b'{"hash":"sha256:'
_PREV_LEAD = b'","prev_hash":"sha256:'
_RECORD_LEAD = b'","record":{'
# The first key of the records verify reads in full: checkpoint, retention ("removed") and
# superseded ("response") records (keys are sorted, so the first key identifies them).
_CONTROL_STARTS = (b'{"checkpoint":', b'{"removed":', b'{"response":')


def seal(writer: str, seq: int, prev_hash: str, record: bytes) -> tuple[bytes, str]:
    """The line for `record` (its canonical JSON bytes) as entry `seq` of `writer`'s chain,
    and its hash. The envelope is spliced, not re-encoded: its other members are ASCII with
    nothing to escape, so the result is exactly C(envelope)."""
    body = b'{"prev_hash":"' + prev_hash.encode() + b'","record":' + record + b',"seq":' + str(seq).encode() + b',"writer":"' + writer.encode() + b'"}'
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return b'{"hash":"' + digest.encode() + b'",' + body[1:] + b"\n", digest


def scan_lines(data: bytes) -> Iterator[tuple[int, int, int, int, str, bytes, bytes, bool, bool] | tuple[int, int, int, int]]:
    """Every newline-terminated line of a chain file: (number, start, end, seq, writer, hash
    hex, prev_hash hex, intact, control) for a chain line, or (number, start, end, 0) for one
    that is not shaped like a chain line. `intact`: it hashes to its `hash`; `control`: its
    record is a checkpoint, retention or superseded record. Fixed offsets over one buffer, no regex and
    no copies of the lines: this is the inner loop of `audit verify`."""
    find, rfind, startswith, view, sha256 = data.find, data.rfind, data.startswith, memoryview(data), hashlib.sha256
    position, number, size = 0, 0, len(data)
    while position < size:
        end = find(b"\n", position, size)
        if end < 0:
            return
        number += 1
        if startswith(_HASH_LEAD, position) and startswith(_PREV_LEAD, position + 80) and startswith(_RECORD_LEAD, position + _PREV_START + 64):
            seq_at = rfind(b',"seq":', position, end)
            writer_at = find(b',"writer":"', seq_at, end) if seq_at > 0 else -1
            seq = data[seq_at + 7:writer_at] if writer_at > 0 else b""
            if (seq.isdigit() and not seq.startswith(b"0") and len(seq) <= MAX_SEQ_DIGITS and int(seq) <= MAX_SEQ
                    and data[end - 2:end] == b'"}'):
                digest = sha256(b"{")
                digest.update(view[position + _HASH_MEMBER:end])
                claimed = data[position + 16:position + 80]
                yield (number, position, end, int(seq), data[writer_at + 11:end - 2].decode("ascii", "replace"), claimed,
                       data[position + _PREV_START:position + _PREV_START + 64], digest.hexdigest().encode() == claimed,
                       startswith(_CONTROL_STARTS, position + _RECORD_START))
                position = end + 1
                continue
        yield (number, position, end, 0)
        position = end + 1


def parse_line(line: bytes) -> tuple[bytes, bytes, int, str, bool, bool] | None:
    """(hash hex, prev_hash hex, seq, writer, intact, control) of one chain line (without its
    newline), or None if it is not shaped like one."""
    for entry in scan_lines(line + b"\n"):
        if len(entry) == 4:
            return None
        _, _, _, seq, writer, claimed, prev, intact, control = entry  # type: ignore[misc]
        return claimed, prev, seq, writer, intact, control
    return None


def record_of(line: bytes) -> bytes:
    """The record JSON inside a chain line."""
    return line[_RECORD_START:line.rfind(b',"seq":')]
