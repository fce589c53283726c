"""Audit verification at fleet scale, measured on a generated trail.

A trail of --records decision-sized records (~1.6 KB, the shape bench_audit.py appends) from
--writers writers spread over 90 days, chains rotated at 64 MiB as the webhook does, with
signed checkpoints every 1,000 records (in the chains and in a checkpoint file apart) and a
final one, and --tampered records with one flipped byte. Then:

  verify 1 core         fast path (hash, summarise clean files), one process
  verify all cores      the same on every core (ProcessPoolExecutor over files)
  per line              the fast path's loop against hashing alone, on the same files
  verify full path      every entry walked (what verify did before the fast path), one process
  incremental           after 1% more records: verify --state, reading only what is new
  export one week       CSV of one week's records (only the files the week touches are read)
  peak memory           max RSS of this process and of its children

and the extrapolation to a 90-day, 780 M-record trail. Every figure is the median of --runs.

Registry part: registry requests per 1,000 admissions with 2 webhook processes x 2 workers,
with and without the shared verification cache (real registry, real redis-server), and the
requests one admission costs cold and warm.

    .venv/bin/python bench/bench_scale.py [--part all|audit|registry] [--records 5000000] [--writers 12] [--runs 1] [--dir /tmp/trail]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_audit import decision_fields  # noqa: E402
from signer import generate_key_pair, load_public_key_file, load_signing_key_file  # noqa: E402
from webhook.audit.canonical import canonical_json  # noqa: E402
from webhook.audit.chain import GENESIS, SCHEMA, seal  # noqa: E402
from webhook.audit.checkpoints import Schedule, signed_checkpoint  # noqa: E402

PASSWORD = b"bench"
ROTATE_BYTES = 64 * 1024 * 1024
CHECKPOINT_RECORDS = 1000
DAYS = 90
START = datetime(2026, 7, 1, tzinfo=timezone.utc)
QUARTER_RECORDS = 780_000_000


def _template() -> list[bytes]:
    """A decision record's canonical bytes split around its number and time (filled per record)."""
    record = canonical_json({**decision_fields(123456789), "schema": SCHEMA, "time": "TIME-PLACEHOLDER-XXXXX", "type": "decision"})
    head, tail = record.split(b"TIME-PLACEHOLDER-XXXXX")
    return [head.replace(b"000123456789", b"\0"), tail.replace(b"000123456789", b"\0")]


def write_writer(directory: Path, key_path: Path, writer: str, records: int, offset: int, total: int, checkpoint_file: Path) -> list[str]:
    """One writer's chain files (and its checkpoint lines, returned)."""
    key = load_signing_key_file(key_path, password=lambda _: PASSWORD)
    schedule = Schedule(records=CHECKPOINT_RECORDS, milliseconds=DAYS * 86_400_000)
    head_parts, tail_parts = (part.split(b"\0") for part in _template())
    span = DAYS * 86400
    seq, prev, number, size = 0, GENESIS, 1, 0
    checkpoints: list[str] = []
    handle = (directory / f"audit-{writer}-{number:06d}.jsonl").open("wb")
    since_checkpoint = 0

    def emit(line: bytes) -> None:
        nonlocal size, handle, number
        if size + len(line) > ROTATE_BYTES:
            handle.close()
            number += 1
            handle = (directory / f"audit-{writer}-{number:06d}.jsonl").open("wb")
            size = 0
        handle.write(line)
        size += len(line)

    def checkpoint(moment: str, final: bool) -> None:
        nonlocal seq, prev
        signed = signed_checkpoint(key, writer=writer, seq=seq, head=prev, time=moment, schedule=schedule, final=final)
        seq += 1
        line, prev = seal(writer, seq, prev, canonical_json({**signed, "schema": SCHEMA, "time": moment, "type": "checkpoint"}))
        emit(line)
        checkpoints.append(canonical_json(signed).decode())

    moment = ""
    for index in range(records):
        n = offset + index
        at = START + timedelta(seconds=span * n / total)
        moment = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}Z"
        digits = f"{n:012d}".encode()
        record = digits.join(head_parts) + moment.encode() + digits.join(tail_parts)
        seq += 1
        line, prev = seal(writer, seq, prev, record)
        emit(line)
        since_checkpoint += 1
        if seq == 1 or since_checkpoint >= CHECKPOINT_RECORDS:
            checkpoint(moment, False)
            since_checkpoint = 0
    checkpoint(moment, True)
    handle.close()
    return checkpoints


