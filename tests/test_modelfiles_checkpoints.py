"""Real checkpoints stay safe, and what hides inside them does not: torch.save zip and legacy
layouts (built as torch writes them, see test_modelfiles_support), numpy `np.save`/`np.savez`
and joblib `joblib.dump` written by the real libraries at run time."""

from __future__ import annotations

import collections
import gzip
import io
import os
import pickle
import zlib
from pathlib import Path

import pytest

from signer.evidence.scan.modelfiles import classify_file
from test_modelfiles_support import (EVIL, Storage, Tensor, _stand_in, state_dict, torch_legacy, torch_pickle, torch_zip, zip_of)

np = pytest.importorskip("numpy")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class Estimator:
    """Stands for an sklearn estimator: pickled by reference to its class."""

    def __init__(self) -> None:
        self.coef_ = np.arange(3.0)


# -- torch -------------------------------------------------------------------------------------------


def test_a_torch_zip_state_dict_is_safe(tmp_path):
    sd, storages = state_dict(4)
    for name, archive in (("pytorch_model.bin", "archive"), ("model.pt", "pytorch_model"), ("ckpt.pth.tar", "ckpt")):
        entry = classify_file(write(tmp_path, name, torch_zip(sd, storages, archive=archive)))
        assert entry == {"format": "pytorch-zip", "safe": True, "members": 1}, (name, entry)


def test_torch_zip_half_and_bf16_storages_are_safe(tmp_path):
    storages = {"0": Storage("0", "HalfStorage", b"\0" * 8), "1": Storage("1", "BFloat16Storage", b"\0" * 8)}
    sd = collections.OrderedDict(a=Tensor(storages["0"], (4,)), b=Tensor(storages["1"], (2, 2)))
    assert classify_file(write(tmp_path, "model.pt", torch_zip(sd, storages)))["safe"] is True


def test_a_whole_pickled_module_is_unsafe_and_named(tmp_path):
    """torch.save(model) pickles the model's class: code, and not on the allow-list."""
    model_class = _stand_in("transformers.models.bert.modeling_bert", "BertModel", "class")
    sd, storages = state_dict(1)
    data = torch_pickle(collections.OrderedDict(model=model_class, weights=sd), extra={"transformers.models.bert.modeling_bert": {"BertModel": model_class}})
    entry = classify_file(write(tmp_path, "model.pt", torch_zip(None, storages, data_pkl=data)))
    assert entry["safe"] is False and entry["dangerousImports"] == ["transformers.models.bert.modeling_bert.BertModel"]
    assert "archive/data.pkl: imports transformers.models.bert.modeling_bert.BertModel: not on the allow-list" in entry["issue"]


def test_torchscript_archives_are_unsafe(tmp_path):
    sd, _ = state_dict(1)
    scripted = zip_of({"model/data.pkl": torch_pickle(sd), "model/code/__torch__/m.py": b"def forward(self, x):\n  return x\n",
                       "model/constants.pkl": b"\x80\x02).", "model/version": b"3\n"})
    entry = classify_file(write(tmp_path, "scripted.pt", scripted))
    assert entry["safe"] is False and "TorchScript" in entry["issue"]


def test_a_torch_legacy_checkpoint_is_safe(tmp_path):
    sd, storages = state_dict(3)
    assert classify_file(write(tmp_path, "pytorch_model.bin", torch_legacy(sd, storages))) == {"format": "pytorch-legacy", "safe": True}


def test_torch_legacy_storages_must_match_the_file(tmp_path):
    sd, storages = state_dict(2)
    data = torch_legacy(sd, storages)
    cut = classify_file(write(tmp_path, "cut.bin", data[:-3]))
    assert cut["safe"] is False and "torch legacy storage '1' claims" in cut["issue"] and "but the file ends" in cut["issue"]
    extra = classify_file(write(tmp_path, "extra.bin", data + EVIL))
    assert extra["safe"] is False and "bytes after the last torch legacy storage" in extra["issue"]


