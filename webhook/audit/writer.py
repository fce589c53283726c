"""The durable chain writer: one per process, its own chain, group commit.

`append(record)` returns once the record's line is written durably (O_DSYNC). Callers queue
records; one thread takes everything queued, seals it into the chain (seq, prev_hash,
hash) and writes it with one synchronous write(): concurrent requests share the sync. If the
write fails, the file is cut back to its last durable length, the chain state is
not advanced, and every caller in that batch gets AuditWriteError (the webhook then denies).

Files: for `--audit-log DIR/audit.jsonl` the chain segments are
`DIR/audit-<writer>-<n>.jsonl` (n from 000001; a new one after `rotate_bytes` or
`rotate_seconds`, the chain continuing across them) and the signed checkpoints go to
`DIR/audit.checkpoints.jsonl` unless placed elsewhere. Segments whose last write is older
than the retention period are removed, and a "retention" record says which.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from signer.errors import ModelsignError
from signer.keys import SigningKey
from webhook.audit.canonical import CanonicalError, canonical_json
from webhook.audit.chain import GENESIS, SCHEMA, WRITER_ID, parse_line, seal
from webhook.audit.checkpoints import signed_checkpoint

DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
DEFAULT_ROTATE_SECONDS = 24 * 3600.0
DEFAULT_RETENTION_DAYS = 90.0
DEFAULT_CHECKPOINT_RECORDS = 1000
DEFAULT_CHECKPOINT_SECONDS = 60.0
MAX_BATCH = 4096
CLAIMED_GRACE_SECONDS = 1.0  # after the timeout, for a record whose write had already begun
APPEND_TIMEOUT_SECONDS = 2.0  # the API server's webhook timeout (10 s) must still leave room


class AuditWriteError(ModelsignError):
    """A record could not be made durable."""


_second_text: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """RFC 3339, UTC, microseconds: `2026-11-23T07:40:00.123456Z` (the second's text is
    formatted once per second: this runs for every record)."""
    global _second_text
    now = time.time()
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
    checkpoint_path: Path | None = None
    checkpoint_records: int = DEFAULT_CHECKPOINT_RECORDS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    rotate_bytes: int = DEFAULT_ROTATE_BYTES
    rotate_seconds: float = DEFAULT_ROTATE_SECONDS
    retention_days: float = DEFAULT_RETENTION_DAYS
    stdout: bool = False  # also stream every durable line to stdout (Fluent Bit, Loki...)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def stem(self) -> str:
        return self.path.name.removesuffix(".jsonl")

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_path or self.directory / f"{self.stem}.checkpoints.jsonl"


@dataclass(frozen=True)
class Receipt:
    writer: str
    seq: int
    hash: str


@dataclass
class _Slot:
    record: bytes  # canonical JSON
    done: threading.Event | None = None  # a thread waits on this...
    future: asyncio.Future[Receipt] | None = None  # ...or a coroutine awaits this
    receipt: Receipt | None = None
    error: str | None = None
    claimed: bool = False  # the writer has taken it into a batch: it will be written (or fail)
    abandoned: bool = False  # the caller gave up waiting before that: it must not be written


def _timed_out(timeout: float) -> AuditWriteError:
    return AuditWriteError(f"the audit record was not durable within {timeout:g}s (storage too slow or stuck)")


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
        if not WRITER_ID.match(self.writer_id):
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
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._checkpointed = False
        try:
            settings.directory.mkdir(parents=True, exist_ok=True)
            self._open_segment()
        except OSError as exc:
            raise AuditWriteError(f"cannot open the audit log in {settings.directory}: {exc.strerror}",
                                  hint="give the webhook a writable volume for --audit-log") from None
        self._thread = threading.Thread(target=self._run, name="modelsign-audit-writer", daemon=True)
        self._thread.start()

    # -- public ----------------------------------------------------------------------------

    @property
    def segment_path(self) -> Path:
        return self.settings.directory / f"{self.settings.stem}-{self.writer_id}-{self._segment:06d}.jsonl"

    def append(self, record: dict[str, Any] | bytes, *, timeout: float = APPEND_TIMEOUT_SECONDS) -> Receipt:
        """Seal `record` (a dict, or its canonical JSON) into the chain; returns once it is durable."""
        slot = _Slot(_encoded(record), done=threading.Event())
        self._enqueue(slot)
        assert slot.done is not None
        if not slot.done.wait(timeout) and (self._abandon(slot) or not slot.done.wait(CLAIMED_GRACE_SECONDS)):
            raise _timed_out(timeout)  # claimed in time but its write hangs: the caller must answer anyway
        if slot.error is not None:
            raise AuditWriteError(slot.error, hint="free space on, or repair, the audit log volume")
        assert slot.receipt is not None
        return slot.receipt

    async def append_async(self, record: dict[str, Any] | bytes, *, timeout: float = APPEND_TIMEOUT_SECONDS) -> Receipt:
        """The same for a coroutine: the event loop is woken once per batch, not once per
        record, which is what lets many concurrent requests share one sync cheaply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        slot = _Slot(_encoded(record), future=future)
        self._enqueue(slot)
        timer = loop.call_later(timeout, self._expire, slot, timeout)  # cheaper than wait_for's extra future
        try:
            return await future
        finally:
            timer.cancel()

    def _abandon(self, slot: _Slot) -> bool:
        """The caller stops waiting: True if the record will now never be written (so the
        trail cannot say "allowed" for a review that was denied for want of a record)."""
        with self._cond:
            if slot.claimed:
                return False
            slot.abandoned = True
            return True

    def _expire(self, slot: _Slot, timeout: float, *, grace_given: bool = False) -> None:
        future = slot.future
        assert future is not None
        if future.done():
            return
        if self._abandon(slot) or grace_given:
            future.set_exception(_timed_out(timeout))
        else:  # claimed in time: its write is under way; give it a little longer, then answer anyway
            future.get_loop().call_later(CLAIMED_GRACE_SECONDS, lambda: self._expire(slot, timeout, grace_given=True))

    def _enqueue(self, slot: _Slot) -> None:
        with self._cond:
            if self._closing:
                raise AuditWriteError("the audit log is closed (the webhook is shutting down)")
            self._pending.append(slot)
            self._cond.notify()

    def close(self) -> None:
        """Write what is queued, a final checkpoint, and stop."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        self._guarded(self._prune)
        while True:
            with self._cond:
                while not self._pending and not self._closing and not self._checkpoint_due():
                    self._cond.wait(timeout=self._seconds_to_checkpoint())
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                batch = [slot for slot in batch if not slot.abandoned]
                for slot in batch:
                    slot.claimed = True
                closing = self._closing and not self._pending
            if batch and not self._guarded(lambda: self._commit(batch)):
                for slot in batch:  # whatever broke, these callers get an answer: a failure
                    if slot.receipt is None and slot.error is None:
                        slot.error = "the audit writer failed on this batch"
                self._wake(batch)
            if self._checkpoint_due() or (closing and self._since_checkpoint):
                self._guarded(self._checkpoint)
            if closing:
                return

    @staticmethod
    def _guarded(step: Callable[[], None]) -> bool:
        """Run a step of the writer thread; an unexpected error is logged, never fatal to the thread."""
        try:
            step()
            return True
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one bad step
            _warn(f"audit writer step failed: {type(exc).__name__}: {exc}")
            return False

    def _commit(self, slots: list[_Slot]) -> None:
        seq, head, lines, sealed = self._seq, self._head, [], []
        for slot in slots:
            line, digest = seal(self.writer_id, seq + 1, head, slot.record)
            seq, head = seq + 1, digest
            lines.append(line)
            sealed.append((slot, Receipt(self.writer_id, seq, digest)))
        data = b"".join(lines)
        error = self._write_durably(data) if data else None
        for slot, receipt in sealed:
            if error is None:
                slot.receipt = receipt
            else:
                slot.error = error
        if error is None and data:
            self._seq, self._head = seq, head
            self._since_checkpoint += len(sealed)
            if self.settings.stdout:
                self._stream(data)
        self._wake(slots)
        if error is None and self._rotation_due():
            self._rotate()

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
        try:
            for line in data.splitlines(keepends=True):
                os.write(sys.stdout.fileno(), line)  # one write per line: no interleaving up to PIPE_BUF
        except OSError:
            pass  # the stream is a copy; the file is the record

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
        return self._offset >= self.settings.rotate_bytes or self._clock() - self._segment_opened >= self.settings.rotate_seconds

    def _rotate(self) -> None:
        if self._since_checkpoint:
            self._checkpoint()  # each segment ends on a signed head
        try:
            finished_fd = self._fd
            self._open_segment()
            os.close(finished_fd)
        except OSError as exc:
            _warn(f"audit log rotation failed, continuing in {self.segment_path}: {exc.strerror}")
            return
        self._prune()

    def _checkpoint_due(self) -> bool:
        if self.settings.key is None or not self._since_checkpoint:
            return False
        if not self._checkpointed:
            return True  # sign the chain's start at once: a chain with no checkpoint at all means forgery
        return self._since_checkpoint >= self.settings.checkpoint_records or time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_seconds

    def _seconds_to_checkpoint(self) -> float | None:
        if self.settings.key is None or not self._since_checkpoint:
            return None
        return max(0.01, self.settings.checkpoint_seconds - (time.monotonic() - self._last_checkpoint))

    def _checkpoint(self) -> None:
        key = self.settings.key
        if key is None or self._seq == 0:
            return
        signed = signed_checkpoint(key, writer=self.writer_id, seq=self._seq, head=self._head, time=utc_now())
        line = canonical_json(signed) + b"\n"
        try:
            fd = os.open(self.settings.checkpoints, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, line)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            _warn(f"cannot write the audit checkpoint file {self.settings.checkpoints}: {exc.strerror}")
        if self.settings.stdout:
            self._stream(line)
        self._commit_internal({**signed, "schema": SCHEMA, "time": signed["checkpoint"]["time"], "type": "checkpoint"})
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._checkpointed = True

    def _commit_internal(self, record: dict[str, Any]) -> bool:
        """A record of the writer's own (checkpoint, retention); True once it is durable."""
        line, digest = seal(self.writer_id, self._seq + 1, self._head, canonical_json(record))
        if self._write_durably(line) is not None:
            return False
        self._seq, self._head = self._seq + 1, digest
        if self.settings.stdout:
            self._stream(line)
        return True

    def _prune(self) -> None:
        """Remove chain segments older than the retention period: any writer's, but never one
        a live writer holds open (locked). The retention record (writer, seq range and last
        hash of each file) is made durable first; only then are the files removed."""
        cutoff = self._clock() - self.settings.retention_days * 86400
        doomed: list[tuple[Path, int]] = []
        removed = []
        try:
            for path in sorted(self.settings.directory.glob(f"{self.settings.stem}-*.jsonl")):
                if path == self.segment_path or path == self.settings.checkpoints:
                    continue
                try:
                    if path.stat().st_mtime >= cutoff:
                        continue
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    first, last = _first_and_last_entry(path)
                except OSError:  # held by a live writer (or unreadable): leave it
                    os.close(fd)
                    continue
                doomed.append((path, fd))
                removed.append({"file": path.name, "writer": last[3] if last else None, "firstSeq": first[2] if first else None,
                                "lastSeq": last[2] if last else None, "lastHash": "sha256:" + last[0].decode() if last else None})
            if removed and self._commit_internal({"schema": SCHEMA, "time": utc_now(), "type": "retention",
                                                  "retentionSeconds": int(self.settings.retention_days * 86400), "removed": removed}):
                for path, _ in doomed:
                    path.unlink(missing_ok=True)
                _sync_directory(self.settings.directory)
        finally:
            for _, fd in doomed:
                os.close(fd)


def _encoded(record: dict[str, Any] | bytes) -> bytes:
    try:
        return record if isinstance(record, bytes) else canonical_json(record)
    except CanonicalError as exc:
        raise AuditWriteError(f"the audit record could not be encoded: {exc}") from None


def _first_and_last_entry(path: Path) -> tuple[Any, Any]:
    """parse_line() of a chain file's first and last lines."""
    with path.open("rb") as handle:
        first = parse_line(handle.readline().rstrip(b"\n"))
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 1024 * 1024))
        lines = handle.read().rstrip(b"\n").rsplit(b"\n", 1)
    return first, parse_line(lines[-1])


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _warn(message: str) -> None:
    from webhook.logs import get_logger

    get_logger(component="audit").error("audit_warning", error=message)
