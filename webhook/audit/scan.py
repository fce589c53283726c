"""The per-file work of `audit verify`: one chain file read, every line hashed, and what the
rest of verify needs from it, as plain picklable data (so it runs in worker processes, or on
a Dask cluster, and comes back the same).

Fast path: a file of chain lines only, which all belong to one writer, all hash to their
`hash`, and follow each other (seq + 1, prev_hash = the previous hash) is returned as a summary: its
first and last entries, its record and decision counts, and the hashes of the few seqs
verify looks up (the records right before and at control records, and the ends). Anything
else in a file, or `full=True`, returns every entry, and verify walks them one by one as
before. A file is summarised only when walking its entries would find nothing, so both paths
give the same verdicts (tests/test_audit_scale.py checks this on the tamper suite).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from webhook.audit.chain import (_CONTROL_STARTS, _HASH_LEAD, _HASH_MEMBER, _PREV_LEAD, _PREV_START, _RECORD_LEAD, _RECORD_START, MAX_SEQ,
                                 MAX_SEQ_DIGITS, record_of, scan_lines)

_DECISION_STARTS = (b'{"artifacts":', b'{"decision":')  # decision records' first keys, in canonical order

# An entry: (seq, writer, hash hex, prev_hash hex, intact, line number, is a decision record)
Entry = tuple[int, str, bytes, bytes, bool, int, bool]


@dataclass
class FileScan:
    name: str
    error: str | None = None  # the file could not be read (strerror)
    lines: int = 0
    size: int = 0
    # In line order: ("problem", kind, message, line) | ("external", line number, line bytes)
    # | ("control", record bytes, where, writer, seq): what verify handles as it reads
    events: list[tuple] = field(default_factory=list)
    torn: int = 0  # bytes after the last newline
    clean: bool = False  # summarised (see the module docstring)
    entries: list[Entry] = field(default_factory=list)  # every entry (not clean), or the first one (clean)
    writer: str | None = None
    count: int = 0
    decisions: int = 0
    last_seq: int = 0
    last_hash: bytes = b""
    hashes: dict[int, bytes] = field(default_factory=dict)  # clean: the hashes of the seqs verify looks up


def scan_file(path: str, full: bool = False, checkpoints_only: bool = False) -> FileScan:
    """Read and hash one chain file (see the module docstring): summarised if it can be
    (and `full` is not asked), else every entry."""
    result = FileScan(name=path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        result.error = exc.strerror or str(exc)
        return result
    result.size = len(data)
    if not (full or checkpoints_only):
        summary = _summarise(path, data)
        if summary is not None:
            return summary
    events, entries = result.events, result.entries
    startswith = data.startswith
    for entry in scan_lines(data):
        number, start, stop = entry[0], entry[1], entry[2]
        result.lines = number
        if len(entry) == 4:
            line = data[start:stop]
            if line.startswith(b'{"checkpoint":'):
                events.append(("external", number, line))
            elif line.strip():
                events.append(("problem", "edited", f"{path}:{number} is not a chain record (damaged or inserted)", number))
            continue
        if checkpoints_only:
            continue
        _, _, _, seq, writer, claimed, prev, intact, control = entry  # type: ignore[misc]
        if intact and control:
            events.append(("control", record_of(data[start:stop]), f"{path}:{number}", writer, seq))
        entries.append((seq, writer, claimed, prev, intact, number, startswith(_DECISION_STARTS, start + _RECORD_START)))
    tail = data[data.rfind(b"\n") + 1:]  # text after the last newline: a line cut mid-write
    result.torn = len(tail) if tail.strip() else 0
    result.count = len(entries)
    return result


def entries_of_summarised(scan: FileScan) -> list[Entry]:
    """Every entry of a file the fast path summarised, for a walk entry by entry (a chain
    with a damaged file): read and hashed again, so the walk judges the bytes as they are
    now, not offsets remembered from a read the file may have been replaced since."""
    return scan_file(scan.name, full=True).entries


def hashes_of(scan: FileScan, seqs: set[int]) -> dict[int, bytes]:
    """The hashes at `seqs` in a file the fast path summarised, for the look-ups its summary
    did not foresee: only if the file still summarises to the same chain (same first entry,
    same last hash: every line hashed and linked again), else none (the look-up then fails,
    and verify reports it), so a file swapped after the scan cannot answer for it."""
    try:
        data = Path(scan.name).read_bytes()
    except OSError:
        return {}
    again = _summarise(scan.name, data, wanted=frozenset(seqs))
    if again is None or again.last_hash != scan.last_hash or again.entries[:1] != scan.entries[:1]:
        return {}
    return {seq: again.hashes[seq] for seq in seqs if seq in again.hashes}


_HEAD = _HASH_LEAD + b"%s" + _PREV_LEAD + b"%s" + _RECORD_LEAD  # a line's first 177 bytes: its hash, the previous one


def _summarise(path: str, data: bytes, wanted: frozenset[int] = frozenset()) -> FileScan | None:
    """The fast path's inner loop: a file of one writer's intact, consecutive, linked chain
    lines and nothing else, checked with byte comparisons at fixed offsets (no JSON, no
    parsed fields but the first line's); None as soon as a line is anything else (then the
    general loop decides, and reports). `wanted`: seqs whose hashes to keep as well."""
    first_end = data.find(b"\n")
    if first_end < 0 or not data.endswith(b"\n"):
        return None
    seq_at = data.rfind(b',"seq":', 0, first_end)
    writer_at = data.find(b',"writer":"', seq_at, first_end) if seq_at > 0 else -1
    digits = data[seq_at + 7:writer_at] if writer_at > 0 else b""
    if (not digits.isdigit() or digits.startswith(b"0") or len(digits) > MAX_SEQ_DIGITS or data[first_end - 2:first_end] != b'"}'
            or int(digits) + len(data) > MAX_SEQ):  # every later line adds one, and is longer than a byte
        return None
    writer_bytes = data[writer_at + 11:first_end - 2]
    try:
        writer = writer_bytes.decode("ascii")
    except UnicodeDecodeError:
        return None
    suffix_end = b',"writer":"' + writer_bytes + b'"}'
    tail = b',"seq":%d' + suffix_end.replace(b"%", b"%%")  # a line's end, for its seq
    joint = tail + b"\n" + _HEAD  # one line's end, its newline and the next line's head: one comparison
    first_seq = seq = int(digits)
    first_prev = previous = data[_PREV_START:_PREV_START + 64]
    find, startswith, endswith, view = data.find, data.startswith, data.endswith, memoryview(data)
    opened = hashlib.sha256(b"{")  # every line's hashed bytes start with the "{" its hash member follows
    hashes: dict[int, bytes] = {}
    events: list[tuple] = []
    decisions = 0
    size, position, end = len(data), 0, first_end
    digest = opened.copy()
    digest.update(view[_HASH_MEMBER:end])
    claimed = digest.hexdigest().encode()
    if not startswith(_HEAD % (claimed, previous)):
        return None
    back = len(tail % seq) + 1  # from the start of the line before's tail to this line's start
    longer_at = 10 ** len(digits)  # the seq from which the tail is a digit longer
    while True:  # the fewest calls per line: hashing is most of the time (bench/bench_scale.py)
        record_at = position + _RECORD_START
        if startswith(_DECISION_STARTS, record_at):
            decisions += 1
        elif startswith(_CONTROL_STARTS, record_at):
            events.append(("control", data[record_at:end - len(suffix_end) - 7 - len(str(seq))], f"{path}:{seq - first_seq + 1}", writer, seq))
            if seq > first_seq:
                hashes[seq - 1] = previous
            hashes[seq] = claimed
        if wanted and seq in wanted:
            hashes[seq] = claimed
        previous, position = claimed, end + 1
        if position == size:
            break
        end = find(b"\n", position)
        digest = opened.copy()
        digest.update(view[position + _HASH_MEMBER:end])
        claimed = digest.hexdigest().encode()
        # The line before ends with its seq and writer, and this one starts with its own hash and a link to it.
        if not startswith(joint % (seq, claimed, previous), position - back):
            return None
        seq += 1
        if seq == longer_at:
            longer_at, back = longer_at * 10, back + 1
    if not endswith(tail % seq + b"\n"):
        return None
    number = seq - first_seq + 1
    seq += 1
    result = FileScan(name=path, lines=number, size=size, events=events, clean=True, writer=writer, count=seq - first_seq, decisions=decisions,
                      last_seq=seq - 1, last_hash=previous)
    first_hash = data[16:80]
    result.entries.append((first_seq, writer, first_hash, first_prev, True, 1, data.startswith(_DECISION_STARTS, _RECORD_START)))
    hashes[first_seq] = first_hash
    hashes[seq - 1] = previous
    result.hashes = hashes
    return result
