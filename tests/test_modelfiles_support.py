"""Builders for the model-file tests: pickles written opcode by opcode, and checkpoints laid out
as torch.save (zip and legacy) writes them, without torch. Everything here only writes bytes;
nothing is ever unpickled in this process.

torch.save's shape (torch/serialization.py `_save`, protocol 2): a Pickler whose
`persistent_id` turns every storage into ("storage", torch.<T>Storage, key, location, numel);
tensors reduce to `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, OrderedDict())`, parameters to `_rebuild_parameter(tensor, requires_grad,
OrderedDict())`, a state_dict is an OrderedDict with a `_metadata` attribute. The zip holds
`<name>/data.pkl`, `<name>/data/<key>` (raw, stored), `<name>/version`, `<name>/byteorder`.
The legacy format is five pickles (magic, protocol 1001, sys_info, the object, the sorted
storage keys) followed by, per key, an int64 element count and the raw elements.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile
from typing import Any, Iterator

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# -- an assembler for hand-written pickles -------------------------------------------------------


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def ustr(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def bstr(data: bytes) -> bytes:
    """SHORT_BINBYTES."""
    return b"C" + bytes([len(data)]) + data


def stack_global(module: str, name: str) -> bytes:
    return ustr(module) + ustr(name) + b"\x93"


def call(callable_: bytes, *args: bytes) -> bytes:
    """callable(*args) with MARK ... TUPLE REDUCE."""
    return callable_ + b"(" + b"".join(args) + b"tR"


PROTO2, PROTO4, STOP = b"\x80\x02", b"\x80\x04", b"."
# os.system("echo pwned"): the pickle every attack starts from
EVIL = b"cos\nsystem\n(S'echo pwned'\ntR."
SPAWNV_PASSFDS = PROTO2 + call(glob("multiprocessing.util", "spawnv_passfds"), bstr(b"/bin/sh"),
                               b"(" + bstr(b"/bin/sh") + bstr(b"-c") + bstr(b"echo pwned") + b"l", b")") + STOP
DISTUTILS_SPAWN = PROTO2 + call(glob("distutils.spawn", "spawn"), b"(" + ustr("sh") + ustr("-c") + ustr("echo pwned") + b"l") + STOP
# builtins.dict.get(vars(__import__("os")), "system")("echo pwned"): dotted names need protocol 4
DICT_GET = PROTO4 + call(call(stack_global("builtins", "dict.get"), call(stack_global("builtins", "vars"), call(stack_global("builtins", "__import__"), ustr("os"))),
                              ustr("system")), ustr("echo pwned")) + STOP


# -- torch.save without torch --------------------------------------------------------------------


def _stand_in(module: str, name: str, kind: str = "function") -> Any:
    obj: Any = type(name, (), {}) if kind == "class" else (lambda *args: None)
    obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    return obj


REBUILD_TENSOR_V2 = _stand_in("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = _stand_in("torch._utils", "_rebuild_parameter")
STORAGE_TYPES = {name: _stand_in("torch", name, "class") for name in ("FloatStorage", "HalfStorage", "LongStorage", "BFloat16Storage")}
ITEM_SIZES = {"FloatStorage": 4, "HalfStorage": 2, "LongStorage": 8, "BFloat16Storage": 2}


@contextlib.contextmanager
def torch_names(extra: dict[str, dict[str, Any]] | None = None) -> Iterator[None]:
    """Stand-in `torch` modules for the duration of a dump, so pickle writes the same GLOBALs
    torch.save does (pickle checks that module.name resolves to the object it writes)."""
    modules = {"torch": dict(STORAGE_TYPES), "torch._utils": {"_rebuild_tensor_v2": REBUILD_TENSOR_V2, "_rebuild_parameter": REBUILD_PARAMETER}}
    for module, names in (extra or {}).items():
        modules.setdefault(module, {}).update(names)
        while "." in module:  # pickle imports the parents too
            module = module.rsplit(".", 1)[0]
            modules.setdefault(module, {})
    saved = {name: sys.modules.get(name) for name in modules}
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


class Storage:
    def __init__(self, key: str, kind: str, data: bytes) -> None:
        self.key, self.kind, self.data = key, kind, data

    @property
    def numel(self) -> int:
        return len(self.data) // ITEM_SIZES[self.kind]


class Tensor:
    def __init__(self, storage: Storage, shape: tuple[int, ...], requires_grad: bool = False) -> None:
        self.storage, self.shape, self.requires_grad = storage, shape, requires_grad

    def __reduce_ex__(self, protocol: int) -> Any:
        stride = tuple(int(_prod(self.shape[i + 1:])) for i in range(len(self.shape)))
        return REBUILD_TENSOR_V2, (self.storage, 0, self.shape, stride, self.requires_grad, collections.OrderedDict())


class Parameter:
    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def __reduce_ex__(self, protocol: int) -> Any:
        return REBUILD_PARAMETER, (self.tensor, True, collections.OrderedDict())


def _prod(values: tuple[int, ...]) -> int:
    total = 1
    for value in values:
        total *= value
    return total


def state_dict(count: int = 3, kind: str = "FloatStorage") -> tuple[collections.OrderedDict, dict[str, Storage]]:
    """A small model's state_dict, with the `_metadata` torch attaches to it."""
    storages = {str(i): Storage(str(i), kind, bytes(range(8)) * (i + 1)) for i in range(count)}
    sd: Any = collections.OrderedDict()
    for i, storage in storages.items():
        sd[f"layer{i}.weight"] = Tensor(storage, (storage.numel,))
    sd["head.bias"] = Parameter(Tensor(storages["0"], (storages["0"].numel,), True))
    sd._metadata = collections.OrderedDict({"": {"version": 1}, "layer0": {"version": 1}})
    return sd, storages


