"""Judging a whole file as pickles: one or several in a row, the torch legacy layout (five
pickles, then raw storages), joblib's inline arrays, and whether a file that is not a pickle
could still import anything when a loader unpickles it anyway.

A pickle is safe only when it parses completely, pickle after pickle to the end of the file,
and every global it imports is on the allow-list. joblib files are walked twice: as joblib
reads them (array bytes skipped) and as `pickle.load` reads them (array bytes taken as
opcodes), and neither reading may reach a global off the allow-list.

How far a loader reads: `pickle.load`, `numpy.load` and joblib read one pickle; torch's
legacy loader reads on (each time with a fresh Unpickler) only while the first pickle may be
its magic number and the second its protocol version, five pickles at most. That is the
`reading="loaders"` walk, used to ask what a loader could import from any file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signer.evidence.scan.modelfiles.allowlist import is_allowed
from signer.evidence.scan.modelfiles.pickles import Import, PickleWalker, Problem, Stop
from signer.evidence.scan.modelfiles.second_opinion import check_with_picklescan
from signer.evidence.scan.modelfiles.source import Blob, Source
from signer.evidence.scan.modelfiles.values import Global, PDict, PList, PSet, Value
from signer.evidence.scan.modelfiles.verdict import Verdict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy (pre-zip) serialisation
LEGACY_PROTOCOL = 1001
_LEGACY_PICKLES = 5  # magic, protocol version, sys_info, the object, the storage keys
STORAGE_ITEM_SIZE = {  # bytes per element of each torch storage type
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8, "IntStorage": 4,
    "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1, "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8, "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}


@dataclass
class Walk:
    """What one reading of a file as pickles found."""

    imports: list[Import] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    stop: Stop | None = None  # None: the last pickle ended exactly at the end of the data
    pickles: int = 0
    persistent_ids: int = 0
    joblib_wrappers: int = 0
    frame_divergences: int = 0
    layout_issue: str | None = None
    legacy: bool = False  # torch's legacy layout was recognised
    source_error: str | None = None
    withheld: bool = False  # the source error kept back bytes another reader would hand over

    def touched_code(self) -> bool:
        return bool(self.imports or self.persistent_ids)


def _may_equal(value: Value, expected: int) -> bool:
    """Could `value != expected` be False in the loader? Constants are compared; anything built
    by a call (an ndarray compares elementwise) might pass."""
    if isinstance(value, (int, float, complex)):
        return value == expected
    return not isinstance(value, (str, bytes, tuple, type(None), PList, PDict, PSet))


def _loader_reads_on(values: list[Value]) -> bool:
    """After these pickles, does some loader we model read another one (torch legacy)?"""
    if len(values) >= _LEGACY_PICKLES:
        return False
    if len(values) >= 1 and not _may_equal(values[0], LEGACY_MAGIC):
        return False
    return len(values) < 2 or _may_equal(values[1], LEGACY_PROTOCOL)


def walk(src: Source, *, joblib_arrays: bool, reading: str, c_buffering: bool = False) -> Walk:
    """Pickles from the start of `src`. `reading="strict"`: pickle after pickle to the end of
    the data (after torch's five legacy pickles, the raw storages are checked against their
    keys). `reading="loaders"`: only as far as a loader we model reads."""
    walker = PickleWalker(src, joblib_arrays=joblib_arrays, c_buffering=c_buffering)
    values: list[Value] = []
    result = Walk()
    while True:
        if reading == "strict":
            if values and src.at_end():
                break
            if len(values) == _LEGACY_PICKLES and values[0] == LEGACY_MAGIC:
                result.legacy = True
                result.layout_issue = _legacy_storages(src, values[4], walker.persistent_ids)
                break
        elif values and not _loader_reads_on(values):
            break
        try:
            values.append(walker.walk_one())
        except Stop as stop:
            result.stop = stop
            break
    result.imports, result.problems, result.pickles = walker.imports, walker.problems, len(values)
    result.persistent_ids, result.joblib_wrappers, result.source_error = len(walker.persistent_ids), walker.joblib_wrappers, src.error
    result.frame_divergences, result.withheld = walker.frame_divergences, src.withheld
    return result


def _legacy_storages(src: Source, keys: Value, persistent_ids: list[Value]) -> str | None:
    """torch's legacy layout: for each key, an int64 element count and the raw elements."""
    if not isinstance(keys, PList) or not all(isinstance(k, str) for k in keys.items):
        return "the torch legacy storage key list is not a list of strings"
    item_size: dict[str, int] = {}
    for pid in persistent_ids:
        if (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], Global) and isinstance(pid[2], str)
                and pid[1].name in STORAGE_ITEM_SIZE):
            item_size[pid[2]] = STORAGE_ITEM_SIZE[pid[1].name]
    for key in keys.items:
        if key not in item_size:
            return f"torch legacy storage {key!r} is listed but no tensor names its type"
        at = src.pos
        header = src.read(8)
        count = int.from_bytes(header, "little", signed=True)
        if len(header) < 8 or count < 0:
            return f"torch legacy storage {key!r}: no element count at byte {at}"
        nbytes = count * item_size[key]
        if src.skip(nbytes) < nbytes:
            return f"torch legacy storage {key!r} claims {count} elements ({nbytes} bytes) at byte {at + 8} but the file ends at byte {src.pos}"
    if not src.at_end():
        return f"bytes after the last torch legacy storage (from byte {src.pos}) are not part of the checkpoint"
    return None


