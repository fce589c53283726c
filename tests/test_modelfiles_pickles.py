"""The pickle side of the model-file check: the three holes of the issue, and the opcode
walker's reading of CPython's unpickler (INT base 0, STACK_GLOBAL, several pickles in a row,
Python 2 names, what pure-Python pickle does differently). Pickles are only written here; the
sandbox (test_modelfiles_differential) is what checks that CPython really reaches the globals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from signer.evidence.scan.modelfiles import classify_file
from signer.evidence.scan.modelfiles.pickles import PickleWalker, Stop, _c_int
from signer.evidence.scan.modelfiles.source import Source
from test_modelfiles_differential import requested_globals
from test_modelfiles_support import (DICT_GET, DISTUTILS_SPAWN, EVIL, PROTO2, PROTO4, SPAWNV_PASSFDS, STOP, bstr, call, glob,
                                     stack_global, ustr)


def classify(tmp_path: Path, name: str, data: bytes) -> dict | None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return classify_file(path)


def walk_all(data: bytes) -> PickleWalker:
    walker = PickleWalker(Source(io.BytesIO(data), size=len(data)), joblib_arrays=False)
    with pytest.raises(Stop):
        while True:
            walker.walk_one()
    return walker


# -- the three holes -------------------------------------------------------------------------------


def test_a_gguf_magic_prefix_does_not_hide_a_pickle(tmp_path):
    polyglot = b"GGUF\x03\0\0\0\0" + b"0" + EVIL  # 'G' is BINFLOAT: eight bytes later the pickle goes on
    assert ("os", "system") in requested_globals(polyglot)["c"]  # CPython's unpickler does reach it
    entry = classify(tmp_path, "pytorch_model.bin", polyglot)
    assert entry["safe"] is False and entry["format"] == "gguf" and entry["dangerousImports"] == ["os.system"]
    assert "GGUF header claims" in entry["issue"] and "also read as a pickle that imports os.system" in entry["issue"]


def test_an_int_in_base_0_does_not_hide_a_pickle(tmp_path):
    hidden = b"I0x1\n0" + EVIL  # pickletools reads INT in base 10 and gives up; _pickle.c uses strtol(s, 0)
    assert ("os", "system") in requested_globals(hidden)["c"]
    entry = classify(tmp_path, "model.pkl", hidden)
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"]


@pytest.mark.parametrize("payload, module, name", [
    (SPAWNV_PASSFDS, "multiprocessing.util", "spawnv_passfds"),
    (DISTUTILS_SPAWN, "distutils.spawn", "spawn"),
    (DICT_GET, "builtins", "dict.get"),
], ids=["spawnv_passfds", "distutils-spawn", "dict.get-on-vars-os"])
def test_globals_off_the_allow_list_are_unsafe(tmp_path, payload, module, name):
    assert (module, name) in requested_globals(payload)["c"]  # what CPython's unpickler asks for
    entry = classify(tmp_path, "model.pkl", payload)
    assert entry["safe"] is False and f"{module}.{name}" in entry["dangerousImports"]
    assert "not on the allow-list" in entry["issue"] and "safetensors" in entry["issue"]


def test_an_unknown_torch_global_is_named_in_the_message(tmp_path):
    entry = classify(tmp_path, "model.pt", PROTO2 + call(glob("torch", "load"), ustr("x")) + STOP)
    assert entry["dangerousImports"] == ["torch.load"] and "imports torch.load: not on the allow-list" in entry["issue"]


# -- reading like the unpickler --------------------------------------------------------------------


@pytest.mark.parametrize("line, value", [
    (b"0x1", 1), (b"010", 8), (b" 7", 7), (b"-0X10", -16), (b"1_000", 1000), (b"12\0junk", 12), (b"0x", None), (b"zz", None),
])
def test_int_operands_are_read_as_strtol_base_0(line, value):
    assert _c_int(line, 0) == value


def test_stack_global_on_computed_strings_is_unsafe(tmp_path):
    # the module name is built by a call at load time: no static reading can name the global
    computed = PROTO4 + call(stack_global("collections", "OrderedDict")) + ustr("system") + b"\x93" + STOP
    entry = classify(tmp_path, "model.pkl", computed)
    assert entry["safe"] is False and "computed at load time" in entry["issue"]


def test_stack_global_through_the_memo_is_named(tmp_path):
    memoized = PROTO4 + ustr("os") + b"\x94" + ustr("system") + b"\x94" + b"h\x00h\x01\x93" + b"(" + ustr("id") + b"tR" + STOP
    assert classify(tmp_path, "model.pkl", memoized)["dangerousImports"] == ["os.system"]


def test_python_2_names_are_mapped_as_the_unpickler_maps_them(tmp_path):
    assert classify(tmp_path, "py2.pkl", glob("__builtin__", "eval") + b"(" + ustr("1") + b"tR.")["dangerousImports"] == ["builtins.eval"]
    assert classify(tmp_path, "set.pkl", PROTO2 + call(glob("__builtin__", "set"), b"]") + STOP)["safe"] is True
    # protocol 3+ turns the mapping off: __builtin__ is then no module at all, and not on the list
    assert classify(tmp_path, "p4.pkl", b"\x80\x04" + call(glob("__builtin__", "set"), b"]") + STOP)["dangerousImports"] == ["__builtin__.set"]


def test_every_pickle_in_a_row_is_judged(tmp_path):
    assert classify(tmp_path, "two.pkl", b"\x80\x02K\x01." + EVIL)["dangerousImports"] == ["os.system"]
    assert classify(tmp_path, "ok-twice.pkl", b"\x80\x02K\x01." * 2)["safe"] is True


def test_trailing_bytes_after_stop_are_unsafe(tmp_path):
    entry = classify(tmp_path, "trailing.pkl", b"\x80\x02K\x01." + b"\xff\xfe")
    assert entry["safe"] is False and "cannot be parsed completely at byte 5 (after 1 complete pickle(s))" in entry["issue"]
    assert "0xff is not a pickle opcode" in entry["issue"]


def test_a_truncated_pickle_is_unsafe(tmp_path):
    entry = classify(tmp_path, "cut.pkl", b"\x80\x02}q\x00(X\x01\x00")
    assert entry["safe"] is False and "cannot be parsed completely" in entry["issue"]


def test_pure_python_pickle_imports_before_inst_looks_for_its_mark(tmp_path):
    # no MARK: _pickle.c stops first, pickle._Unpickler (joblib) imports and calls os.system
    no_mark = b"ios\nsystem\n."
    assert ("os", "system") in requested_globals(no_mark)["py"]
    assert classify(tmp_path, "inst.pkl", no_mark)["dangerousImports"] == ["os.system"]


def test_a_last_line_without_newline_still_imports_in_pure_python(tmp_path):
    # pickle._Unpickler takes the last line minus its last byte: "systemX" is read as "system"
    cut = b"(S'id'\nios\nsystemX"
    assert ("os", "system") in requested_globals(cut)["py"]
    assert classify(tmp_path, "cut.pkl", cut)["dangerousImports"] == ["os.system"]


def test_ext_codes_name_no_global_and_are_unsafe(tmp_path):
    entry = classify(tmp_path, "ext.pkl", PROTO2 + b"\x82\x07)R" + STOP)
    assert entry["safe"] is False and "computed at load time" in entry["issue"] and "EXT1 code 7" in entry["issue"]


def test_protocol_0_persistent_ids_stop_every_loader(tmp_path):
    assert requested_globals(b"Pfoo\n" + EVIL) == {"c": [], "cpeek": [], "py": []}
    # ...but a loader of its own could accept one: named like a pickle, it must parse completely
    entry = classify(tmp_path, "persid.pkl", b"Pfoo\n" + EVIL)
    assert entry["safe"] is False and "PERSID" in entry["issue"]


def test_raw_data_under_a_pickle_name_is_data(tmp_path):
    # ONNX external data or OpenVINO weights named .bin/.data: unpickling them stops before any import
    entry = classify(tmp_path, "model.onnx.data", b"\x00\x00\x80?" * 100)
    assert entry == {"format": "data", "safe": True,
                     "note": "not a pickle: every unpickler stops at byte 0 (byte 0x00 is not a pickle opcode) before importing anything"}
    assert classify(tmp_path, "declared.pkl", b"\x80\x02\x00")["safe"] is False  # starts like a pickle: must be one


def test_frames_do_not_hide_opcodes(tmp_path):
    framed = b"\x80\x04\x95" + (len(EVIL)).to_bytes(8, "little") + EVIL
    assert classify(tmp_path, "framed.pkl", framed)["dangerousImports"] == ["os.system"]
    overlong = b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + EVIL  # C refuses, pure Python reads on
    assert classify(tmp_path, "overlong.pkl", overlong)["dangerousImports"] == ["os.system"]


def test_a_pickle_under_another_name_is_found_but_text_is_not(tmp_path):
    assert classify(tmp_path, "weights.model", EVIL)["dangerousImports"] == ["os.system"]
    assert classify(tmp_path, "clean.model", PROTO2 + call(glob("collections", "OrderedDict")) + STOP) == {"format": "pickle", "safe": True}
    assert classify(tmp_path, "serve.py", b"class Model:\n    pass\n") is None
    assert classify(tmp_path, "requirements.txt", b"cryptography==43\nnumpy\n") is None
    assert classify(tmp_path, "NOTES.txt", b"N.B. not a model\n") is None


def test_walker_records_where_each_import_is():
    walker = walk_all(b"\x80\x02K\x01." + EVIL)
    assert [(i.module, i.name, i.offset, i.opcode) for i in walker.imports] == [("os", "system", 5, "GLOBAL")]


def test_memory_stays_bounded_on_a_huge_operand(tmp_path):
    # an 8 GiB BINBYTES8 is skipped by seeking, never read into memory
    path = tmp_path / "huge.pkl"
    with path.open("wb") as handle:
        handle.write(b"\x80\x04\x8e" + (8 << 30).to_bytes(8, "little"))
        handle.seek((8 << 30) + 11)
        handle.write(b"0" + EVIL)
    entry = classify_file(path)
    assert entry["dangerousImports"] == ["os.system"]


def test_bstr_helper_is_short_binbytes():
    assert bstr(b"ab") == b"C\x02ab"


def test_pickles_after_the_first_are_read_only_by_torchs_legacy_loader(tmp_path):
    # pickle.load stops at the first STOP; torch's legacy loader reads on, each pickle with a
    # fresh Unpickler, only after its magic number and protocol version
    assert requested_globals(b"\x80\x02K\x01." + EVIL) == {"c": [], "cpeek": [], "py": []}
    legacy_like = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03." + EVIL
    assert ("os", "system") in requested_globals(legacy_like)["c"]
    assert classify(tmp_path, "weights.model", legacy_like)["dangerousImports"] == ["os.system"]
    assert classify(tmp_path, "after-one.model", b"N." + EVIL) is None  # no loader reads past the first STOP here
    # named or starting like a pickle, every byte must belong to a pickle that is judged
    assert classify(tmp_path, "after-one.pkl", b"N." + EVIL)["dangerousImports"] == ["os.system"]
    assert classify(tmp_path, "blobs/9f2c", b"\x80\x02K\x01." + EVIL)["dangerousImports"] == ["os.system"]
    # each pickle starts with an empty memo: a GET of the previous pickle's slot stops every loader
    entry = classify(tmp_path, "memo.pkl", b"\x80\x04\x8c\x02osq\x0a." + b"h\x0a.")
    assert entry["safe"] is False and "the memo has no such entry" in entry["issue"]


def test_strings_computed_by_an_allowed_global_cannot_name_a_global(tmp_path):
    # _codecs.encode is allowed (protocol 2 bytes) but rot13 turns "bf" into "os"
    rot13 = b"\x80\x02" + call(glob("_codecs", "encode"), b"Vbf\n", b"Vrot13\n") + call(glob("_codecs", "encode"), b"Vflfgrz\n", b"Vrot13\n") + b"\x93."
    assert ("os", "system") in requested_globals(rot13)["c"]
    entry = classify(tmp_path, "model.pkl", rot13)
    assert entry["safe"] is False and "computed at load time" in entry["issue"]


def test_a_read_across_a_frame_is_read_as_c_reads_a_file_without_peek(tmp_path):
    # Found by the differential test. C's unpickler on a BytesIO (how torch.load reads a zip
    # checkpoint's data.pkl) holds the 7 framed bytes "(i_code"; the INST line has no newline in
    # them, so it drops "_code" and reads the line on from the file: module "cs", not "_codecs".
    crossing = b"\x95\x07\x00\x00\x00\x00\x00\x00\x00(i_codecs\nencode\n."
    assert requested_globals(crossing)["c"] == [("cs", "encode")]  # pickle.load(open(...)) would read "_codecs"
    assert requested_globals(crossing)["cpeek"] == [("_codecs", "encode")]
    entry = classify(tmp_path, "model.pkl", crossing)
    assert entry["safe"] is False and entry["dangerousImports"] == ["cs.encode"]
    assert "read by C's unpickler from a file without peek()" in entry["issue"] and "runs past the end of its FRAME" in entry["issue"]
    framed = b"\x80\x04\x95" + len(b"K\x01.").to_bytes(8, "little") + b"K\x01."  # as pickle frames: opcodes end with their frame
    assert classify(tmp_path, "framed.pkl", framed) == {"format": "pickle", "safe": True}


def test_the_walker_knows_every_opcode_of_this_python():
    import pickletools

    from signer.evidence.scan.modelfiles.pickles import _OPS

    assert set(_OPS) == {op.code.encode("latin-1")[0] for op in pickletools.opcodes}


def test_tar_headers_that_start_like_an_opcode_are_not_imports(tmp_path):
    # a tar member named "config.json" starts the file with 'c' (GLOBAL): its "module" line is
    # the rest of the header, NUL bytes included, which no import system resolves
    import tarfile

    with tarfile.open(tmp_path / "images.tar", "w") as archive:
        for name in ("config.json", "images/1.jpg"):
            info = tarfile.TarInfo(name)
            info.size = 4
            archive.addfile(info, io.BytesIO(b"\xff\xd8\xff\xe0"))
    assert classify_file(tmp_path / "images.tar") is None


def test_picklescan_is_a_second_reader_of_plain_pickles(tmp_path):
    """A plain pickle the walker found safe is read again by picklescan; a global picklescan
    reads off the allow-list fails the file (the two parsers disagree). Shown here on a
    verdict handed in as safe, since the walker itself never lets such a file through."""
    import pickle

    from signer.evidence.scan.modelfiles.second_opinion import check_with_picklescan
    from signer.evidence.scan.modelfiles.source import FileBlob
    from signer.evidence.scan.modelfiles.verdict import Verdict

    evil, plain = tmp_path / "evil.pkl", tmp_path / "plain.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # protocol 0: os.system("true")
    plain.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "names": {"a", "b"}}, protocol=2))
    flagged, clean = Verdict("pickle", True), Verdict("pickle", True)
    check_with_picklescan(FileBlob(evil, "evil.pkl"), flagged)
    check_with_picklescan(FileBlob(plain, "plain.pkl"), clean)
    assert not flagged.safe and "picklescan reads the global os.system (on its dangerous list)" in flagged.issues[0]
    assert clean.safe and clean.issues == []  # __builtin__.set in protocol 2 is builtins.set
