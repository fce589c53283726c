"""Structured JSON logs (structlog): one JSON object per line on stdout, never blocking.

Every line for stdout (structlog's, the standard library's, and the audit writer's
`--audit-stdout` copy) goes through one bounded queue to a thread that owns the file
descriptor. A stalled stdout (a log collector that stopped reading the pipe) then costs
dropped lines, never a blocked event loop or audit writer thread: when the queue is full a
line is dropped and counted, and the count is reported in a later line
(`stdout_lines_dropped`) once stdout moves again.

In the server's processes (`install_process_streams`, run through `uvicorn_log_config`
before uvicorn logs anything) the rest goes the same way: uvicorn's own loggers and Python
`warnings` become JSON lines on that queue, and `sys.stdout` / `sys.stderr` are replaced by
queued streams (stderr with its own pump on fd 2), so a print, a thread's traceback or a
library writing to stderr cannot block either.
"""

from __future__ import annotations

import atexit
import collections
import io
import json
import logging
import os
import select
import sys
import threading
import time
from typing import Any

import structlog

MAX_QUEUED_LINES = 10_000  # about 10-40 MiB of log lines at most, per process
QUEUE_ENV = "MODELSIGN_STDOUT_QUEUE_LINES"  # to change that bound
FLUSH_SECONDS = 2.0  # at exit: how long queued lines may still take to go out

_configured = False


