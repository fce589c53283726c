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
  missing-checkpoint  a checkpoint the writer's signed schedule made due is not there
                    (schedule.py): the chain was cut back to an earlier checkpoint and
                    rewritten or continued
  after-final       records after the checkpoint a writer signed when it shut down, or
                    after the seal another writer signed for it once it was killed
  witness           a witness tag that cannot be read, or holds another checkpoint than its
                    name says (witness.py)
  superseded        a "superseded" record that does not name the records right before it

Without an audit key nothing is verified: the status is UNVERIFIED (exit 1), never INTACT,
and no checkpoint counts as verified. Records answered otherwise than they say (late
records, followed by a "superseded" record) are listed as pairs: information, not damage.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from signer import PublicKey, SigningKey
from webhook.audit import verify_state
from webhook.audit.chain import GENESIS, record_of, scan_lines
from webhook.audit.checkpoints import Checkpoint, read_checkpoint
from webhook.audit.retention import excuses_checkpoint, unproven
from webhook.audit.scan import FileScan, entries_of_summarised, hashes_of, scan_file
from webhook.audit.schedule import Tail, check_chain
from webhook.audit.witness import Witnessed, witness_tag

MAX_PROBLEMS = 1000
NOT_VERIFIED = "integrity not verified: no audit key given"


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
    # Files summarised by the fast path (scan.py), until the chain is walked: (first entry, scan)
    segments: list[tuple[tuple[int, bytes, bytes, bool, str, int], FileScan]] = field(default_factory=list)
    summarised: bool = False  # walked from the summaries: `entries` holds only the first entry

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
    keyed: bool = False  # an audit key was given: signatures were checked
    pairs: list[dict[str, Any]] = field(default_factory=list)  # late records and the superseded records naming them
    # per writer: (record seq, checkpoint) of its in-chain checkpoint records; seqs of its superseded records
    in_chain: dict[str, list[tuple[int, Checkpoint]]] = field(default_factory=dict)
    superseded: dict[str, list[tuple[int, dict[str, Any], str]]] = field(default_factory=dict)
    external: int = 0  # checkpoints read from checkpoint files or the witness
    incremental: dict[str, Any] = field(default_factory=dict)  # with a verify state: what was taken from it and what was read

    @property
    def status(self) -> str:
        return "DAMAGED" if self.problems else "INTACT" if self.keyed else "UNVERIFIED"

    @property
    def ok(self) -> bool:
        """Verified and undamaged: only with an audit key."""
        return self.status == "INTACT"

    @property
    def verified_checkpoints(self) -> int:
        return sum(1 for c in self.checkpoints if c.signature_ok)

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def status_fields(self) -> dict[str, Any]:
        """What every rendering says about the result: verified only with the audit key."""
        return {"status": self.status, "ok": self.ok, "verified": self.keyed, "note": None if self.keyed else NOT_VERIFIED}

    def to_json(self) -> dict[str, Any]:
        return {
            **self.status_fields(), "records": self.records,
            "writers": [c.summary() for c in sorted(self.chains.values(), key=lambda c: c.writer)],
            "checkpoints": {"total": len(self.checkpoints), "verified": self.verified_checkpoints},
            "problems": [p.__dict__ for p in self.problems], "warnings": self.warnings, "superseded": self.pairs,
            **({"incremental": self.incremental} if self.incremental else {}),
        }


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories contribute their *.jsonl files."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    return found


def scan_all(names: list[str], *, full: bool = False, jobs: int = 1, dask_client: Any = None) -> list[FileScan]:
    """scan_file over every file: here, on `jobs` worker processes, or on a Dask cluster
    (`dask_client`, a distributed.Client). The results are the same data, in the same order."""
    if dask_client is not None:
        return dask_client.gather(dask_client.map(scan_file, names, full=full, pure=False))
    if jobs > 1 and len(names) > 1:
        import concurrent.futures
        import functools
        import multiprocessing

        context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(names)), mp_context=context) as pool:
            return list(pool.map(functools.partial(scan_file, full=full), names))
    return [scan_file(name, full=full) for name in names]


