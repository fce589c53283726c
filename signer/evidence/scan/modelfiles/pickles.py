"""A pickle opcode walker that reads bytes the way CPython's unpickler does, and builds nothing.

`pickletools.genops` is not the unpickler: it parses INT in base 10 where `_pickle.c` uses
strtol base 0, it rejects what the unpickler accepts and it knows no stack. This walker follows
`Modules/_pickle.c` (3.8-3.13) opcode by opcode: operand lengths, the mark stack and its fence,
the memo, the protocol number that turns on Python 2 name fixing. It records every global the
unpickler would import (GLOBAL, INST, STACK_GLOBAL, EXT) with the names `find_class` would be
given, and the persistent ids torch's loader would resolve.

Two rules keep it sound:
- It only stops where every unpickler we model stops too (`Stop`): an unknown opcode byte, the
  end of the data, a pop below the current MARK, an unsupported protocol, PERSID. Where CPython
  might fail on a value (a bad INT, an odd DICT) it goes on as if the value were fine, so it
  sees at least every global the real unpickler reaches.
- Where it cannot know exactly what happens (a STACK_GLOBAL on computed strings, an EXT code, a
  memo slot it lost track of), it records a `Problem`, and unknown imports are recorded as such:
  a verdict of "safe" needs neither.
Python's pure unpickler (joblib uses it) differs in two places that matter, both modelled: it
takes a last line without its newline (minus its last byte), and INST imports before it looks
for its MARK. C's unpickler reading a file that cannot peek() (torch reads a zip checkpoint's
data.pkl from a BytesIO) differs at FRAMEs: a read that runs past a frame skips the rest of it.
Real pickles never do that; where a file does, it is recorded, and a second reading
(`c_buffering`) follows C.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import functools
import re
import struct
from dataclasses import dataclass
from typing import Callable

from signer.evidence.scan.modelfiles.allowlist import JOBLIB_ARRAY_WRAPPER
from signer.evidence.scan.modelfiles.bounds import checked_product
from signer.evidence.scan.modelfiles.source import Source
from signer.evidence.scan.modelfiles.values import Global, Obj, Opaque, PDict, Persistent, PList, PSet, Unknown, Value

MAX_OPCODES = 20_000_000  # ~30 s of walking; a larger pickle is called unsafe rather than judged for minutes
KEEP = 64 * 1024  # longest str/bytes/line kept as a value
MAX_ITEMS = 2_000_000  # container items kept in memory per walk
_FRAME_LINE_SCAN = 1 << 20
_COMPUTED = (Unknown, Obj, Persistent, Opaque, Global)  # values that are no constant the walker knows
HIGHEST_PROTOCOL = 5
NUMPY_MAX_SIZE = 2**63 - 1  # npy_intp
MAX_INT_TEXT = 1000  # longest INT/LONG/GET/PUT line converted to a value
_C_LONG = re.compile(rb"[ \t\n\v\f\r]*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


@dataclass(frozen=True)
class Import:
    """A global the unpickler asks `find_class` for; module/name None when it cannot be known."""

    module: str | None
    name: str | None
    offset: int
    opcode: str

    @property
    def known(self) -> bool:
        return self.module is not None and self.name is not None

    def dotted(self) -> str:
        return f"{self.module}.{self.name}" if self.known else f"a global chosen at load time ({self.opcode})"


@dataclass(frozen=True)
class Problem:
    offset: int
    reason: str


class Stop(Exception):
    """Every unpickler we model stops at `offset`: nothing after it is read."""

    def __init__(self, offset: int, reason: str, *, loader_dependent: bool = False) -> None:
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.loader_dependent = loader_dependent  # a loader other than those we model might read on


def _c_int(text: bytes, base: int) -> int | None:
    """The value `_pickle.c` reads from an INT/GET/PUT line (C strings end at NUL), or None
    when it cannot be known. A line longer than MAX_INT_TEXT is not converted: Python refuses
    more than 4300 decimal digits by default (a loader's limit can differ) and converting
    thousands of digits costs quadratic time, while no value the walker compares is that long."""
    text = text.split(b"\0", 1)[0]
    if len(text) > MAX_INT_TEXT:
        return None
    if base == 0:
        match = _C_LONG.fullmatch(text)
        if match is not None:  # strtol(s, &end, 0): C octal for a leading 0
            body = text.strip()
            sign = -1 if body.startswith(b"-") else 1
            digits = match.group(1)
            if digits[:2] in (b"0x", b"0X"):
                return sign * int(digits[2:], 16)
            return sign * (int(digits, 8) if digits.startswith(b"0") else int(digits))
    try:
        return int(text, base)  # PyLong_FromString: underscores, surrounding whitespace
    except ValueError:
        return None


class PickleWalker:
    """Walks pickles from `src`, one `walk_one` per pickle. `joblib_arrays`: skip the array
    bytes that follow a joblib NumpyArrayWrapper, as joblib's unpickler reads them.
    `c_buffering`: read FRAMEs as C's unpickler does from a file without peek()."""

    def __init__(self, src: Source, *, joblib_arrays: bool, c_buffering: bool = False, max_opcodes: int = MAX_OPCODES) -> None:
        self.src = src
        self.joblib_arrays = joblib_arrays
        self.c_buffering = c_buffering
        self.max_opcodes = max_opcodes
        self.stack: list[Value] = []
        self.marks: list[int] = []
        self.proto = 0
        self.memo: dict[int, Value] = {}
        self.memo_lost = False
        self.imports: list[Import] = []
        self.problems: list[Problem] = []
        self.persistent_ids: list[Value] = []
        self.joblib_wrappers = 0
        self.frame_divergences = 0
        self._frame_end: int | None = None  # where the bytes C's unpickler holds after a FRAME end
        self.opcodes = 0
        self.items = 0
        self._at = 0
        self._result: Value = None

    # -- driving ------------------------------------------------------------------------------

    def walk_one(self) -> Value:
        """From here to the next STOP, as a fresh Unpickler reads it (every loader we model
        makes one per pickle); returns what STOP hands back. Raises `Stop`."""
        self.stack, self.marks, self.proto, self.memo, self.memo_lost = [], [], 0, {}, False
        return self._run()

    def _run(self) -> Value:
        src, ops = self.src, _OPS
        while True:
            at = src.pos
            byte = src.read_byte()
            if byte < 0:
                raise Stop(at, "the data ends before the pickle's STOP opcode")
            self.opcodes += 1
            if self.opcodes > self.max_opcodes:
                self._problem(f"more than {self.max_opcodes} opcodes: too large to judge")
                self.imports.append(Import(None, None, at, "opcode limit"))
                raise Stop(at, f"more than {self.max_opcodes} opcodes: too large to judge")
            handler = ops.get(byte)
            if handler is None:
                raise Stop(at, f"byte 0x{byte:02x} is not a pickle opcode")
            self._at = at
            if handler(self):
                return self._result

    def _problem(self, reason: str) -> None:
        self.problems.append(Problem(self._at, reason))

    # -- stack --------------------------------------------------------------------------------

    def _fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def _pop(self, op: str) -> Value:
        if len(self.stack) <= self._fence():
            raise Stop(self._at, f"{op} pops from an empty stack")
        return self.stack.pop()

    def _top(self, op: str) -> Value:
        if len(self.stack) <= self._fence():
            raise Stop(self._at, f"{op} needs a value on the stack and there is none")
        return self.stack[-1]

    def _marker(self, op: str) -> int:
        if not self.marks:
            raise Stop(self._at, f"{op} needs a MARK and there is none")
        return self.marks.pop()

    def _pop_to_mark(self, op: str) -> list[Value]:
        """The values after the last MARK, taken off the stack with the MARK."""
        mark = self._marker(op)
        items = self.stack[mark:]
        del self.stack[mark:]
        return items

    def _into_container(self, op: str) -> tuple[Value, list[Value]]:
        """APPENDS/SETITEMS/ADDITEMS: the container below the MARK and the values after it."""
        mark = self._marker(op)
        if mark > len(self.stack) or mark <= self._fence():
            raise Stop(self._at, f"{op} has no container below its MARK")
        items = self.stack[mark:]
        del self.stack[mark:]
        return self.stack[-1], items

    def _kept(self, values: list[Value]) -> list[Value]:
        """Container contents, up to the memory bound (past it they are dropped)."""
        self.items += len(values)
        return values if self.items <= MAX_ITEMS else []

    # -- operands -----------------------------------------------------------------------------

    def _bytes(self, count: int, op: str, *, through_frames: bool = False) -> bytes:
        if not through_frames:
            self._frame_read(count)
        data = self.src.read(count)
        if len(data) < count:
            raise Stop(self._at, f"{op} needs {count} bytes and the data ends")
        return data

    def _uint(self, count: int, op: str) -> int:
        return int.from_bytes(self._bytes(count, op), "little")

    def _payload(self, size: int, op: str, *, through_frames: bool = False) -> bytes | None:
        """`size` operand bytes: returned when small enough to keep, else skipped (None).
        `through_frames`: C reads them with readinto(), which goes on past a FRAME's end."""
        if size <= KEEP:
            return self._bytes(size, op, through_frames=through_frames)
        if not through_frames:
            self._frame_read(size)
        if self.src.skip(size) < size:
            raise Stop(self._at, f"{op} says {size} bytes follow and the data ends first")
        return None

    def _line(self, op: str) -> tuple[bytes | None, bool]:
        """The operand line without its newline (None when longer than we keep), and whether a
        newline ended it."""
        line, complete, whole = self._long_line(op)
        return (line if whole else None), complete

    def _long_line(self, op: str) -> tuple[bytes, bool, bool]:
        """(the operand line without its newline, or its first KEEP bytes; whether a newline
        ended it; whether it is all there). At the end of the data C refuses the line; Python's
        unpickler takes it minus its last byte, and that is the reading used for imports."""
        self._frame_read(None)
        kept, complete, length = self.src.readline(KEEP + 1)
        if not complete:
            self._problem(f"{op} operand is not ended by a newline")
        return kept[:-1], complete, length <= KEEP

    # -- values -------------------------------------------------------------------------------

    def _text(self, data: bytes | None, encoding: str, errors: str = "strict") -> Value:
        if data is None:
            return Opaque("str", KEEP)
        try:
            return data.decode(encoding, errors)
        except UnicodeDecodeError:
            return Unknown(f"text that is not {encoding}")

    def _py2_string(self, data: bytes | None) -> Value:
        """Python 2 str: decoded with the loader's encoding (ASCII by default, UTF-8 in torch)."""
        if data is None:
            return Opaque("str", KEEP)
        return data.decode("ascii") if data.isascii() else Unknown("an 8-bit string whose text depends on the loader")

    def _record_import(self, module: str, name: str, op: str) -> Global:
        if self.proto < 3:  # fix_imports: Python 2 names as the unpickler maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        self.imports.append(Import(module, name, self._at, op))
        return Global(module, name)

    def _unknown_import(self, op: str, why: str) -> None:
        self.imports.append(Import(None, None, self._at, op))
        self._problem(why)

    # -- opcodes ------------------------------------------------------------------------------

    def _mark(self) -> None:
        self.marks.append(len(self.stack))

    def _stop(self) -> bool:
        self._result = self._pop("STOP")
        if self._frame_end is not None and self.src.pos < self._frame_end:
            self._frame_diverges(self._frame_end)  # C's file position, where a next Unpickler starts, is the frame's end
        self._frame_end = None
        return True

    def _pop_op(self) -> None:
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
        elif len(self.stack) <= self._fence():
            raise Stop(self._at, "POP on an empty stack")
        else:
            self.stack.pop()

    def _pop_mark(self) -> None:
        self._pop_to_mark("POP_MARK")

    def _dup(self) -> None:
        self.stack.append(self._top("DUP"))

    def _float(self) -> None:
        line, _ = self._line("FLOAT")
        try:
            self.stack.append(float(line.split(b"\0", 1)[0]) if line is not None else Unknown("long FLOAT"))
        except ValueError:
            self.stack.append(Unknown("FLOAT operand"))

    def _int(self) -> None:
        line, _ = self._line("INT")
        if line in (b"00", b"01"):
            self.stack.append(line == b"01")
            return
        value = _c_int(line, 0) if line is not None else None
        self.stack.append(value if value is not None else Unknown("INT operand"))

    def _binint(self) -> None:
        self.stack.append(int.from_bytes(self._bytes(4, "BININT"), "little", signed=True))

    def _uint_value(self, size: int, op: str) -> None:
        self.stack.append(self._uint(size, op))

    def _constant(self, value: Value) -> None:
        self.stack.append(value)

    def _new(self, kind: type[PList] | type[PDict] | type[PSet]) -> None:
        self.stack.append(kind())

    def _py2_counted(self, size: int, op: str) -> None:
        self.stack.append(self._py2_string(self._payload(self._uint(size, op), op)))



    def _long(self) -> None:
        line, _ = self._line("LONG")
        if line is not None and line.endswith(b"L"):
            line = line[:-1]
        value = _c_int(line, 0) if line is not None else None
        self.stack.append(value if value is not None else Unknown("LONG operand"))

    def _counted_long(self, size: int, op: str) -> None:
        count = int.from_bytes(self._bytes(size, op), "little", signed=size == 4)
        if count < 0:
            raise Stop(self._at, f"{op} has a negative byte count")
        data = self._payload(count, op)
        self.stack.append(int.from_bytes(data, "little", signed=True) if data is not None and count <= 1024 else Opaque("int", count))






    def _binfloat(self) -> None:
        self.stack.append(struct.unpack(">d", self._bytes(8, "BINFLOAT"))[0])

    def _string(self) -> None:
        line, _ = self._line("STRING")
        if line is None or len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            self.stack.append(Unknown("STRING operand"))
            return
        try:
            self.stack.append(self._py2_string(codecs.escape_decode(line[1:-1])[0]))
        except ValueError:
            self.stack.append(Unknown("STRING escapes"))



    def _unicode(self) -> None:
        line, _ = self._line("UNICODE")
        try:
            self.stack.append(codecs.raw_unicode_escape_decode(line)[0] if line is not None else Opaque("str", KEEP))
        except UnicodeDecodeError:
            self.stack.append(Unknown("UNICODE escapes"))

    def _counted_unicode(self, size: int, op: str) -> None:
        self.stack.append(self._text(self._payload(self._uint(size, op), op), "utf-8", "surrogatepass"))




    def _counted_bytes(self, size: int, op: str) -> None:
        count = self._uint(size, op)
        data = self._payload(count, op, through_frames=True)
        self.stack.append(data if data is not None else Opaque("bytes", count))





    def _next_buffer(self) -> None:
        self._problem("NEXT_BUFFER: out-of-band data, which no checkpoint format uses")
        self.stack.append(Unknown("out-of-band buffer"))

    def _readonly_buffer(self) -> None:
        self._top("READONLY_BUFFER")

    def _counted_tuple(self, count: int, op: str) -> None:
        start = len(self.stack) - count
        if start < self._fence():
            raise Stop(self._at, f"{op} needs {count} values on the stack")
        items = tuple(self.stack[start:])
        del self.stack[start:]
        self.stack.append(items)

    def _empty_tuple(self) -> None:
        self.stack.append(())




    def _tuple(self) -> None:
        self.stack.append(tuple(self._pop_to_mark("TUPLE")))

    def _list(self) -> None:
        self.stack.append(PList(self._kept(self._pop_to_mark("LIST"))))

    def _pairs(self, items: list[Value], op: str) -> list[tuple[Value, Value]]:
        if len(items) % 2:
            self._problem(f"{op} with an odd number of items")
        return self._kept(list(zip(items[::2], items[1::2], strict=False)))

    def _dict(self) -> None:
        self.stack.append(PDict(self._pairs(self._pop_to_mark("DICT"), "DICT")))

    def _frozenset(self) -> None:
        self.stack.append(PSet(self._kept(self._pop_to_mark("FROZENSET"))))

    def _extend(self, op: str, kind: type[PList] | type[PSet]) -> None:
        """APPENDS and ADDITEMS."""
        target, items = self._into_container(op)
        if isinstance(target, kind):
            target.items.extend(self._kept(items))

    def _append(self) -> None:
        if len(self.stack) - 1 <= self._fence():
            raise Stop(self._at, "APPEND needs a list and a value on the stack")
        value = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, PList):
            target.items.extend(self._kept([value]))

    def _setitem(self) -> None:
        if len(self.stack) - 2 <= self._fence():
            raise Stop(self._at, "SETITEM needs a dict, a key and a value on the stack")
        value = self.stack.pop()
        key = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, PDict):
            target.items.extend(self._kept([(key, value)]))

    def _setitems(self) -> None:
        target, items = self._into_container("SETITEMS")
        pairs = self._pairs(items, "SETITEMS")
        if isinstance(target, PDict):
            target.items.extend(pairs)

    def _calls(self, maker: Value, op: str) -> None:
        if not isinstance(maker, Global):
            self._problem(f"{op} calls something that is not an imported global")

    def _reduce(self) -> None:
        args = self._pop("REDUCE")
        maker = self._pop("REDUCE")
        self._calls(maker, "REDUCE")
        self.stack.append(Obj(maker, args))

    def _newobj(self) -> None:
        args = self._pop("NEWOBJ")
        cls = self._pop("NEWOBJ")
        self._calls(cls, "NEWOBJ")
        self.stack.append(Obj(cls, args))

    def _newobj_ex(self) -> None:
        kwargs = self._pop("NEWOBJ_EX")
        args = self._pop("NEWOBJ_EX")
        cls = self._pop("NEWOBJ_EX")
        self._calls(cls, "NEWOBJ_EX")
        self.stack.append(Obj(cls, (args, kwargs)))

    def _obj(self) -> None:
        mark = self._marker("OBJ")
        if len(self.stack) - mark < 1:
            raise Stop(self._at, "OBJ needs a class after its MARK")
        cls, args = self.stack[mark], tuple(self.stack[mark + 1:])
        del self.stack[mark:]
        self._calls(cls, "OBJ")
        self.stack.append(Obj(cls, args))

    def _names(self, op: str, encoding: str) -> tuple[str, str] | None:
        """The module and name lines of GLOBAL/INST, or None when no unpickler could import them."""
        module, _, whole_module = self._long_line(op)
        name, _, whole_name = self._long_line(op)
        if b"\0" in module:
            return None  # no finder resolves a module name with NUL in it (a tar header that starts with 'c' or 'i')
        if not (whole_module and whole_name):
            self._unknown_import(op, f"{op} names longer than {KEEP} bytes")
            return None
        try:
            return module.decode(encoding), name.decode(encoding)
        except UnicodeDecodeError:
            return None  # find_class is never reached

    def _global(self) -> None:
        names = self._names("GLOBAL", "utf-8")
        self.stack.append(self._record_import(*names, "GLOBAL") if names else Unknown("GLOBAL names"))

    def _inst(self) -> None:
        names = self._names("INST", "ascii")  # pure-Python pickle imports before it looks for the MARK
        cls = self._record_import(*names, "INST") if names else Unknown("INST names")
        self.stack.append(Obj(cls, tuple(self._pop_to_mark("INST"))))

    def _stack_global(self) -> None:
        name = self._pop("STACK_GLOBAL")
        module = self._pop("STACK_GLOBAL")
        if isinstance(module, str) and isinstance(name, str):
            self.stack.append(self._record_import(module, name, "STACK_GLOBAL"))
        elif isinstance(module, _COMPUTED) or isinstance(name, _COMPUTED):  # might be a str at load time
            self._unknown_import("STACK_GLOBAL", "STACK_GLOBAL on values that are not constant strings")
            self.stack.append(Unknown("STACK_GLOBAL"))
        else:
            self.stack.append(Unknown("STACK_GLOBAL on non-strings"))  # "STACK_GLOBAL requires str"

    def _ext(self, size: int, op: str) -> None:
        code = int.from_bytes(self._bytes(size, op), "little", signed=size == 4)
        if code <= 0:
            raise Stop(self._at, f"{op} code {code} is not a registered extension")
        self._unknown_import(op, f"{op} code {code}: a global from copyreg's extension registry, which the file does not name")
        self.stack.append(Unknown("extension"))




    def _persid(self) -> None:
        self._line("PERSID")
        raise Stop(self._at, "PERSID: pickle, joblib, numpy and torch all refuse a protocol 0 persistent id", loader_dependent=True)

    def _binpersid(self) -> None:
        pid = self._pop("BINPERSID")
        self.persistent_ids.append(pid)
        self.stack.append(Persistent(pid))

    def _build(self) -> None:
        if len(self.stack) - 2 < self._fence():
            raise Stop(self._at, "BUILD needs an object and its state on the stack")
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Obj):
            inst.state = state
            if isinstance(inst.maker, Global) and inst.maker.is_(JOBLIB_ARRAY_WRAPPER):
                self.joblib_wrappers += 1
                if self.joblib_arrays:
                    self._joblib_array(inst)
        elif not isinstance(inst, Unknown):
            self._problem("BUILD on a value that is not an object")

    def _memo_get_counted(self, size: int, op: str) -> None:
        self._memo_get(self._uint(size, op), op)

    def _memo_get(self, index: int | None, op: str) -> None:
        if index is not None and index in self.memo:
            self.stack.append(self.memo[index])
        elif index is None or self.memo_lost:
            self._problem(f"{op} of a memo slot the walker cannot know")
            self.stack.append(Unknown("memo"))
        else:
            raise Stop(self._at, f"{op} {index}: the memo has no such entry")

    def _get(self) -> None:
        line, _ = self._line("GET")
        self._memo_get(_c_int(line, 10) if line is not None else None, "GET")



    def _memo_put_counted(self, size: int, op: str) -> None:
        self._memo_put(self._uint(size, op), op)

    def _memo_put(self, index: int | None, op: str) -> None:
        value = self._top(op)
        if index is None or index < 0:
            self._problem(f"{op} index the walker cannot read")
            self.memo_lost = True
            return
        self.memo[index] = value

    def _put(self) -> None:
        line, _ = self._line("PUT")
        self._memo_put(_c_int(line, 10) if line is not None else None, "PUT")



    def _memoize(self) -> None:
        if self.memo_lost:
            self._problem("MEMOIZE after a memo slot the walker lost")
        self._memo_put(len(self.memo), "MEMOIZE")

    def _proto(self) -> None:
        version = self._uint(1, "PROTO")
        if version > HIGHEST_PROTOCOL:
            raise Stop(self._at, f"unsupported pickle protocol {version}")
        self.proto = version

    def _frame(self) -> None:
        length = self._uint(8, "FRAME")
        pos, end = self.src.pos, self._frame_end
        if end is not None and pos < end:
            if pos + length <= end:
                return  # C serves it from the frame it already holds
            self._frame_diverges(end)  # C drops the rest and reads the new frame after it
            pos = self.src.pos
        if self.src.size is not None and pos + length > self.src.size:
            self._problem(f"FRAME of {length} bytes runs past the end of the data")
            if self.c_buffering:
                raise Stop(self._at, f"FRAME of {length} bytes runs past the end of the data")
            return
        self._frame_end = pos + length

    def _frame_read(self, need: int | None) -> None:
        """Before a read of `need` bytes (None: a line). CPython's C unpickler reading a file
        without peek() (torch reads data.pkl from a BytesIO) holds a FRAME's bytes and, when a
        read runs past them, drops what is left and reads on after the frame. Where that
        differs from reading straight on, it is recorded, and the `c_buffering` reading does
        what C does."""
        end = self._frame_end
        if end is None:
            return
        pos = self.src.pos
        if pos >= end:
            self._frame_end = None
        elif need is not None and pos + need > end:
            self._frame_diverges(end)
        elif need is None and b"\n" not in self.src.peek(min(end - pos, _FRAME_LINE_SCAN)):
            if end - pos > _FRAME_LINE_SCAN:
                self._unknown_import("FRAME", "a line longer than 1 MiB inside a FRAME: where C's unpickler reads on cannot be told")
                self._frame_end = None
            else:
                self._frame_diverges(end)

    def _frame_diverges(self, end: int) -> None:
        self.frame_divergences += 1
        self._frame_end = None
        if self.c_buffering:
            self.src.skip(end - self.src.pos)
        else:
            self._problem("a read runs past the end of its FRAME, where CPython's C unpickler reading a file without peek() reads other bytes")

    # -- joblib -------------------------------------------------------------------------------

    def _joblib_array(self, wrapper: Obj) -> None:
        """joblib writes the array right after the wrapper's BUILD: raw bytes (after a padding
        byte and its padding), or a nested pickle for object arrays. Skip it as joblib reads it."""
        layout = joblib_layout(wrapper.state)
        if layout is None:
            self._unknown_import("joblib array", "a joblib array whose dtype or shape the walker cannot read: the bytes after it cannot be located")
            raise Stop(self._at, "a joblib array whose size cannot be read")
        nbytes, has_objects, aligned = layout
        if self._frame_end is not None and self.src.pos < self._frame_end:
            # joblib reads the array from its file handle, after the frame its unpickler holds
            self._unknown_import("joblib array", "a joblib array inside a FRAME: joblib and pickle then read different bytes")
            raise Stop(self._at, "a joblib array inside a FRAME")
        if has_objects:  # joblib reads it with a fresh Unpickler: own stack, memo and protocol
            saved = (self.stack, self.marks, self.proto, self.memo, self.memo_lost)
            self.stack, self.marks, self.proto, self.memo, self.memo_lost = [], [], 0, {}, False
            self._run()
            self.stack, self.marks, self.proto, self.memo, self.memo_lost = saved
            return
        if aligned:
            padding = self._uint(1, "joblib array padding")
            if self.src.skip(padding) < padding:
                raise Stop(self._at, "the joblib array padding runs past the end of the data")
        if self.src.skip(nbytes) < nbytes:
            raise Stop(self._at, f"the joblib array of {nbytes} bytes runs past the end of the data")