class StdoutPump:
    """A bounded queue of lines and the one thread that writes them to `fd`, one write()
    per line (so lines up to PIPE_BUF never interleave with other processes' on a pipe)."""

    def __init__(self, fd: int = 1, capacity: int = MAX_QUEUED_LINES, name: str = "stdout") -> None:
        self._fd = fd
        self._capacity = capacity
        self._name = name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child starts with its own, empty queue

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._lines: collections.deque[bytes] = collections.deque()
        self._dropped: collections.Counter[str] = collections.Counter()  # since the last report
        self._dropped_total: collections.Counter[str] = collections.Counter()
        self._writing = False
        self._thread: threading.Thread | None = None

    def put(self, line: bytes, kind: str = "log") -> bool:
        """Queue a line (ending in a newline); False if it was dropped because the queue is full."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modelsign-stdout", daemon=True)
                self._thread.start()
            if len(self._lines) >= self._capacity:
                self._dropped[kind] += 1
                self._dropped_total[kind] += 1
                return False
            self._lines.append(line)
            self._cond.notify_all()
            return True

    def dropped(self) -> dict[str, int]:
        """Lines dropped so far, by kind ("log", "audit")."""
        with self._cond:
            return dict(self._dropped_total)

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until every queued line is written (True), or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._lines or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._lines and not self._dropped:
                    self._writing = False
                    self._cond.notify_all()
                    self._cond.wait()
                self._writing = True
                report = self._report_line() if self._dropped else None
                line = self._lines.popleft() if self._lines else None
            if report is not None:
                self._write(report)
            if line is not None:
                self._write(line)

    def _report_line(self) -> bytes:
        """Called with the lock held: the drops since the last report, as a log line."""
        dropped, self._dropped = dict(self._dropped), collections.Counter()
        return (json.dumps({"event": f"{self._name}_lines_dropped", "level": "warning", "dropped": dropped, "droppedTotal": dict(self._dropped_total),
                            "reason": f"{self._name} was not being read fast enough (the log collector stalled?)",
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n").encode()

    def _write(self, line: bytes) -> None:
        view = memoryview(line)
        try:
            while view:
                try:
                    view = view[os.write(self._fd, view):]
                except BlockingIOError:  # a non-blocking stdout that is full: this thread may wait, nobody else does
                    select.select([], [self._fd], [])
        except OSError:
            pass  # closed or broken stdout: logs are best effort (the audit trail is where durability is required)


def _capacity() -> int:
    try:
        return max(1, int(os.environ.get(QUEUE_ENV, MAX_QUEUED_LINES)))
    except ValueError:
        return MAX_QUEUED_LINES


_PUMP = StdoutPump(capacity=_capacity())
_STDERR_PUMP = StdoutPump(fd=2, capacity=_capacity(), name="stderr")
atexit.register(_PUMP.flush)
atexit.register(_STDERR_PUMP.flush)


def write_line(line: bytes, kind: str = "log") -> bool:
    """Queue one line for stdout without ever blocking; False if it was dropped."""
    return _PUMP.put(line, kind)


def flush_stdout(timeout: float = FLUSH_SECONDS) -> bool:
    return _PUMP.flush(timeout)


def dropped_lines() -> dict[str, int]:
    return _PUMP.dropped()


class _QueuedLogger:
    """structlog's output: the rendered JSON line, queued."""

    def __init__(self, *args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        write_line((message + "\n").encode("utf-8", "replace"))

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


class _QueuedHandler(logging.Handler):
    """The standard library's records (libraries, uvicorn's, Python warnings), as JSON lines, queued too."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line: dict[str, Any] = {"event": record.getMessage(), "level": record.levelname.lower(), "logger": record.name,
                                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))}
            if record.exc_info:
                line["exception"] = logging.Formatter().formatException(record.exc_info)
            write_line((json.dumps(line) + "\n").encode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class QueuedStream(io.TextIOBase):
    """A text stream whose complete lines go to a pump's queue: sys.stdout / sys.stderr in the
    server's processes. A line longer than MAX_PARTIAL_CHARACTERS is queued in pieces."""

    MAX_PARTIAL_CHARACTERS = 64 * 1024

    def __init__(self, pump: StdoutPump, kind: str, fd: int) -> None:
        super().__init__()
        self._pump, self._kind, self._fd = pump, kind, fd
        self._partial = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd  # for C-level writers (faulthandler): those bypass the queue

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            if len(self._partial) > self.MAX_PARTIAL_CHARACTERS:
                lines.append(self._partial)
                self._partial = ""
        for line in lines:
            self._pump.put((line + "\n").encode("utf-8", "replace"), self._kind)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            self._pump.put((partial + "\n").encode("utf-8", "replace"), self._kind)


_streams_pid = 0


def install_process_streams() -> None:
    """In a server process (once per process): sys.stdout / sys.stderr become queued streams,
    Python warnings become log records, and every log record goes to the stdout queue."""
    global _streams_pid
    if _streams_pid == os.getpid():
        return
    _streams_pid = os.getpid()
    sys.stdout = QueuedStream(_PUMP, "print", 1)
    sys.stderr = QueuedStream(_STDERR_PUMP, "stderr", 2)
    logging.captureWarnings(True)
    logging.lastResort = _QueuedHandler(logging.WARNING)  # records of a logger with no handler anywhere


def queued_handler() -> logging.Handler:
    """The handler `uvicorn_log_config` names: called by uvicorn's logging set-up in the server
    and in every worker (before either logs anything), so it also installs the queued streams."""
    install_process_streams()
    return _QueuedHandler()


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers and the root logger write through the queue, not
    to stderr with their own StreamHandlers (a stalled stderr would block the event loop)."""
    handlers = ["queued"]
    return {"version": 1, "disable_existing_loggers": False, "handlers": {"queued": {"()": "webhook.logs.queued_handler"}},
            "loggers": {name: {"handlers": handlers, "propagate": False} for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")},
            "root": {"handlers": handlers, "level": "INFO"}}


def clip(text: str, limit: int = 1000) -> str:
    """At most `limit` characters of `text` for a log line or an audit record (error texts may
    echo request values of megabytes)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def configure_logging(level: str = "info") -> None:
    global _configured
    if _configured:
        return
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(format="%(message)s", handlers=[_QueuedHandler()], level=numeric)
    for noisy in ("httpx", "httpcore"):  # one line per registry request is noise, not audit
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_QueuedLogger,
        cache_logger_on_first_use=True,
    )
    _configured = True


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("modelsign").bind(**context)
