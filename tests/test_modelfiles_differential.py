"""Differential test of the model-file check against CPython's own unpickler.

Generated pickles (structured pickles with the constructs that fooled scanners, random opcode
streams, mutations of real ones) are handed to a sandboxed subprocess in which
`pickle.Unpickler` (the C one, which torch and numpy use) and `pickle._Unpickler` (pure
Python, which joblib uses) load them with a `find_class` that records (module, name) and
hands back an inert stand-in: nothing is imported, nothing runs, and the stand-ins accept
every call so the unpickler reads as far as it ever could. (The allow-listed builtins that are
already loaded, such as `_codecs.encode`, are handed out for real: they only compute data, and
a string they compute must reach STACK_GLOBAL as it would for real.) Whenever the real
unpickler asks for a global off the allow-list, our verdict must be unsafe.
"""

from __future__ import annotations

import _compat_pickle
import atexit
import codecs
import collections
import functools
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signer.evidence.scan.modelfiles import classify_file
from signer.evidence.scan.modelfiles.allowlist import is_allowed

# The sandbox: run with `python -I -S` (no site-packages, no cwd on sys.path), under memory and
# CPU limits, reading length-prefixed pickles on stdin and answering one JSON line per pickle.
WORKER = r'''
import io, json, pickle, signal, struct, sys
sys.setrecursionlimit(2000)


class _Meta(type):
    def __call__(cls, *args, **kwargs):  # calling a stand-in class gives another stand-in class
        return _stand_in()

    def __setitem__(cls, key, value):
        pass


class StandIn(metaclass=_Meta):
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(*args):
        pass

    def append(*args):
        pass

    def extend(*args):
        pass

    def add(*args):
        pass

    def __setitem__(*args):
        pass

    def __call__(*args, **kwargs):
        return _stand_in()


def _stand_in():
    return _Meta("StandIn", (StandIn,), {})


SEEN = []


def _persistent(pid):
    if not isinstance(pid, tuple):  # torch's loaders assert this
        raise pickle.UnpicklingError("persistent ids are tuples")
    return _stand_in()


import _codecs, collections
# allow-listed globals that are already loaded and only build data are handed out for real, so
# that what they compute (a str from _codecs.encode(..., "rot13")) reaches the unpickler
REAL = {("_codecs", "encode"): _codecs.encode, ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytes"): bytes,
        ("builtins", "bytearray"): bytearray, ("builtins", "complex"): complex, ("builtins", "slice"): slice, ("builtins", "range"): range}


def _resolve(module, name):
    SEEN.append([module, name])
    return REAL.get((module, name)) or _stand_in()


class RecordingC(pickle.Unpickler):
    def find_class(self, module, name):
        return _resolve(module, name)

    def persistent_load(self, pid):
        return _persistent(pid)


class RecordingPy(pickle._Unpickler):
    def find_class(self, module, name):
        if self.proto < 3 and self.fix_imports:
            import _compat_pickle
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        return _resolve(module, name)

    def persistent_load(self, pid):
        return _persistent(pid)


def _timeout(*args):
    raise TimeoutError


MAGIC, CONSTANTS = 0x1950A86A20F9469CFC6C, (str, bytes, tuple, type(None), list, dict, set, frozenset, bytearray)


def may_equal(value, expected):
    if isinstance(value, (int, float, complex)):
        return value == expected
    return not isinstance(value, CONSTANTS)


def load_all(cls, data, peek=False):
    """As the loaders read: one pickle (pickle.load, numpy, joblib), or, while the first may
    be torch's legacy magic and the second its protocol, up to five, each with a fresh Unpickler.
    A BytesIO cannot peek() (torch reads data.pkl from one); a BufferedReader (an open file) can."""
    SEEN.clear()
    stream, values = io.BufferedReader(io.BytesIO(data)) if peek else io.BytesIO(data), []
    signal.alarm(5)
    try:
        while len(values) < 5 and not (values and not may_equal(values[0], MAGIC)) and not (len(values) >= 2 and not may_equal(values[1], 1001)):
            values.append(cls(stream).load())
    except BaseException:
        pass
    finally:
        signal.alarm(0)
    return list(SEEN)


signal.signal(signal.SIGALRM, _timeout)
stdin, stdout = sys.stdin.buffer, sys.stdout
while True:
    head = stdin.read(4)
    if len(head) < 4:
        break
    data = stdin.read(struct.unpack("<I", head)[0])
    found = {"c": load_all(RecordingC, data), "cpeek": load_all(RecordingC, data, peek=True), "py": load_all(RecordingPy, data)}
    stdout.write(json.dumps(found) + "\n")
    stdout.flush()
'''


