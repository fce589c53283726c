"""Directory signing throughput: modelsign vs model_signing's default, same files, same run.

Two models: one 1 GiB file, and many files (2,048 x 512 KiB = 1 GiB). Files are read once
before timing so both tools hash from the page cache (this measures hashing, not the disk).
Runs alternate between the tools; medians are reported with their ratio.

    .venv/bin/python bench/bench_modeldir.py [--runs 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import model_signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer import SigningKey, sign_model_dir, verify_model_dir

GIB = 1024**3


def make_single(root: Path) -> Path:
    model = root / "single"
    model.mkdir(exist_ok=True)
    target = model / "model.safetensors"
    if not target.exists() or target.stat().st_size != GIB:
        with target.open("wb") as handle:
            for _ in range(64):
                handle.write(os.urandom(16 * 1024 * 1024))
    return model


def make_many(root: Path) -> Path:
    model = root / "many"
    if not model.exists():
        for index in range(2048):
            directory = model / f"shard-{index // 256:02d}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"part-{index:04d}.bin").write_bytes(os.urandom(512 * 1024))
    return model


def warm(model: Path) -> None:
    for path in model.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(64 * 1024 * 1024):
                    pass


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="modelsign-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(key=private, name="bench")
    pem = root / "bench.pem"
    pem.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    theirs = model_signing.signing.Config().use_elliptic_key_signer(private_key=pem)

    print(f"cores: {os.cpu_count()}; runs per tool: {args.runs}; files in {root}")
    print(f"{'model':<26}{'model_signing default':>24}{'modelsign (shards)':>22}{'speed-up':>10}")
    for label, model in (("1 GiB single file", make_single(root)), ("2,048 files x 512 KiB", make_many(root))):
        warm(model)
        size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
        ours_times, theirs_times = [], []
        for _ in range(args.runs):
            theirs_times.append(timed(lambda: theirs.sign(model, root / "theirs.sig")))
            ours_times.append(timed(lambda: sign_model_dir(model, key, signature_path=root / "ours.sig")))
        ours_m, theirs_m = statistics.median(ours_times), statistics.median(theirs_times)
        print(
            f"{label:<26}{theirs_m:>9.3f} s {size / theirs_m / 1e9:>6.2f} GB/s"
            f"{ours_m:>9.3f} s {size / ours_m / 1e9:>6.2f} GB/s{theirs_m / ours_m:>9.2f}x"
        )
        verify_times = [timed(lambda: verify_model_dir(model, [key.public], signature_path=root / "ours.sig")) for _ in range(args.runs)]
        print(f"{'':<26}modelsign verify median {statistics.median(verify_times):.3f} s")


if __name__ == "__main__":
    main()
