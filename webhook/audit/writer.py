"""The durable chain writer: one per process, its own chain, group commit.

`append(record)` returns once the record's line is written durably (O_DSYNC). Callers queue
records; one thread takes what is queued, seals it into the chain (seq, prev_hash, hash) and
writes it with one synchronous write(): concurrent requests share the sync. If the write
fails, the file is cut back to its last durable length, the chain state is not advanced,
and every caller in that batch gets AuditWriteError (the webhook then denies).

Each record's slot moves, under the writer's lock, pending -> claimed (taken into a batch)
-> done. A caller that gives up waiting turns a pending slot into abandoned (never written)
or a claimed one into late: if a late record's write then succeeds, the writer appends, as
the very next record, a "superseded" record naming it and the answer actually given (a
deny), so the trail never says "allowed" for a review that was denied.

Checkpoints follow a schedule that the writer signs into each of them (checkpoints.py):
right after the chain's first record, then before the `checkpoint_records`+1-th record
since the last one (batches are cut at that boundary), within `checkpoint_seconds` while
records are pending, before taking a batch after a quiet period longer than that (so no
record is stamped later than `checkpoint_seconds` after the last checkpoint), at each
rotation, and a `final` one at a clean shutdown. A due checkpoint that cannot be written
stops further records (they fail, and the webhook denies) until it can.

Files: for `--audit-log DIR/audit.jsonl` the chain segments are
`DIR/audit-<writer>-<n>.jsonl` (n from 000001; a new one after `rotate_bytes` or
`rotate_seconds`, the chain continuing across them). Signed checkpoints also go, as lines,
to `checkpoint_path` when one is set (the server always sets one: settings.py), to stdout
when streaming, and to the OCI witness when configured.

Retention and tail seals run on their own thread (at start and after each rotation), never
on the writer thread: a file is removed only when the audit key vouches that it is older
than the retention period (retention.py), and a "retention" record, durable first, says
what went. At start, the writer also seals the unsigned tail of each writer that was
killed (its last file unlocked and ending after its last checkpoint): a signed checkpoint
of that writer's head, `sealedBy` this writer, in this chain, the checkpoint file and the
witness, so the tail cannot be rewritten from then on.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from signer import ModelsignError, SigningKey
from webhook.audit.canonical import CanonicalError, canonical_json
from webhook.audit.chain import GENESIS, SCHEMA, WRITER_ID, parse_line, seal
from webhook.audit.checkpoints import Schedule, signed_checkpoint, signed_seal
from webhook.audit.deadlines import watch as watch_deadline
from webhook.audit.retention import MTIME, Scan, entry, kept_because, scan
from webhook.audit.witness import WitnessPusher, WitnessSettings
from webhook.logs import write_line

DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
DEFAULT_ROTATE_SECONDS = 24 * 3600.0
DEFAULT_RETENTION_DAYS = 90.0
DEFAULT_CHECKPOINT_RECORDS = 1000
DEFAULT_CHECKPOINT_SECONDS = 60.0
MAX_BATCH = 4096
CLAIMED_GRACE_SECONDS = 1.0  # after the timeout, for a record whose write had already begun
APPEND_TIMEOUT_SECONDS = 2.0  # the API server's webhook timeout (10 s) must still leave room
CHECKPOINT_RETRY_SECONDS = 0.5  # a due checkpoint that failed is tried again this often while idle
RETENTION_APPEND_SECONDS = 30.0  # the retention thread waits this long for its record (nobody's answer waits on it)
RETENTION_BATCH = 64  # files per retention record
PRUNE_CLOSE_SECONDS = 5.0  # close() lets a running retention pass finish this long
LATE_REASON = "audit-record-late"


class AuditWriteError(ModelsignError):
    """A record could not be made durable."""

    late = False


class AuditRecordLate(AuditWriteError):
    """The caller stopped waiting after the record was taken into a write: it may still be
    written, and is then followed by a "superseded" record saying the review was denied."""

    late = True


_second_text: tuple[int, str] = (-1, "")


def utc_now(now: float | None = None) -> str:
    """RFC 3339, UTC, microseconds: `2026-11-23T07:40:00.123456Z` (the second's text is
    formatted once per second: this runs for every record)."""
    global _second_text
    now = time.time() if now is None else now
    second = int(now)
    if second != _second_text[0]:
        _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_text[1]}.{int((now - second) * 1_000_000):06d}Z"


def new_writer_id() -> str:
    """host.pid.start.random: unique per process start, so every process keeps its own chain."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:60] or "host"
    return f"{host}.{os.getpid()}.{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.{secrets.token_hex(3)}"


