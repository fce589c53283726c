"""Directory signing throughput: modelsign vs model_signing, same files, same run.

In-process (default): modelsign's library vs model_signing's library default, on one 1 GiB
file and on many files (2,048 x 512 KiB = 1 GiB).

`--cli`: whole processes, as users run them: `modelsign sign DIR` (its default, `files`
serialization) vs `model_signing sign key DIR` (its CLI, `files` too), same unencrypted PEM
key, on one large file (`--large-gib`, default 4) and on a Hugging Face-like layout (three
`--shard-gib` safetensors shards, default 2 GiB each, plus small JSON/tokenizer files). Needs
about large + 3 x shard GiB of disk; the files are deleted afterwards unless `--keep`.

Files are read once before timing so both tools hash from the page cache (this measures
hashing, not the disk). Runs alternate between the tools; medians are reported with their
ratio and the load average (the machine may be shared).

    .venv/bin/python bench/bench_modeldir.py [--runs 5] [--workdir DIR]
    .venv/bin/python bench/bench_modeldir.py --cli [--runs 3] [--large-gib 4] [--shard-gib 2] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
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


def write_file(path: Path, size: int) -> None:
    """`size` bytes of random-looking data, fast: one random block, varied per block."""
    block = bytearray(os.urandom(16 * 1024 * 1024))
    with path.open("wb") as handle:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "little")
            chunk = memoryview(block)[: min(len(block), size - written)]
            handle.write(chunk)
            written += len(chunk)


def make_large(root: Path, gib: float) -> Path:
    model = root / "large"
    model.mkdir(exist_ok=True)
    target, size = model / "model.safetensors", int(gib * GIB)
    if not target.exists() or target.stat().st_size != size:
        write_file(target, size)
    return model


def make_hugging_face(root: Path, shard_gib: float) -> Path:
    model = root / "hf"
    size = int(shard_gib * GIB)
    (model / "tokenizer").mkdir(parents=True, exist_ok=True)
    for index in range(1, 4):
        shard = model / f"model-{index:05d}-of-00003.safetensors"
        if not shard.exists() or shard.stat().st_size != size:
            write_file(shard, size)
    small = {
        "config.json": '{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32}',
        "generation_config.json": '{"bos_token_id": 1, "eos_token_id": 2}',
        "model.safetensors.index.json": '{"metadata": {"total_size": %d}, "weight_map": {}}' % (3 * size),
        "special_tokens_map.json": '{"bos_token": "<s>", "eos_token": "</s>"}',
        "tokenizer/tokenizer.json": '{"model": {"type": "BPE", "vocab": {}}}' + " " * 2_000_000,
        "tokenizer/tokenizer_config.json": '{"model_max_length": 4096}',
        "README.md": "# bench model\n",
    }
    for name, text in small.items():
        (model / name).write_text(text)
    return model


def run_process(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one child process; CPU time is the figure
    that other jobs on a shared machine disturb least."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    errors = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {errors}")
    return wall, usage.ru_utime + usage.ru_stime


def compare_clis(root: Path, args: argparse.Namespace, pem: Path) -> None:
    bin_dir = Path(sys.executable).parent
    ours_cmd = lambda model: [str(bin_dir / "modelsign"), "sign", str(model), "--key", str(pem), "--signature", str(root / "ours.sig")]  # noqa: E731
    theirs_cmd = lambda model: [str(bin_dir / "model_signing"), "sign", "key", str(model), "--signature", str(root / "theirs.sig"),  # noqa: E731
                                "--private_key", str(pem)]
    print(f"cores: {os.cpu_count()}; runs per tool: {args.runs}; whole processes; files in {root}")
    print(f"{'model':<30}{'model_signing sign key':>30}{'modelsign sign (files)':>30}{'speed-up':>10}  load (1 min)")
    print(f"{'':<30}{'wall, GB/s, CPU':>30}{'wall, GB/s, CPU':>30}{'wall':>10}")
    layouts = ((f"{args.large_gib:g} GiB single file", make_large(root, args.large_gib)),
               (f"HF: 3 x {args.shard_gib:g} GiB + JSON", make_hugging_face(root, args.shard_gib)))
    for label, model in layouts:
        warm(model)
        size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
        ours_runs, theirs_runs, loads = [], [], []
        for _ in range(args.runs):
            theirs_runs.append(run_process(theirs_cmd(model)))
            ours_runs.append(run_process(ours_cmd(model)))
            loads.append(os.getloadavg()[0])
        ours_m, theirs_m = (statistics.median(r[0] for r in runs) for runs in (ours_runs, theirs_runs))
        ours_cpu, theirs_cpu = (statistics.median(r[1] for r in runs) for runs in (ours_runs, theirs_runs))
        print(
            f"{label:<30}{theirs_m:>9.2f} s {size / theirs_m / 1e9:>6.2f} GB/s {theirs_cpu:>6.2f} s"
            f"{ours_m:>9.2f} s {size / ours_m / 1e9:>6.2f} GB/s {ours_cpu:>6.2f} s"
            f"{theirs_m / ours_m:>9.2f}x  {min(loads):.2f}-{max(loads):.2f}"
        )
        check = subprocess.run([str(bin_dir / "model_signing"), "verify", "key", str(model), "--signature", str(root / "ours.sig"),
                                "--public_key", str(root / "bench.pub")], capture_output=True, text=True)
        print(f"{'':<30}model_signing verify key of modelsign's signature: {'ok' if check.returncode == 0 else check.stdout + check.stderr}")
        if not args.keep:
            shutil.rmtree(model)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--cli", action="store_true", help="whole processes vs model_signing's CLI, large layouts")
    parser.add_argument("--large-gib", type=float, default=4.0)
    parser.add_argument("--shard-gib", type=float, default=2.0)
    parser.add_argument("--keep", action="store_true", help="keep the --cli model files")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="modelsign-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(key=private, name="bench")
    pem = root / "bench.pem"
    pem.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (root / "bench.pub").write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    if args.cli:
        compare_clis(root, args, pem)
        return
    theirs = model_signing.signing.Config().use_elliptic_key_signer(private_key=pem)

    print(f"cores: {os.cpu_count()}; runs per tool: {args.runs}; files in {root}")
    print(f"{'model':<26}{'model_signing default':>24}{'modelsign (files)':>22}{'speed-up':>10}")
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
