"""`cosign verify --key` vs `modelsign verify --key` on the same signed image, as whole processes.

Starts Debian's docker-registry with TLS (our own CA) on loopback, pushes one image, signs it
with modelsign in the chosen form, then alternates the two verifiers (each a fresh process,
as a CI step or a shell user runs them) and prints medians side by side, with modelsign's library call for the same verification
(what the webhook does per request) to show how much of a process is start-up. cosign is the one
`.ci/peers` built (v2.6.2 and v3.1.3); it trusts the registry through --registry-cacert and
is told not to look for Rekor entries (--insecure-ignore-tlog), since nothing here was logged.

    .venv/bin/python bench/bench_cosign_verify.py [--runs 15] [--form legacy|bundle]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from signer import load_public_key_file, verify_artifact  # noqa: E402
from signer.oci.registry import RegistryOptions  # noqa: E402
from signer.oci.samples import push_image  # noqa: E402
from signer.oci.stores import Stores  # noqa: E402
from signer.references import parse_reference  # noqa: E402
from signer.trust.keys import generate_key_pair  # noqa: E402
from support.cluster import peer_programs  # noqa: E402
from support.pki import make_ca_and_server_cert  # noqa: E402
from support.registry import start_registry  # noqa: E402

PASSWORD = "bench"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--form", choices=("legacy", "bundle"), default="legacy")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelsign-bench-cosign-"))
    ca, cert, key, _, _ = make_ca_and_server_cert(workdir / "pki")
    registry = start_registry(workdir / "registry", tls=(cert, key), ca_file=ca)
    env = {**os.environ, "HOME": str(workdir), "MODELSIGN_PASSWORD": PASSWORD, "DOCKER_CONFIG": str(workdir)}
    try:
        generate_key_pair(workdir / "bench", PASSWORD.encode())
        with Stores(RegistryOptions(ca_file=ca)) as stores:
            pushed = push_image(stores.repository(parse_reference(f"{registry.host}/bench/app:1")), {"f": os.urandom(64)}, tag="1")
        image = f"{registry.host}/bench/app@{pushed.digest}"
        modelsign = str(Path(sys.executable).parent / "modelsign")
        timed([modelsign, "sign", image, "--key", str(workdir / "bench.key"), "--format", args.form, "--ca-file", str(ca)], env)
        ours = [modelsign, "verify", image, "--key", str(workdir / "bench.pub"), "--ca-file", str(ca)]
        peers = peer_programs("cosign", "cosign-v3")
        trusted_root = workdir / "trusted_root.json"  # cosign v2 reads bundles only with one; empty is enough with --key
        trusted_root.write_text(json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}))
        commands = {"modelsign verify": ours}
        for name, binary in sorted(peers.items()):
            flags = ["--registry-cacert", str(ca), "--insecure-ignore-tlog=true"]
            if args.form == "bundle" and name == "cosign":
                flags += ["--new-bundle-format=true", "--trusted-root", str(trusted_root)]
            if args.form == "legacy" and name == "cosign-v3":
                flags += ["--new-bundle-format=false"]
            version = binary.parent.name.rsplit("-", 1)[-1]
            commands[f"cosign {version} verify"] = [str(binary), "verify", "--key", str(workdir / "bench.pub"), *flags, image]
        for command in commands.values():  # warm the page cache and the registry
            timed(command, env)
        times: dict[str, list[float]] = {label: [] for label in commands}
        loads = []
        for _ in range(args.runs):
            for label, command in commands.items():
                times[label].append(timed(command, env))
            loads.append(os.getloadavg()[0])
        # Where modelsign's time goes: the same verification as a library call (fresh client,
        # no interpreter start-up or imports), as the webhook makes it.
        public = [load_public_key_file(workdir / "bench.pub")]
        in_process = []
        for _ in range(args.runs):
            start = time.perf_counter()
            with Stores(RegistryOptions(ca_file=ca)) as stores:
                assert verify_artifact(stores, parse_reference(image), public).ok
            in_process.append(time.perf_counter() - start)
        times["  (verify_artifact, in-process)"] = in_process
        print(f"cores: {os.cpu_count()}; {args.form} signature; {args.runs} runs each, alternating; "
              f"load average (1 min) {min(loads):.2f}-{max(loads):.2f}")
        for label, values in times.items():
            print(f"  {label:<32} median {statistics.median(values) * 1000:7.1f} ms   min {min(values) * 1000:7.1f} ms")
    finally:
        registry.stop()


if __name__ == "__main__":
    main()
