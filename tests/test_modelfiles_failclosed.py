"""The model-file check fails closed (review 3): a member that cannot be judged is unsafe itself
and never hides its archive; torch's legacy tar layout is read pickle after pickle as torch
reads it; integers of any size are refused before arithmetic and never crash the check; and
whatever escapes a judge becomes an unsafe verdict for that file, never a failed scan or a file
left out. Every pickle here is written opcode by opcode; nothing is ever unpickled."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

import signer.evidence.scan.modelfiles.dispatch as dispatch
from signer.evidence.scan.modelfiles import classify_file, scan_model_files
from test_modelfiles_formats import npy, safetensors
from test_modelfiles_support import (EVIL, PROTO2, STOP, bin_unicode, glob, legacy_object, legacy_storages, legacy_tar_members, legacy_tensors,
                                     small_int, tar_of, torch_zip, zip_of)

DIGITS = b"1" * 5000  # more than the 4300 digits Python converts by default


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def report_of(root: Path) -> dict:
    return scan_model_files(root).to_json()


def renamed_in_local_header(data: bytes, name: str) -> bytes:
    """The zip with `name`'s local header naming another file: zipfile refuses to open that
    member, while readers that trust the central directory (torch's miniz) read the others."""
    raw = bytearray(data)
    at = raw.index(name.encode())  # the first occurrence is the local header
    raw[at + len(name) - 1] ^= 0x01
    return bytes(raw)


def bad_crc(data: bytes, name: str) -> bytes:
    """The zip with `name`'s CRC wrong in both headers: zipfile raises at the member's last byte."""
    raw = bytearray(data)
    for signature, name_at, crc_at in ((b"PK\x03\x04", 30, 14), (b"PK\x01\x02", 46, 16)):  # local header, central directory
        at = raw.index(signature)
        while raw[at + name_at:at + name_at + len(name)] != name.encode():
            at = raw.index(signature, at + 4)
        raw[at + crc_at] ^= 0xFF
    return bytes(raw)


def truncated_tar(members: list[tuple[str, bytes]], cut_in: str) -> bytes:
    """The tar cut off inside the data of member `cut_in`."""
    data = tar_of(members)
    body = dict(members)[cut_in]
    return data[:data.index(body) + len(body) // 2]


# -- F1: one member that cannot be judged never hides the archive ---------------------------------------

# members that used to make a judge raise (and hid the whole archive), and members whose bytes cannot be read
RAISING_MEMBERS = {
    "int-5000-digits": ("archive/notes.txt", b"I" + DIGITS + b"\n."),
    "long-5000-digits": ("archive/extra.pkl", b"L" + DIGITS + b"L\n."),
    "get-5000-digits": ("archive/extra.pkl", b"(g" + DIGITS + b"\n."),
    "safetensors-huge-shape": ("archive/w.safetensors", safetensors({"w": ("F32", [10**30], [0, 4])}, bytes(4))),
    "npy-huge-shape": ("archive/a.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (%s, %s, %s), }" % ((10**2000,) * 3), bytes(16))),
    "npy-long-itemsize": ("archive/a.npy", npy("{'descr': '<f%s', 'fortran_order': False, 'shape': (2,), }" % ("9" * 5000), bytes(16))),
}


@pytest.mark.parametrize("archive_name", ["checkpoint.zip", "0d9f3c", "model.zip", "pytorch_model.bin"])
@pytest.mark.parametrize("trigger", sorted(RAISING_MEMBERS))
def test_a_zip_with_a_hard_member_still_reports_its_os_system_pickle(tmp_path, archive_name, trigger):
    name, data = RAISING_MEMBERS[trigger]
    write(tmp_path, archive_name, zip_of({"archive/data.pkl": EVIL, name: data}))
    report = report_of(tmp_path)
    assert report["unsafeFiles"] == 1, report
    [entry] = report["files"]
    assert entry["path"] == archive_name and entry["safe"] is False and entry["dangerousImports"] == ["os.system"]
    assert "archive/data.pkl: imports os.system" in entry["issue"]


@pytest.mark.parametrize("archive_name", ["bundle.tar", "weights", "model.tar"])
@pytest.mark.parametrize("trigger", sorted(RAISING_MEMBERS))
def test_a_tar_with_a_hard_member_still_reports_its_os_system_pickle(tmp_path, archive_name, trigger):
    name, data = RAISING_MEMBERS[trigger]
    write(tmp_path, archive_name, tar_of([("model.pkl", EVIL), (name.replace("archive/", ""), data)]))
    [entry] = report_of(tmp_path)["files"]
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"] and "model.pkl: imports os.system" in entry["issue"]


@pytest.mark.parametrize("archive_name", ["checkpoint.zip", "0d9f3c", "notes.zip"])
@pytest.mark.parametrize("damage", ["local-header-name", "crc"])
def test_a_zip_member_that_cannot_be_opened_is_unsafe_itself(tmp_path, archive_name, damage):
    data = zip_of({"archive/data.pkl": EVIL, "archive/notes.txt": b"hello"}, zipfile.ZIP_STORED)
    damaged = renamed_in_local_header(data, "archive/notes.txt") if damage == "local-header-name" else bad_crc(data, "archive/notes.txt")
    write(tmp_path, archive_name, damaged)
    [entry] = report_of(tmp_path)["files"]
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"]
    assert "archive/notes.txt: cannot be" in entry["issue"]
    with zipfile.ZipFile(tmp_path / archive_name) as archive:  # the pickle is still there for a loader to read
        assert archive.read("archive/data.pkl") == EVIL


@pytest.mark.parametrize("name", ["weights", "notes.bin", "README"])
def test_an_unreadable_member_holding_a_pickle_is_unsafe_whatever_its_name(tmp_path, name):
    """A bad CRC loses the member's bytes in zipfile, while a reader that skips CRC checks
    (torch's miniz build) still reads them: an unreadable member is never "not a model"."""
    write(tmp_path, "blob", bad_crc(zip_of({name: EVIL}, zipfile.ZIP_STORED), name))
    [entry] = report_of(tmp_path)["files"]
    assert entry["safe"] is False and f"{name}: " in entry["issue"] and "Bad CRC-32" in entry["issue"]


@pytest.mark.parametrize("archive_name", ["bundle.tar", "weights"])
def test_a_tar_that_cannot_be_read_to_its_end_is_unsafe(tmp_path, archive_name):
    write(tmp_path, archive_name, truncated_tar([("model.pkl", EVIL), ("README", b"x" * 3000)], "README"))
    [entry] = report_of(tmp_path)["files"]
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"] and "cannot be read to its end" in entry["issue"]


def test_the_hugging_face_cache_blob_behind_a_model_name_is_reported(tmp_path):
    """snapshots/<rev>/pytorch_model.bin is a symlink to blobs/<sha256>, a name-less zip."""
    model = tmp_path / "models--org--m"
    write(model, "blobs/" + "a" * 64, zip_of({"archive/data.pkl": EVIL, "archive/version": b"I" + DIGITS + b"\n."}))
    (model / "snapshots/rev1").mkdir(parents=True)
    os.symlink("../../blobs/" + "a" * 64, model / "snapshots/rev1/pytorch_model.bin")
    report = report_of(tmp_path)
    assert report["unsafeFiles"] == 1 and [f["path"] for f in report["files"]] == ["models--org--m/blobs/" + "a" * 64]
    assert report["files"][0]["dangerousImports"] == ["os.system"]


def test_only_a_container_that_cannot_be_opened_may_be_not_a_model_file(tmp_path):
    broken = b"PK\x03\x04" + bytes(60)
    assert classify_file(write(tmp_path, "notes", broken)) is None  # not a zip at all: nothing a loader opens
    assert "corrupt zip archive" in classify_file(write(tmp_path, "model.pt", broken))["issue"]
    assert classify_file(write(tmp_path, "docs.zip", zip_of({"a.txt": b"hello", "b.md": b"# hi"}))) is None
    assert classify_file(write(tmp_path, "src.tar", tar_of([("serve.py", b"print(1)\n")]))) is None


# -- the guard: whatever escapes a judge is an unsafe verdict ----------------------------------------------


class JudgeBroke(RuntimeError):
    pass


def _broken_judge(*_args: object) -> None:
    raise JudgeBroke("a judge failed in a way nobody foresaw")


def test_an_exception_in_any_judge_is_an_unsafe_verdict_for_that_file_only(tmp_path, monkeypatch):
    """No real input is known to make a judge raise any more (each one found is fixed above),
    so the npy judge is made to fail: the file and the archive holding it are reported unsafe
    with the reason, the other files are judged as before and the scan completes."""
    monkeypatch.setattr(dispatch, "judge_npy", _broken_judge)
    array = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", bytes(16))
    write(tmp_path, "a.npy", array)
    write(tmp_path, "bundle.zip", zip_of({"x.npy": array, "evil.pkl": EVIL}))
    write(tmp_path, "notes.txt", b"hello")
    report = report_of(tmp_path)
    entries = {f["path"]: f for f in report["files"]}
    assert sorted(entries) == ["a.npy", "bundle.zip"] and report["unsafeFiles"] == 2
    assert "cannot be judged completely (JudgeBroke: a judge failed in a way nobody foresaw)" in entries["a.npy"]["issue"]
    assert entries["bundle.zip"]["dangerousImports"] == ["os.system"]
    assert "x.npy: cannot be judged completely (JudgeBroke" in entries["bundle.zip"]["issue"]


def test_a_file_that_cannot_be_read_is_unsafe_not_a_failed_scan(tmp_path, monkeypatch):
    """A read error (EIO on a bad disk, a file replaced while scanned) is made by failing the
    first read of one file; root reads any file whatever its mode, so chmod cannot stand in."""
    from signer.evidence.scan.modelfiles import source

    real_open = source.FileBlob.open

    def failing_open(self):  # type: ignore[no-untyped-def]
        if self.path.name == "model.pkl":
            raise OSError(5, "Input/output error")
        return real_open(self)

    monkeypatch.setattr(source.FileBlob, "open", failing_open)
    write(tmp_path, "model.pkl", EVIL)
    write(tmp_path, "other.pkl", EVIL)
    entries = {f["path"]: f for f in report_of(tmp_path)["files"]}
    assert entries["model.pkl"]["safe"] is False and "cannot be read (OSError: [Errno 5] Input/output error)" in entries["model.pkl"]["issue"]
    assert entries["other.pkl"]["dangerousImports"] == ["os.system"]


# -- F2: torch's legacy tar layout, read as torch reads it ----------------------------------------------


def legacy_tar(**replace: bytes) -> bytes:
    members = legacy_tar_members()
    members.update(replace)
    return tar_of(list(members.items()))


def test_a_well_formed_legacy_tar_checkpoint_is_safe(tmp_path):
    entry = classify_file(write(tmp_path, "pytorch_model.bin", legacy_tar()))
    assert entry == {"format": "pytorch-legacy-tar", "safe": True, "members": 4}


FIRST_PICKLES = {  # what torch's `num_storages = pickle.load(f)` reads before the os.system pickle
    "proto0-int-0": b"I0\n.", "proto0-false": b"I00\n.", "proto1-binint1-0": b"K\x00.", "proto2-binint1-0": small_int(0),
    "proto2-newfalse": PROTO2 + b"\x89" + STOP, "binint-negative": b"J\xff\xff\xff\xff.", "long-0": b"L0L\n.",
    "proto0-true": b"I01\n.", "int-5000-digits": b"I" + DIGITS + b"\n.", "none": b"N.",
}


@pytest.mark.parametrize("name", ["pytorch_model.bin", "checkpoint.pth.tar", "weights"])
@pytest.mark.parametrize("first", sorted(FIRST_PICKLES))
def test_a_second_pickle_in_the_storages_member_is_found(tmp_path, name, first):
    entry = classify_file(write(tmp_path, name, legacy_tar(storages=FIRST_PICKLES[first] + EVIL)))
    assert entry["safe"] is False and entry["format"] == "pytorch-legacy-tar"
    assert entry["dangerousImports"] == ["os.system"] and "storages: imports os.system" in entry["issue"]


def _storage_args(storage_type: bytes) -> bytes:
    return PROTO2 + bin_unicode("1") + bin_unicode("cpu") + storage_type + b"\x87" + STOP


HOSTILE_STORAGES = {
    # the os.system pickle where torch reads the storage views
    "views": legacy_storages({"1": bytes(16)}, views=EVIL),
    # an element count that ends the raw bytes early, so torch reads the rest as the views pickle
    "short-count": small_int(1) + _storage_args(glob("torch", "FloatStorage")) + struct.pack("<q", 0) + EVIL,
    # a storage type this check cannot size: where the raw bytes end cannot be told
    "unknown-storage-type": small_int(1) + _storage_args(glob("torch", "WeirdStorage")) + struct.pack("<q", 1) + bytes(4) + PROTO2 + b"]" + STOP,
    # bytes after the views pickle that torch never reads, but nothing else may hide there either
    "trailing-pickle": legacy_storages({"1": bytes(16)}) + EVIL,
    "trailing-bytes": legacy_storages({"1": bytes(16)}) + b"\x00junk",
    # a count the walker cannot know: how many pickles torch reads cannot be told
    "computed-count": PROTO2 + glob("builtins", "len") + b"(]t" + b"R" + STOP + EVIL,
    "count-too-big-to-keep": PROTO2 + b"\x8b" + struct.pack("<i", 2000) + bytes(2000) + STOP + EVIL,
    "negative-element-count": small_int(1) + _storage_args(glob("torch", "FloatStorage")) + struct.pack("<q", -1) + EVIL,
    "element-count-past-the-end": small_int(1) + _storage_args(glob("torch", "FloatStorage")) + struct.pack("<q", 10**6) + EVIL,
    "args-not-a-triple": small_int(1) + PROTO2 + b"]" + STOP + struct.pack("<q", 0) + EVIL,
}


@pytest.mark.parametrize("variant", sorted(HOSTILE_STORAGES))
def test_storages_members_torch_would_read_differently_are_unsafe(tmp_path, variant):
    entry = classify_file(write(tmp_path, "pytorch_model.bin", legacy_tar(storages=HOSTILE_STORAGES[variant])))
    assert entry["safe"] is False and "storages: " in entry["issue"], entry


@pytest.mark.parametrize("variant", ["views", "short-count", "trailing-pickle"])
def test_the_os_system_pickle_in_storages_is_named(tmp_path, variant):
    entry = classify_file(write(tmp_path, "model.tar", legacy_tar(storages=HOSTILE_STORAGES[variant])))
    assert entry["dangerousImports"] == ["os.system"]


HOSTILE_TENSORS = {
    "after-count": small_int(0) + EVIL,
    "after-a-tensor": legacy_tensors({"10": ("1", (2, 2))}) + EVIL,
    "as-tensor-args": small_int(1) + EVIL,
    "ndim-hides-it": small_int(2) + PROTO2 + bin_unicode("10") + bin_unicode("1") + glob("torch", "FloatTensor") + b"\x87" + STOP
                     + struct.pack("<i", 0) + bytes(4) + bytes(8) + EVIL,
}


@pytest.mark.parametrize("variant", sorted(HOSTILE_TENSORS))
def test_a_pickle_hidden_in_the_tensors_member_is_found(tmp_path, variant):
    entry = classify_file(write(tmp_path, "pytorch_model.bin", legacy_tar(tensors=HOSTILE_TENSORS[variant])))
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"] and "tensors: " in entry["issue"]


def test_tensors_with_a_negative_ndim_or_cut_short_are_unsafe(tmp_path):
    negative = small_int(1) + PROTO2 + bin_unicode("10") + bin_unicode("1") + glob("torch", "FloatTensor") + b"\x87" + STOP + struct.pack("<i", -1)
    cut = legacy_tensors({"10": ("1", (2, 2))})[:-5]
    for tensors, problem in ((negative, "negative ndim"), (cut, "claims")):
        entry = classify_file(write(tmp_path, "pytorch_model.bin", legacy_tar(tensors=tensors)))
        assert entry["safe"] is False and problem in entry["issue"]


def test_the_object_pickle_of_a_legacy_tar_is_judged_strictly(tmp_path):
    entry = classify_file(write(tmp_path, "pytorch_model.bin", legacy_tar(pickle=EVIL)))
    assert entry["dangerousImports"] == ["os.system"] and "pickle: imports os.system" in entry["issue"]
    trailing = classify_file(write(tmp_path, "model.bin", legacy_tar(pickle=legacy_object({"w": "10"}) + EVIL)))
    assert trailing["dangerousImports"] == ["os.system"]


def test_torch_reads_the_last_storages_member_and_links_are_not_followed(tmp_path):
    members = legacy_tar_members()
    duplicated = tar_of([("storages", members["storages"]), *members.items(), ("storages", small_int(0) + EVIL)])
    assert classify_file(write(tmp_path, "dup.bin", duplicated))["dangerousImports"] == ["os.system"]
    members.pop("storages")
    linked = tar_of([("notes", small_int(0) + EVIL), *members.items()], links={"storages": "notes"})
    entry = classify_file(write(tmp_path, "linked.bin", linked))
    assert entry["safe"] is False and "storages: torch reads it but it is a link" in entry["issue"]


def test_a_tar_without_storages_is_not_read_as_torch_layout(tmp_path):
    """torch unpickles nothing from a tar without `storages`: its members are judged as files."""
    entry = classify_file(write(tmp_path, "model.tar", tar_of([("pickle", legacy_object({"w": "10"})), ("w.pkl", PROTO2 + b"}" + STOP)])))
    assert entry == {"format": "tar", "safe": True, "members": 2}


# -- F5: integers of any size ---------------------------------------------------------------------------


HUGE_SAFETENSORS = {
    "shape-10^400": ({"w": {"dtype": "F32", "shape": [10**400], "data_offsets": [0, 4]}}, "larger than any size"),
    "shape-2^1100": ({"w": {"dtype": "F32", "shape": [2**1100], "data_offsets": [0, 4]}}, "larger than any size"),
    "shape-2^64": ({"w": {"dtype": "F32", "shape": [2**64], "data_offsets": [0, 4]}}, "invalid shape"),
    "shape-product-overflows": ({"w": {"dtype": "F32", "shape": [2**32, 2**32, 0], "data_offsets": [0, 0]}}, "invalid shape"),
    "offsets-10^30": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 10**30]}}, "larger than any size"),
    "offsets-2^64": ({"w": {"dtype": "U8", "shape": [1], "data_offsets": [2**64, 2**64 + 1]}}, "invalid data_offsets"),
    "negative-10^400": ({"w": {"dtype": "F32", "shape": [-(10**400)], "data_offsets": [0, 4]}}, "larger than any size"),
    "800-dims-of-4000-digits": ('{"w":{"dtype":"F32","shape":[' + ",".join(["9" * 4000] * 800) + '],"data_offsets":[0,4]}}', "larger than any size"),
    "4000-digit-offset": ('{"__metadata__":{"n":"1"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,' + "4" * 4000 + "]}}",
                          "larger than any size"),
}


