"""The starvation attack of the hardening issue, over the real TLS webhook and a real docker-registry.

Three dry-run Pods of 32 padded images each (100 `.sig` layers pointing at one 1 MiB payload,
or with `--distinct-payloads` at 100 different 60 KB ones, each under the payload cap; 100
referrers pointing at one ~4 MiB manifest; no trusted key), `deadlineSeconds: 4`, sent at
once; meanwhile six correctly signed, digest-pinned Pods, one every 0.3 s. Prints the worst
answer time, the signed Pods' latency (p50/max) and how many were admitted, for a first round
and for the same attack again (with the registry requests the second round cost).

    .venv/bin/python bench/bench_starvation.py [--source DIR] [--rounds 2]

`--source DIR` runs the webhook from another checkout (e.g. `git worktree add /tmp/old HEAD`
to measure the code before a change); the registry and the padded images are the same.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from signer import Stores, generate_key_pair, load_signing_key_file, parse_reference  # noqa: E402
from support.admission import policy_for  # noqa: E402
from support.padding import attack_round, push_attack, push_signed_pinned  # noqa: E402
from support.registry import start_registry  # noqa: E402
from support.webhook_server import start_webhook  # noqa: E402
from webhook.certs import generate  # noqa: E402

PODS, IMAGES_PER_POD, SIGNED_PODS, DEADLINE = 3, 32, 6, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="run the webhook from this checkout (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--distinct-payloads", action="store_true",
                        help="the `.sig` layers point at 100 different 60 KB payloads (each under the payload cap) instead of one 1 MiB payload")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        registry = start_registry(workdir / "registry")
        server = None
        try:
            generate_key_pair(workdir / "ml-team", b"bench")
            key = load_signing_key_file(workdir / "ml-team.key", password=lambda _: b"bench")
            with Stores() as stores:
                attack = push_attack(stores.repository(parse_reference(f"{registry.host}/attack/pad")), PODS, IMAGES_PER_POD,
                                     distinct_payloads=args.distinct_payloads)
                signed = [push_signed_pinned(stores, f"{registry.host}/good/app{index}", key) for index in range(SIGNED_PODS)]
            generate("modelsign-webhook", "modelsign-system", workdir / "certs", extra_sans=["127.0.0.1"])
            policy = workdir / "policy.yaml"
            policy.write_text(policy_for(workdir, f"deadlineSeconds: {DEADLINE}", name="bench-starvation"))
            env = {}
            if args.source:
                os.chdir(args.source)  # `python -m webhook.cli` imports from the working directory first
                env["PYTHONPATH"] = str(args.source.resolve())
            server = start_webhook(policy, workdir / "certs", workdir, env=env)
            padding = "100 distinct 60 KB payloads" if args.distinct_payloads else "one 1 MiB payload"
            print(f"webhook from {args.source or 'this checkout'}; {PODS} attack Pods x {IMAGES_PER_POD} padded images ({padding}), "
                  f"{SIGNED_PODS} signed Pods, deadlineSeconds {DEADLINE}")
            print(f"{'round':<7}{'worst answer s':>15}{'attack max s':>14}{'signed p50 s':>14}{'signed max s':>14}{'admitted':>10}{'registry reqs':>15}")
            for number in range(1, args.rounds + 1):
                offset = registry.log_offset()
                result = attack_round(server.url, server.ca_file, attack, signed, prefix=f"r{number}")
                requests = registry.requests_since(offset)
                times = [a.seconds for a in result.signed]
                admitted = sum(a.allowed for a in result.signed)
                print(f"{number:<7}{result.worst_seconds:>15.2f}{max(a.seconds for a in result.attack):>14.2f}{statistics.median(times):>14.2f}"
                      f"{max(times):>14.2f}{f'{admitted}/{len(times)}':>10}{len(requests):>15}")
            denied = next((a.message for a in result.attack if not a.allowed), "")
            print(f"an attack Pod's answer: {denied[:400]}")
        finally:
            if server is not None:
                server.stop()
            registry.stop()


if __name__ == "__main__":
    main()