def verify(paths: Iterable[Path], keys: list[PublicKey], *, checkpoint_files: Iterable[Path] = (), witness: Iterable[Witnessed] = (),
           jobs: int = 1, dask_client: Any = None, fast: bool = True, state: Path | None = None, state_key: SigningKey | None = None) -> VerifyReport:
    """Check every chain in `paths` against its own records and every signed checkpoint:
    in the chains, in `checkpoint_files` (kept apart from the chains) and in `witness`
    (read from the OCI witness by witness.read_witness). Files are read and hashed on `jobs`
    processes or on `dask_client`'s cluster; `fast=False` walks every entry even of files
    the fast path summarises (the same verdicts, for checking that). `state` (signed with
    `state_key`, the audit key): take the files an earlier verify summarised from it, read
    only the rest, and remember this run's (verify_state.py)."""
    report = VerifyReport(keyed=bool(keys))
    retention: list[dict[str, Any]] = []
    names = [str(p) for p in expand(paths)]
    known = verify_state.Remembered()
    if state is not None and state_key is not None and fast:
        known = verify_state.remembered(state, state_key)
        if known.problem:
            report.warnings.append(known.problem)
    reused = {name: scan for name in names if (scan := verify_state.reusable(known, name)) is not None}
    read = dict(zip((n for n in names if n not in reused), scan_all([n for n in names if n not in reused], full=not fast, jobs=jobs,
                                                                          dask_client=dask_client)))
    scans = [reused.get(name) or read[name] for name in names]
    for scan in scans:
        _absorb(scan, keys, report, retention)
    if state is not None and state_key is not None and fast:
        kept = verify_state.save(state, state_key, scans)
        report.incremental = {"state": str(state), "stateFrom": known.created, "filesReused": len(reused), "filesRead": len(read),
                              "recordsSkipped": sum(s.count for s in reused.values()), "recordsRead": sum(s.count for s in read.values()),
                              "filesRemembered": kept}
    for path in checkpoint_files:
        _absorb(scan_file(str(path), checkpoints_only=True), keys, report, retention, checkpoints_only=True)
    for entry in witness:
        _witnessed_checkpoint(entry, keys, report)
    for chain in report.chains.values():
        _walk(chain, report)
    _check_against_checkpoints(report)
    trusted = _trusted_retention(report, retention, keys)
    _check_chain_starts(report, trusted)
    _check_missing_chains(report, trusted)
    _check_coverage(report, keys)
    _check_superseded(report)
    _check_schedules(report)
    if not keys:
        report.warnings.append(f"{NOT_VERIFIED}: no checkpoint signature was checked, so whoever can write the trail could have written "
                               "all of it (pass --key AUDIT_PUB)")
    if not report.checkpoints:
        report.warnings.append("no checkpoints found: a cut-off tail or a consistently rewritten file cannot be detected "
                               "(run the webhook with --audit-key, and keep the checkpoint file apart from the chains)")
    elif not report.external:
        report.warnings.append("only the checkpoints inside the chains were used: a chain cut back to one of them and continued from there "
                               "cannot be told from a writer that crashed (pass --checkpoints FILE, kept apart from the chains, or --witness)")
    return report


def _absorb(scan: FileScan, keys: list[PublicKey], report: VerifyReport, retention: list[dict[str, Any]], *, checkpoints_only: bool = False) -> None:
    """What one file's scan adds to the report, in the order its lines came."""
    name = scan.name
    if scan.error is not None:
        report.add(Problem("missing-chain", f"cannot read {name}: {scan.error}", file=name))
        return
    external = 0
    for event in scan.events:
        if event[0] == "external":
            external += _external_checkpoint(event[2], keys, report, f"{name}:{event[1]}")
        elif event[0] == "problem":
            report.add(Problem(event[1], event[2], file=name, line=event[3]))
        elif not checkpoints_only:
            _, raw, where, writer, seq = event
            _chain_control_record(raw, keys, report, retention, where, writer, seq)
    if checkpoints_only:
        report.external += external
    elif external:
        report.warnings.append(f"{name} holds {external} checkpoint line(s) among the chain files: whoever can rewrite the chains can drop "
                               "lines from it too, so it is no safer than the checkpoints inside the chains")
    if scan.torn:
        torn = scan.torn
        report.add(Problem("truncated", f"{name} ends in a partial line ({torn} bytes without a newline): cut mid-record", file=name, line=scan.lines + 1))
    if checkpoints_only or not scan.entries:
        return
    if scan.clean:
        first = scan.entries[0]
        chain = report.chains.setdefault(scan.writer or first[1], Chain(scan.writer or first[1]))
        chain.files.append(name)
        chain.segments.append(((first[0], first[2], first[3], first[4], name, first[5]), scan))
        chain.decisions += scan.decisions
        return
    _add_entries(report, name, scan.entries)


