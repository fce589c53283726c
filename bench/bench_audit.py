"""Audit trail throughput and cost, measured side by side in one run.

  append   - decision-sized records (~1.6 KB) made durable with group commit (O_DSYNC), as
             the webhook does it (coroutines awaiting, encoding in the event loop), and from
             threads; one writer process, and two processes at once (two workers, two chains);
             and the writer alone on records already encoded.
             Median of --runs runs, records/s.
  verify   - `audit verify` over the records appended above (hash of every line, chain links,
             checkpoint signatures): median records/s.
  webhook  - the added admission latency: two webhooks (1 worker each, TLS, real registry) with
             and without --audit-log, the same warm signed review sent alternately, p50 and p99
             of each and the difference.

    .venv/bin/python bench/bench_audit.py [--records 100000] [--runs 3] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402

from signer import Stores, generate_key_pair, load_signing_key_file, parse_reference, push_image, sign_artifact  # noqa: E402
from support.registry import start_registry  # noqa: E402
from support.webhook_server import start_webhook  # noqa: E402
from webhook.audit.trail import AuditTrail  # noqa: E402
from webhook.audit.verify import verify  # noqa: E402
from webhook.audit.writer import AuditSettings, AuditWriter  # noqa: E402
from webhook.certs import generate  # noqa: E402

PASSWORD = b"bench"


def decision_fields(number: int) -> dict:
    """A decision record shaped like the webhook's (one InferenceService, one ModelKit)."""
    return {
        "review": {"uid": f"7f1c7a43-2b6e-4f0e-9a39-{number:012d}", "dryRun": False, "operation": "CREATE",
                   "kind": {"group": "serving.kserve.io", "version": "v1beta1", "kind": "InferenceService"}, "resource": "inferenceservices",
                   "subResource": "", "namespace": "prod-1", "name": f"llm-{number}"},
        "user": {"username": "system:serviceaccount:ci:deployer", "uid": "2b6e", "groups": ["system:serviceaccounts", "system:authenticated"]},
        "artifacts": [{"source": "spec.predictor.model.storageUri", "reference": "kit://registry.example.com/models/llm:1.0", "role": "model",
                       "kind": "oci", "digest": "sha256:" + "a" * 64, "signatures": ["pBSRmvJfay274sg1r/J1bFuvc2KUJh/7BxnbjoMshjM="], "signers": ["ml-team"],
                       "scans": [{"id": "sha256:" + "b" * 64, "signer": "scanner", "finishedOn": "2026-11-22T10:00:00Z", "critical": 0, "high": 1,
                                  "unsafeModelFiles": 0}],
                       "approvals": [{"id": "sha256:" + "c" * 64, "signer": "approver", "keyId": "ePGuoCtrr+uK2cBhobp3XpErnzm0fYskG7iqDI/L8+Y=",
                                      "decision": "approved", "environment": "prod", "approver": "mlops-lead", "requester": "data-scientist",
                                      "ticket": "CHG-1234", "status": "active", "expiresAt": "2026-12-01T00:00:00Z"}], "error": None}],
        "decision": {"id": f"548d7eca-f930-4fd2-96c7-{number:012d}", "outcome": "allow", "allowed": True, "mode": "enforce", "reason": "verified",
                     "codes": [], "message": "1 artifact(s) verified", "warnings": []},
        "policy": {"name": "default", "hash": "sha256:" + "d" * 64}, "latencyUs": 2345,
    }


def append_async(directory: Path, key_path: Path | None, records: int, concurrency: int = 256) -> float:
    key = load_signing_key_file(key_path, password=lambda _: PASSWORD) if key_path else None
    trail = AuditTrail(AuditWriter(AuditSettings(path=directory / "audit.jsonl", key=key)))
    per_task = records // concurrency

    async def task(offset: int) -> None:
        for number in range(offset, offset + per_task):
            await trail._decision_record(decision_fields(number))  # the webhook's path (AuditTrail.decision)

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(task(i * per_task) for i in range(concurrency)))
        return per_task * concurrency / (time.perf_counter() - started)

    rate = asyncio.run(run())
    trail.close()
    return rate


def append_encoded(directory: Path, records: int, concurrency: int = 256) -> float:
    """The writer alone: records already in canonical form (no structlog, no redaction, no
    encoding), to separate the cost of the durable chain from the cost of building records."""
    from webhook.audit.canonical import canonical_json

    writer = AuditWriter(AuditSettings(path=directory / "audit.jsonl"))
    encoded = [canonical_json({"type": "decision", **decision_fields(n)}) for n in range(1000)]
    per_task = records // concurrency

    async def task() -> None:
        for number in range(per_task):
            await writer.append_async(encoded[number % 1000])

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(concurrency)))
        return per_task * concurrency / (time.perf_counter() - started)

    rate = asyncio.run(run())
    writer.close()
    return rate