@dataclass(frozen=True)
class AuditSettings:
    path: Path  # DIR/STEM.jsonl: names the directory and the file stem
    key: SigningKey | None = None  # signs checkpoints; without it there are none
    checkpoint_path: Path | None = None  # the checkpoint file (None: checkpoints only in the chain, on stdout, at the witness)
    checkpoint_records: int = DEFAULT_CHECKPOINT_RECORDS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    rotate_bytes: int = DEFAULT_ROTATE_BYTES
    rotate_seconds: float = DEFAULT_ROTATE_SECONDS
    retention_days: float = DEFAULT_RETENTION_DAYS
    stdout: bool = False  # also stream every durable line to stdout (Fluent Bit, Loki...)
    witness: WitnessSettings | None = None  # also push every checkpoint to this OCI repository

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def stem(self) -> str:
        return self.path.name.removesuffix(".jsonl")

    @property
    def schedule(self) -> Schedule:
        return Schedule(records=self.checkpoint_records, milliseconds=max(1, int(round(self.checkpoint_seconds * 1000))))


@dataclass(frozen=True)
class Receipt:
    writer: str
    seq: int
    hash: str


PENDING, CLAIMED, DONE, ABANDONED, LATE = "pending", "claimed", "done", "abandoned", "late"


@dataclass
class _Slot:
    record: bytes  # canonical JSON
    decision_id: str | None = None  # named by a "superseded" record if this one turns out late
    done: threading.Event | None = None  # a thread waits on this...
    future: asyncio.Future[Receipt] | None = None  # ...or a coroutine awaits this
    receipt: Receipt | None = None
    error: str | None = None
    state: str = PENDING  # changed only under the writer's lock


def _timed_out(timeout: float) -> AuditWriteError:
    return AuditWriteError(f"the audit record was not durable within {timeout:g}s (storage too slow or stuck); it will not be written",
                           hint="free space on, or repair, the audit log volume")


def _late(timeout: float) -> AuditRecordLate:
    return AuditRecordLate(f"the audit record was not durable within {timeout + CLAIMED_GRACE_SECONDS:g}s (storage too slow or stuck); "
                           "if it is still written, the record after it says this review was denied",
                           hint="free space on, or repair, the audit log volume")


def _settle(results: list[tuple[asyncio.Future[Receipt], Receipt | None, str | None]]) -> None:
    """On the event loop: complete the futures of one batch."""
    for future, receipt, error in results:
        if future.done():
            continue  # the awaiting request gave up (timeout)
        if error is not None:
            future.set_exception(AuditWriteError(error, hint="free space on, or repair, the audit log volume"))
        else:
            future.set_result(receipt)  # type: ignore[arg-type]