def _add_entries(report: VerifyReport, name: str, parsed: list) -> None:
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
    """Checkpoints and tail seals (signature checked), retention and superseded records inside
    a chain. A retention record is remembered with the chain, seq and time that carry it: it
    only counts once a signed checkpoint covers it and its entries are proven (see
    _trusted_retention)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return
    if not isinstance(record, dict):
        return
    if record.get("type") == "retention":
        retention += [{**r, "_by": writer, "_at": seq, "_time": record.get("time"), "_retention": record.get("retentionSeconds")}
                      for r in record.get("removed") or [] if isinstance(r, dict)]
    elif record.get("type") == "superseded":
        report.superseded.setdefault(writer, []).append((seq, record, where))
    elif record.get("type") == "checkpoint":
        checkpoint = read_checkpoint(record, keys, where)
        if checkpoint is None or not _note_checkpoint(checkpoint, keys, report):
            return
        if checkpoint.writer != writer or checkpoint.seq != seq - 1:  # a writer signs the record right before its checkpoint
            report.add(Problem("bad-checkpoint", f"the checkpoint record at {where} (seq {seq} of {writer}) signs seq {checkpoint.seq} of "
                               f"{checkpoint.writer}, not the record before it: it was copied there", writer=writer, seq=seq))
            return
        report.in_chain.setdefault(writer, []).append((seq, checkpoint))
    elif record.get("type") == "tail-seal":
        checkpoint = read_checkpoint(record, keys, where)
        if checkpoint is None or checkpoint.sealed_by != writer:
            report.add(Problem("bad-checkpoint", f"the tail seal at {where} (seq {seq} of {writer}) is not one {writer} signed", writer=writer, seq=seq))
            return
        _note_checkpoint(checkpoint, keys, report)


def _external_checkpoint(line: bytes, keys: list[PublicKey], report: VerifyReport, where: str) -> int:
    """1 if the line is a checkpoint that counts (0 otherwise, and a problem if it is not one)."""
    try:
        checkpoint = read_checkpoint(json.loads(line), keys, where)
    except ValueError:
        checkpoint = None
    if checkpoint is None:
        report.add(Problem("bad-checkpoint", f"{where} is not a readable checkpoint", file=where.rsplit(":", 1)[0]))
        return 0
    return int(_note_checkpoint(checkpoint, keys, report))


def _witnessed_checkpoint(entry: Witnessed, keys: list[PublicKey], report: VerifyReport) -> None:
    if entry.line is None:
        report.add(Problem("witness", entry.problem or f"{entry.where} could not be read"))
        return
    try:
        checkpoint = read_checkpoint(json.loads(entry.line), keys, entry.where)
    except ValueError:
        checkpoint = None
    if checkpoint is None:
        report.add(Problem("witness", f"{entry.where} does not hold a readable checkpoint"))
        return
    if witness_tag(checkpoint.writer, checkpoint.seq) != entry.tag:
        report.add(Problem("witness", f"{entry.where} holds the checkpoint of writer {checkpoint.writer} seq {checkpoint.seq}, whose tag is "
                           f"{witness_tag(checkpoint.writer, checkpoint.seq)}: the tag was moved or the content forged",
                           writer=checkpoint.writer, seq=checkpoint.seq))
        return
    report.external += _note_checkpoint(checkpoint, keys, report)


def _note_checkpoint(checkpoint: Checkpoint, keys: list[PublicKey], report: VerifyReport) -> bool:
    """Keep a checkpoint that counts: signed by the audit key, or any without a key (then
    taken as written, and nothing is called verified)."""
    if keys and not checkpoint.signature_ok:
        report.add(Problem("bad-checkpoint", f"checkpoint at {checkpoint.where} (writer {checkpoint.writer}, seq {checkpoint.seq}) "
                           f"is not signed by the audit key (key id {checkpoint.key_id or 'none'})", writer=checkpoint.writer, seq=checkpoint.seq))
        return False
    report.checkpoints.append(checkpoint)
    return True


class _SummarisedHashes(dict):
    """seq -> hash hex of a chain walked from file summaries: the seqs are first..last without
    a gap; hashes the summaries did not keep are read from their file when asked for."""

    def __init__(self, segments: list[tuple[tuple, FileScan]]) -> None:
        super().__init__()
        self._ranges = [(scan.entries[0][0], scan.last_seq, scan) for _, scan in segments]
        for _, scan in segments:
            self.update(scan.hashes)

    def _load(self, seq: object) -> bytes | None:
        if not isinstance(seq, int):
            return None
        for first, last, scan in self._ranges:
            if first <= seq <= last:
                found = hashes_of(scan, {seq})
                self.update(found)
                return found.get(seq)
        return None

    def __contains__(self, seq: object) -> bool:
        return dict.__contains__(self, seq) or any(first <= seq <= last for first, last, _ in self._ranges) if isinstance(seq, int) else False

    def __getitem__(self, seq: int) -> bytes:
        if dict.__contains__(self, seq):
            return dict.__getitem__(self, seq)
        found = self._load(seq)
        if found is None:
            raise KeyError(seq)
        return found

    def get(self, seq: object, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[seq]  # type: ignore[index]
        except KeyError:
            return default


def _walk_summarised(chain: Chain, report: VerifyReport) -> bool:
    """Walk a chain all of whose files the fast path summarised, if they follow each other
    (each file starts at the seq after the previous one's last, linked to its hash): then
    walking every entry would find nothing. False (nothing changed) otherwise."""
    segments = sorted(chain.segments, key=lambda item: item[0][0])
    for (_, before), (first, _) in zip(segments, segments[1:]):
        if first[0] != before.last_seq + 1 or first[2] != before.last_hash:
            return False
    first_seq_of = {scan.name: first[0] for first, scan in segments}
    chain.files.sort(key=lambda f: first_seq_of.get(f, 0))
    first, last = segments[0][0], segments[-1][1]
    chain.entries = [first]
    chain.summarised = True
    chain.hashes = _SummarisedHashes(segments)
    chain.records = sum(scan.count for _, scan in segments)
    report.records += chain.records
    chain.first_seq, chain.first_prev = first[0], first[2]
    if first[0] == 1 and first[2] != GENESIS.removeprefix("sha256:").encode():
        report.add(Problem("edited", f"seq 1 of {chain.writer} does not start from the genesis hash", writer=chain.writer, file=first[4], line=first[5], seq=1))
    chain.last_seq = last.last_seq
    chain.head = "sha256:" + last.last_hash.decode()
    return True


def _walk(chain: Chain, report: VerifyReport) -> None:
    if chain.segments:
        if not chain.entries and _walk_summarised(chain, report):
            return
        for _, scan in chain.segments:  # mixed with other files, or not in order: every entry, as before
            chain.entries += [(seq, claimed, prev, intact, scan.name, number)
                              for seq, _, claimed, prev, intact, number, _ in entries_of_summarised(scan)]
        chain.segments = []
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
    ordered: list[int] | None = None  # the seqs present, sorted: made at the first gap
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
            if ordered is None:
                ordered = sorted(present)
            missing, first_missing, last_missing = _gap(ordered, present, expected, seq)
            if missing:
                chain.missing += missing
                span = f"seq {first_missing}" if missing == 1 else f"seq {first_missing}-{last_missing}"
                report.add(Problem("deleted", f"{span} of {writer} missing before {where} ({missing} record(s))", writer=writer, file=name, line=number, seq=seq))
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


def _gap(ordered: list[int], present: dict[int, bytes], start: int, stop: int) -> tuple[int, int, int]:
    """(how many, first, last) of the seqs in [start, stop) that are not present, counted
    without listing them: a line may claim a seq far ahead (up to 2**53), and listing the
    gap would take the machine's memory. Work is bounded by the seqs present in the gap."""
    inside = bisect.bisect_left(ordered, stop) - bisect.bisect_left(ordered, start)
    missing = (stop - start) - inside
    if missing == 0:
        return 0, 0, 0
    first = start
    while first in present:
        first += 1
    last = stop - 1
    while last in present:
        last -= 1
    return missing, first, last


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
        elif checkpoint.seq in hashes:
            found = hashes.get(checkpoint.seq)  # None: a summarised file no longer reads as it did (hashes_of)
            if found is None:
                report.add(Problem("edited", f"record seq {checkpoint.seq} of {checkpoint.writer} could not be read again as verify first read it: "
                                   "its file changed while verify ran; run verify again on a copy that nothing writes to",
                                   writer=checkpoint.writer, seq=checkpoint.seq))
            elif "sha256:" + found.decode() != checkpoint.head:
                report.add(Problem("rewritten", f"record seq {checkpoint.seq} of {checkpoint.writer} differs from the signed checkpoint ({checkpoint.where}): "
                                   "the chain was rewritten", writer=checkpoint.writer, seq=checkpoint.seq))
            elif checkpoint.signature_ok:  # only a checked signature makes a checkpoint verified
                chain.checkpoints_verified += 1
                chain.last_checkpoint_seq = max(chain.last_checkpoint_seq or 0, checkpoint.seq)
    for writer, checkpoint in beyond.items():
        end = report.chains[writer].last_seq or 0
        report.add(Problem("truncated", f"the chain of {writer} ends at seq {end}, but a signed checkpoint ({checkpoint.where}, "
                           f"{checkpoint.time}) covers seq {checkpoint.seq}: {checkpoint.seq - end} record(s) cut off", writer=writer, seq=checkpoint.seq))


def _trusted_retention(report: VerifyReport, retention: list[dict[str, Any]], keys: list[PublicKey]) -> list[dict[str, Any]]:
    """Retention records count only where a verified signed checkpoint of the chain that
    carries them covers them (otherwise anyone could write one to excuse a deletion), and
    each entry only if the signed checkpoint it carries is older than the retention period
    at the record's time (otherwise whoever backdated a file's mtime got it removed).
    Without keys nothing is signed, so they are taken as written (and verify says so)."""
    if not keys:
        return retention
    trusted = []
    for entry in retention:
        carrier = report.chains.get(str(entry.get("_by")))
        where = f"a retention record of {entry.get('_by')} (seq {entry.get('_at')}) removing {entry.get('file')!r}"
        if carrier is None or (carrier.last_checkpoint_seq or 0) < int(entry.get("_at") or 0):
            report.warnings.append(f"{where} is not covered by a signed checkpoint, so it excuses nothing")
        elif (reason := unproven(entry, keys, entry.get("_time"), entry.get("_retention"))) is not None:
            report.warnings.append(f"{where} excuses nothing: {reason}")
        else:
            trusted.append(entry)
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
    """Signed checkpoints of writers whose records are gone: excused only by a (trusted)
    retention record that removed what they cover (retention.excuses_checkpoint)."""
    reported: set[str] = set()
    for checkpoint in report.checkpoints:
        chain = report.chains.get(checkpoint.writer)
        if chain is not None and chain.entries:
            continue
        if checkpoint.writer in reported or any(r.get("writer") == checkpoint.writer and excuses_checkpoint(r, checkpoint)
                                                for r in retention):
            continue
        reported.add(checkpoint.writer)
        report.add(Problem("missing-chain", f"a signed checkpoint ({checkpoint.where}, {checkpoint.time}) covers seq {checkpoint.seq} of writer "
                           f"{checkpoint.writer}, but none of its records were given (deleted, or pass its files too)", writer=checkpoint.writer, seq=checkpoint.seq))


def _check_coverage(report: VerifyReport, keys: list[PublicKey]) -> None:
    """A chain with no signed checkpoint at all, where the audit key is known, is a problem:
    a writer signs right after its first record, so anyone could have written such a chain.
    (What follows a chain's last checkpoint is schedule.py's business.)"""
    if not keys:
        return
    for chain in report.chains.values():
        if chain.entries and chain.last_checkpoint_seq is None:
            report.add(Problem("unsigned", f"writer {chain.writer} has {chain.records} record(s) ({chain.decisions} decision(s)) and no signed "
                               "checkpoint: writers sign their chain's start at once, so these cannot be told from made-up records",
                               writer=chain.writer, file=chain.files[0] if chain.files else None))


def _check_superseded(report: VerifyReport) -> None:
    """A superseded record names late records of its own chain, written in the batch just
    before it (after the chain's previous checkpoint). Each such pair is listed."""
    for writer, found in report.superseded.items():
        chain = report.chains.get(writer)
        checkpoints = sorted(seq for seq, _ in report.in_chain.get(writer, []))
        for seq, record, where in found:
            since = max((c for c in checkpoints if c < seq), default=0)
            named = record.get("supersedes") if isinstance(record.get("supersedes"), list) else []
            for entry in named:
                late_seq = entry.get("seq") if isinstance(entry, dict) else None
                present = chain.hashes.get(late_seq) if chain is not None and isinstance(late_seq, int) else None
                if (not isinstance(entry, dict) or entry.get("writer") != writer or not isinstance(late_seq, int) or not since < late_seq < seq
                        or present is None or "sha256:" + present.decode() != entry.get("hash")):
                    report.add(Problem("superseded", f"the superseded record at {where} names {entry!r}, which is not a record of {writer} "
                                       "written just before it", writer=writer, seq=seq))
                    continue
                report.pairs.append({"writer": writer, "seq": late_seq, "hash": entry.get("hash"), "decisionId": entry.get("decisionId"),
                                     "supersededBy": f"{writer}#{seq}", "response": record.get("response")})


def _check_schedules(report: VerifyReport) -> None:
    """Each chain against the checkpoint schedule its writer signed (schedule.py)."""
    finals: dict[str, int] = {}
    seals: dict[str, Checkpoint] = {}  # per writer, its earliest seal
    for checkpoint in report.checkpoints:
        if checkpoint.final:
            finals[checkpoint.writer] = min(finals.get(checkpoint.writer, checkpoint.seq + 1), checkpoint.seq + 1)
        if checkpoint.sealed_by is not None and (checkpoint.writer not in seals or checkpoint.seq < seals[checkpoint.writer].seq):
            seals[checkpoint.writer] = checkpoint
    tails = _tail_records(report)
    for chain in report.chains.values():
        if not chain.entries or chain.first_seq is None or chain.last_seq is None:
            continue
        in_chain = sorted(report.in_chain.get(chain.writer, []), key=lambda item: item[0])
        superseded = {seq for seq, _, _ in report.superseded.get(chain.writer, [])}
        findings, warnings = check_chain(chain.writer, chain.first_seq, chain.last_seq, in_chain, superseded, finals.get(chain.writer),
                                         tails.get(chain.writer, []), seals.get(chain.writer))
        for finding in findings:
            report.add(Problem(finding.kind, finding.message, writer=chain.writer, seq=finding.seq))
        report.warnings += warnings


def _tail_records(report: VerifyReport) -> dict[str, list[Tail]]:
    """The records after each chain's last in-chain checkpoint, with their times: the lines
    are read again (only the files that hold them), as the first pass keeps no record text."""
    wanted: dict[str, dict[int, str]] = {}  # file -> line number -> writer
    after: dict[str, tuple[str, int]] = {}  # file of a summarised chain -> (writer, its last checkpoint's seq)
    for chain in report.chains.values():
        checkpoints = report.in_chain.get(chain.writer)
        if not checkpoints:
            continue
        last = max(seq for seq, _ in checkpoints)
        if chain.summarised:  # one writer per file, every entry intact: the records are those past `last`
            after.update((scan.name, (chain.writer, last)) for _, scan in chain.segments if last < scan.last_seq)
            continue
        for seq, _, _, intact, name, number in chain.entries:
            if seq > last and intact:
                wanted.setdefault(name, {})[number] = chain.writer
    tails: dict[str, list[Tail]] = {}
    for name in sorted(set(wanted) | set(after)):
        numbers = wanted.get(name, {})
        writer_after, last = after.get(name, ("", 0))
        try:
            data = Path(name).read_bytes()
        except OSError:
            continue
        for entry in scan_lines(data):
            if len(entry) == 4:
                continue
            if entry[0] in numbers:
                writer = numbers[entry[0]]
            elif writer_after and entry[3] > last and entry[4] == writer_after:  # type: ignore[misc]
                writer = writer_after
            else:
                continue
            try:
                record = json.loads(record_of(data[entry[1]:entry[2]]))
            except ValueError:
                continue
            if isinstance(record, dict):
                tails.setdefault(writer, []).append(Tail(seq=entry[3], time=record.get("time"), superseded=record.get("type") == "superseded"))
    for found in tails.values():
        found.sort(key=lambda t: t.seq)
    return tails