def append_threads(directory: Path, records: int, threads: int = 64) -> float:
    trail = AuditTrail(AuditWriter(AuditSettings(path=directory / "audit.jsonl")))
    per_thread = records // threads

    def work(offset: int) -> None:
        for number in range(offset, offset + per_thread):
            trail.event("decision", **decision_fields(number))

    started = time.perf_counter()
    pool = [threading.Thread(target=work, args=(i * per_thread,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    rate = per_thread * threads / (time.perf_counter() - started)
    trail.close()
    return rate


def _process_append(directory: str, records: int, start: multiprocessing.synchronize.Event, result) -> None:  # type: ignore[name-defined]
    start.wait()
    result.put(append_async(Path(directory), None, records))


def append_two_processes(directory: Path, records: int) -> float:
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_process_append, args=(str(directory / f"p{i}"), records // 2, start, results)) for i in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    rates = [results.get(timeout=600) for _ in workers]  # each process's own rate; they ran at the same time
    for worker in workers:
        worker.join()
    return sum(rates)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def webhook_latency(workdir: Path, requests: int) -> None:
    registry = start_registry(workdir / "registry")
    try:
        generate_key_pair(workdir / "ml-team", PASSWORD)
        generate_key_pair(workdir / "audit", PASSWORD)
        key = load_signing_key_file(workdir / "ml-team.key", password=lambda _: PASSWORD)
        image = f"{registry.host}/bench/signed:1"
        with Stores() as stores:
            push_image(stores.repository(parse_reference(image)), {"f": b"bench"}, tag="1")
            digest = sign_artifact(stores, parse_reference(image), key).digest
        pinned = f"{registry.host}/bench/signed@{digest}"
        generate("modelsign-webhook", "modelsign-system", workdir / "certs", extra_sans=["127.0.0.1"])
        policy = workdir / "policy.yaml"
        policy.write_text(f"apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nallowedRegistries: ['127.0.0.1:*']\n"
                          f"trustedKeys: {{ml-team: {{file: {workdir / 'ml-team.pub'}}}}}\nrules: [{{name: r, require: {{signedBy: [ml-team]}}}}]\n")
        env = {"MODELSIGN_AUDIT_PASSWORD": PASSWORD.decode()}
        plain = start_webhook(policy, workdir / "certs", workdir, workers=1)
        audited = start_webhook(policy, workdir / "certs", workdir, workers=1, env=env,
                                extra=["--audit-log", str(workdir / "audit" / "audit.jsonl"), "--audit-key", str(workdir / "audit.key"),
                                       "--audit-checkpoints", str(workdir / "checkpoints" / "audit.checkpoints.jsonl")])
        from bench_webhook import review

        body = review(pinned)
        timings: dict[str, list[float]] = {"without audit": [], "with audit": []}
        tls = ssl.create_default_context(cafile=str(workdir / "certs" / "ca.crt"))
        try:
            with httpx.Client(base_url=plain.url, verify=tls) as a, httpx.Client(base_url=audited.url, verify=tls) as b:
                for client in (a, b):
                    for _ in range(50):  # warm both: connection, verification cache, decision memo
                        client.post("/validate", content=body).raise_for_status()
                for _ in range(requests):
                    for label, client in (("without audit", a), ("with audit", b)):
                        started = time.perf_counter()
                        answer = client.post("/validate", content=body)
                        timings[label].append((time.perf_counter() - started) * 1000)
                        assert answer.json()["response"]["allowed"] is True
        finally:
            plain.stop()
            audited.stop()
        for label, values in timings.items():
            print(f"  {label:14} p50 {statistics.median(values):6.2f} ms   p99 {percentile(values, 0.99):6.2f} ms   ({len(values)} warm reviews, sequential)")
        added50 = statistics.median(timings["with audit"]) - statistics.median(timings["without audit"])
        added99 = percentile(timings["with audit"], 0.99) - percentile(timings["without audit"], 0.99)
        print(f"  added by the durable audit record: p50 {added50:+.2f} ms, p99 {added99:+.2f} ms")
        report = verify([workdir / "audit"], [load_signing_key_file(workdir / "audit.key", password=lambda _: PASSWORD).public],
                        checkpoint_files=[workdir / "checkpoints" / "audit.checkpoints.jsonl"])
        print(f"  the audited webhook's trail: {report.records} records, {'intact' if report.ok else 'DAMAGED'}")
    finally:
        registry.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="modelsign-bench-audit-"))
    try:
        generate_key_pair(workdir / "audit", PASSWORD)
        print(f"append ({args.records} decision records of ~1.6 KB each, O_DSYNC group commit, median of {args.runs} runs)")
        rates: dict[str, list[float]] = {"coroutines, 1 process": [], "threads, 1 process": [], "coroutines, 2 processes": [],
                                         "writer alone, pre-encoded": []}
        verify_rates = []
        for run in range(args.runs):
            directory = workdir / f"run{run}"
            rates["coroutines, 1 process"].append(append_async(directory / "async", workdir / "audit.key", args.records))
            rates["threads, 1 process"].append(append_threads(directory / "threads", args.records // 4))
            rates["coroutines, 2 processes"].append(append_two_processes(directory / "two", args.records))
            rates["writer alone, pre-encoded"].append(append_encoded(directory / "encoded", args.records))
            started = time.perf_counter()
            report = verify([directory / "async"], [load_signing_key_file(workdir / "audit.key", password=lambda _: PASSWORD).public])
            verify_rates.append(report.records / (time.perf_counter() - started))
            assert report.ok, report.problems
            shutil.rmtree(directory)
        for label, values in rates.items():
            print(f"  {label:26} {statistics.median(values):9,.0f} records/s   (runs: {', '.join(f'{v:,.0f}' for v in values)})")
        print(f"verify: {statistics.median(verify_rates):,.0f} records/s median   (runs: {', '.join(f'{v:,.0f}' for v in verify_rates)})")
        print("webhook: added admission latency (same warm review, alternating between the two servers)")
        webhook_latency(workdir / "webhook", args.requests)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