@pytest.mark.parametrize("variant", sorted(HUGE_SAFETENSORS))
def test_safetensors_with_huge_integers_are_unsafe_not_a_crash(tmp_path, variant):
    header, problem = HUGE_SAFETENSORS[variant]
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    entry = classify_file(write(tmp_path, "model.safetensors", safetensors({}, bytes(4), raw_header=raw)))
    assert entry["safe"] is False and entry["format"] == "safetensors" and problem in entry["issue"]
    assert len(entry["issue"]) < 1000  # the integer is described, not printed


def test_safetensors_sizes_up_to_64_bits_are_still_checked_exactly(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [2**62, 2], "data_offsets": [0, 4]}}
    entry = classify_file(write(tmp_path, "model.safetensors", safetensors({}, bytes(4), raw_header=json.dumps(header).encode())))
    assert entry["safe"] is False and "needs 36893488147419103232 bytes" in entry["issue"]
    empty = {"w": {"dtype": "F32", "shape": [2**63, 0], "data_offsets": [0, 0]}}
    assert classify_file(write(tmp_path, "empty.safetensors", safetensors({}, b"", raw_header=json.dumps(empty).encode())))["safe"] is True


HUGE_NPY = {
    "three-2001-digit-dims": "{'descr': '<f4', 'fortran_order': False, 'shape': (%s, %s, %s), }" % ((10**2000,) * 3),
    "product-past-int64": "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 4), }" % 2**62,
    "bytes-past-int64": "{'descr': '<f8', 'fortran_order': False, 'shape': (%d,), }" % 2**61,
    "dim-past-int64": "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 0), }" % 2**64,
    "itemsize-5000-digits": "{'descr': '<f%s', 'fortran_order': False, 'shape': (2,), }" % ("9" * 5000),
    "structured-huge-subarray": "{'descr': [('a', '<f4', (%s,))], 'fortran_order': False, 'shape': (2,), }" % (10**2000),
    "structured-nested-huge": "{'descr': [('a', [('b', '<f8', (%d,))], (%d,))], 'fortran_order': False, 'shape': (%d,), }" % (2**40, 2**40, 2**40),
}


