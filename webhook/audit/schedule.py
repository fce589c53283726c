"""Checks of each writer's signed checkpoint schedule (see checkpoints.py and writer.py).

Every checkpoint carries the writer's schedule, signed: at most `records` records between two
checkpoints (superseded records aside: the writer adds one right after a late batch), and no
record stamped more than `milliseconds` after the last checkpoint (before the first record
after a quiet period the writer signs a fresh checkpoint). A writer also checkpoints right
after its chain's first record, and signs a `final` checkpoint when it shuts down cleanly.

So, where a signed checkpoint is followed by more records than its schedule allows, or by a
record stamped later than it allows, a checkpoint that was due is missing: it was removed
(and the records after it rewritten or made up). Anything after a final checkpoint was
added, and so is anything after a seal (a checkpoint another writer signed for a writer that
was killed, at the end of what it had written). Only the tail after the last checkpoint is checked by time: everything before it is
vouched for by that checkpoint's signature, and clock steps there could only cause noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from webhook.audit.checkpoints import Checkpoint

SLACK = timedelta(seconds=2)  # for wall-clock steps between the writer's stamps


@dataclass(frozen=True)
class Finding:
    kind: str  # "missing-checkpoint" | "after-final" | "truncated"
    message: str
    seq: int


@dataclass(frozen=True)
class Tail:
    """A record after the chain's last checkpoint: its seq, time and whether it is a
    superseded record (which the schedule does not count)."""

    seq: int
    time: str | None
    superseded: bool


def parse_time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def check_chain(writer: str, first_seq: int, last_seq: int, in_chain: list[tuple[int, Checkpoint]], superseded: set[int],
                final_seq: int | None, tail: list[Tail], seal: Checkpoint | None = None) -> tuple[list[Finding], list[str]]:
    """`in_chain`: (record seq, checkpoint) of the chain's trusted checkpoint records, in seq
    order; `superseded`: seqs of its superseded records; `final_seq`: where the earliest final
    checkpoint known for this writer (from any source) must stand; `tail`: the records
    after the last of `in_chain`; `seal`: the earliest seal of this writer. Returns problems
    and warnings."""
    findings: list[Finding] = []
    warnings: list[str] = []
    if seal is not None and last_seq > seal.seq:
        findings.append(Finding("after-final", f"{last_seq - seal.seq} record(s) of {writer} follow seq {seal.seq}, where {seal.sealed_by} sealed "
                                f"its chain at {seal.time} ({seal.where}) after it was killed: a killed writer writes nothing more, so they "
                                "were added", seal.seq + 1))
    if not in_chain:
        return findings, warnings
    scheduled = [(seq, checkpoint) for seq, checkpoint in in_chain if checkpoint.schedule is not None]
    if not scheduled:
        warnings.append(f"the checkpoints of {writer} carry no schedule (an older modelsign wrote them): a removed checkpoint cannot be told "
                        "from a writer that stopped")
        return findings, warnings
    first_record_seq, first = in_chain[0]
    if first_seq == 1 and first.schedule is not None and first_record_seq > 2 + _superseded_between(superseded, 0, first_record_seq):
        findings.append(Finding("missing-checkpoint", f"the first checkpoint of {writer} is at seq {first_record_seq}, but a writer signs one right "
                                "after its first record: the records before it were rewritten or made up", first_record_seq))
    ends = [seq for seq, _ in in_chain[1:]] + [last_seq + 1]
    for (start, checkpoint), end in zip(in_chain, ends):
        schedule = checkpoint.schedule
        counted = end - start - 1 - _superseded_between(superseded, start, end)
        if schedule is not None and counted > schedule.records:
            until = f"the next one at seq {end}" if end <= last_seq else f"the chain's end at seq {last_seq}"
            findings.append(Finding("missing-checkpoint", f"{counted} records of {writer} follow its checkpoint at seq {start} before {until}; its "
                                    f"signed schedule allows at most {schedule.records}: a checkpoint that was due is missing (removed, and the "
                                    "records after it rewritten or made up)", start + schedule.records + 1))
    findings += _late_tail(writer, in_chain[-1], tail)
    findings += _after_final(writer, last_seq, final_seq, {seq for seq, checkpoint in in_chain if checkpoint.final})
    counted_tail = [t for t in tail if not t.superseded]
    if counted_tail and not findings and final_seq is None and seal is not None:
        warnings.append(f"{writer} stopped without its final checkpoint (killed?): the {len(counted_tail)} record(s) after its last checkpoint "
                        f"(seq {in_chain[-1][0]}) were sealed by {seal.sealed_by} at {seal.time}, and are protected by that seal from then on")
    elif counted_tail and not findings and final_seq is None:
        warnings.append(f"{len(counted_tail)} record(s) of {writer} after its last checkpoint (seq {in_chain[-1][0]}) are protected by the hash "
                        "chain only: the writer stopped without its final checkpoint (a crash or kill) and no writer started after it to "
                        "seal its tail, or that checkpoint was removed; compare with the checkpoint file or the witness")
    return findings, warnings


def _after_final(writer: str, last_seq: int, final_seq: int | None, finals_in_chain: set[int]) -> list[Finding]:
    """`final_seq`: where the final checkpoint record must be (the record after the seq it
    signs); nothing may follow it, and nothing else may stand in its place."""
    if final_seq is None:
        return []
    if last_seq > final_seq:
        return [Finding("after-final", f"{last_seq - final_seq} record(s) of {writer} follow its final checkpoint (seq {final_seq}, signed when "
                        "it shut down cleanly): a writer writes nothing after it, so they were added", final_seq + 1)]
    if last_seq == final_seq and final_seq not in finals_in_chain:
        return [Finding("after-final", f"seq {final_seq} of {writer} should be its final checkpoint (signed when it shut down cleanly, kept "
                        "apart from the chain) but holds another record: the checkpoint was replaced by an added record", final_seq)]
    if last_seq == final_seq - 1:
        return [Finding("truncated", f"the chain of {writer} ends at seq {last_seq}, without the final checkpoint record (seq {final_seq}) "
                        "that was signed for it", final_seq)]
    return []


def _superseded_between(superseded: set[int], start: int, end: int) -> int:
    return sum(1 for seq in superseded if start < seq < end)


def _late_tail(writer: str, last: tuple[int, Checkpoint], tail: list[Tail]) -> list[Finding]:
    record_seq, checkpoint = last
    if checkpoint.schedule is None or checkpoint.final:
        return []
    signed_at = parse_time(checkpoint.time)
    if signed_at is None:
        return []
    allowed = timedelta(milliseconds=checkpoint.schedule.milliseconds)
    for record in tail:
        stamped = parse_time(record.time) if not record.superseded else None
        if stamped is not None and stamped - signed_at > allowed + SLACK:
            return [Finding("missing-checkpoint", f"record seq {record.seq} of {writer} is stamped {record.time}, "
                            f"{(stamped - signed_at).total_seconds():.0f}s after its last checkpoint (seq {record_seq}, {checkpoint.time}); its signed "
                            f"schedule signs one at least every {allowed.total_seconds():g}s before writing on: a checkpoint that was due is "
                            "missing (removed, and the records after it rewritten or made up)", record.seq)]
    return []
