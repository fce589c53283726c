"""Admission latency and throughput over TLS on loopback, against a real docker-registry.

Starts docker-registry and `modelsign webhook serve` (2 workers, TLS), signs N images, then:
  warm   - the same signed Pod review again and again (verification and decision cached),
           sequential, one keep-alive HTTPS connection: median and p99, by digest and by tag;
           and with a new namespace each time (verification cached, Rego evaluated)
  cold   - reviews of N distinct, never-seen signed digests (one artifact each): median, p99
  load   - sustained throughput of the warm review with `wrk` (if installed; Debian's wrk)
           or a thread pool of Python clients: reviews/s and errors
Then profiles 2,000 warm decisions in-process (cProfile) to show where the time goes.

    .venv/bin/python bench/bench_webhook.py [--images 200] [--requests 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import io
import json
import pstats
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from signer import SigningKey, Stores, parse_reference, push_image, sign_artifact  # noqa: E402
from support.registry import start_registry  # noqa: E402
from support.webhook_server import start_webhook  # noqa: E402
from webhook.admission.config import load_policy  # noqa: E402
from webhook.admission.pipeline import AdmissionPipeline  # noqa: E402
from webhook.admission.review import parse_review  # noqa: E402
from webhook.certs import generate  # noqa: E402
from benchstats import percentile  # noqa: E402


def review(image: str, uid: str = "bench", namespace: str = "ml") -> bytes:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "namespace": namespace, "name": "p",
        "object": pod, "userInfo": {"username": "bench"}}}).encode()


def timed_posts(client: httpx.Client, bodies: list[bytes]) -> list[float]:
    timings = []
    for body in bodies:
        start = time.perf_counter()
        answer = client.post("/validate", content=body, headers={"Content-Type": "application/json"})
        timings.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200 and answer.json()["response"]["allowed"], answer.text
    return timings


def show(label: str, timings: list[float]) -> None:
    print(f"{label:<34}{statistics.median(timings):>9.2f}{percentile(timings, 0.99):>9.2f}{len(timings):>8}")


def load_with_wrk(url: str, body: bytes, seconds: int, workdir: Path, ca: Path) -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = workdir / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ' + json.dumps(body.decode()) + "\n")
    completed = subprocess.run([wrk, "-t2", "-c32", f"-d{seconds}s", "-s", str(script), f"{url}/validate"], capture_output=True, text=True)
    return completed.stdout


def load_with_python(url: str, body: bytes, seconds: int, ca: Path) -> tuple[float, int, int]:
    context = ssl.create_default_context(cafile=str(ca))
    stop = time.monotonic() + seconds

    def worker() -> tuple[int, int]:
        done = errors = 0
        with httpx.Client(base_url=url, verify=context, timeout=30) as client:
            while time.monotonic() < stop:
                response = client.post("/validate", content=body, headers={"Content-Type": "application/json"})
                if response.status_code == 200 and response.json()["response"]["allowed"]:
                    done += 1
                else:
                    errors += 1
        return done, errors

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: worker(), range(16)))
    done, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    return done / seconds, done, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelsign-bench-webhook-"))
    registry = start_registry(workdir / "registry")
    key = SigningKey(key=ec.generate_private_key(ec.SECP256R1()), name="ml-team")
    (workdir / "ml-team.pub").write_bytes(key.public.pem)
    digests = []
    with Stores() as stores:
        for index in range(args.images + 1):
            ref = parse_reference(f"{registry.host}/bench/app{index}:1")
            digests.append(push_image(stores.repository(ref), {"f": str(index).encode()}, tag="1").digest)
            sign_artifact(stores, ref, key)
    policy = workdir / "policy.yaml"
    policy.write_text(f"""apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*"]
trustedKeys: {{ml-team: {{file: {workdir / 'ml-team.pub'}}}}}
rules: [{{name: signed, require: {{signedBy: [ml-team]}}}}]
""")
    certs = workdir / "certs"
    generate("modelsign-webhook", "modelsign-system", certs, extra_sans=["127.0.0.1"])
    server = start_webhook(policy, certs, workdir, workers=2)
    try:
        by_digest = review(f"{registry.host}/bench/app0@{digests[0]}")
        by_tag = review(f"{registry.host}/bench/app0:1")
        print(f"webhook: 2 workers, TLS, loopback; docker-registry 2.8; {args.requests} warm requests, {args.images} cold digests")
        print(f"{'request':<34}{'median ms':>9}{'p99 ms':>9}{'n':>8}")
        with server.client() as client:
            timed_posts(client, [by_digest] * 50)  # warm both workers' caches and connections
            show("warm, image by digest", timed_posts(client, [by_digest] * args.requests))
            fresh = [review(f"{registry.host}/bench/app0@{digests[0]}", namespace=f"ns{i}") for i in range(args.requests)]
            show("warm evidence, new decision (Rego)", timed_posts(client, fresh))
            show("warm, image by tag (HEAD each)", timed_posts(client, [by_tag] * args.requests))
            cold = [review(f"{registry.host}/bench/app{i}@{digests[i]}") for i in range(1, args.images + 1)]
            show("cold, first-seen digest", timed_posts(client, cold))
        output = load_with_wrk(server.url, by_digest, args.seconds, workdir, server.ca_file)
        if output is not None:
            print(f"\nsustained load, warm review (wrk -t2 -c32 -d{args.seconds}s; client on the same 2 cores):\n{output}")
        else:
            rate, done, errors = load_with_python(server.url, by_digest, args.seconds, server.ca_file)
            print(f"\nsustained load, warm review, 16 Python clients on the same 2 cores: {rate:.0f} reviews/s ({done} ok, {errors} errors)")
    finally:
        server.stop()

    pipeline = AdmissionPipeline(load_policy(policy))
    request = parse_review(by_digest)
    pipeline.decide(request)
    profile = cProfile.Profile()
    profile.enable()
    started = time.perf_counter()
    for _ in range(2000):
        pipeline.decide(request)
    elapsed = time.perf_counter() - started
    profile.disable()
    pipeline.close()
    registry.stop()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(12)
    print(f"\nin-process warm decision (no HTTP/TLS): {elapsed / 2000 * 1000:.3f} ms each; where the time goes (tottime):")
    print("\n".join(text.getvalue().splitlines()[:40]))


if __name__ == "__main__":
    main()