def test_training_state_files_are_judged_by_what_they_hold(tmp_path):
    storages = {"0": Storage("0", "FloatStorage", b"\0" * 16), "1": Storage("1", "LongStorage", b"\0" * 8)}
    optimizer = {"state": {0: {"step": Tensor(storages["1"], ()), "exp_avg": Tensor(storages["0"], (4,))}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False, "params": [0]}]}
    assert classify_file(write(tmp_path, "optimizer.pt", torch_zip(optimizer, storages)))["safe"] is True
    rng = {"python": (3, tuple(range(10)), None), "numpy": ("MT19937", np.arange(4, dtype=np.uint32), 1, 0, 0.0)}
    assert classify_file(write(tmp_path, "rng_state.pth", pickle.dumps(rng, protocol=2)))["safe"] is True
    args_class = _stand_in("transformers.training_args", "TrainingArguments", "class")
    args = torch_pickle(args_class, extra={"transformers.training_args": {"TrainingArguments": args_class}})
    entry = classify_file(write(tmp_path, "training_args.bin", args))
    assert entry["dangerousImports"] == ["transformers.training_args.TrainingArguments"]


# -- numpy -------------------------------------------------------------------------------------------


def _np_save(array, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros((0, 3)), np.array(["a", "bcd"]), np.array([b"xy"]),
    np.zeros(2, dtype=[("a", "<i4"), ("b", "<U3", (2,))]), np.array(["2020-01-01"], dtype="M8[ns]"), np.asfortranarray(np.ones((2, 3))),
    np.array(True), np.arange(4, dtype=np.complex128),
], ids=["f32", "empty", "unicode", "bytes", "structured", "datetime", "fortran", "scalar", "complex"])
def test_numpy_save_is_safe(tmp_path, array):
    assert classify_file(write(tmp_path, "a.npy", _np_save(array))) == {"format": "npy", "safe": True}


def test_numpy_object_arrays_are_judged_as_the_pickles_they_are(tmp_path):
    clean = classify_file(write(tmp_path, "o.npy", _np_save(np.array([1, "x", None], dtype=object), allow_pickle=True)))
    assert clean == {"format": "npy (object array: pickle)", "safe": True}
    header = _np_save(np.array([1, None], dtype=object), allow_pickle=True)
    evil = header[:header.index(b"\n") + 1] + EVIL  # the header of an object array, then os.system
    entry = classify_file(write(tmp_path, "evil.npy", evil))
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"]


def test_npy_sizes_must_agree(tmp_path):
    data = _np_save(np.arange(4, dtype=np.float64))
    entry = classify_file(write(tmp_path, "short.npy", data[:-8]))
    assert entry["safe"] is False and "= 32 bytes of data, the file holds 24" in entry["issue"]
    assert "re-export it" in entry["issue"]


def test_numpy_savez_is_safe(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, w=np.arange(3.0), s=np.zeros(2, dtype=[("a", "<i4")]))
    assert classify_file(write(tmp_path, "z.npz", buffer.getvalue())) == {"format": "npz", "safe": True, "members": 2}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, w=np.arange(3.0), o=np.array([1, "x"], dtype=object))
    assert classify_file(write(tmp_path, "zc.npz", buffer.getvalue()))["safe"] is True


@pytest.mark.parametrize("protocol", range(6))
def test_pickled_numpy_data_is_safe_in_every_protocol(tmp_path, protocol):
    data = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "e": np.zeros((0, 2)), "acc": np.float64(0.5), "i": np.int64(3),
            "dtype": np.float32, "names": ["a", "b"], "b": b"", "set": {1, 2}}
    assert classify_file(write(tmp_path, "data.pkl", pickle.dumps(data, protocol=protocol)))["safe"] is True


# -- joblib ------------------------------------------------------------------------------------------