@pytest.mark.parametrize("variant", sorted(HUGE_NPY))
def test_npy_headers_with_huge_integers_are_unsafe_not_a_crash(tmp_path, variant):
    entry = classify_file(write(tmp_path, "x.npy", npy(HUGE_NPY[variant], bytes(16))))
    assert entry["safe"] is False and entry["format"] == "npy" and len(entry["issue"]) < 1000


_WRAPPER = PROTO2 + glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81}(" + bin_unicode("dtype") + glob("numpy", "dtype")
_LONG4_1024 = b"\x8b\x00\x04\x00\x00"  # LONG4 of 1024 bytes: an integer of 8192 bits
LONG_DIGIT_PICKLES = {  # (pickle, safe?, imports?): a harmless value of any size is still harmless
    "int": (b"I" + DIGITS + b"\n.", True, False),
    "long": (b"L" + DIGITS + b"L\n.", True, False),
    "int-hex-5000-digits": (b"I0x" + b"f" * 5000 + b"\n.", True, False),
    "int-octal-5000-digits": (b"I0" + b"7" * 5000 + b"\n.", True, False),
    "int-100k-digits": (b"I" + b"9" * 100_000 + b"\n.", True, False),
    "get": (b"(g" + DIGITS + b"\n.", False, False),
    "put": (b"Np" + DIGITS + b"\n.", False, False),
    "int-then-evil": (b"I" + DIGITS + b"\n." + EVIL, False, True),
    "joblib-dtype-5000-digits": (_WRAPPER + b"(" + bin_unicode("f" + "9" * 5000) + b"\x89\x88tR" + bin_unicode("shape") + b"K\x02\x85ub" + STOP,
                                 False, True),
    "joblib-elsize-huge": (_WRAPPER + b"(" + bin_unicode("f8") + b"\x89\x88tR(K\x03" + bin_unicode("<") + b"NNN" + _LONG4_1024 + b"\x01" * 1024
                           + b"J\xff\xff\xff\xffK\x00tb" + bin_unicode("shape") + b"K\x02\x85ub" + STOP, False, True),
    "joblib-shape-huge": (_WRAPPER + b"(" + bin_unicode("f8") + b"\x89\x88tR" + bin_unicode("shape")
                          + b"(" + _LONG4_1024 + b"\x7f" * 1024 + _LONG4_1024 + b"\x7f" * 1024 + b"tub" + STOP, False, True),
}


@pytest.mark.parametrize("name", ["model.pkl", "noname"])
@pytest.mark.parametrize("variant", sorted(LONG_DIGIT_PICKLES))
def test_pickles_with_long_digit_strings_are_judged_not_a_crash(tmp_path, name, variant):
    data, safe, imports = LONG_DIGIT_PICKLES[variant]
    entry = classify_file(write(tmp_path, name, data))
    if name == "noname" and not imports:
        assert entry is None  # a name-less file no loader gets an import out of is not a model file
        return
    assert entry["safe"] is safe, entry
    if variant == "int-then-evil":
        assert entry["dangerousImports"] == ["os.system"]


def test_the_review_scripts_scan_a_whole_directory_of_huge_integers(tmp_path):
    """Everything above in one directory: the scan completes and reports each file."""
    for variant, (header, _) in HUGE_SAFETENSORS.items():
        raw = (header if isinstance(header, str) else json.dumps(header)).encode()
        write(tmp_path, f"st/{variant}.safetensors", safetensors({}, bytes(4), raw_header=raw))
    for variant, header in HUGE_NPY.items():
        write(tmp_path, f"npy/{variant}.npy", npy(header, bytes(16)))
    for variant, (data, _, _) in LONG_DIGIT_PICKLES.items():
        write(tmp_path, f"pkl/{variant}.pkl", data)
    report = report_of(tmp_path)
    assert len(report["files"]) == len(HUGE_SAFETENSORS) + len(HUGE_NPY) + len(LONG_DIGIT_PICKLES)
    assert report["unsafeFiles"] == len(HUGE_SAFETENSORS) + len(HUGE_NPY) + sum(1 for _, safe, _ in LONG_DIGIT_PICKLES.values() if not safe)
    json.dumps(report)  # every message can be written out


def test_the_torch_zip_layout_is_unchanged_by_the_guard(tmp_path):
    """Control: a clean torch.save zip stays safe; its os.system twin stays unsafe."""
    from test_modelfiles_support import state_dict

    sd, storages = state_dict(2)
    assert classify_file(write(tmp_path, "ok.bin", torch_zip(sd, storages)))["safe"] is True
    assert classify_file(write(tmp_path, "bad.bin", torch_zip(None, {}, data_pkl=EVIL)))["dangerousImports"] == ["os.system"]


# -- a name-less blob is judged under the model name a symlink gives it ---------------------------------


@pytest.mark.parametrize("link, blob, problem", [
    ("pytorch_model.bin", b"PK\x03\x04" + bytes(60), "corrupt zip archive"),  # a zip no reader here opens: unsafe once a name says model
    ("model.onnx", b"\x08\x07" + b"\xff" * 8, "not a valid ONNX protobuf"),  # name-based judges run on cache blobs too
    ("model.h5", b"\x89HDF\r\n\x1a\n" + bytes(32), "Keras/HDF5"),
    ("model.gguf", b"not gguf at all", "no GGUF magic"),
])
def test_a_hugging_face_cache_blob_is_judged_under_its_snapshot_name(tmp_path, link, blob, problem):
    model = tmp_path / "models--org--m"
    write(model, "blobs/" + "b" * 64, blob)
    (model / "snapshots/rev1").mkdir(parents=True)
    os.symlink("../../blobs/" + "b" * 64, model / "snapshots/rev1" / link)
    assert classify_file(model / "blobs" / ("b" * 64)) is None  # without the link, nothing says what it is
    [entry] = report_of(tmp_path)["files"]
    assert entry["path"] == "models--org--m/blobs/" + "b" * 64 and entry["safe"] is False and problem in entry["issue"]


def test_links_out_of_the_scanned_tree_and_to_non_model_names_give_no_role(tmp_path):
    outside = write(tmp_path, "outside/blob", b"PK\x03\x04" + bytes(60))
    write(tmp_path, "scan/blobs/c", b"PK\x03\x04" + bytes(60))
    os.symlink(outside, tmp_path / "scan/pytorch_model.bin")
    os.symlink("blobs/c", tmp_path / "scan/notes.txt")
    assert report_of(tmp_path / "scan")["files"] == []


@pytest.mark.parametrize("text", [b"x = 1\n", b"x ? y\n", b"x}\n", b"x\x01 binary"])
def test_text_that_merely_starts_like_zlib_is_not_reported(tmp_path, text):
    """b"x " and b"x=" pass zlib's two-byte header check; that the "stream" then fails to
    decompress means it is not compressed, not that bytes were kept back."""
    assert classify_file(write(tmp_path, "notes.txt", text)) is None
    assert classify_file(write(tmp_path, "docs.zip", zip_of({"notes.txt": text}))) is None


# -- review 4: a container other readers may open, and one nested too deep, is unsafe whatever its name ----


def with_central_extra(data: bytes, extra: bytes) -> bytes:
    """The one-member zip with `extra` as its central directory entry's extra field: zipfile
    refuses a malformed extra field, Info-ZIP unzip reads past it, and torch's miniz parses
    extras only for zip64 sizes."""
    raw = bytearray(data)
    entry = raw.rindex(b"PK\x01\x02")
    name_length = struct.unpack_from("<H", raw, entry + 28)[0]
    raw[entry + 46 + name_length:entry + 46 + name_length] = extra
    struct.pack_into("<H", raw, entry + 30, len(extra))
    end = raw.rindex(b"PK\x05\x06")
    struct.pack_into("<I", raw, end + 12, struct.unpack_from("<I", raw, end + 12)[0] + len(extra))  # the central directory's size
    return bytes(raw)


def first_stored_member(data: bytes) -> tuple[str, bytes]:
    """The first member as a reader that walks local headers reads it (no central directory)."""
    assert data[:4] == b"PK\x03\x04"
    size, name_length, extra_length = struct.unpack_from("<IHH", data, 22)
    start = 30 + name_length + extra_length
    return data[30:30 + name_length].decode(), data[start:start + size]


BAD_CENTRAL_EXTRAS = {
    "unknown-id-claims-100-bytes": struct.pack("<HH", 0xCAFE, 100),
    "unicode-path-cut-short": struct.pack("<HH", 0x7075, 9) + b"\x01abc",
    "zip64-cut-short": struct.pack("<HH", 0x0001, 30) + bytes(8),
}


@pytest.mark.parametrize("archive_name", ["weights", "0d9f3c", "notes.txt", "model.pt"])
@pytest.mark.parametrize("extra", sorted(BAD_CENTRAL_EXTRAS))
def test_a_zip_zipfile_refuses_but_other_readers_open_is_unsafe_whatever_its_name(tmp_path, archive_name, extra):
    data = with_central_extra(zip_of({"archive/data.pkl": EVIL}, zipfile.ZIP_STORED), BAD_CENTRAL_EXTRAS[extra])
    with pytest.raises(zipfile.BadZipFile, match="Corrupt extra field"):
        zipfile.ZipFile(write(tmp_path, archive_name, data))
    assert first_stored_member(data) == ("archive/data.pkl", EVIL)  # the pickle is there for another reader to load
    report = report_of(tmp_path)
    assert report["unsafeFiles"] == 1, report
    [entry] = report["files"]
    assert entry["path"] == archive_name and entry["safe"] is False and entry["format"] == "zip"
    assert "corrupt zip archive: BadZipFile: Corrupt extra field" in entry["issue"] and "another zip reader" in entry["issue"]


@pytest.mark.parametrize("name", ["weights", "notes", "README", "data.csv"])
@pytest.mark.parametrize("content", [b"PK\x03\x04" + bytes(60), b"PK\x03\x04 is how a zip starts; this note only says so.\n" * 3])
def test_a_file_that_merely_starts_like_a_zip_is_still_not_a_model_file(tmp_path, name, content):
    """No end-of-central-directory record: no zip reader a loader uses opens it."""
    assert classify_file(write(tmp_path, name, content)) is None


def _tar_header(name: str, size: int, typeflag: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, typeflag
    return info.tobuf(tarfile.USTAR_FORMAT)


BROKEN_TARS = {  # a valid first header, then something tarfile refuses at open; GNU tar still extracts the pickle
    "pax-record-of-length-0": _tar_header("././@PaxHeader", 16, tarfile.XHDTYPE) + b"0 path=weights\n\n".ljust(512, b"\0"),
    "garbage-header-after-pax": _tar_header("././@PaxHeader", 16, tarfile.XHDTYPE) + b"16 path=weights\n".ljust(512, b"\0") + b"\x01" * 512,
}


@pytest.mark.parametrize("archive_name", ["weights", "bundle", "model.tar"])
@pytest.mark.parametrize("variant", sorted(BROKEN_TARS))
def test_a_tar_whose_first_header_is_valid_but_cannot_be_opened_is_unsafe_whatever_its_name(tmp_path, archive_name, variant):
    path = write(tmp_path, archive_name, BROKEN_TARS[variant] + tar_of([("weights", EVIL)]))
    with pytest.raises(tarfile.ReadError):
        tarfile.open(path, mode="r:")
    [entry] = report_of(tmp_path)["files"]
    assert entry["path"] == archive_name and entry["safe"] is False and entry["format"] == "tar"
    assert "corrupt tar archive: ReadError" in entry["issue"] and "another tar reader" in entry["issue"]


def nested(depth: int, inner: bytes, kinds: str) -> bytes:
    """`inner` as member e1 of a container, that one as e2 of the next, and so on, `depth`
    containers in all, with no model-looking name anywhere; kinds cycles z(ip), t(ar), g(zip)."""
    data = inner
    for level in range(1, depth + 1):
        kind = kinds[(level - 1) % len(kinds)]
        data = (zip_of({f"e{level}": data}) if kind == "z" else tar_of([(f"e{level}", data)]) if kind == "t" else gzip.compress(data))
    return data


# (kinds, containers, judged?): an archive is a level; a compressed stream is its content's level (a .tar.gz is
# one archive), except compression inside compression; more than 3 levels are not judged
DEPTH_CASES = [(kinds, depth, depth <= 3) for kinds in ("zt", "tz", "z") for depth in range(1, 7)]
DEPTH_CASES += [("tg", depth, depth <= 6) for depth in (2, 4, 6, 8, 10)]  # .tgz in .tgz, as Helm subcharts are
DEPTH_CASES += [("g", depth, depth <= 4) for depth in (1, 4, 5, 6)]  # gzip of gzip of ...
DEPTH_CASES += [("ztg", depth, depth <= 4) for depth in (3, 4, 5, 6)]


@pytest.mark.parametrize("kinds, depth, judged", DEPTH_CASES)
def test_an_unnamed_pickle_is_reported_at_any_depth(tmp_path, kinds, depth, judged):
    entry = classify_file(write(tmp_path, "bundle", nested(depth, EVIL, kinds)))
    assert entry is not None and entry["safe"] is False, entry
    if judged:  # the import is named
        assert entry["dangerousImports"] == ["os.system"]
    else:  # past the limit: not judged, and said so
        assert "nested more than 3 archives deep: too deep to judge" in entry["issue"] and "dangerousImports" not in entry


def test_a_helm_chart_with_subcharts_of_subcharts_is_not_a_model_file(tmp_path):
    """Three .tgz levels of YAML (as helm's own test charts are) are judged all the way down."""
    chart = b""
    for name in ("albatross", "mariner", "frobnitz"):
        members = [(f"{name}/Chart.yaml", f"name: {name}\n".encode()), (f"{name}/values.yaml", b"image: nginx\n")]
        if chart:
            members.append((f"{name}/charts/sub-0.1.0.tgz", chart))
        chart = gzip.compress(tar_of(members))
    assert classify_file(write(tmp_path, "frobnitz-1.2.3.tgz", chart)) is None


def _only(kind: str, directory: bool) -> bytes:
    """A zip or tar holding one directory entry, or one small text file."""
    if kind == "t":
        if directory:
            return _tar_header("d/", 0, tarfile.DIRTYPE) + bytes(1024)  # the header, then the two zero blocks that end a tar
        return tar_of([("d/notes", b"hello")])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("d/" if directory else "d/notes", b"" if directory else b"hello")
    return buffer.getvalue()


@pytest.mark.parametrize("innermost", ["z", "t"])
@pytest.mark.parametrize("kinds, around", [("zt", 3), ("tz", 3), ("tg", 6)])
def test_a_container_past_the_depth_limit_holding_no_file_is_not_a_model_file(tmp_path, kinds, around, innermost):
    """The 4th archive level holds only a directory: nothing a loader could read, so nothing to
    report. The same level holding a text file is past the limit, so unsafe."""
    assert classify_file(write(tmp_path, "empty", nested(around, _only(innermost, directory=True), kinds))) is None
    entry = classify_file(write(tmp_path, "text", nested(around, _only(innermost, directory=False), kinds)))
    assert entry["safe"] is False and "nested more than 3 archives deep" in entry["issue"]