def disallowed(imports: list[Import]) -> tuple[list[str], int]:
    """Globals off the allow-list (module.name), and how many cannot be named at all."""
    named = [i.dotted() for i in imports if i.known and not is_allowed(i.module or "", i.name or "")]
    return list(dict.fromkeys(named)), sum(1 for i in imports if not i.known)


def import_issues(imports: list[Import], *, reading: str = "") -> tuple[list[str], list[str]]:
    """(globals off the allow-list, sentences saying so) for a reading of the file."""
    named, unnamed = disallowed(imports)
    issues = []
    if named:
        issues.append(f"{reading}imports {', '.join(named[:5])}{' and more' if len(named) > 5 else ''}: "
                      "not on the allow-list of tensor-rebuild and container globals, so loading it can run code")
    if unnamed:
        issues.append(f"{reading}imports {unnamed} global(s) whose names are only computed at load time, which cannot be checked")
    return named, issues


def _reading(blob: Blob, *, joblib_arrays: bool = False, c_buffering: bool = False) -> Walk:
    with blob.open() as src:
        return walk(src, joblib_arrays=joblib_arrays, reading="loaders", c_buffering=c_buffering)


_PICKLE_LOAD = "read with pickle.load instead of joblib.load, it "
_C_BUFFERING = "read by C's unpickler from a file without peek() (as torch.load reads a zip checkpoint), it "


def other_readings(blob: Blob, joblib_walk: Walk) -> list[tuple[str, list[Import]]]:
    """The readings of the bytes that differ from the joblib-aware `joblib_walk`: as
    pickle.load reads a joblib file, and as C reads FRAMEs from a file without peek(). Each is
    (how it was read, what it imports)."""
    found: list[tuple[str, list[Import]]] = []
    plain = joblib_walk
    if joblib_walk.joblib_wrappers:
        plain = _reading(blob)
        found.append((_PICKLE_LOAD, plain.imports))
    if plain.frame_divergences:
        found.append((_C_BUFFERING, _reading(blob, c_buffering=True).imports))
    return found


def reachable(blob: Blob) -> list[Import]:
    """Every global a loader could import when it unpickles this file from its first byte (as
    pickle.load, torch and joblib read it)."""
    return reachable_and_error(blob)[0]


def reachable_and_error(blob: Blob) -> tuple[list[Import], str | None]:
    """`reachable`, and why the archive reader kept back bytes that a loader reading the same
    member with another reader would unpickle (a bad CRC, a truncated tar member), if it did."""
    plain = _reading(blob)
    imports = list(plain.imports)
    if plain.frame_divergences:
        imports += _reading(blob, c_buffering=True).imports
    if plain.joblib_wrappers:
        imports += _reading(blob, joblib_arrays=True).imports
    return imports, plain.source_error if plain.withheld else None


def _declares_pickle(head: bytes) -> bool:
    """Starts with PROTO 0-5, as every pickle torch, joblib and numpy write does."""
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def judge_pickle(blob: Blob) -> Verdict:
    """The strict verdict for a file that should be pickles. A file that no unpickler can get
    a single global out of (raw tensor bytes under a `.bin` name) is reported as data."""
    with blob.open() as src:
        declared = _declares_pickle(src.peek(2))
        main = walk(src, joblib_arrays=True, reading="strict")
    if (main.stop is not None and not main.stop.loader_dependent and main.pickles == 0 and not main.touched_code() and not declared
            and not main.frame_divergences and main.source_error is None):
        return Verdict("data", True, extra={
            "note": f"not a pickle: every unpickler stops at byte {main.stop.offset} ({main.stop.reason}) before importing anything"})
    verdict = Verdict("pytorch-legacy" if main.legacy else "pickle", True)
    named, issues = import_issues(main.imports)
    verdict.imports.extend(named)
    if main.stop is not None:
        where = f" (after {main.pickles} complete pickle(s))" if main.pickles else ""
        issues.append(f"cannot be parsed completely at byte {main.stop.offset}{where}: {main.stop.reason}")
    issues += [f"cannot be read exactly at byte {p.offset}: {p.reason}" for p in main.problems[:3]]
    issues += [issue for issue in (main.layout_issue, main.source_error) if issue]
    for issue in issues:
        verdict.fail(issue)
    for how, imports in other_readings(blob, main):  # the same bytes as other loaders read them
        reported = set(verdict.imports)
        named, issues = import_issues([i for i in imports if i.dotted() not in reported], reading=how)
        verdict.imports.extend(named)
        for issue in issues:
            verdict.fail(issue)
    if verdict.safe and verdict.format == "pickle":
        check_with_picklescan(blob, verdict)
    return verdict
