"""A real Kubernetes control plane for the tests: etcd and kube-apiserver on 127.0.0.1.

Both programs are built from pinned module versions by `.ci/peers` (no stand-ins). The API
server runs with the admission webhooks enabled, a service-account key, an admin token, an
audit policy that records pods and KServe objects with their request and response, and a
kubeconfig for `kubectl`. No controllers run: Pods stay Pending, which is all admission needs.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.pki import make_ca_and_server_cert
from support.processes import stop_process
from support.registry import free_port

REPO = Path(__file__).resolve().parents[2]
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "RequestResponse", "resources": [
            {"group": "", "resources": ["pods", "pods/ephemeralcontainers"]},
            {"group": "apps", "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"]},
            {"group": "batch", "resources": ["jobs", "cronjobs"]},
            {"group": "serving.kserve.io"},
        ]},
        {"level": "Metadata"},
    ],
}


def peer_programs(*names: str) -> dict[str, Path]:
    """NAME -> PATH of the peers `.ci/peers` built (building what is missing; all if no names)."""
    completed = subprocess.run(["bash", str(REPO / ".ci" / "peers"), *names], capture_output=True, text=True, check=False)
    programs = {}
    for line in completed.stdout.splitlines():
        name, _, path = line.partition(" ")
        if path:
            programs[name] = Path(path)
    return programs


def require_peer(name: str) -> Path:
    path = peer_programs(name).get(name)
    if path is None or not path.exists():
        raise RuntimeError(f"{name} was not built by .ci/peers; run `bash .ci/peers {name}` and read its log")
    return path


@dataclass
class Cluster:
    url: str
    kubeconfig: Path
    token: str
    ca_file: Path
    audit_log: Path
    workdir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def unprivileged_kubeconfig(self) -> Path:
        """Credentials of user `nobody`, to whom RBAC grants nothing."""
        return self.workdir / "kubeconfig-nobody"

    def kubectl(self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], input=input, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def apply(self, documents: list[dict] | dict, *extra: str) -> subprocess.CompletedProcess:
        documents = documents if isinstance(documents, list) else [documents]
        return self.kubectl("apply", "-f", "-", *extra, input=yaml.safe_dump_all(documents))

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca_file)), headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """A namespace and its `default` ServiceAccount (no controller creates it here)."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}).check_returncode()
        self.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}}).check_returncode()

    def install_crds(self, files: list[Path], timeout: float = 60) -> None:
        """Apply CRDs (server-side: big ones exceed the client-side annotation limit) and wait
        until the API server serves them (`kubectl wait` errors on a CRD with no status yet)."""
        if not files:
            raise RuntimeError("no CRD files given (tests/fixtures/kserve/crds/ holds the KServe ones)")
        for file in files:
            self.kubectl("apply", "--server-side", "-f", str(file), check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = json.loads(self.kubectl("get", "crd", "-o", "json", check=True).stdout)["items"]
            if all(any(c["type"] == "Established" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions") or [])
                   for i in items):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the CRDs were not established within {timeout:g}s")

    def audit_events(self) -> list[dict]:
        events = []
        for line in self.audit_log.read_text().splitlines() if self.audit_log.exists() else []:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process, timeout=15)


def _wait(what: str, check, log: Path, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready in {timeout:g}s:\n{log.read_text(errors='replace')[-4000:]}")


def start_cluster(workdir: Path) -> Cluster:
    etcd, apiserver = require_peer("etcd"), require_peer("kube-apiserver")
    if shutil.which("kubectl") is None:
        raise RuntimeError("kubectl is not installed (`.ci/setup --test` installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []

    client_port, peer_port = free_port(), free_port()
    etcd_log = workdir / "etcd.log"
    processes.append(subprocess.Popen(
        [str(etcd), "--data-dir", str(workdir / "etcd-data"), "--listen-client-urls", f"http://127.0.0.1:{client_port}",
         "--advertise-client-urls", f"http://127.0.0.1:{client_port}", "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}", "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
         "--log-level", "warn", "--quota-backend-bytes", str(512 * 1024 * 1024)],
        stdout=etcd_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True))
    _wait("etcd", lambda: httpx.get(f"http://127.0.0.1:{client_port}/health", timeout=2).json().get("health") == "true", etcd_log, processes[0])

    pki = workdir / "pki"
    ca_file, cert, key, _, _ = make_ca_and_server_cert(pki, common_name="modelsign test cluster CA")
    service_account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key = pki / "sa.key"
    sa_key.write_bytes(service_account.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    token, unprivileged = os.urandom(24).hex(), os.urandom(24).hex()
    # admin, and a user RBAC grants nothing (to see what a webhook without permissions gets)
    (pki / "tokens.csv").write_text(f"{token},admin,admin-uid,system:masters\n{unprivileged},nobody,nobody-uid\n")
    audit_policy = workdir / "audit-policy.yaml"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    audit_log = workdir / "audit.log"
    port = free_port()
    api_log = workdir / "kube-apiserver.log"
    processes.append(subprocess.Popen(
        [str(apiserver), "--etcd-servers", f"http://127.0.0.1:{client_port}", "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
         "--secure-port", str(port), "--tls-cert-file", str(cert), "--tls-private-key-file", str(key), "--client-ca-file", str(ca_file),
         "--token-auth-file", str(pki / "tokens.csv"), "--authorization-mode", "Node,RBAC",
         "--service-account-key-file", str(sa_key), "--service-account-signing-key-file", str(sa_key),
         "--service-account-issuer", "https://kubernetes.default.svc", "--api-audiences", "https://kubernetes.default.svc",
         "--service-cluster-ip-range", "10.96.0.0/16", "--endpoint-reconciler-type", "none",
         "--enable-admission-plugins", "NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
         "--audit-policy-file", str(audit_policy), "--audit-log-path", str(audit_log), "--audit-log-format", "json",
         "--audit-log-mode", "blocking", "--cert-dir", str(pki / "generated"), "--v", "1"],
        stdout=api_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True))
    url = f"https://127.0.0.1:{port}"
    cluster = Cluster(url=url, kubeconfig=workdir / "kubeconfig", token=token, ca_file=ca_file, audit_log=audit_log, workdir=workdir,
                      processes=processes)
    for path, user_token in ((cluster.kubeconfig, token), (cluster.unprivileged_kubeconfig, unprivileged)):
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}],
            "users": [{"name": "user", "user": {"token": user_token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
        }))
    try:
        with cluster.api() as api:
            _wait("kube-apiserver", lambda: api.get("/readyz").status_code == 200, api_log, processes[1], timeout=120)
    except Exception:
        cluster.stop()
        raise
    return cluster
