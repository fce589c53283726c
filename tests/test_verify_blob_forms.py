"""`verify-blob` over a file or a `sha256:<hex>` digest, `verify-blob-attestation`, and
damaged bundles, against the sigstore-python and cosign bundles of the corpus (keyless,
verified offline by the real `sigstore` package) and key bundles made here."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import COSIGN, run_cli
from signer.errors import ModelsignError
from signer.formats import mediatypes as mt
from signer.formats.bundles import build_key_bundle
from signer.formats.dsse import sign_envelope
from signer.formats.intoto import encode_statement, subject_for_digest
from signer.trust.keyless import KeylessIdentity, verify_bundle_dsse
from signer.trust.keys import SigningKey

GITHUB = "https://github.com/login/oauth"
STAGING_ROOT = COSIGN / "sigstore-python__staging-trusted_root.json"
PGI_ROOT = COSIGN / "cosign__trusted_root_pgi.json"
REKOR_V2 = COSIGN / "sigstore-python__staging-rekor-v2.txt.sigstore.json"
ATTESTATION = COSIGN / "cosign__oci-attestation.sigstore.json"
ATTESTED = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"  # the image the cosign fixture attests
CODY = ["--certificate-identity", "cody@soyland.com", "--certificate-oidc-issuer", GITHUB, "--trusted-root", PGI_ROOT]


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _staging(identity: str) -> list[object]:
    return ["--certificate-identity", identity, "--certificate-oidc-issuer", GITHUB, "--trusted-root", STAGING_ROOT]


def _public_key_file(key: SigningKey, directory: Path) -> Path:
    path = directory / f"{key.name}.pub"
    path.write_bytes(key.public.pem)
    return path


def _message_bundle(key: SigningKey, content: bytes, *, recorded: bytes | None = None) -> bytes:
    """What `cosign sign-blob --new-bundle-format --tlog-upload=false --key` writes."""
    digest = recorded if recorded is not None else hashlib.sha256(content).digest()
    body = {
        "mediaType": mt.SIGSTORE_BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": key.public.key_id}, "tlogEntries": []},
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()},
                             "signature": base64.b64encode(key.sign(content)).decode()},
    }
    return json.dumps(body).encode()


def _statement_bundle(key: SigningKey, digest: str, predicate_type: str, predicate: object, *, name: str = "model.bin") -> bytes:
    statement = encode_statement([subject_for_digest(digest, name=name)], predicate_type, predicate)
    return build_key_bundle(sign_envelope(mt.INTOTO_PAYLOAD, statement, key), key.public.key_id)


# -- verify-blob with a digest ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("artifact", "bundle", "identity"),
    [
        ("sigstore-python__bundle_v3.txt", "sigstore-python__bundle_v3.txt.sigstore", "william@yossarian.net"),
        ("sigstore-python__bundle.txt", "sigstore-python__bundle.txt.sigstore", "a@tny.town"),
        ("sigstore-python__staging-rekor-v2.txt", "sigstore-python__staging-rekor-v2.txt.sigstore.json", "jku@goto.fi"),
    ],
)
def test_a_digest_verifies_a_keyless_message_signature_offline(capsys, artifact, bundle, identity):
    digest = _sha256(COSIGN / artifact)
    code, out, err = run_cli(capsys, "verify-blob", digest, "--bundle", COSIGN / bundle, *_staging(identity), "--output", "json")
    assert code == 0, err
    assert json.loads(out) == {"verified": True, "signer": identity, "digest": digest}
    code, _, err = run_cli(capsys, "verify-blob", digest.upper().replace("SHA256:", "sha256:"), "--bundle", COSIGN / bundle, *_staging(identity))
    assert code == 0, err  # hex in either case, as sigstore-python accepts
    other = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    code, _, err = run_cli(capsys, "verify-blob", other, "--bundle", COSIGN / bundle, *_staging(identity))
    assert code == 1 and f"over {other}" in err and "keyless bundle rejected" in err


@pytest.mark.parametrize("algorithm", ["ecdsa", "rsa"])
def test_key_message_signatures_verify_by_file_and_by_digest(capsys, tmp_path, ml_key, algorithm):
    key = ml_key if algorithm == "ecdsa" else SigningKey(key=rsa.generate_private_key(public_exponent=65537, key_size=2048), name="rsa-signer")
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights " * 1000)
    bundle = tmp_path / "model.bin.sigstore.json"
    bundle.write_bytes(_message_bundle(key, artifact.read_bytes()))
    public = _public_key_file(key, tmp_path)
    for target in (artifact, _sha256(artifact)):
        code, out, err = run_cli(capsys, "verify-blob", target, "--bundle", bundle, "--key", public)
        assert code == 0 and f"signed by {key.name}" in out, err
    artifact.write_bytes(b"tampered")
    code, _, err = run_cli(capsys, "verify-blob", artifact, "--bundle", bundle, "--key", public)
    assert code == 1 and "signs the digest" in err


def test_ed25519_message_signatures_need_the_file(capsys, tmp_path):
    key = SigningKey(key=ed25519.Ed25519PrivateKey.generate(), name="ed")
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    bundle = tmp_path / "b.json"
    bundle.write_bytes(_message_bundle(key, artifact.read_bytes()))
    public = _public_key_file(key, tmp_path)
    assert run_cli(capsys, "verify-blob", artifact, "--bundle", bundle, "--key", public)[0] == 0
    code, _, err = run_cli(capsys, "verify-blob", _sha256(artifact), "--bundle", bundle, "--key", public)
    assert code == 1 and "an Ed25519 signature covers the whole file" in err and "pass the file" in err


def test_a_recorded_message_digest_must_be_this_files(capsys, tmp_path, ml_key):
    """A valid signature over the file, in a bundle that claims another digest: refused, as sigstore does."""
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    bundle = tmp_path / "b.json"
    bundle.write_bytes(_message_bundle(ml_key, artifact.read_bytes(), recorded=hashlib.sha256(b"other").digest()))
    code, _, err = run_cli(capsys, "verify-blob", _sha256(artifact), "--bundle", bundle, "--key", _public_key_file(ml_key, tmp_path))
    assert code == 1 and f"signs the digest sha256:{hashlib.sha256(b'other').hexdigest()}" in err


def test_a_dsse_signature_by_digest_must_name_it_as_subject(capsys, tmp_path, ml_key):
    digest = "sha256:" + hashlib.sha256(b"weights").hexdigest()
    bundle = tmp_path / "b.json"
    bundle.write_bytes(_statement_bundle(ml_key, digest, mt.COSIGN_SIGN_PREDICATE, {}))
    public = _public_key_file(ml_key, tmp_path)
    assert run_cli(capsys, "verify-blob", digest, "--bundle", bundle, "--key", public)[0] == 0
    other = "sha256:" + hashlib.sha256(b"other").hexdigest()
    code, _, err = run_cli(capsys, "verify-blob", other, "--bundle", bundle, "--key", public)
    assert code == 1 and f"is about model.bin {digest}, not {other}" in err


@pytest.mark.parametrize(
    ("argument", "fragment"),
    [
        ("sha256:abc", "neither an existing file nor a sha256 digest"),
        ("sha256:" + "zz" * 32, "neither an existing file nor a sha256 digest"),
        ("sha256:" + "ab" * 33, "neither an existing file nor a sha256 digest"),
        ("sha512:" + "ab" * 64, "sha512 digests are not supported"),
        ("no-such-model.bin", "no-such-model.bin does not exist"),
        ("{directory}", "is a directory, not a file"),
    ],
)
def test_malformed_digest_arguments_are_usage_errors(capsys, tmp_path, argument, fragment):
    argument = argument.replace("{directory}", str(tmp_path))
    for command in ("verify-blob", "verify-blob-attestation"):
        code, _, err = run_cli(capsys, command, argument, "--bundle", REKOR_V2, *_staging("jku@goto.fi"))
        assert code == 2 and fragment in err and "hint:" in err and "Traceback" not in err


def test_an_existing_file_named_like_a_digest_is_read_as_a_file(capsys, tmp_path, monkeypatch, ml_key):
    content = b"a file whose name is a digest of something else"
    name = "sha256:" + hashlib.sha256(b"not the content").hexdigest()
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(content)
    bundle = tmp_path / "b.json"
    bundle.write_bytes(_message_bundle(ml_key, content))
    code, out, err = run_cli(capsys, "verify-blob", name, "--bundle", bundle, "--key", _public_key_file(ml_key, tmp_path), "--output", "json")
    assert code == 0, err
    assert json.loads(out)["digest"] == "sha256:" + hashlib.sha256(content).hexdigest()


# -- damaged RFC 3161 timestamps ---------------------------------------------------------------


def _garble_timestamp(bundle: dict, how: str) -> dict:
    material = bundle["verificationMaterial"]
    timestamps = material.setdefault("timestampVerificationData", {"rfc3161Timestamps": [{"signedTimestamp": ""}]})["rfc3161Timestamps"]
    original = timestamps[0]["signedTimestamp"] or base64.b64encode(b"\x30\x03\x02\x01\x00" * 20).decode()
    timestamps[0]["signedTimestamp"] = {
        "garbage-der": base64.b64encode(b"not a timestamp response" * 3).decode(),
        "flipped": original[:40] + ("B" if original[40] == "A" else "A") * 4 + original[44:],
        "not-base64": "!!!not base64!!!",
        "truncated": original[: len(original) // 2],
    }[how]
    return bundle


@pytest.mark.parametrize("how", ["garbage-der", "flipped", "not-base64", "truncated"])
def test_a_garbled_timestamp_in_a_rekor_v2_bundle_is_a_clear_error(capsys, tmp_path, how):
    bundle = tmp_path / "garbled.sigstore.json"
    bundle.write_text(json.dumps(_garble_timestamp(json.loads(REKOR_V2.read_text()), how)))
    for target in (COSIGN / "sigstore-python__staging-rekor-v2.txt", _sha256(COSIGN / "sigstore-python__staging-rekor-v2.txt")):
        code, _, err = run_cli(capsys, "verify-blob", target, "--bundle", bundle, *_staging("jku@goto.fi"))
        assert code in (1, 2) and "Traceback" not in err and "unexpectedly" not in err
        assert "malformed sigstore bundle" in err or "keyless bundle rejected" in err
        assert "errors.pydantic.dev" not in err and len(err.splitlines()) <= 2  # one message, one hint


@pytest.mark.parametrize("how", ["garbage-der", "not-base64", "truncated"])
def test_a_garbled_timestamp_in_a_keyless_dsse_bundle_is_a_clear_error(capsys, tmp_path, how):
    garbled = json.dumps(_garble_timestamp(json.loads(ATTESTATION.read_text()), how)).encode()
    identity = KeylessIdentity(name="cody", subject="cody@soyland.com", issuer=GITHUB, trusted_root=PGI_ROOT)
    with pytest.raises(ModelsignError) as info:
        verify_bundle_dsse(garbled, identity)
    assert "timestamp" in str(info.value).lower() or "base64" in str(info.value).lower() or "malformed" in str(info.value)
    bundle = tmp_path / "garbled.json"
    bundle.write_bytes(garbled)
    code, _, err = run_cli(capsys, "verify-blob-attestation", ATTESTED, "--bundle", bundle, *CODY)
    assert code in (1, 2) and err.startswith("error: ") and "Traceback" not in err and "unexpectedly" not in err


# -- verify-blob-attestation ----------------------------------------------------------------


def test_cosigns_keyless_attestation_verifies_by_digest(capsys):
    code, out, err = run_cli(capsys, "verify-blob-attestation", ATTESTED, "--bundle", ATTESTATION, *CODY)
    assert code == 0, err
    assert "predicate type: https://cosign.sigstore.dev/attestation/v1" in out and f"subject: 127.0.0.1:60943/repo {ATTESTED}" in out
    code, out, err = run_cli(capsys, "verify-blob-attestation", ATTESTED, "--bundle", ATTESTATION, *CODY, "--type", "custom", "--output", "json")
    assert code == 0, err
    body = json.loads(out)
    assert body["verified"] and body["signer"] == "cody@soyland.com" and body["predicateType"] == mt.CUSTOM_PREDICATE
    assert body["subject"] == {"name": "127.0.0.1:60943/repo", "digest": {"sha256": ATTESTED.split(":")[1]}}
    assert body["predicate"] == {"Data": '{"foo": "bar"}\n', "Timestamp": "2025-02-28T19:18:11Z"}


@pytest.mark.parametrize(
    ("target", "extra", "fragment"),
    [
        (ATTESTED, ["--type", "vuln"], "attests https://cosign.sigstore.dev/attestation/v1, not https://cosign.sigstore.dev/attestation/vuln/v1"),
        ("sha256:" + "00" * 32, [], "is about 127.0.0.1:60943/repo"),
        (ATTESTED, ["--certificate-identity", "mallory@example.com", "--certificate-oidc-issuer", GITHUB, "--trusted-root", PGI_ROOT],
         "does not match mallory@example.com"),
    ],
)
def test_attestation_checks_fail_with_the_reason(capsys, target, extra, fragment):
    trust = extra if "--certificate-identity" in extra else [*CODY, *extra]
    code, _, err = run_cli(capsys, "verify-blob-attestation", target, "--bundle", ATTESTATION, *trust)
    assert code == 1 and fragment in err


def test_a_key_signed_attestation_about_a_file(capsys, tmp_path, ml_key, other_key):
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"weights")
    scan = {"scanner": {"uri": "https://github.com/aquasecurity/trivy", "version": "0.59.1", "result": {}}}
    bundle = tmp_path / "scan.sigstore.json"
    bundle.write_bytes(_statement_bundle(ml_key, _sha256(artifact), mt.VULN_PREDICATE, scan))
    code, out, err = run_cli(capsys, "verify-blob-attestation", artifact, "--bundle", bundle, "--key", _public_key_file(ml_key, tmp_path),
                             "--type", "vuln", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["predicate"] == scan
    code, _, err = run_cli(capsys, "verify-blob-attestation", artifact, "--bundle", bundle, "--key", _public_key_file(other_key, tmp_path))
    assert code == 1 and "was not made by key other-team" in err
    # An attestation is not a signature of the file, and a signature is not an attestation.
    code, _, err = run_cli(capsys, "verify-blob", artifact, "--bundle", bundle, "--key", _public_key_file(ml_key, tmp_path))
    assert code == 1 and "is an attestation of type https://cosign.sigstore.dev/attestation/vuln/v1, not a signature" in err
    assert "verify-blob-attestation" in err
    signature = tmp_path / "sig.json"
    signature.write_bytes(_message_bundle(ml_key, artifact.read_bytes()))
    code, _, err = run_cli(capsys, "verify-blob-attestation", artifact, "--bundle", signature, "--key", _public_key_file(ml_key, tmp_path))
    assert code == 1 and "holds a message signature, not an attestation" in err


def test_a_certificate_bundle_without_certificate_trust_says_what_to_pass(capsys, tmp_path):
    public = tmp_path / "k.pub"
    public.write_bytes(SigningKey(key=ed25519.Ed25519PrivateKey.generate(), name="k").public.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, _, err = run_cli(capsys, "verify-blob-attestation", ATTESTED, "--bundle", ATTESTATION, "--key", public)
    assert code == 1 and "--certificate-identity and --certificate-oidc-issuer" in err
