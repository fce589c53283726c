"""Policy decision latency: a real OPA server (`opa run --server`, built by .ci/peers, through
opa-python-client as the webhook's OPA mode uses it) vs regopy in-process (the default engine),
same Rego, same data, same inputs, in the same run.

The inputs are the policy inputs the admission pipeline builds for a few Pods and KServe
corpus objects (recorded once, nothing fetched: no registry is allowed); each engine then
decides each input `--runs` times, alternating, and the medians and p99 per decision are
printed side by side.

    .venv/bin/python bench/bench_opa.py [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import yaml  # noqa: E402

from signer.trust.keys import generate_key_pair  # noqa: E402
from support.admission import isvc, pod, policy_for, review  # noqa: E402
from support.opa_server import start_opa  # noqa: E402
from webhook.admission.config import parse_policy  # noqa: E402
from webhook.admission.engine.engines import OpaEngine, RegoEngine  # noqa: E402
from webhook.admission.pipeline import AdmissionPipeline  # noqa: E402
from webhook.admission.review import parse_review  # noqa: E402
from benchstats import percentile  # noqa: E402

KSERVE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "kserve"


class Recorder:
    """Passes decisions through to an engine and keeps the inputs it was asked about."""

    name = "recorder"

    def __init__(self, engine: Any) -> None:
        self.engine, self.inputs = engine, []

    def decide(self, policy_input, *, deadline=None):
        self.inputs.append(policy_input)
        return self.engine.decide(policy_input, deadline=deadline)


def reviews() -> list[bytes]:
    objects = [pod("nginx:1.27"), pod("127.0.0.1:5000/ml/app@sha256:" + "a" * 64, "docker.io/library/busybox:latest"),
               isvc("gs://kfserving-examples/models/sklearn/1.0/model"), isvc("s3://bucket/model")]
    for name in ("graph__ensemble.yaml", "fluid__kserve-isvc.yaml", "config__runtimes__kserve-sklearnserver.yaml"):
        objects += [d for d in yaml.safe_load_all((KSERVE / name).read_text()) if isinstance(d, dict) and "kind" in d]
    return [review(o["kind"], o) for o in objects]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelsign-bench-opa-"))
    generate_key_pair(workdir / "ml-team", b"bench")
    policy = parse_policy(policy_for(workdir, 'storageUris: {allow: ["gs://kfserving-examples/**"]}\nrequireDigest: true', registries="[]"),
                          source="bench")
    server = start_opa(workdir)
    try:
        rego = RegoEngine(policy.rego_sources, policy.data_document())
        opa = OpaEngine(server.url, "modelsign/decision", 2.0, policy.rego_sources, policy.data_document())
        recorder = Recorder(rego)
        pipeline = AdmissionPipeline(policy, engine=recorder)
        for body in reviews():
            pipeline.decide(parse_review(body))
        pipeline.close()
        inputs = recorder.inputs
        for engine in (rego, opa):  # warm: compile, push the policy to OPA, open the connection
            for policy_input in inputs:
                engine.decide(policy_input)
        times: dict[str, list[float]] = {"regopy in-process": [], "OPA server (HTTP)": []}
        loads = []
        for _ in range(args.runs):
            for label, engine in (("regopy in-process", rego), ("OPA server (HTTP)", opa)):
                for policy_input in inputs:
                    start = time.perf_counter()
                    engine.decide(policy_input)
                    times[label].append(time.perf_counter() - start)
            loads.append(os.getloadavg()[0])
        print(f"cores: {os.cpu_count()}; {len(inputs)} policy inputs x {args.runs} runs per engine, alternating; "
              f"load average (1 min) {min(loads):.2f}-{max(loads):.2f}")
        for label, values in times.items():
            print(f"  {label:<20} median {statistics.median(values) * 1000:6.2f} ms   p99 {percentile(values, 0.99) * 1000:6.2f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