def _limits() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (600, 600))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))


class Sandbox:
    """One long-lived worker process; restarted if it dies."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._cwd = tempfile.mkdtemp(prefix="modelsign-unpickle-sandbox-")
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen[bytes]:
        self._proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, cwd=self._cwd, env={}, preexec_fn=_limits)
        return self._proc

    def requested(self, data: bytes) -> dict[str, list[tuple[str, str]]]:
        for _ in range(2):
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(struct.pack("<I", len(data)) + data)
                proc.stdin.flush()
                line = proc.stdout.readline()
            except BrokenPipeError:
                line = b""
            if line:
                found = json.loads(line)
                return {side: [(m, n) for m, n in found[side]] for side in ("c", "cpeek", "py")}
            self.close()
        raise AssertionError(f"the unpickling sandbox died twice on {data[:80]!r}")

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@functools.lru_cache(maxsize=1)
def _sandbox() -> Sandbox:
    return Sandbox()


def requested_globals(data: bytes) -> dict[str, list[tuple[str, str]]]:
    """The globals CPython's C unpickler (from a BytesIO, and from a file that can peek) and its
    pure-Python one ask for while loading `data`."""
    return _sandbox().requested(data)


# -- the property -------------------------------------------------------------------------------


def _allowed(module: str, name: str) -> bool:
    """On the allow-list as written, or as the unpickler maps a Python 2 name (C's find_class
    override sees the name before mapping)."""
    mapped = _compat_pickle.NAME_MAPPING.get((module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
    return is_allowed(module, name) or is_allowed(*mapped)


def _importable(text: str) -> bool:
    return bool(text) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def _identifiers(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def must_refuse(requested: dict[str, list[tuple[str, str]]], name: str) -> list[tuple[str, str]]:
    """Globals off the allow-list that CPython reached. Names with control characters cannot
    be imported; in a file whose name does not say pickle only Python paths count (text files
    that start like an opcode are not reported: documented)."""
    unknown_name = Path(name).suffix not in {".pkl", ".bin", ".npy", ".gguf", ".safetensors", ".onnx"}
    return [(m, n) for m, n in requested["c"] + requested["cpeek"] + requested["py"]
            if not _allowed(m, n) and _importable(m) and _importable(n) and (not unknown_name or (_identifiers(m) and _identifiers(n)))]


def check(data: bytes, name: str, directory: Path) -> None:
    refuse = must_refuse(requested_globals(data), name)
    if not refuse:
        return
    path = directory / name
    path.write_bytes(data)
    entry = classify_file(path)
    assert entry is not None and entry["safe"] is False, f"{name} {data!r}: CPython imports {refuse}, verdict {entry}"


# -- generated pickles ---------------------------------------------------------------------------

POOL = [("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"), ("builtins", "eval"),
        ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "dict.get"), ("builtins", "vars"),
        ("multiprocessing.util", "spawnv_passfds"), ("distutils.spawn", "spawn"), ("__builtin__", "eval"), ("__builtin__", "set"),
        ("copy_reg", "_reconstructor"), ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy", "dtype"), ("numpy", "ndarray"), ("_codecs", "encode"), ("builtins", "set"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("torch", "load")]
_WORDS = sorted({part for pair in POOL for part in pair} | {"", "x", "os.path", "system\n"})


def _text_op(opcode: bytes, text: str) -> bytes:
    return opcode + text.encode() + b"\n"


@st.composite
def tokens(draw: st.DrawFn) -> bytes:
    module, name = draw(st.sampled_from(POOL))
    word = draw(st.sampled_from(_WORDS)).encode("utf-8", "surrogatepass")
    small = draw(st.integers(0, 6))
    choices = [
        b"c" + module.encode() + b"\n" + name.encode() + b"\n",  # GLOBAL
        b"i" + module.encode() + b"\n" + name.encode() + b"\n",  # INST
        b"\x8c" + bytes([len(word)]) + word, b"X" + struct.pack("<I", len(word)) + word, _text_op(b"V", word.decode()),
        b"S'" + word.replace(b"\n", b"") + b"'\n", b"U" + bytes([len(word)]) + word, b"\x93",
        b"(", b"t", b")", b"\x85", b"\x86", b"\x87", b"R", b"b", b"\x81", b"o", b"0", b"1", b"2", b"}", b"]", b"e", b"u", b"s", b"a",
        b".", b"N", b"\x88", b"K" + bytes([small]), b"J\xff\xff\xff\xff", b"I0x1\n", b"I010\n", b"I01\n", b"I 1\n", b"L5L\n",
        b"\x94", b"q" + bytes([small]), b"h" + bytes([small]), b"p" + str(small).encode() + b"\n", b"g" + str(small).encode() + b"\n",
        b"\x80" + bytes([small]), b"\x95" + struct.pack("<Q", draw(st.integers(0, 64))), b"Q", b"\x82" + bytes([small]),
        b"C" + bytes([small]) + b"\x00" * small, b"B" + struct.pack("<I", small) + b"0" * small, b"\x8f", b"\x90", b"\x91",
        draw(st.binary(max_size=6)),
    ]
    return draw(st.sampled_from(choices))


# Structured pickles: each `value` pushes exactly one object, so most streams are real pickles
# that CPython reads to the end, with the constructs that fooled scanners mixed in.
_INTS = [b"K\x07", b"I0x1\n", b"I010\n", b"I 1\n", b"I1_0\n", b"I01\n", b"L5L\n", b"J\xff\xff\xff\xff", b"\x8a\x01\x05", b"G" + bytes(8)]
_NOISE = [b"", b"I0x1\n0", b"(1", b"(0", b"\x80\x02", b"\x80\x04", b"\x95" + struct.pack("<Q", 7), b"\x95" + struct.pack("<Q", 1 << 40), b"N0", b"K\x01\x94" + b"0"]


@st.composite
def value(draw: st.DrawFn, depth: int = 0) -> bytes:
    module, name = draw(st.sampled_from(POOL))
    leaves = [
        draw(st.sampled_from(_INTS)), b"N", b"\x88", b"\x8c\x02os", b"S'os'\n", b"U\x06system", b"C\x02ab",
        b"c" + module.encode() + b"\n" + name.encode() + b"\n",
        b"\x8c" + bytes([len(module)]) + module.encode() + b"\x94\x8c" + bytes([len(name)]) + name.encode() + b"\x94\x93",
        b"X" + struct.pack("<I", len(module)) + module.encode() + b"V" + name.encode() + b"\n\x93",
        # names computed at load time by an allowed global: _codecs.encode("bf", "rot13") == "os"
        b"c_codecs\nencode\n(V" + codecs.encode(module, "rot13").encode() + b"\nVrot13\ntRc_codecs\nencode\n(V"
        + codecs.encode(name, "rot13").encode() + b"\nVrot13\ntR\x93",
        # names kept in memo slots 10 and 11, possibly by an earlier pickle read by the same Unpickler
        b"\x8c" + bytes([len(module)]) + module.encode() + b"q\x0a\x8c" + bytes([len(name)]) + name.encode() + b"q\x0b0",
        b"h\x0ah\x0b\x93",
    ]
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        body = draw(st.sampled_from(leaves))
    else:
        inner = st.lists(value(depth + 1), max_size=3)
        kind = draw(st.sampled_from(["call", "list", "dict", "build", "newobj", "inst", "obj", "tuple", "persid"]))
        items = b"".join(draw(inner))
        if kind == "call":
            body = draw(value(depth + 1)) + b"(" + items + b"tR"
        elif kind == "list":
            body = b"](" + items + b"e"
        elif kind == "dict":
            body = b"}(" + items + (draw(value(depth + 1)) if len(draw(inner)) % 2 else b"") + b"u"
        elif kind == "build":
            body = draw(value(depth + 1)) + draw(value(depth + 1)) + b"b"
        elif kind == "newobj":
            body = draw(value(depth + 1)) + b")\x81"
        elif kind == "inst":
            body = b"(" + items + b"i" + module.encode() + b"\n" + name.encode() + b"\n"
        elif kind == "obj":
            body = b"(" + draw(value(depth + 1)) + items + b"o"
        elif kind == "tuple":
            body = b"(" + items + b"t"
        else:
            body = b"(" + b"\x8c\x07storage" + draw(value(depth + 1)) + b"t" + b"Q"
    memo = draw(st.sampled_from([b"", b"\x94", b"q\x05", b"p5\n", b"r\x05\x00\x00\x00"]))
    return draw(st.sampled_from(_NOISE)) + body + memo


@st.composite
def pickle_streams(draw: st.DrawFn, depth: int = 0) -> bytes:
    """1-3 pickles in a row; `depth` 3 gives one construct per pickle, so each global path is
    tested alone (nested ones often also hold a plain GLOBAL that makes the verdict unsafe)."""
    pickles = [draw(st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"])) + draw(value(depth)) + b"." for _ in range(draw(st.integers(1, 3)))]
    data = bytearray(draw(st.sampled_from(PREFIXES)) + b"".join(pickles))
    for _ in range(draw(st.integers(0, 2))):  # a little damage: the unpickler must be followed even then
        at = draw(st.integers(0, len(data)))
        data[at:at + draw(st.integers(0, 2))] = draw(tokens())
    if draw(st.booleans()):  # end without STOP, maybe on a line without its newline
        module, name = draw(st.sampled_from(POOL))
        data = data.rstrip(b".") + draw(st.sampled_from([b"", b"(S'id'\ni" + module.encode() + b"\n" + name.encode() + b"X",
                                                         b"c" + module.encode() + b"\n" + name.encode() + b"X", b"c" + module.encode() + b"X"]))
    return bytes(data)


NAMES = ["model.pkl", "pytorch_model.bin", "weights.model", "model.gguf", "model.safetensors", "arr.npy"]
PREFIXES = [b"", b"", b"", b"GGUF\x03\x00\x00\x00", b"\x10\x00\x00\x00\x00\x00\x00\x00{", b"I0x1\n0"]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=pickle_streams(), name=st.sampled_from(NAMES))
def test_generated_pickles_never_pass_when_cpython_imports_off_the_list(tmp_path, data, name):
    check(data, name, tmp_path)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=pickle_streams(depth=3), name=st.sampled_from(NAMES))
def test_single_constructs_never_pass_when_cpython_imports_off_the_list(tmp_path, data, name):
    check(data, name, tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(prefix=st.sampled_from(PREFIXES), body=st.lists(tokens(), min_size=1, max_size=40), name=st.sampled_from(NAMES))
def test_random_opcode_streams_never_pass_when_cpython_imports_off_the_list(tmp_path, prefix, body, name):
    check(prefix + b"".join(body), name, tmp_path)


@functools.lru_cache(maxsize=1)
def real_pickles() -> list[bytes]:
    """Pickles as real writers produce them (torch.save-like, numpy, joblib, plain data)."""
    from test_modelfiles_support import DICT_GET, EVIL, SPAWNV_PASSFDS, state_dict, torch_legacy, torch_pickle

    sd, storages = state_dict(2)
    data = {"od": collections.OrderedDict(a=1), "set": {1, 2}, "bytes": b"xy", "t": (1.5, None, True), "s": "text"}
    found = [EVIL, SPAWNV_PASSFDS, DICT_GET, torch_pickle(sd), torch_legacy(sd, storages)]
    found += [pickle.dumps(data, protocol=p) for p in range(6)]
    try:
        import numpy as np

        found += [pickle.dumps(np.arange(4.0), protocol=p) for p in (2, 4, 5)] + [pickle.dumps(np.float32(1.0), protocol=4)]
        import joblib

        buffer = io.BytesIO()
        joblib.dump({"w": np.arange(6, dtype=np.float32), "o": np.array([1, "x"], dtype=object)}, buffer)
        found.append(buffer.getvalue())
    except ImportError:
        pass
    return found


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(real_pickles())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "flip", "splice"]))
        if action == "insert":
            data[at:at] = draw(tokens())
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "splice":
            other = draw(st.sampled_from(real_pickles()))
            data[at:] = other[draw(st.integers(0, len(other))):]
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=mutated(), name=st.sampled_from(NAMES))
def test_mutated_real_pickles_never_pass_when_cpython_imports_off_the_list(tmp_path, data, name):
    check(data, name, tmp_path)


def test_unmutated_real_pickles_of_allowed_globals_are_safe(tmp_path):
    """The other direction, for the real ones: nothing off the list requested, and safe."""
    for index, data in enumerate(real_pickles()[3:]):
        requested = requested_globals(data)
        assert not must_refuse(requested, "model.pkl"), requested
        path = tmp_path / f"real{index}.pkl"
        path.write_bytes(data)
        assert classify_file(path)["safe"] is True, (index, classify_file(path))


def test_the_sandbox_records_without_importing():
    """A global that does not exist and one that would run code: both only recorded."""
    marker = Path(tempfile.gettempdir()) / f"modelsign-sandbox-{os.getpid()}"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.cno_such_module\nthing\n."
    both = [("os", "system"), ("no_such_module", "thing")]
    assert requested_globals(payload) == {"c": both, "cpeek": both, "py": both}
    assert not marker.exists()


def test_a_zip_around_a_pickle_is_read_the_same(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data.pkl", b"I0x1\n0" + b"cos\nsystem\n(S'id'\ntR.")
    path = tmp_path / "model.pt"
    path.write_bytes(buffer.getvalue())
    assert classify_file(path)["dangerousImports"] == ["os.system"]


@pytest.fixture(autouse=True, scope="module")
def _close_sandbox():
    yield
    _sandbox().close()
