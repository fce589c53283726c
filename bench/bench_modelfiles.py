"""The model-file check on large files: seconds and peak Python memory per file, for this
check and, with --before, for the picklescan-based check it replaced (taken from git).

  safetensors  - 8 GiB on paper (sparse), 20,000 tensors: only the header is read
  safetensors-dense - 1 GiB written for real (page cache warm)
  torch-zip    - a torch.save-style zip with 1 GiB of stored tensor data
  torch-legacy - the pre-zip layout with 1 GiB of raw storages after the pickles
  raw-bin      - 1 GiB of raw tensor bytes named `.bin` (ONNX external data, OpenVINO)
  joblib       - 1 GiB of arrays from joblib.dump; `joblib-zlib` the same compressed
  pickle-ops   - a plain pickle of 2 million floats: the opcode walker's own speed
  dataset-tar  - a tar of 20,000 10 KiB images (not model files): every member is looked at

    .venv/bin/python bench/bench_modelfiles.py [--before] [--only NAME]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import pickle
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from signer import classify_file  # noqa: E402
from test_modelfiles_support import Storage, Tensor, torch_legacy, torch_zip  # noqa: E402

GIB = 1 << 30


def sparse_safetensors(path: Path) -> None:
    count, each = 20_000, (8 * GIB) // 20_000 // 4 * 4
    header = {f"layer.{i}.weight": {"dtype": "F32", "shape": [each // 4], "data_offsets": [i * each, (i + 1) * each]} for i in range(count)}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        handle.truncate(8 + len(text) + count * each)


def dense_safetensors(path: Path) -> None:
    text = json.dumps({"w": {"dtype": "U8", "shape": [GIB], "data_offsets": [0, GIB]}}).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        chunk = bytes(range(256)) * 4096
        for _ in range(GIB // len(chunk)):
            handle.write(chunk)


def _storages(total: int) -> dict[str, Storage]:
    return {str(i): Storage(str(i), "FloatStorage", b"\1" * (total // 4)) for i in range(4)}


def torch_zip_file(path: Path) -> None:
    storages = _storages(GIB)
    path.write_bytes(torch_zip({k: Tensor(s, (s.numel,)) for k, s in storages.items()}, storages))


def torch_legacy_file(path: Path) -> None:
    storages = _storages(GIB)
    path.write_bytes(torch_legacy({k: Tensor(s, (s.numel,)) for k, s in storages.items()}, storages))


def raw_bin(path: Path) -> None:
    with path.open("wb") as handle:
        chunk = b"\0\0\x80?" * (1 << 18)
        for _ in range(GIB // len(chunk)):
            handle.write(chunk)


def joblib_file(compress: int) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        import joblib
        import numpy as np

        joblib.dump({f"w{i}": np.ones(GIB // 32, dtype=np.float64) for i in range(4)}, path, compress=compress)
    return build


def dataset_tar(path: Path) -> None:
    import tarfile

    with tarfile.open(path, "w") as archive:
        for i in range(20_000):
            info = tarfile.TarInfo(f"images/{i:05}.jpg")
            data = b"\xff\xd8\xff\xe0" + bytes(10 * 1024 - 4)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def pickle_ops(path: Path) -> None:
    path.write_bytes(pickle.dumps([float(i) for i in range(2_000_000)], protocol=4))


CASES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "safetensors": ("model.safetensors", sparse_safetensors),
    "safetensors-dense": ("dense.safetensors", dense_safetensors),
    "torch-zip": ("pytorch_model.bin", torch_zip_file),
    "torch-legacy": ("legacy.bin", torch_legacy_file),
    "raw-bin": ("model.onnx.data", raw_bin),
    "joblib": ("model.joblib", joblib_file(0)),
    "joblib-zlib": ("model.z.joblib", joblib_file(3)),
    "pickle-ops": ("floats.pkl", pickle_ops),
    "dataset-tar": ("images.tar", dataset_tar),
}


def old_classifier(workdir: Path) -> Callable[[Path], Any]:
    """signer/modelfiles.py as it was at HEAD, before this package replaced it."""
    source = subprocess.run(["git", "show", "HEAD:signer/modelfiles.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = workdir / "modelfiles_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("modelfiles_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["modelfiles_before"] = module
    spec.loader.exec_module(module)
    return module.classify_file


def measure(classify: Callable[[Path], Any], path: Path) -> tuple[float, float, Any]:
    """Seconds (a plain run) and peak MiB of Python allocations (a second, traced run)."""
    started = time.perf_counter()
    entry = classify(path)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    classify(path)
    peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
    tracemalloc.stop()
    return seconds, peak, entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", action="store_true", help="also time the picklescan-based check from git HEAD")
    parser.add_argument("--only", choices=sorted(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelsign-bench-") as workdir:
        before = old_classifier(Path(workdir)) if args.before else None
        for case, (name, build) in CASES.items():
            if args.only and case != args.only:
                continue
            path = Path(workdir) / name
            try:
                build(path)
            except ImportError as exc:
                print(f"{case:18} skipped ({exc})")
                continue
            size = path.stat().st_size / GIB
            seconds, peak, entry = measure(classify_file, path)
            shown = "not a model file" if entry is None else f"{entry['format']} safe={entry['safe']}"
            line = f"{case:18} {size:6.2f} GiB  now {seconds:7.3f} s {peak:8.1f} MiB peak  {shown}"
            if before is not None:
                old_seconds, old_peak, old_entry = measure(before, path)
                verdict = "n/a" if old_entry is None else f"safe={old_entry.get('safe')}"
                line += f"  | before {old_seconds:7.3f} s {old_peak:8.1f} MiB peak  {verdict}"
            print(line, flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
