"""Model-file safety: find serialisations that can run code when loaded. Nothing is ever
unpickled.

Pickle-based files (`.pkl`, `.pickle`, `.joblib`, `.bin`, `.pt`, `.pth`, `.ckpt`, `.npy`,
`.npz`, and anything that starts like a pickle) are analysed with picklescan: it walks the
pickle opcodes and reports the globals they would import (`os.system`, `builtins.eval`...).
We chose picklescan over modelscan and fickling: it has no dependencies, it never loads a
pickle, it understands PyTorch zip and legacy formats and numpy object arrays, and it is the
scanner behind the Hugging Face Hub's pickle checks. safetensors (header checked), GGUF and
ONNX are reported safe once their content matches the name; Keras/HDF5 is reported unsafe
(Lambda layers are code; not analysed). Every other file is given to picklescan too, and
reported when it turns out to be a pickle (or a zip of pickles) under another name.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PICKLE_EXTENSIONS = {".pkl", ".pickle", ".joblib", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz"}
_PICKLE_MAGIC = tuple(bytes([0x80, version]) for version in range(6))
_ONNX_FIRST_BYTE = b"\x08"  # ModelProto field 1 (ir_version), varint: how every ONNX writer starts
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_REPORTED_FILES = 1000


@dataclass
class ModelFileReport:
    scanner: str
    files: list[dict[str, Any]] = field(default_factory=list)
    unsafe: int = 0
    suspicious: int = 0
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"scanner": self.scanner, "unsafeFiles": self.unsafe, "suspiciousFiles": self.suspicious, "files": self.files, "truncated": self.truncated}


def _scanner_name() -> str:
    try:
        return f"picklescan {metadata.version('picklescan')}"
    except metadata.PackageNotFoundError:
        return "picklescan"


def _head(path: Path, size: int = 16) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _safetensors(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return {"format": "safetensors", "safe": False, "issue": "file shorter than the safetensors header"}
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_SAFETENSORS_HEADER, path.stat().st_size - 8):
            return {"format": "safetensors", "safe": False, "issue": f"header length {length} is impossible"}
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return {"format": "safetensors", "safe": False, "issue": "header is not JSON"}
    if not isinstance(header, dict):
        return {"format": "safetensors", "safe": False, "issue": "header is not a JSON object"}
    return {"format": "safetensors", "safe": True, "tensors": sum(1 for k in header if k != "__metadata__")}


def _pickle(path: Path, *, only_if_pickle: bool = False) -> dict[str, Any] | None:
    """picklescan's verdict. `only_if_pickle`: for a file whose name does not say pickle,
    report it only if picklescan finds it imports something (it is a pickle in disguise)."""
    from picklescan.scanner import SafetyLevel, scan_file_path

    try:
        result = scan_file_path(str(path))
    except Exception as exc:  # picklescan raises assorted errors on hostile files: that is a finding, not a crash
        if only_if_pickle:
            return None
        return {"format": "pickle", "safe": False, "issue": f"could not be analysed ({type(exc).__name__}: {exc}); treat it as unsafe"}
    dangerous = sorted({f"{g.module}.{g.name}" for g in result.globals if g.safety == SafetyLevel.Dangerous})
    if only_if_pickle and not dangerous and (result.scan_err or not result.globals):
        return None  # text that merely starts like an opcode (`class ...`) is not a pickle
    suspicious = sorted({f"{g.module}.{g.name}" for g in result.globals if g.safety == SafetyLevel.Suspicious})
    entry: dict[str, Any] = {"format": "pickle", "safe": not dangerous and not result.scan_err}
    if dangerous:
        entry["dangerousImports"] = dangerous
    if suspicious:
        entry["suspiciousImports"] = suspicious
    if result.scan_err:
        entry["issue"] = "parts of the file could not be analysed; treat it as unsafe"
    return entry


def classify_file(path: Path) -> dict[str, Any] | None:
    """One report entry, or None for files that are not model serialisations. Content decides,
    not the name: a pickle called `model.onnx` or `weights.model` is still found."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _safetensors(path)
    head = _head(path)
    if head.startswith(b"GGUF"):
        return {"format": "gguf", "safe": True}
    if suffix == ".gguf":
        return {"format": "gguf", "safe": False, "issue": "no GGUF magic: the file is not what its name says"}
    if suffix == ".onnx":
        if head[:1] == _ONNX_FIRST_BYTE:
            return {"format": "onnx", "safe": True}
        return {"format": "onnx", "safe": False, "issue": "does not start like an ONNX protobuf: the file is not what its name says"}
    if suffix in (".h5", ".keras", ".hdf5"):
        return {"format": "keras", "safe": False, "issue": "Keras/HDF5 files can hold Lambda layers (code) and are not analysed; convert to safetensors"}
    if suffix in PICKLE_EXTENSIONS or head.startswith(_PICKLE_MAGIC):
        return _pickle(path)
    return _pickle(path, only_if_pickle=True)  # protocol 0/1 pickles and zips of pickles under any name


def scan_model_files(root: Path) -> ModelFileReport:
    """Every file under `root` (no symlinks followed), relative paths in the report."""
    report = ModelFileReport(scanner=_scanner_name())
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue
            entry = classify_file(path)
            if entry is None:
                continue
            if entry.get("safe") is False:
                report.unsafe += 1
            if entry.get("suspiciousImports"):
                report.suspicious += 1
            if len(report.files) < MAX_REPORTED_FILES:
                report.files.append({"path": path.relative_to(root).as_posix(), **entry})
            else:
                report.truncated = True
    return report
