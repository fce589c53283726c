"""Sign and verify latency against a real docker-registry on loopback (200 runs each).

Starts Debian's docker-registry on a random port, pushes N small images, then times
(library calls through one warm client, as the webhook will use them):
  sign legacy      - resolve tag, read .sig tag, append layer, push config + manifest
  sign bundle      - resolve, push bundle + referrer, update the fallback referrers index
  verify by tag    - GET manifest, .sig manifest + payload, referrers (fallback tag)
  verify by digest - signature objects only
and prints median and p99 per operation.

    .venv/bin/python bench/bench_registry.py [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from signer import SignatureFormat, SigningKey, Stores, parse_reference, push_image, sign_artifact, verify_artifact  # noqa: E402
from support.registry import start_registry  # noqa: E402
from benchstats import percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    registry = start_registry(Path(tempfile.mkdtemp(prefix="modelsign-bench-registry-")))
    key = SigningKey(key=ec.generate_private_key(ec.SECP256R1()), name="bench")
    results: dict[str, list[float]] = {}
    try:
        with Stores() as stores:
            refs = {}
            for form in ("legacy", "bundle"):
                for index in range(args.runs):
                    ref = parse_reference(f"{registry.host}/bench/{form}:{index}")
                    push_image(stores.repository(ref), {"f": os.urandom(64)}, tag=str(index))
                    refs.setdefault(form, []).append(ref)
            for form, signature_format in (("legacy", SignatureFormat.LEGACY), ("bundle", SignatureFormat.BUNDLE)):
                timings, digests = [], []
                for ref in refs[form]:
                    start = time.perf_counter()
                    result = sign_artifact(stores, ref, key, signature_format=signature_format)
                    timings.append(time.perf_counter() - start)
                    digests.append(result.digest)
                results[f"sign ({form})"] = timings
                for label, targets in (("tag", refs[form]), ("digest", [r.pinned(d) for r, d in zip(refs[form], digests)])):
                    timings = []
                    for ref in targets:
                        start = time.perf_counter()
                        verified = verify_artifact(stores, ref, [key.public])
                        timings.append(time.perf_counter() - start)
                        assert verified.ok
                    results[f"verify {form} by {label}"] = timings
    finally:
        registry.stop()
    print(f"docker-registry 2.8 on loopback, {args.runs} runs each, one warm client")
    print(f"{'operation':<28}{'median ms':>11}{'p99 ms':>9}")
    for name, timings in results.items():
        print(f"{name:<28}{statistics.median(timings) * 1000:>11.2f}{percentile(timings, 0.99) * 1000:>9.2f}")


if __name__ == "__main__":
    main()