def torch_pickle(obj: Any, *, legacy: bool = False, protocol: int = 2, extra: dict[str, dict[str, Any]] | None = None) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=protocol)

    def persistent_id(value: Any) -> Any:
        if isinstance(value, Storage):
            pid = ("storage", STORAGE_TYPES[value.kind], value.key, "cpu", value.numel)
            return pid + (None,) if legacy else pid
        return None

    pickler.persistent_id = persistent_id  # type: ignore[method-assign]
    with torch_names(extra):
        pickler.dump(obj)
    return buffer.getvalue()


def torch_zip(obj: Any, storages: dict[str, Storage], *, data_pkl: bytes | None = None, archive: str = "archive") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", data_pkl if data_pkl is not None else torch_pickle(obj))
        zf.writestr(f"{archive}/byteorder", b"little")
        for key in sorted(storages):
            zf.writestr(f"{archive}/data/{key}", storages[key].data)
        zf.writestr(f"{archive}/version", b"3\n")
        zf.writestr(f"{archive}/.data/serialization_id", b"1234567890123456789012345678901234567890")
    return buffer.getvalue()


def torch_legacy(obj: Any, storages: dict[str, Storage]) -> bytes:
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    out.write(torch_pickle(obj, legacy=True))
    pickle.dump(sorted(storages), out, protocol=2)
    for key in sorted(storages):
        out.write(struct.pack("<q", storages[key].numel) + storages[key].data)
    return out.getvalue()


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_the_torch_builder_writes_what_torch_save_writes():
    """The stand-ins produce torch.save's opcodes: GLOBALs by name, storages as persistent ids."""
    import pickletools

    sd, storages = state_dict(2)
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(torch_pickle(sd))]
    assert ops[0] == ("PROTO", 2)
    assert ("GLOBAL", "collections OrderedDict") in ops and ("GLOBAL", "torch._utils _rebuild_tensor_v2") in ops
    assert ("GLOBAL", "torch FloatStorage") in ops and ("BINPERSID", None) in ops and ("GLOBAL", "torch._utils _rebuild_parameter") in ops
    assert "torch" not in sys.modules or not isinstance(sys.modules["torch"], types.ModuleType) or hasattr(sys.modules["torch"], "__file__")
    names = zipfile.ZipFile(io.BytesIO(torch_zip(sd, storages))).namelist()
    assert names[:3] == ["archive/data.pkl", "archive/byteorder", "archive/data/0"]


# -- torch's legacy tar layout, opcode by opcode -------------------------------------------------


def bin_unicode(text: str) -> bytes:
    """BINUNICODE (protocol 1+), as protocol 2 writes str."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def small_int(value: int) -> bytes:
    """A protocol-2 pickle of a small int (BININT1)."""
    return PROTO2 + b"K" + bytes([value]) + STOP


def tar_of(members: list[tuple[str, bytes]], *, links: dict[str, str] | None = None) -> bytes:
    """A tar with these regular members (in order), plus hard links name -> target."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.LNKTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def legacy_storages(storages: dict[str, bytes], *, count: bytes | None = None, views: bytes = PROTO2 + b"]" + STOP) -> bytes:
    """torch's `storages` member: the count, per storage (key, location, torch.FloatStorage)
    then an int64 element count and the raw float32 elements, then the storage views."""
    out = count if count is not None else small_int(len(storages))
    for key, data in storages.items():
        out += PROTO2 + bin_unicode(key) + bin_unicode("cpu") + glob("torch", "FloatStorage") + b"\x87" + STOP
        out += struct.pack("<q", len(data) // 4) + data
    return out + views


def legacy_tensors(tensors: dict[str, tuple[str, tuple[int, ...]]], *, count: bytes | None = None) -> bytes:
    """torch's `tensors` member: the count, per tensor (key, storage id, torch.FloatTensor),
    then int32 ndim, 4 unused bytes, the sizes, the strides and the offset as int64."""
    out = count if count is not None else small_int(len(tensors))
    for key, (storage, shape) in tensors.items():
        out += PROTO2 + bin_unicode(key) + bin_unicode(storage) + glob("torch", "FloatTensor") + b"\x87" + STOP
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        out += struct.pack("<i", len(shape)) + bytes(4)
        out += struct.pack(f"<{len(shape)}q", *shape) + struct.pack(f"<{len(shape)}q", *strides) + struct.pack("<q", 0)
    return out


def legacy_object(names: dict[str, str]) -> bytes:
    """torch's `pickle` member: a dict of name -> tensor, each a persistent id (the tensor key)."""
    items = b"".join(bin_unicode(name) + bin_unicode(key) + b"Q" for name, key in names.items())
    return PROTO2 + b"}(" + items + b"u" + STOP


def legacy_tar_members() -> dict[str, bytes]:
    """The three members of a small, well-formed legacy tar checkpoint (two tensors)."""
    return {
        "sys_info": PROTO2 + b"}" + STOP,
        "storages": legacy_storages({"1": bytes(16), "2": bytes(8)}),
        "tensors": legacy_tensors({"10": ("1", (2, 2)), "11": ("2", (2,))}),
        "pickle": legacy_object({"weight": "10", "bias": "11"}),
    }
