"""The globals a pickle may import and still be called safe.

A pickle runs whatever its globals are: `os.system`, `builtins.eval`, but also any function
that reaches them (`builtins.getattr`, `builtins.dict.get` on `vars(os)`,
`multiprocessing.util.spawnv_passfds`...). So there is no deny-list here, only this allow-list
of the tensor-rebuild, dtype and container functions that real weight checkpoints reference,
each of which only builds data from its arguments. Everything else, including every model
class, every sklearn estimator and every name reached through a dotted attribute path, makes
the file unsafe.

What writes these (researched on torch 2.x `torch.save`, numpy 1.x/2.x pickles and `np.save`
of object arrays, joblib 1.x `joblib.dump`):
- torch.save (protocol 2): `collections.OrderedDict` (state_dict), `torch._utils._rebuild_*`
  (tensors, parameters, quantized tensors), the storage classes named in persistent ids
  (`torch.FloatStorage`...), the typed tensor classes torch's legacy tar layout names
  (`torch.FloatTensor`, constructors like `torch.Tensor`), dtypes (`torch.float32`...) and `torch.device`/`torch.Size`
  when a checkpoint holds them, `_codecs.encode` (bytes under protocol 2) and the builtin
  containers protocol 2 spells `__builtin__.set` & co. This mirrors the allow-list of torch's
  own `weights_only` unpickler, minus sparse/nested/wrapper-subclass rebuilds (rare, and
  sparse rebuilds have a memory-safety history). Protocols 0-2 write an empty bytes object as
  `__builtin__.bytes()`, so `builtins.bytes` is there too.
- numpy pickles: `numpy(._core|.core).multiarray._reconstruct` + `numpy.ndarray` +
  `numpy.dtype` (arrays), `...multiarray.scalar` (numpy scalars such as a saved accuracy),
  `...numeric._frombuffer` (protocol 5 arrays), and the scalar types (`numpy.float32`) when a
  config stores a dtype. Masked arrays, matrices and random generators are left out.
- joblib: `joblib.numpy_pickle.NumpyArrayWrapper` (the array bytes follow it in the stream;
  the walker skips them exactly as joblib reads them).
"""

from __future__ import annotations

_TORCH_REBUILD = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                  "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_meta_tensor_no_storage",
                  "_rebuild_device_tensor_from_cpu_tensor")
_TORCH_STORAGES = ("DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                   "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "ComplexDoubleStorage",
                   "ComplexFloatStorage", "QUInt8Storage", "QInt8Storage", "QInt32Storage", "QUInt4x2Storage",
                   "QUInt2x4Storage")
_TORCH_TENSOR_TYPES = ("DoubleTensor", "FloatTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor", "ShortTensor",
                       "CharTensor", "ByteTensor", "BoolTensor")  # legacy tar checkpoints name each tensor's type
_TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16", "complex32", "complex64", "complex128", "uint8", "uint16",
                 "uint32", "uint64", "int8", "int16", "int32", "int64", "bool", "qint8", "quint8", "qint32", "quint4x2",
                 "quint2x4", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
_TORCH_QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
                   "per_channel_affine_float_qparams")
_NUMPY_CORE = ("numpy.core", "numpy._core")  # numpy 1.x and 2.x spell the same functions differently
_NUMPY_SCALARS = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
                  "float32", "float64", "longdouble", "complex64", "complex128", "str_", "bytes_", "datetime64",
                  "timedelta64")

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("torch._utils", name) for name in _TORCH_REBUILD]
    + [("torch", name) for name in _TORCH_STORAGES + ("UntypedStorage",)]
    + [("torch.cuda", name) for name in _TORCH_STORAGES]  # legacy checkpoints saved from a GPU
    + [(module, name) for module in ("torch", "torch.cuda") for name in _TORCH_TENSOR_TYPES]  # constructors like torch.Tensor
    + [("torch", name) for name in _TORCH_DTYPES + _TORCH_QSCHEMES]
    + [("torch", "Size"), ("torch", "device"), ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"),
       ("torch._tensor", "_rebuild_from_type_v2"), ("torch.serialization", "_get_layout")]
    + [("collections", "OrderedDict"), ("_codecs", "encode")]
    + [("builtins", name) for name in ("set", "frozenset", "bytes", "bytearray", "complex", "slice", "range")]
    + [(f"{core}.multiarray", name) for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")]
    + [(f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [("numpy", name) for name in _NUMPY_SCALARS]
    + [("joblib.numpy_pickle", "NumpyArrayWrapper")]
)

JOBLIB_ARRAY_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


def is_allowed(module: str, name: str) -> bool:
    """`module.name` exactly as the unpickler asks for it (after Python 2 name fixing)."""
    return (module, name) in ALLOWED_GLOBALS
