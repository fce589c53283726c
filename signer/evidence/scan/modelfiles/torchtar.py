"""torch's oldest checkpoint layout, a tar file (torch/serialization.py `legacy_load`), which
torch.load tries on every file that is not a zip. It extracts three members by exact name and
reads each as a sequence of pickles and raw bytes, with a fresh unpickler per pickle on a file
opened without buffering (so each read takes exactly the bytes it needs):

- `storages`: a pickle with the storage count N; N times a pickle (key, location, storage
  type), then an int64 element count and the raw elements; then a pickle with the views.
- `tensors`: a pickle with the tensor count N; N times a pickle (key, storage id, tensor type),
  then an int32 ndim, 4 unused bytes, ndim int64 sizes, ndim int64 strides, an int64 offset.
- `pickle`: the object, one pickle whose persistent ids name the storages.

`storages` and `tensors` are walked exactly that way to their end: every pickle's globals must
be on the allow-list, every count a constant the walker knows and every byte accounted for.
What cannot be followed cannot be judged, and is unsafe.
"""

from __future__ import annotations

from typing import Callable

from signer.evidence.scan.modelfiles.bounds import brief
from signer.evidence.scan.modelfiles.picklefile import STORAGE_ITEM_SIZE, import_issues, judge_pickle
from signer.evidence.scan.modelfiles.pickles import PickleWalker, Stop
from signer.evidence.scan.modelfiles.source import Blob, Source
from signer.evidence.scan.modelfiles.values import Global, Value
from signer.evidence.scan.modelfiles.verdict import Verdict

TORCH_TAR_MEMBERS = ("storages", "tensors", "pickle")
FORMAT = "pytorch-legacy-tar"
_STORAGE_MODULES = ("torch", "torch.cuda")


def is_torch_tar(names: list[str]) -> bool:
    """torch's loader reads a tar only if it has `storages`: it unpickles that first."""
    return "storages" in names


def _count(value: Value, what: str) -> int:
    """`range(value)` in torch: a constant int, or the member cannot be followed."""
    if not isinstance(value, int):
        raise _Unfollowable(f"the {what} is not a constant integer ({type(value).__name__}), so torch's reading cannot be followed")
    return max(value, 0)


class _Unfollowable(Exception):
    pass


def _skip(src: Source, count: int, what: str) -> None:
    at = src.pos
    if src.skip(count) < count:
        raise _Unfollowable(f"{what} claims {count} bytes at byte {at} but the member ends at byte {src.pos}")


def _read_int(src: Source, size: int, what: str) -> int:
    at = src.pos
    data = src.read(size)
    if len(data) < size:
        raise _Unfollowable(f"the member ends at byte {src.pos} inside {what} (which starts at byte {at})")
    return int.from_bytes(data, "little", signed=True)


def _storage_item_size(args: Value) -> int | None:
    if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], Global)):
        return None
    storage_type = args[2]
    return STORAGE_ITEM_SIZE.get(storage_type.name) if storage_type.module in _STORAGE_MODULES else None


def _storages(walker: PickleWalker, src: Source) -> None:
    for index in range(_count(walker.walk_one(), "storage count")):
        at = src.pos
        item_size = _storage_item_size(walker.walk_one())
        if item_size is None:
            raise _Unfollowable(f"storage {index} (byte {at}) is not described as (key, location, torch.<T>Storage), "
                                "so where its raw bytes end cannot be told")
        numel = _read_int(src, 8, f"storage {index}'s element count")
        if numel < 0:
            raise _Unfollowable(f"storage {index} has a negative element count {numel}")
        _skip(src, numel * item_size, f"storage {index}")
    walker.walk_one()  # the storage views


def _tensors(walker: PickleWalker, src: Source) -> None:
    for index in range(_count(walker.walk_one(), "tensor count")):
        walker.walk_one()  # (key, storage id, tensor type)
        ndim = _read_int(src, 4, f"tensor {index}'s ndim")
        if ndim < 0:
            raise _Unfollowable(f"tensor {index} has a negative ndim {ndim}")
        _skip(src, 4 + 16 * ndim + 8, f"tensor {index}'s sizes, strides and offset")


def _walk_rest(walker: PickleWalker, src: Source) -> None:
    try:
        while not src.at_end():
            walker.walk_one()
    except Stop:
        pass


_READERS: dict[str, Callable[[PickleWalker, Source], None]] = {"storages": _storages, "tensors": _tensors}


def judge_torch_tar_member(blob: Blob, name: str) -> Verdict:
    """The verdict on one of the members torch's tar loader reads (`name` in TORCH_TAR_MEMBERS)."""
    if name == "pickle":
        return judge_pickle(blob)  # one pickle, read through tarfile's buffered reader: the strict pickle verdict
    issues: list[str] = []
    with blob.open() as src:
        walker = PickleWalker(src, joblib_arrays=False)  # torch reads with pickle.load, not joblib
        try:
            _READERS[name](walker, src)
            if not src.at_end():
                issues.append(f"bytes from byte {src.pos} on are not part of torch's {name} layout")
                _walk_rest(walker, src)  # torch never reads them, but what they import is named
        except Stop as stop:
            issues.append(f"cannot be parsed completely at byte {stop.offset} as torch reads {name}: {stop.reason}")
        except _Unfollowable as exc:
            issues.append(f"{exc}")
            _walk_rest(walker, src)  # name what the pickles that follow import, as far as they parse
        source_error = src.error
    verdict = Verdict(FORMAT, True)
    named, import_problems = import_issues(walker.imports)
    verdict.imports.extend(named)
    issues = import_problems + issues
    issues += [f"cannot be read exactly at byte {p.offset}: {brief(p.reason)}" for p in walker.problems[:3]]
    if source_error:
        issues.append(source_error)
    for issue in issues:
        verdict.fail(issue)
    return verdict
