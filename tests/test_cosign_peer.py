"""The real cosign (v2.6.2 and v3.1.3, built by .ci/peers) against modelsign, both ways, through
the TLS test registry: signatures (legacy and bundle), vuln and approval attestations, keys
made by either tool, and `cosign tree`.

cosign trusts the registry through `--registry-cacert` (no insecure option). Nothing reaches
Rekor: signing passes `--tlog-upload=false` (and `--use-signing-config=false` for bundles),
verifying `--insecure-ignore-tlog=true`. cosign v2 verifies bundles only with a trusted root
even when given a key; an empty one (no logs, no CAs) is enough here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, PASSWORD, run_cli
from signer.formats import mediatypes as mt
from signer.oci.registry import RegistryOptions
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from support.cluster import require_peer

pytestmark = pytest.mark.peers
VERSIONS = ("cosign", "cosign-v3")  # .ci/peers names: v2.6.2, v3.1.3
FORMS = ("legacy", "bundle")
TRIVY_REPORT = FIXTURES / "trivy" / "trivy__alpine-39.json.golden"
LEGACY_TYPE = "cosign container image signature"


@pytest.fixture(scope="module")
def empty_trusted_root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "trusted_root.json"
    path.write_text(json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}))
    return path


class Cosign:
    """One cosign binary with the flags its version needs to work offline in each form."""

    def __init__(self, name: str, ca_file: Path, home: Path, trusted_root: Path) -> None:
        self.binary = require_peer(name)
        self.v2 = name == "cosign"
        self.ca_file = ca_file
        self.home = home
        self.trusted_root = trusted_root

    def run(self, *args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "HOME": str(self.home), "COSIGN_PASSWORD": PASSWORD}
        return subprocess.run([str(self.binary), *map(str, args)], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)

    def ok(self, *args: object, cwd: Path | None = None) -> str:
        done = self.run(*args, cwd=cwd)
        assert done.returncode == 0, f"cosign {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def verify_flags(self, form: str) -> list[object]:
        flags: list[object] = ["--registry-cacert", self.ca_file, "--insecure-ignore-tlog=true"]
        if form == "bundle" and self.v2:
            flags += ["--new-bundle-format=true", "--trusted-root", self.trusted_root]
        if form == "legacy" and not self.v2:
            flags += ["--new-bundle-format=false"]  # v3 reads bundles only, unless told
        return flags

    def sign_flags(self, form: str) -> list[object]:
        flags: list[object] = ["--registry-cacert", self.ca_file, "--tlog-upload=false", "--yes"]
        if form == "bundle":
            flags += (["--new-bundle-format=true"] if self.v2 else []) + ["--use-signing-config=false"]
        elif not self.v2:
            flags += ["--new-bundle-format=false", "--use-signing-config=false"]
        return flags


@pytest.fixture(params=VERSIONS)
def cosign(request, tls_registry, tmp_path, empty_trusted_root) -> Cosign:
    return Cosign(request.param, tls_registry.ca_file, tmp_path, empty_trusted_root)


def _image(tls_registry, repo: str) -> str:
    name = f"{tls_registry.host}/{repo}"
    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        pushed = push_image(stores.repository(parse_reference(f"{name}:1")), {"model/file": os.urandom(32)}, tag="1")
    return f"{name}@{pushed.digest}"


def _modelsign(capsys, tls_registry, *argv: object) -> str:
    code, out, err = run_cli(capsys, *argv, "--ca-file", tls_registry.ca_file)
    assert code == 0, f"modelsign {argv[0]}: {out}\n{err}"
    return out


def _statements(stdout: str) -> list[dict]:
    """The in-toto statements `cosign verify-attestation` prints (one DSSE envelope a line)."""
    envelopes = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [json.loads(base64.b64decode(envelope["payload"])) for envelope in envelopes]


@pytest.mark.parametrize("form", FORMS)
def test_cosign_verifies_modelsign_signatures(capsys, cosign, tls_registry, key_dir, form):
    image = _image(tls_registry, f"ours/{cosign.binary.parent.name}-{form}")
    _modelsign(capsys, tls_registry, "sign", image, "--key", key_dir / "ml-team.key", "--format", form)
    payloads = json.loads(cosign.ok("verify", "--key", key_dir / "ml-team.pub", *cosign.verify_flags(form), image))
    assert len(payloads) == 1
    if form == "legacy":
        assert payloads[0]["critical"]["type"] == LEGACY_TYPE
        assert payloads[0]["critical"]["image"]["docker-manifest-digest"] == image.split("@")[1]
    else:
        assert payloads[0]["critical"]["type"] == mt.COSIGN_SIGN_PREDICATE
    refused = cosign.run("verify", "--key", key_dir / "other-team.pub", *cosign.verify_flags(form), image)
    assert refused.returncode != 0 and ("no matching signatures" in refused.stderr or "do not match threshold" in refused.stderr)


@pytest.mark.parametrize("form", FORMS)
def test_cosign_verifies_modelsign_vuln_and_approval_attestations(capsys, cosign, tls_registry, key_dir, form):
    image = _image(tls_registry, f"attested/{cosign.binary.parent.name}-{form}")
    key = key_dir / "ml-team.key"
    _modelsign(capsys, tls_registry, "scan", image, "--key", key, "--from-report", TRIVY_REPORT, "--format", form)
    _modelsign(capsys, tls_registry, "approve", image, "--key", key, "--environment", "prod", "--expires", "30d",
               "--ticket", "CHG-1", "--approver", "alice", "--format", form)
    public = key_dir / "ml-team.pub"
    (vuln,) = _statements(cosign.ok("verify-attestation", "--key", public, "--type", "vuln", *cosign.verify_flags(form), image))
    assert vuln["predicateType"] == mt.VULN_PREDICATE and vuln["subject"][0]["digest"]["sha256"] == image.split(":")[-1]
    assert vuln["predicate"]["scanner"]["result"]["severityCounts"]["CRITICAL"] == 2
    (approval,) = _statements(cosign.ok("verify-attestation", "--key", public, "--type", mt.APPROVAL_PREDICATE,
                                        *cosign.verify_flags(form), image))
    assert approval["predicate"]["environment"] == "prod" and approval["predicate"]["decision"] == "approved"
    refused = cosign.run("verify-attestation", "--key", key_dir / "other-team.pub", "--type", "vuln", *cosign.verify_flags(form), image)
    assert refused.returncode != 0


@pytest.mark.parametrize("form", FORMS)
def test_modelsign_verifies_what_cosign_signs_and_attests_with_a_modelsign_key(capsys, cosign, tls_registry, key_dir, tmp_path, form):
    image = _image(tls_registry, f"theirs/{cosign.binary.parent.name}-{form}")
    key = key_dir / "ml-team.key"  # made by modelsign keygen (cosign's encrypted format)
    cosign.ok("sign", "--key", key, *cosign.sign_flags(form), image)
    predicate = tmp_path / "vuln.json"
    predicate.write_text(json.dumps({"invocation": {"uri": "", "event_id": "", "builder.id": "cosign-peer-test"},
                                     "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.59.1", "version": "0.59.1",
                                                 "result": {"severityCounts": {"HIGH": 1}}},
                                     "metadata": {"scanStartedOn": "2026-01-01T00:00:00Z", "scanFinishedOn": "2026-01-01T00:00:01Z"}}))
    cosign.ok("attest", "--key", key, "--type", "vuln", "--predicate", predicate, *cosign.sign_flags(form), image)
    out = _modelsign(capsys, tls_registry, "verify", image, "--key", key_dir / "ml-team.pub")
    assert f"signed ({form}) by ml-team" in out
    report = json.loads(_modelsign(capsys, tls_registry, "verify-attestation", image, "--key", key_dir / "ml-team.pub",
                                   "--type", "vuln", "--output", "json"))
    (attestation,) = report["attestations"]
    assert report["verified"] and (attestation["form"], attestation["signer"]) == (form, "ml-team")
    assert attestation["predicate"]["scanner"]["result"]["severityCounts"] == {"HIGH": 1}
    code, _, err = run_cli(capsys, "verify", image, "--key", key_dir / "other-team.pub", "--ca-file", tls_registry.ca_file)
    assert code == 1 and "but not by other-team" in err and "it was signed by ml-team" in err


def test_cosign_generated_keys_sign_in_modelsign(capsys, cosign, tls_registry, tmp_path, monkeypatch):
    cosign.ok("generate-key-pair", "--output-key-prefix", "made-by-cosign", cwd=tmp_path)
    monkeypatch.delenv("MODELSIGN_PASSWORD")
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)  # cosign's own variable unlocks it in modelsign too
    for form in FORMS:
        image = _image(tls_registry, f"cosignkey/{cosign.binary.parent.name}-{form}")
        _modelsign(capsys, tls_registry, "sign", image, "--key", tmp_path / "made-by-cosign.key", "--format", form)
        cosign.ok("verify", "--key", tmp_path / "made-by-cosign.pub", *cosign.verify_flags(form), image)
        assert f"signed ({form}) by made-by-cosign" in _modelsign(capsys, tls_registry, "verify", image, "--key", tmp_path / "made-by-cosign.pub")


def test_cosign_tree_lists_modelsign_objects_where_cosign_puts_them(capsys, cosign, tls_registry, key_dir):
    image = _image(tls_registry, f"tree/{cosign.binary.parent.name}")
    key = key_dir / "ml-team.key"
    _modelsign(capsys, tls_registry, "sign", image, "--key", key, "--format", "both")
    _modelsign(capsys, tls_registry, "scan", image, "--key", key, "--from-report", TRIVY_REPORT)
    _modelsign(capsys, tls_registry, "approve", image, "--key", key, "--environment", "prod", "--expires", "30d", "--ticket", "CHG-2",
               "--format", "bundle")
    tree = cosign.ok("tree", "--registry-cacert", cosign.ca_file, *(["--experimental-oci11"] if cosign.v2 else []), image)
    hex_digest = image.split(":")[-1]
    assert f"Signatures for an image tag: {tls_registry.host}/tree/{cosign.binary.parent.name}:sha256-{hex_digest}.sig" in tree
    assert f"Attestations for an image tag: {tls_registry.host}/tree/{cosign.binary.parent.name}:sha256-{hex_digest}.att" in tree
    if cosign.v2:  # v2 labels referrers by their artifactType, v3 by their predicate type
        assert tree.count(f"{mt.SIGSTORE_BUNDLE_V03} artifacts via OCI referrer") == 2, tree
    else:
        assert f"{mt.COSIGN_SIGN_PREDICATE} artifacts via OCI referrer" in tree, tree
        assert f"{mt.APPROVAL_PREDICATE} artifacts via OCI referrer" in tree, tree