joblib = pytest.importorskip("joblib")
# Object-dtype arrays are left out: joblib writes them as a nested protocol 5 pickle whose memo
# numbers, read by pickle.load as part of the outer pickle, can name any string of the outer
# one (a legitimate file then makes pickle.load import `NumpyArrayWrapper.dtype`): such files
# are judged under both readings like any other.
ARRAYS = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "names": np.array(["a", "bc"]), "e": np.zeros((0, 4)),
          "st": np.zeros(2, dtype=[("a", "<i4"), ("b", "<U3")]), "f": np.asfortranarray(np.ones((2, 3))), "acc": np.float64(0.5),
          "dt": np.array(["2020-01-01"], dtype="M8[ns]"), "meta": {"classes": ["cat", "dog"], "version": (1, 2)}}


@pytest.mark.parametrize("compress, codec", [(0, ""), (3, "+zlib"), (("gzip", 3), "+gzip"), (("bz2", 3), "+bz2"), (("xz", 3), "+xz"), (("lzma", 3), "+lzma")])
def test_joblib_dumps_of_arrays_are_safe(tmp_path, compress, codec):
    path = tmp_path / "model.joblib"
    joblib.dump(ARRAYS, path, compress=compress)
    assert classify_file(path) == {"format": f"pickle{codec}", "safe": True}


def test_a_joblib_estimator_is_unsafe_and_named(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(Estimator(), path)
    entry = classify_file(path)
    assert entry["safe"] is False and entry["dangerousImports"] == [f"{__name__}.Estimator"]


def test_a_function_in_a_joblib_object_array_is_found(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump({"o": np.array([os.system], dtype=object)}, path)
    assert f"{os.system.__module__}.system" in classify_file(path)["dangerousImports"]


class _NoTell:
    """A stream joblib cannot ask for its position: it then writes arrays without padding."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def tell(self) -> int:
        raise io.UnsupportedOperation("no tell")

    def flush(self) -> None:
        pass


def test_joblib_array_bytes_that_pickle_load_would_run_are_found(tmp_path):
    """Unpadded (old joblib, or a stream without tell), array bytes follow their wrapper:
    joblib skips them, pickle.load reads them as opcodes. An array whose bytes are a pickle runs."""
    stream = _NoTell()
    joblib.dump({"w": np.frombuffer(EVIL, dtype=np.uint8)}, stream)
    path = write(tmp_path, "model.pkl", stream.buffer.getvalue())  # written by joblib.dump itself
    entry = classify_file(path)
    assert entry["safe"] is False and entry["dangerousImports"] == ["os.system"]
    assert "read with pickle.load instead of joblib.load, it imports os.system" in entry["issue"]


def test_a_joblib_array_larger_than_the_file_is_unsafe(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(1000.0)}, path)
    entry = classify_file(write(tmp_path, "cut.joblib", path.read_bytes()[:-100]))
    assert entry["safe"] is False and "joblib array of 8000 bytes runs past the end" in entry["issue"]


def test_compressed_pickles_are_opened(tmp_path):
    assert classify_file(write(tmp_path, "model.pkl.gz", gzip.compress(EVIL)))["dangerousImports"] == ["os.system"]
    assert classify_file(write(tmp_path, "model.pkl.z", zlib.compress(EVIL)))["format"] == "pickle+zlib"
    assert classify_file(write(tmp_path, "clean.pkl.gz", gzip.compress(pickle.dumps({"a": 1}))))["safe"] is True
    assert classify_file(write(tmp_path, "notes.txt.gz", gzip.compress(b"just text\n"))) is None
    old_joblib = b"ZF" + b"0x%-17x" % len(EVIL) + zlib.compress(EVIL)  # joblib < 0.9.3 wrote this header
    assert classify_file(write(tmp_path, "old.pkl", old_joblib))["dangerousImports"] == ["os.system"]


def test_corrupt_and_unreadable_compression_is_unsafe(tmp_path):
    cut = gzip.compress(pickle.dumps(list(range(1000))))[:-30]
    entry = classify_file(write(tmp_path, "model.pkl.gz", cut))
    assert entry["safe"] is False and "corrupt data" in entry["issue"]
    lz4 = classify_file(write(tmp_path, "model.joblib", b"\x04\x22\x4d\x18" + b"\0" * 32))
    assert lz4["safe"] is False and "LZ4" in lz4["issue"]