def _writer_job(args: tuple) -> list[str]:
    return write_writer(*args)


def generate(root: Path, records: int, writers: int) -> tuple[Path, Path, Path]:
    logs, checkpoints = root / "logs", root / "checkpoints.jsonl"
    logs.mkdir(parents=True)
    generate_key_pair(root / "audit", PASSWORD, force=True)
    per = records // writers
    jobs = [(logs, root / "audit.key", f"bench-{w:02d}", per, w * per, records, checkpoints) for w in range(writers)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        lines = pool.map(_writer_job, jobs)
    checkpoints.write_text("".join(line + "\n" for found in lines for line in found))
    return logs, checkpoints, root / "audit.pub"


def tamper(logs: Path, count: int) -> list[str]:
    """Flip one byte inside a decision record in `count` files."""
    files = sorted(logs.glob("*.jsonl"))
    done: list[str] = []
    for path in files[:: max(1, len(files) // max(1, count))][:count]:
        data = bytearray(path.read_bytes())
        at = data.index(b'"outcome":"allow"', len(data) // 2) + 11
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
        done.append(path.name)
    return done


def append_more(root: Path, logs: Path, checkpoints: Path, records: int, writers: int) -> None:
    """1% more records: one new writer's chain (what a day's growth adds)."""
    lines = write_writer(logs, root / "audit.key", "bench-new", records, 10**9, 10**10, checkpoints)
    with checkpoints.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def per_line_floor(files: list[Path], runs: int) -> tuple[float, float]:
    """Lines/s of the fast path's per-file loop against the least any Python loop must do per
    line (find the newline, hash the bytes, hex the digest), side by side on the same bytes."""
    from webhook.audit.scan import _summarise

    loaded = [(str(path), path.read_bytes()) for path in files]
    lines = sum(data.count(b"\n") for _, data in loaded)

    def hash_only() -> None:
        for _, data in loaded:
            find, view, opened, position = data.find, memoryview(data), hashlib.sha256(b"{"), 0
            while position < len(data):
                end = find(b"\n", position)
                digest = opened.copy()
                digest.update(view[position + 82:end])
                digest.hexdigest()
                position = end + 1

    def summarise() -> None:
        assert all(_summarise(name, data) is not None for name, data in loaded)

    times: dict[str, list[float]] = {"hash": [], "summarise": []}
    for _ in range(runs):
        times["hash"].append(timed(hash_only)[0])
        times["summarise"].append(timed(summarise)[0])
    return lines / statistics.median(times["hash"]), lines / statistics.median(times["summarise"])


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _child(work, results) -> None:
    seconds, result = timed(work)
    results.put((seconds, result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def in_child(work) -> tuple[float, object, float]:
    """Run `work` in a forked process: (seconds, its result, that process's peak RSS in MiB)."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    process = context.Process(target=_child, args=(work, results))
    process.start()
    outcome = results.get()
    process.join()
    return outcome


def median_time(work, runs: int) -> tuple[float, object, float]:
    results = [in_child(work) for _ in range(runs)]
    return statistics.median(t for t, _, _ in results), results[-1][1], max(m for _, _, m in results)


def _shared_counts(servers: list, ca_file: Path) -> dict[str, int]:
    """modelsign_shared_cache_lookups_total by result, summed over every worker (fresh
    connections reach each worker of a process)."""
    import re

    import httpx

    seen: dict[str, str] = {}
    for server in servers:
        for _ in range(40):
            with httpx.Client(base_url=server.url, verify=str(ca_file), timeout=10) as http:
                text = http.get("/metrics").text
            worker = re.search(r'worker="(\d+)"', text)
            seen[f"{server.url}-{worker.group(1) if worker else '?'}"] = text
    counts: dict[str, int] = {}
    for text in seen.values():
        for result, value in re.findall(r'modelsign_shared_cache_lookups_total\{[^}]*result="(\w+)"[^}]*\} (\d+)', text):
            counts[result] = counts.get(result, 0) + int(value)
    return counts


def registry_requests(workdir: Path, admissions: int, images: int, ttl_seconds: float) -> None:
    """Registry requests per `admissions` admissions spread over `images` signed digests, sent
    16 at a time to 2 webhook processes x 2 workers, without and with the shared cache (a
    real redis-server); a proxy in front of the real registry counts the requests."""
    import concurrent.futures

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from signer import Stores, parse_reference, push_image, sign_artifact
    from support.admission import pod, review
    from support.faults import FaultProxy
    from support.redis_server import start_redis
    from support.registry import start_registry
    from support.webhook_server import start_webhook
    from webhook.certs import generate as generate_certs

    registry = start_registry(workdir / "registry")
    redis_server = start_redis(workdir)
    try:
        generate_key_pair(workdir / "ml-team", PASSWORD, force=True)
        key = load_signing_key_file(workdir / "ml-team.key", password=lambda _: PASSWORD)
        digests = []
        with Stores() as stores:
            for number in range(images):
                reference = parse_reference(f"{registry.host}/bench/model-{number}:1")
                push_image(stores.repository(reference), {"f": f"model {number}".encode()}, tag="1")
                digests.append(sign_artifact(stores, reference, key).digest)
        generate_certs("modelsign-webhook", "modelsign-system", workdir / "certs", extra_sans=["127.0.0.1"])
        policy = workdir / "policy.yaml"
        policy.write_text(f"apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nallowedRegistries: ['127.0.0.1:*']\n"
                          f"cache: {{ttlSeconds: {ttl_seconds:g}}}\n"
                          f"trustedKeys: {{ml-team: {{file: {workdir / 'ml-team.pub'}}}}}\nrules: [{{name: r, require: {{signedBy: [ml-team]}}}}]\n")
        secret = workdir / "shared-cache.key"
        secret.write_bytes(base64.b64encode(os.urandom(32)))  # text: the key file is stripped of white space
        print(f"registry requests for {admissions:,} admissions of {images} signed models (digest references), "
              f"2 processes x 2 workers, ttlSeconds {ttl_seconds:g}:")
        for label, flags in (("per-process cache (default)", []),
                             ("shared cache (Redis)", ["--shared-cache", redis_server.url, "--shared-cache-key-file", str(secret)])):
            proxy = FaultProxy(registry.host)
            servers = [start_webhook(policy, workdir / "certs", workdir, workers=2, extra=flags) for _ in range(2)]
            try:
                bodies = [review("Pod", pod(f"{proxy.host}/bench/model-{n % images}@{digests[n % images]}"), uid=f"u{n}") for n in range(admissions)]

                def one(n: int) -> bool:
                    with httpx.Client(base_url=servers[n % 2].url, verify=str(workdir / "certs" / "ca.crt"), timeout=30) as http:
                        return http.post("/validate", content=bodies[n]).json()["response"]["allowed"]

                started = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                    allowed = sum(pool.map(one, range(admissions)))
                seconds = time.perf_counter() - started
                seen = list(proxy.seen)
                shared = _shared_counts(servers, workdir / "certs" / "ca.crt")
            finally:
                for server in servers:
                    server.stop()
                proxy.stop()
            print(f"  {label:<28} {len(seen) * 1000 / admissions:8.1f} requests per 1,000 admissions ({len(seen) / images:.1f} per digest); "
                  f"{allowed}/{admissions} allowed in {seconds:.1f}s" + (f"; shared lookups {shared}" if shared else ""))
        cold = FaultProxy(registry.host)
        server = start_webhook(policy, workdir / "certs", workdir, workers=1)
        try:
            with httpx.Client(base_url=server.url, verify=str(workdir / "certs" / "ca.crt"), timeout=30) as http:
                http.post("/validate", content=review("Pod", pod(f"{cold.host}/bench/model-0:1")))
                first = len(cold.seen)
                http.post("/validate", content=review("Pod", pod(f"{cold.host}/bench/model-0:1")))
                warm = len(cold.seen) - first
                http.post("/validate", content=review("Pod", pod(f"{cold.host}/bench/model-1@{digests[1]}")))
                pinned = len(cold.seen) - first - warm
                http.post("/validate", content=review("Pod", pod(f"{cold.host}/bench/model-1@{digests[1]}")))
                pinned_warm = len(cold.seen) - first - warm - pinned
        finally:
            server.stop()
            cold.stop()
        print(f"  per admission, one signed model: cold tag {first} requests, warm tag {warm}, cold digest {pinned}, warm digest {pinned_warm}")
    finally:
        redis_server.stop()
        registry.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "audit", "registry"), default="all")
    parser.add_argument("--admissions", type=int, default=1000)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=300.0, help="the policy's cache.ttlSeconds for the registry part")
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--writers", type=int, default=12)
    parser.add_argument("--tampered", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="where the trail goes (default: a temporary directory, removed after)")
    args = parser.parse_args()
    from webhook.audit.export import Selection, load_trail, touches, write_csv
    from webhook.audit.verify import verify

    if args.part in ("all", "registry"):
        with tempfile.TemporaryDirectory(prefix="bench-scale-registry-") as workdir:
            registry_requests(Path(workdir), args.admissions, args.images, args.ttl)
    if args.part == "registry":
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        seconds, (logs, checkpoints, pub) = timed(lambda: generate(root, args.records, args.writers))
        files = sorted(logs.glob("*.jsonl"))
        size = sum(p.stat().st_size for p in files)
        print(f"trail: {args.records:,} decision records, {args.writers} writers, {len(files)} files, {size / 2**30:.2f} GiB "
              f"({size / args.records:.0f} bytes/line), generated in {seconds:.0f}s")
        tampered = tamper(logs, args.tampered)
        print(f"tampered: {', '.join(tampered) or 'none'}")
        keys = [load_public_key_file(pub)]
        cores = os.cpu_count() or 1

        def run(**kwargs):
            return verify([logs], keys, checkpoint_files=[checkpoints], **kwargs).to_json()

        rows = []
        one, report, memory = median_time(lambda: run(jobs=1), args.runs)
        rows.append(("verify, fast path, 1 core", one, report, memory))
        many, report_many, memory = median_time(lambda: run(jobs=cores), args.runs)
        rows.append((f"verify, fast path, {cores} cores", many, report_many, memory))
        full, report_full, memory = median_time(lambda: run(jobs=1, fast=False), args.runs)
        rows.append(("verify, full path (every entry walked), 1 core", full, report_full, memory))
        assert report == report_many == report_full, "the paths disagree"
        kinds = sorted({p["kind"] for p in report["problems"]})
        print(f"verdict: {report['status']}, {len(report['problems'])} problem(s) ({', '.join(kinds)}), records {report['records']:,}")
        for name, seconds, result, memory in rows:
            print(f"  {name:<50} {seconds:8.1f}s  {result['records'] / seconds:12,.0f} records/s   peak RSS {memory:,.0f} MiB")

        state = root / "verify-state.json"
        state_key = load_signing_key_file(root / "audit.key", password=lambda _: PASSWORD)
        seconds, _, memory = in_child(lambda: run(jobs=cores, state=state, state_key=state_key))
        print(f"  {'first verify with --state (writes the state)':<50} {seconds:8.1f}s  state {state.stat().st_size / 2**20:.1f} MiB, "
              f"peak RSS {memory:,.0f} MiB")
        added = max(1, args.records // 100)
        append_more(root, logs, checkpoints, added, args.writers)
        seconds, incremental, memory = in_child(lambda: run(jobs=cores, state=state, state_key=state_key))
        full_after, _, _ = in_child(lambda: run(jobs=cores))
        done = incremental["incremental"]
        print(f"  {'incremental verify after +1% (' + format(added, ',') + ' records)':<50} {seconds:8.1f}s  read {done['filesRead']} file(s), "
              f"{done['recordsRead']:,} record(s); took {done['filesReused']} file(s), {done['recordsSkipped']:,} record(s) from the state "
              f"(a verify without the state: {full_after:.1f}s); peak RSS {memory:,.0f} MiB")

        week = Selection(since=START + timedelta(days=40), until=START + timedelta(days=47))
        out = root / "week.csv"

        def export_week() -> int:
            trail = load_trail([logs], week, period_files_only=True)
            write_csv(trail, out)
            return len(trail.records)

        seconds, exported, memory = in_child(export_week)
        touched = sum(1 for path in sorted(logs.glob("*.jsonl")) if touches(path, week))
        print(f"  {'export one week (CSV, period files only)':<50} {seconds:8.1f}s  {exported:,} records from {touched} of "
              f"{len(list(logs.glob('*.jsonl')))} files; peak RSS {memory:,.0f} MiB")
        hashing, summarising = per_line_floor([path for path in sorted(logs.glob("*.jsonl")) if path.name not in tampered][:3], runs=7)
        print(f"  {'per line, 1 core, same files (median of 7)':<50} hashlib alone {hashing:,.0f} lines/s; fast path {summarising:,.0f} "
              f"lines/s ({summarising / hashing:.0%} of hashing alone: the floor a Python loop has on this CPU)")
        scale = QUARTER_RECORDS / report["records"]
        print(f"extrapolated to 780M records (x{scale:.0f}, {scale * size / 2**40:.2f} TiB): 1 core {one * scale / 3600:.2f} h, "
              f"{cores} cores {many * scale / 3600:.2f} h, full path {full * scale / 3600:.2f} h")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