W, _op = PickleWalker, functools.partial
# opcode byte -> handler(walker), which returns True at STOP
_OPS: dict[int, Callable[[PickleWalker], bool | None]] = {
    ord("("): W._mark, ord("."): W._stop, ord("0"): W._pop_op, ord("1"): W._pop_mark, ord("2"): W._dup,
    ord("N"): _op(W._constant, value=None), 0x88: _op(W._constant, value=True), 0x89: _op(W._constant, value=False),
    ord("I"): W._int, ord("J"): W._binint, ord("K"): _op(W._uint_value, size=1, op="BININT1"),
    ord("M"): _op(W._uint_value, size=2, op="BININT2"), ord("L"): W._long,
    0x8a: _op(W._counted_long, size=1, op="LONG1"), 0x8b: _op(W._counted_long, size=4, op="LONG4"),
    ord("F"): W._float, ord("G"): W._binfloat,
    ord("S"): W._string, ord("T"): _op(W._py2_counted, size=4, op="BINSTRING"), ord("U"): _op(W._py2_counted, size=1, op="SHORT_BINSTRING"),
    ord("V"): W._unicode, ord("X"): _op(W._counted_unicode, size=4, op="BINUNICODE"),
    0x8c: _op(W._counted_unicode, size=1, op="SHORT_BINUNICODE"), 0x8d: _op(W._counted_unicode, size=8, op="BINUNICODE8"),
    ord("B"): _op(W._counted_bytes, size=4, op="BINBYTES"), ord("C"): _op(W._counted_bytes, size=1, op="SHORT_BINBYTES"),
    0x8e: _op(W._counted_bytes, size=8, op="BINBYTES8"), 0x96: _op(W._counted_bytes, size=8, op="BYTEARRAY8"),
    0x97: W._next_buffer, 0x98: W._readonly_buffer,
    ord(")"): W._empty_tuple, ord("t"): W._tuple, 0x85: _op(W._counted_tuple, count=1, op="TUPLE1"),
    0x86: _op(W._counted_tuple, count=2, op="TUPLE2"), 0x87: _op(W._counted_tuple, count=3, op="TUPLE3"),
    ord("]"): _op(W._new, kind=PList), ord("l"): W._list, ord("a"): W._append, ord("e"): _op(W._extend, op="APPENDS", kind=PList),
    ord("}"): _op(W._new, kind=PDict), ord("d"): W._dict, ord("s"): W._setitem, ord("u"): W._setitems,
    0x8f: _op(W._new, kind=PSet), 0x90: _op(W._extend, op="ADDITEMS", kind=PSet), 0x91: W._frozenset,
    ord("c"): W._global, 0x93: W._stack_global, ord("i"): W._inst,
    0x82: _op(W._ext, size=1, op="EXT1"), 0x83: _op(W._ext, size=2, op="EXT2"), 0x84: _op(W._ext, size=4, op="EXT4"),
    ord("R"): W._reduce, 0x81: W._newobj, 0x92: W._newobj_ex, ord("o"): W._obj, ord("b"): W._build,
    ord("P"): W._persid, ord("Q"): W._binpersid,
    ord("g"): W._get, ord("h"): _op(W._memo_get_counted, size=1, op="BINGET"), ord("j"): _op(W._memo_get_counted, size=4, op="LONG_BINGET"),
    ord("p"): W._put, ord("q"): _op(W._memo_put_counted, size=1, op="BINPUT"), ord("r"): _op(W._memo_put_counted, size=4, op="LONG_BINPUT"),
    0x94: W._memoize, 0x80: W._proto, 0x95: W._frame,
}


