"""Forward reading of one file, archive member or decompressed stream, with a position for
messages and a budget on what decompression may produce (a zip bomb stops at the budget).

Corrupt input (a bad CRC, a truncated gzip stream, an lzma error) does not raise: it ends the
stream and is kept in `Source.error`, so every judge sees "the data ends here" and can say why;
`Source.withheld` says whether the archive reader kept back bytes another reader would load.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, ContextManager, Iterator, Protocol

CHUNK = 1 << 20
FIRST_CHUNK = 1 << 12  # most files are judged from their first bytes: read little until more is wanted
_STREAM_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, tarfile.TarError, RuntimeError,
                  NotImplementedError)
# zipfile raises a bad CRC at a member's last read and drops those bytes (torch's miniz, built without CRC checks,
# hands them over); tarfile drops a truncated member's last block (other tar readers extract it)
_WITHHOLDING_ERRORS = (zipfile.BadZipFile, tarfile.TarError)


class Readable(Protocol):
    """What a source reads from: a file, a zip member, a decompressor."""

    def read(self, size: int = -1, /) -> bytes: ...


class BudgetExceeded(Exception):
    """Decompression or spooling produced more bytes than one file may expand to."""


@dataclass
class Budget:
    """Bytes that decompression and spooling may produce for one top-level file. Each stream
    counts once however often it is read again (the judges reread from the start)."""

    limit: int
    used: int = 0
    _high: dict[str, int] = field(default_factory=dict)

    def reach(self, stream: str, produced: int) -> None:
        """`stream` has now produced `produced` bytes from its start."""
        extra = produced - self._high.get(stream, 0)
        if extra > 0:
            self._high[stream] = produced
            self.used += extra
            if self.used > self.limit:
                raise BudgetExceeded(f"expands to more than {self.limit} bytes")


class Source:
    """Buffered forward reader over a binary stream. `skip` seeks when the stream can."""

    def __init__(self, raw: Readable, *, size: int | None = None, seekable: bool = False, budget: Budget | None = None,
                 label: str = "") -> None:
        self._raw = raw
        self._label = label
        self._buf = b""
        self._off = 0
        self._raw_pos = 0
        self._chunk = FIRST_CHUNK
        self._eof = False
        self._seekable = seekable
        self._budget = budget  # charged only for decompressed or spooled bytes
        self.size = size
        self.pos = 0
        self.error: str | None = None
        self.withheld = False  # the error is an archive reader's that keeps back bytes another reader would hand over

    def _fill(self, need: int) -> int:
        """Buffer at least `need` bytes unless the stream ends; returns what is buffered."""
        have = len(self._buf) - self._off
        while have < need and not self._eof:
            try:
                chunk = self._raw.read(max(self._chunk, need - have))
            except BudgetExceeded:
                raise
            except _STREAM_ERRORS as exc:
                self.error = f"corrupt data at byte {self._raw_pos}: {exc}"
                self.withheld = isinstance(exc, _WITHHOLDING_ERRORS)
                self._eof = True
                break
            if not chunk:
                self._eof = True
                break
            self._chunk = min(self._chunk * 4, CHUNK)
            self._raw_pos += len(chunk)
            if self._budget is not None:
                self._budget.reach(self._label, self._raw_pos)
            self._buf = self._buf[self._off:] + chunk
            self._off = 0
            have = len(self._buf)
        return have

    def read(self, count: int) -> bytes:
        """Up to `count` bytes (fewer only at the end). Callers keep `count` small."""
        off, end = self._off, self._off + count
        if end > len(self._buf):  # the fast path above is most of the pickle walker's time
            self._fill(count)
            off, end = self._off, self._off + count
        data = self._buf[off:end]
        self._off = off + len(data)
        self.pos += len(data)
        return data

    def read_byte(self) -> int:
        """The next byte, or -1 at the end."""
        off = self._off
        if off >= len(self._buf) and not self._fill(1):
            return -1
        off = self._off
        self._off = off + 1
        self.pos += 1
        return self._buf[off]

    def peek(self, count: int) -> bytes:
        self._fill(count)
        return self._buf[self._off:self._off + count]

    def readline(self, keep: int) -> tuple[bytes, bool, int]:
        """The next line up to and including b"\\n": (its first `keep` bytes, ended by a newline?,
        its whole length). Bytes past `keep` are read and dropped: a gigabyte line costs no memory."""
        kept = bytearray()
        length = 0
        while True:
            have = self._fill(1)
            if have == 0:
                return bytes(kept), False, length
            end = self._buf.find(b"\n", self._off)
            stop = end + 1 if end >= 0 else len(self._buf)
            room = max(0, keep - len(kept))
            kept += self._buf[self._off:min(stop, self._off + room)]
            length += stop - self._off
            self.pos += stop - self._off
            self._off = stop
            if end >= 0:
                return bytes(kept), True, length

    def skip(self, count: int) -> int:
        """Move `count` bytes on; returns how many there were."""
        have = len(self._buf) - self._off
        if count <= have:
            self._off += count
            self.pos += count
            return count
        rest = count - have
        self.pos += have
        self._buf, self._off = b"", 0
        skipped = have
        if self._seekable and self.size is not None and not self._eof:
            target = min(self.size, self._raw_pos + rest)
            self._raw.seek(target)  # type: ignore[attr-defined]  # seekable sources are real files
            skipped += target - self._raw_pos
            self.pos += target - self._raw_pos
            self._raw_pos = target
            self._eof = target >= self.size
            return skipped
        while rest > 0 and self._fill(1):
            step = min(rest, len(self._buf) - self._off)
            self._off += step
            self.pos += step
            rest -= step
            skipped += step
        return skipped

    def at_end(self) -> bool:
        return self._fill(1) == 0

    def length(self) -> int:
        """The total length: known for files; for streams counted by reading to the end, which
        spends the source."""
        if self.size is None:
            self.skip(1 << 62)
            self.size = self.pos
        return self.size


class Blob(Protocol):
    """Something to judge that can be read from its start as often as needed."""

    label: str

    def open(self) -> ContextManager[Source]: ...

    def raw(self) -> ContextManager[Readable]:
        """The content as a plain stream from its start (for a decompressor)."""
        ...

    def spool(self) -> ContextManager[IO[bytes]]:
        """A seekable file with the content (zipfile and tarfile need one)."""
        ...


@dataclass
class FileBlob:
    path: Path
    label: str

    @contextmanager
    def open(self) -> Iterator[Source]:
        with self.path.open("rb") as handle:
            yield Source(handle, size=self.path.stat().st_size, seekable=True)

    @contextmanager
    def raw(self) -> Iterator[IO[bytes]]:
        with self.path.open("rb") as handle:
            yield handle

    spool = raw


@dataclass
class StreamBlob:
    """A zip member or a decompressed stream: reopened from its container every time."""

    opener: Callable[[], ContextManager[Readable]]
    label: str
    budget: Budget
    size: int | None = None

    @contextmanager
    def open(self) -> Iterator[Source]:
        with self.opener() as raw:
            yield Source(raw, size=self.size, budget=self.budget, label=self.label)

    def raw(self) -> ContextManager[Readable]:
        return self.opener()

    @contextmanager
    def spool(self) -> Iterator[IO[bytes]]:
        with tempfile.TemporaryFile(prefix="modelsign-spool-") as spooled, self.opener() as raw:
            while chunk := raw.read(CHUNK):
                spooled.write(chunk)
                self.budget.reach(self.label, spooled.tell())
            spooled.seek(0)
            yield spooled


class ZlibReader:
    """`read(n)` over a raw zlib stream (joblib's default compression); stdlib has no file class for it."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._done = False

    def __enter__(self) -> ZlibReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, count: int = -1) -> bytes:
        count = CHUNK if count is None or count < 0 else count
        while not self._done:
            data = self._inflate.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                if not self._inflate.eof:
                    raise EOFError("the zlib stream ends before its end marker")
                self._done = True
                break
            out = self._inflate.decompress(data, count)
            if self._inflate.eof:
                self._done = True
            if out:
                return out
        return b""


def decompressor(codec: str, raw: Readable) -> ContextManager[Readable]:
    """A reader that decompresses `codec` from `raw`."""
    stream: Any = raw  # the stdlib classes are typed for real files but only ever call read()
    if codec == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if codec == "bz2":
        return bz2.BZ2File(stream, mode="rb")
    if codec in ("xz", "lzma"):
        return lzma.LZMAFile(stream, mode="rb", format=lzma.FORMAT_XZ if codec == "xz" else lzma.FORMAT_ALONE)
    if codec == "zlib":
        return ZlibReader(raw)
    raise ValueError(f"no decompressor for {codec}")


__all__ = ["Blob", "Budget", "BudgetExceeded", "FileBlob", "Readable", "Source", "StreamBlob", "ZlibReader", "decompressor"]