class AuditWriter:
    def __init__(self, settings: AuditSettings, *, writer_id: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.writer_id = writer_id or new_writer_id()
        if not WRITER_ID.fullmatch(self.writer_id):
            raise ModelsignError(f"audit writer id {self.writer_id!r} may only use letters, digits, '.', '_' and '-'")
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._closing = False
        self._seq = 0
        self._head = GENESIS
        self._segment = 0
        self._fd = -1
        self._offset = 0
        self._segment_opened = 0.0
        self._since_checkpoint = 0  # records since the last checkpoint (superseded records aside)
        self._last_checkpoint = clock()  # wall clock, as record times are: what verify compares
        self._last_checkpoint_record = 0  # seq of the chain's last checkpoint record
        self._checkpointed = False
        self._owed: list[dict[str, Any]] = []  # late records written, their "superseded" record not yet
        self._witness = WitnessPusher(settings.witness, warn=_warn) if settings.witness and settings.key else None
        self._pruner: threading.Thread | None = None
        self._prune_lock = threading.Lock()
        self._stop_pruning = threading.Event()
        try:
            settings.directory.mkdir(parents=True, exist_ok=True)
            self._open_segment()
        except OSError as exc:
            raise AuditWriteError(f"cannot open the audit log in {settings.directory}: {exc.strerror}",
                                  hint="give the webhook a writable volume for --audit-log") from None
        self._thread = threading.Thread(target=self._run, name="modelsign-audit-writer", daemon=True)
        self._thread.start()
        self._start_pruning(seal_tails=True)

    # -- public ----------------------------------------------------------------------------

    @property
    def segment_path(self) -> Path:
        return self.settings.directory / f"{self.settings.stem}-{self.writer_id}-{self._segment:06d}.jsonl"

    def witness_stats(self) -> dict[str, Any] | None:
        return self._witness.stats() if self._witness else None

    def append(self, record: dict[str, Any] | bytes, *, decision_id: str | None = None, timeout: float = APPEND_TIMEOUT_SECONDS) -> Receipt:
        """Seal `record` (a dict, or its canonical JSON) into the chain; returns once it is durable."""
        slot = _Slot(_encoded(record), decision_id=decision_id, done=threading.Event())
        self._enqueue(slot)
        assert slot.done is not None
        if not slot.done.wait(timeout):
            if self._give_up(slot, ABANDONED):
                raise _timed_out(timeout)
            if not slot.done.wait(CLAIMED_GRACE_SECONDS) and self._give_up(slot, LATE):
                raise _late(timeout)  # claimed in time but its write hangs: the caller must answer anyway
        if slot.error is not None:
            raise AuditWriteError(slot.error, hint="free space on, or repair, the audit log volume")
        assert slot.receipt is not None
        return slot.receipt

    async def append_async(self, record: dict[str, Any] | bytes, *, decision_id: str | None = None,
                           timeout: float = APPEND_TIMEOUT_SECONDS) -> Receipt:
        """The same for a coroutine: the event loop is woken once per batch, not once per
        record, which is what lets many concurrent requests share one sync cheaply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        slot = _Slot(_encoded(record), decision_id=decision_id, future=future)
        self._enqueue(slot)
        watch_deadline(loop, slot, timeout, self._expire)
        return await future

    def _give_up(self, slot: _Slot, outcome: str) -> bool:
        """The caller stops waiting. A pending slot is abandoned (it will never be written); a
        claimed one becomes late only once the grace is over (`outcome` LATE). True if the
        caller must now answer without a record; False if the write finished (or may still
        finish within the grace) and its result stands."""
        with self._cond:
            if slot.state == PENDING or (slot.state == CLAIMED and outcome == LATE):
                slot.state = ABANDONED if slot.state == PENDING else LATE
                return True
            return False

    def _expire(self, slot: _Slot, timeout: float, *, grace_given: bool = False) -> None:
        future = slot.future
        assert future is not None
        if future.done():
            return
        if self._give_up(slot, LATE if grace_given else ABANDONED):
            future.set_exception(_late(timeout) if slot.state == LATE else _timed_out(timeout))
        elif not grace_given and slot.state == CLAIMED:  # its write is under way: a little longer, then answer anyway
            future.get_loop().call_later(CLAIMED_GRACE_SECONDS, lambda: self._expire(slot, timeout, grace_given=True))
        # else: done; the result is on its way to the event loop

    def _enqueue(self, slot: _Slot) -> None:
        with self._cond:
            if self._closing:
                raise AuditWriteError("the audit log is closed (the webhook is shutting down)")
            self._pending.append(slot)
            self._cond.notify()

    def close(self) -> None:
        """Finish a running retention pass (briefly), write what is queued, a final checkpoint,
        push what the witness still holds, and stop."""
        pruner = self._pruner
        if pruner is not None:
            pruner.join(PRUNE_CLOSE_SECONDS)
            self._stop_pruning.set()  # a pass still running stops before its next file
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
        if self._witness is not None:
            self._witness.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing and not self._checkpoint_due(waiting=False):
                    self._cond.wait(timeout=self._seconds_to_checkpoint())
                waiting = bool(self._pending)
            if waiting and self._rotation_due():  # only when there is a record to write: a segment never ends on nothing
                self._guarded(self._rotate)
            failed = self._checkpoint_due(waiting=waiting) and not self._try_checkpoint()
            with self._cond:
                if failed and not self._pending and not self._closing:
                    self._cond.wait(CHECKPOINT_RETRY_SECONDS)  # a broken disk: do not spin
                # Checked again under the lock, so no record enqueued meanwhile slips past a due checkpoint.
                room = 0 if self._checkpoint_due(waiting=bool(self._pending)) else self._room()
                batch = self._claim(room if room > 0 else MAX_BATCH if failed else 0)
                closing = self._closing and not self._pending
            if batch and room <= 0:
                self._finish(batch, "the audit writer could not write its due checkpoint, so it writes no records until it can "
                                    "(see the audit_warning log lines)")
            elif batch and not self._guarded(lambda: self._commit(batch)):
                self._finish(batch, "the audit writer failed on this batch")  # whatever broke, these callers get an answer
            if closing:
                self._try_checkpoint(final=True)
                return

    def _try_checkpoint(self, *, final: bool = False) -> bool:
        try:
            return self._checkpoint(final=final)
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one bad step
            _warn(f"audit checkpoint failed: {type(exc).__name__}: {exc}")
            return False

    def _claim(self, room: int) -> list[_Slot]:
        """With the lock held: take up to `room` waiting records (dropping abandoned ones)."""
        batch: list[_Slot] = []
        taken = 0
        for slot in self._pending:
            if len(batch) >= room:
                break
            taken += 1
            if slot.state == PENDING:
                slot.state = CLAIMED
                batch.append(slot)
        del self._pending[:taken]
        return batch

    def _room(self) -> int:
        """How many records the next batch may hold: it ends where a checkpoint is due."""
        if self.settings.key is None:
            return MAX_BATCH
        limit = self.settings.checkpoint_records if self._checkpointed else 1
        return min(MAX_BATCH, limit - self._since_checkpoint)

    def _finish(self, slots: list[_Slot], error: str) -> None:
        with self._cond:
            for slot in slots:
                if slot.receipt is None and slot.error is None:
                    slot.error = error
                if slot.state == CLAIMED:
                    slot.state = DONE
        self._wake(slots)

    @staticmethod
    def _guarded(step: Callable[[], Any]) -> bool:
        """Run a step of the writer thread; an unexpected error is logged, never fatal to the thread."""
        try:
            step()
            return True
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one bad step
            _warn(f"audit writer step failed: {type(exc).__name__}: {exc}")
            return False

    def _commit(self, slots: list[_Slot]) -> None:
        if self._owed and not self._write_owed():
            self._finish(slots, "cannot write the audit log: the record owed for a late one could not be written")
            return
        seq, head, lines, sealed = self._seq, self._head, [], []
        for slot in slots:
            line, digest = seal(self.writer_id, seq + 1, head, slot.record)
            seq, head = seq + 1, digest
            lines.append(line)
            sealed.append((slot, Receipt(self.writer_id, seq, digest)))
        data = b"".join(lines)
        error = self._write_durably(data) if data else None
        with self._cond:
            for slot, receipt in sealed:
                if error is not None:
                    slot.error = error
                elif slot.state == LATE:  # its caller already answered "denied"
                    self._owed.append({"decisionId": slot.decision_id, "hash": receipt.hash, "seq": receipt.seq, "writer": receipt.writer})
                else:
                    slot.receipt = receipt
                if slot.state == CLAIMED:
                    slot.state = DONE
        if error is None and data:
            self._seq, self._head = seq, head
            self._since_checkpoint += len(sealed)
            if self.settings.stdout:
                self._stream(data)
        self._wake(slots)
        if self._owed:
            self._write_owed()  # the very next record: which records were answered otherwise

    def _write_owed(self) -> bool:
        record = {"response": {"allowed": False, "reason": LATE_REASON,
                               "message": "the review was answered (denied) before this record was durable"},
                  "schema": SCHEMA, "supersedes": self._owed, "time": utc_now(self._clock()), "type": "superseded"}
        if not self._commit_internal(record, counted=False):
            return False
        self._owed = []
        return True

    @staticmethod
    def _wake(slots: list[_Slot]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Receipt], Receipt | None, str | None]]] = {}
        for slot in slots:
            if slot.future is not None:
                by_loop.setdefault(slot.future.get_loop(), []).append((slot.future, slot.receipt, slot.error))
            elif slot.done is not None:
                slot.done.set()
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, results)
            except RuntimeError:
                pass  # that loop is closed: nobody is waiting any more

    def _write_durably(self, data: bytes) -> str | None:
        """One O_DSYNC write (durable when it returns: one syscall, so the GIL is given up and
        taken back once per batch); on failure cut the file back and return the reason."""
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._offset)  # no torn or unsynced lines stay behind
            except OSError:
                pass
            return f"cannot write the audit log {self.segment_path}: {exc.strerror or exc}"
        self._offset += len(data)
        return None

    def _stream(self, data: bytes) -> None:
        """The stdout copy: queued, never waited for (a stalled stdout must not stall the
        chain); lines dropped when the queue is full are counted and reported."""
        for line in data.splitlines(keepends=True):
            write_line(line, "audit")

    # -- segments, checkpoints, retention -----------------------------------------------------

    def _open_segment(self) -> None:
        self._segment += 1
        path = self.segment_path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_DSYNC | os.O_CLOEXEC, 0o640)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # while open, no other writer's retention may remove it
        self._offset = 0
        self._segment_opened = self._clock()
        _sync_directory(path.parent)

    def _rotation_due(self) -> bool:
        return self._offset > 0 and (self._offset >= self.settings.rotate_bytes or self._clock() - self._segment_opened >= self.settings.rotate_seconds)

    def _rotate(self) -> None:
        if self._seq != self._last_checkpoint_record:
            self._try_checkpoint()  # each segment ends on a signed head (retention reads a file's age from it)
        try:
            finished_fd = self._fd
            self._open_segment()
            os.close(finished_fd)
        except OSError as exc:
            _warn(f"audit log rotation failed, continuing in {self.segment_path}: {exc.strerror}")
            return
        self._start_pruning()

    def _checkpoint_due(self, *, waiting: bool) -> bool:
        """Due: after the chain's first record; after `checkpoint_records` records; after
        `checkpoint_seconds` with records written since; and before taking a batch (`waiting`)
        after a quiet period that long, so no record is stamped later than that after the
        last checkpoint (what verify checks; times are the wall clock records carry)."""
        if self.settings.key is None or self._seq == 0:
            return False
        if self._since_checkpoint and (not self._checkpointed or self._since_checkpoint >= self.settings.checkpoint_records):
            return True
        return (bool(self._since_checkpoint) or waiting) and self._clock() - self._last_checkpoint >= self.settings.checkpoint_seconds

    def _seconds_to_checkpoint(self) -> float | None:
        if self.settings.key is None or not self._since_checkpoint:
            return None
        return max(0.01, self.settings.checkpoint_seconds - (self._clock() - self._last_checkpoint))

    def _checkpoint(self, *, final: bool = False) -> bool:
        """Sign the head; True once the checkpoint is in the chain (then it also goes to the
        checkpoint file, stdout and the witness: none of them may hold one the chain lacks)."""
        key = self.settings.key
        if key is None or self._seq == 0:
            return True
        if self._owed and not self._write_owed():  # a superseded record belongs before any later checkpoint
            return False
        try:
            now = self._clock()
            signed = signed_checkpoint(key, writer=self.writer_id, seq=self._seq, head=self._head, time=utc_now(now),
                                       schedule=self.settings.schedule, final=final)
        except Exception as exc:  # noqa: BLE001 - a key that cannot sign: logged; records wait for the checkpoint
            _warn(f"cannot sign the audit checkpoint: {type(exc).__name__}: {exc}")
            return False
        if not self._commit_internal({**signed, "schema": SCHEMA, "time": signed["checkpoint"]["time"], "type": "checkpoint"}, counted=False):
            _warn(f"cannot write the audit checkpoint into {self.segment_path}; no records are written until it can be")
            return False
        self._since_checkpoint = 0
        self._last_checkpoint = now
        self._last_checkpoint_record = self._seq
        self._checkpointed = True
        self._publish(canonical_json(signed) + b"\n")
        return True

    def _publish(self, line: bytes) -> None:
        """A signed checkpoint line, once in the chain: to the checkpoint file, stdout and the witness."""
        if self.settings.checkpoint_path is not None:
            self._append_checkpoint_file(self.settings.checkpoint_path, line)
        if self.settings.stdout:
            self._stream(line)
        if self._witness is not None:
            self._witness.submit(line)

    @staticmethod
    def _append_checkpoint_file(path: Path, line: bytes) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, line)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            _warn(f"cannot write the audit checkpoint file {path}: {exc.strerror}")

    def _commit_internal(self, record: dict[str, Any], *, counted: bool = True) -> bool:
        """A record of the writer's own (checkpoint, retention, superseded); True once it is
        durable. `counted`: it counts towards the checkpoint schedule (checkpoints and
        superseded records do not)."""
        line, digest = seal(self.writer_id, self._seq + 1, self._head, canonical_json(record))
        if self._write_durably(line) is not None:
            return False
        self._seq, self._head = self._seq + 1, digest
        self._since_checkpoint += counted
        if self.settings.stdout:
            self._stream(line)
        return True

    def _start_pruning(self, *, seal_tails: bool = False) -> None:
        """A retention pass on its own thread (if none is running): reading and hashing old
        files must not hold up the records."""
        with self._prune_lock:
            if self._stop_pruning.is_set() or (self._pruner is not None and self._pruner.is_alive()):
                return
            self._pruner = threading.Thread(target=self._guarded, args=(lambda: self._prune(seal_tails=seal_tails),),
                                            name="modelsign-audit-retention", daemon=True)
            self._pruner.start()

    def _prune(self, *, seal_tails: bool = False) -> None:
        """Remove chain files older than the retention period, of any writer, but never one a
        live writer holds open (locked): with the audit key, only what retention.py proves old
        from its signed checkpoint (the mtime only picks which files to read); without it, by
        mtime. The retention record is made durable first; only then are the files removed.
        `seal_tails`: also seal the unsigned tails of writers that were killed."""
        settings = self.settings
        cutoff = self._clock() - settings.retention_days * 86400
        files = sorted(settings.directory.glob(f"{settings.stem}-*.jsonl"))
        latest = _latest_segments(files, settings.stem)
        removable: list[tuple[Path, dict[str, Any], int]] = []  # with the lock held until removed
        try:
            for path in files:
                if self._stop_pruning.is_set():
                    return
                if path != self.segment_path and path != settings.checkpoint_path:
                    if (found := self._examine(path, cutoff, latest, seal_tails=seal_tails)) is not None:
                        removable.append(found)
            for start in range(0, len(removable), RETENTION_BATCH):
                batch = removable[start:start + RETENTION_BATCH]
                self.append({"schema": SCHEMA, "time": utc_now(self._clock()), "type": "retention",
                             "retentionSeconds": int(settings.retention_days * 86400), "removed": [e for _, e, _ in batch]},
                            timeout=RETENTION_APPEND_SECONDS)
                for path, _, _ in batch:
                    path.unlink(missing_ok=True)
                _sync_directory(settings.directory)
        except AuditWriteError as exc:
            _warn(f"audit retention removed nothing more: its record could not be written ({exc.message})")
        finally:
            for _, _, fd in removable:
                os.close(fd)

    def _examine(self, path: Path, cutoff: float, latest: dict[str, Path], *, seal_tails: bool) -> tuple[Path, dict[str, Any], int] | None:
        """One file of the directory: sealed if it is the last of a killed writer; returned
        (with its retention entry and a descriptor holding its lock) if it may be removed."""
        settings = self.settings
        try:
            old = path.stat().st_mtime < cutoff
        except OSError:
            return None
        last_of_dead_writer = (seal_tails and settings.key is not None and latest.get(_segment_writer(path, settings.stem)) == path
                               and not _ends_on_checkpoint(path))  # a writer that stopped cleanly ends on its final checkpoint
        if not (old or last_of_dead_writer) or (fd := _lock(path)) is None:
            return None  # recent and complete, or held by a live writer
        try:
            removed = self._retention_entry(path, cutoff, latest, old=old, seal=last_of_dead_writer)
        except BaseException:
            os.close(fd)
            raise
        if removed is None:
            os.close(fd)
            return None
        return path, removed, fd

    def _retention_entry(self, path: Path, cutoff: float, latest: dict[str, Path], *, old: bool, seal: bool) -> dict[str, Any] | None:
        """With the file locked: seal its tail if `seal`; its retention entry if it may go."""
        key = self.settings.key
        if key is None:
            return _unverified_entry(path) if old else None
        found = scan(path, key.public)
        if seal and found.problem is None and found.signed is not None and found.tail and found.writer != self.writer_id:
            self._seal(found)
        if not old:
            return None
        reason = kept_because(found, cutoff)
        if reason is None and found.tail and latest.get(found.writer) != path:
            reason = "it ends after its last checkpoint and its writer's chain goes on in a later file (a checkpoint failed at rotation)"
        if reason is None:
            return entry(found)
        if not found.empty:
            _warn(f"audit retention keeps {path}, older than {self.settings.retention_days:g} days by its mtime, because {reason}")
        return None

    def _seal(self, found: Scan) -> None:
        """Sign the head of a killed writer's chain (its tail after its last checkpoint is
        linked to that signed checkpoint): in this chain, then the checkpoint file, stdout and
        the witness, as checkpoints go."""
        key = self.settings.key
        assert key is not None
        if self._already_sealed(found.end_hash):
            return
        signed = signed_seal(key, writer=found.writer, seq=found.end_seq, head=found.end_hash, time=utc_now(self._clock()), sealed_by=self.writer_id)
        try:
            self.append({**signed, "schema": SCHEMA, "time": signed["checkpoint"]["time"], "type": "tail-seal"}, timeout=RETENTION_APPEND_SECONDS)
        except AuditWriteError as exc:
            _warn(f"cannot seal the unsigned tail of audit writer {found.writer} ({found.path}): {exc.message}")
            return
        self._publish(canonical_json(signed) + b"\n")

    def _already_sealed(self, head: str) -> bool:
        """Is a checkpoint of this head in the checkpoint file (out of the chain directory's
        reach) already? A tail is sealed once, not at every start."""
        path = self.settings.checkpoint_path
        try:
            with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:  # type: ignore[union-attr]
                return data.find(f'"head":"{head}"'.encode()) >= 0
        except (AttributeError, OSError, ValueError):  # no checkpoint file, or an empty one
            return False


def _encoded(record: dict[str, Any] | bytes) -> bytes:
    try:
        return record if isinstance(record, bytes) else canonical_json(record)
    except CanonicalError as exc:
        raise AuditWriteError(f"the audit record could not be encoded: {exc}") from None


def _lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on `path`, or None if a live writer holds
    it (or it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


def _segment_writer(path: Path, stem: str) -> str:
    """The writer id in `STEM-<writer>-<n>.jsonl` ("" if the name is not one)."""
    return path.name[len(stem) + 1:-len(".jsonl")].rpartition("-")[0]


def _latest_segments(files: list[Path], stem: str) -> dict[str, Path]:
    """Each writer's highest-numbered file, by name (`files` sorted: the numbers are fixed-width)."""
    return {_segment_writer(path, stem): path for path in files}


def _ends_on_checkpoint(path: Path) -> bool:
    """Does the file's last line look like a checkpoint record? A cheap hint (the tail read
    only) that spares reading the whole file of every writer that stopped cleanly."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            last = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    except OSError:
        return True
    parsed = parse_line(last)
    return parsed is not None and parsed[5] and b'"type":"checkpoint"' in last


def _unverified_entry(path: Path) -> dict[str, Any]:
    """Without an audit key: what the file's own first and last lines say (nothing checked)."""
    with path.open("rb") as handle:
        first = parse_line(handle.readline().rstrip(b"\n"))
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 1024 * 1024))
        last = parse_line(handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1])
    return {"basis": MTIME, "file": path.name, "writer": last[3] if last else None, "firstSeq": first[2] if first else None,
            "lastSeq": last[2] if last else None, "lastHash": "sha256:" + last[0].decode() if last else None}


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _warn(message: str) -> None:
    from webhook.logs import get_logger

    get_logger(component="audit").error("audit_warning", error=message)