def numpy_dtype(value: Value) -> tuple[int, bool] | None:
    """(itemsize, holds Python objects) of a pickled `numpy.dtype(spec, align, copy)` + state."""
    if not (isinstance(value, Obj) and isinstance(value.maker, Global) and value.maker.module == "numpy"
            and value.maker.name == "dtype" and isinstance(value.args, tuple) and value.args and isinstance(value.args[0], str)):
        return None
    spec = value.args[0].lstrip("<>|=")
    state = value.state if isinstance(value.state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    has_objects = spec.startswith("O") or bool(flags & 1)
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    if elsize > 2**31:
        return None  # numpy's item size is a C int
    if elsize > 0:
        return elsize, has_objects
    match = re.fullmatch(r"[biufcmMO](\d{1,9})", spec)  # an item size is a C int
    if match is None:
        return (8, True) if spec == "O" else None
    return int(match.group(1)), has_objects


def joblib_layout(state: Value) -> tuple[int, bool, bool] | None:
    """(array bytes, object array?, padded?) from a NumpyArrayWrapper's state dict."""
    if not isinstance(state, PDict):
        return None
    dtype, shape = numpy_dtype(state.get("dtype")), state.get("shape")
    count = checked_product(shape, NUMPY_MAX_SIZE) if isinstance(shape, tuple) else None
    if dtype is None or count is None:
        return None  # numpy refuses a shape whose element count overflows npy_intp
    aligned = state.has("numpy_array_alignment_bytes") and state.get("numpy_array_alignment_bytes") is not None
    return count * dtype[0], dtype[1], aligned
