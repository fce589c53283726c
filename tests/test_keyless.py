"""Keyless (Fulcio + Rekor) verification, offline, against real signatures and trusted roots."""

from __future__ import annotations

import json

import pytest

from conftest import COSIGN, run_cli
from signer.errors import FormatError, VerificationError
from signer.formats import mediatypes as mt
from signer.formats.digests import signature_tag
from signer.formats.legacy import signature_image_config
from signer.oci.manifest import Descriptor, encode_image_manifest
from signer.oci.referrers import attach_referrer
from signer.references import parse_reference
from signer.signatures.verification import verify_signatures
from signer.trust.keyless import KeylessIdentity, verify_bundle_dsse

KEYLESS_DIGEST = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"
IDENTITY = "philipp.belitz@securesystems.de"
GITHUB = "https://github.com/login/oauth"
PGI_ROOT = COSIGN / "cosign__trusted_root_pgi.json"
STAGING_ROOT = COSIGN / "sigstore-python__staging-trusted_root.json"



@pytest.fixture(scope="module")
def keyless_image(registry) -> str:
    """connaisseur's real keyless .sig manifest (cert, chain, Rekor SET) under its cosign tag."""
    from signer.oci.stores import Stores

    name = f"{registry.host}/phbelitz/rekor-test"
    with Stores() as stores:
        repository = stores.repository(parse_reference(name))
        raw = (COSIGN / f"connaisseur__sig-manifest__{KEYLESS_DIGEST.replace(':', '-')}.sig.json").read_bytes()
        manifest = json.loads(raw)
        repository.push_blob((COSIGN / "connaisseur__payload__sha256-897d9e862b4599b723442f36ed7b4cfd1628bb7656643c56855988cac161d065.json").read_bytes())
        repository.push_blob(signature_image_config([layer["digest"] for layer in manifest["layers"]]))
        repository.push_manifest(raw, mt.OCI_MANIFEST, tag=signature_tag(KEYLESS_DIGEST))
    return f"{name}@{KEYLESS_DIGEST}"


def test_legacy_keyless_signature_verifies(capsys, keyless_image):
    code, out, err = run_cli(capsys, "verify", keyless_image, "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", GITHUB, "--trusted-root", PGI_ROOT)
    assert code == 0, err
    assert f"[{IDENTITY} via {GITHUB}, Rekor index 98235800]" in out


def test_legacy_keyless_regexps(capsys, keyless_image):
    code, _, err = run_cli(capsys, "verify", keyless_image, "--certificate-identity-regexp", r"^[a-z.]+@securesystems\.de$", "--certificate-oidc-issuer-regexp", r"^https://github\.com/", "--trusted-root", PGI_ROOT)
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--certificate-identity", "mallory@example.com", "--certificate-oidc-issuer", GITHUB, "--trusted-root", PGI_ROOT], "does not match mallory@example.com"),
        (["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", "https://accounts.google.com", "--trusted-root", PGI_ROOT], "OIDC issuer is 'https://github.com/login/oauth'"),
        (["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", GITHUB, "--trusted-root", STAGING_ROOT], "Rekor signed entry timestamp does not verify"),
    ],
)
def test_legacy_keyless_rejections(capsys, keyless_image, args, reason):
    code, _, err = run_cli(capsys, "verify", keyless_image, *args)
    assert code == 1 and reason in err


def test_keyless_needs_identity_and_issuer(capsys, keyless_image):
    code, _, err = run_cli(capsys, "verify", keyless_image, "--certificate-identity", IDENTITY)
    assert code == 2 and "needs both a certificate identity and an OIDC issuer" in err


def test_a_public_key_does_not_accept_a_keyless_signature(capsys, keyless_image):
    code, _, err = run_cli(capsys, "verify", keyless_image, "--key", COSIGN / "connaisseur__alice.key")
    assert code == 1 and "keyless signature (certificate) not made by any trusted key" in err


@pytest.mark.parametrize(
    ("artifact", "bundle", "identity"),
    [
        ("sigstore-python__bundle_v3.txt", "sigstore-python__bundle_v3.txt.sigstore", "william@yossarian.net"),
        ("sigstore-python__bundle.txt", "sigstore-python__bundle.txt.sigstore", "a@tny.town"),
        ("sigstore-python__staging-rekor-v2.txt", "sigstore-python__staging-rekor-v2.txt.sigstore.json", "jku@goto.fi"),
    ],
)
def test_sigstore_python_bundles_verify_offline(capsys, tmp_path, artifact, bundle, identity):
    args = ["--bundle", COSIGN / bundle, "--certificate-identity", identity, "--certificate-oidc-issuer", GITHUB, "--trusted-root", STAGING_ROOT]
    code, out, err = run_cli(capsys, "verify-blob", COSIGN / artifact, *args)
    assert code == 0, err
    tampered = tmp_path / "tampered.txt"
    tampered.write_bytes((COSIGN / artifact).read_bytes() + b"!")
    code, _, err = run_cli(capsys, "verify-blob", tampered, *args)
    assert code == 1 and "keyless bundle rejected" in err
    code, _, err = run_cli(capsys, "verify-blob", COSIGN / artifact, *args[:2], "--certificate-identity", "someone@else", "--certificate-oidc-issuer", GITHUB, "--trusted-root", STAGING_ROOT)
    assert code == 1 and "does not match someone@else" in err


def test_invalid_bundle_version_is_a_format_error(capsys):
    code, _, err = run_cli(capsys, "verify-blob", COSIGN / "sigstore-python__bundle.txt", "--bundle", COSIGN / "sigstore-python__bundle_invalid_version.txt.sigstore",
                       "--certificate-identity", "a@tny.town", "--certificate-oidc-issuer", GITHUB, "--trusted-root", STAGING_ROOT)
    assert code == 2 and "unsupported mediaType 'this is completely wrong'" in err


def test_cosign_keyless_attestation_bundle_verifies_but_never_counts_as_a_signature(registry):
    data = (COSIGN / "cosign__oci-attestation.sigstore.json").read_bytes()
    identity = KeylessIdentity(name="cody", subject="cody@soyland.com", issuer=GITHUB, trusted_root=PGI_ROOT)
    payload_type, payload, signer = verify_bundle_dsse(data, identity)
    statement = json.loads(payload)
    assert payload_type == mt.INTOTO_PAYLOAD and statement["predicateType"] == "https://cosign.sigstore.dev/attestation/v1"
    digest = "sha256:" + statement["subject"][0]["digest"]["sha256"]
    from signer.oci.stores import Stores

    with Stores() as stores:
        repository = stores.repository(parse_reference(f"{registry.host}/attested/app"))
        repository.push_blob(data)
        repository.push_blob(b"{}")
        annotations = {mt.ANNOTATION_BUNDLE_PREDICATE: statement["predicateType"]}
        manifest = encode_image_manifest(
            Descriptor(media_type=mt.OCI_EMPTY, digest=mt.OCI_EMPTY_DIGEST, size=2),
            [Descriptor.for_content(mt.SIGSTORE_BUNDLE_V03, data)],
            artifact_type=mt.SIGSTORE_BUNDLE_V03,
            subject=Descriptor(media_type=mt.OCI_MANIFEST, digest=digest, size=1),
            annotations=annotations,
        )
        attach_referrer(repository, manifest, artifact_type=mt.SIGSTORE_BUNDLE_V03, annotations=annotations, subject_digest=digest)
        report = verify_signatures(repository, digest, [identity], reference="attested/app")
    assert not report.ok and "not a signature" in report.ignored[0]


def test_bad_trusted_root_files(tmp_path):
    from signer.trust.keyless import load_trusted_root

    with pytest.raises(FormatError, match="does not exist"):
        load_trusted_root(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"mediaType": "nope"}')
    with pytest.raises(FormatError, match="unusable"):
        load_trusted_root(broken)


def test_default_trusted_root_is_the_embedded_production_root():
    from signer.trust.keyless import load_trusted_root

    root = load_trusted_root(None)
    assert any("sigstore" in str(cert.subject) for cert in root.get_fulcio_certs())
    # The 2024 connaisseur signature was logged in production Rekor, so it verifies against it too.
    from signer.trust.keyless import verify_legacy

    manifest = json.loads((COSIGN / f"connaisseur__sig-manifest__{KEYLESS_DIGEST.replace(':', '-')}.sig.json").read_text())
    annotations = manifest["layers"][0]["annotations"]
    import base64

    signer = verify_legacy(
        (COSIGN / "connaisseur__payload__sha256-897d9e862b4599b723442f36ed7b4cfd1628bb7656643c56855988cac161d065.json").read_bytes(),
        base64.b64decode(annotations[mt.ANNOTATION_SIGNATURE]),
        annotations[mt.ANNOTATION_CERTIFICATE],
        annotations[mt.ANNOTATION_REKOR_BUNDLE],
        KeylessIdentity(name="p", subject=IDENTITY, issuer=GITHUB),
    )
    assert signer.log_index == 98235800
    with pytest.raises(VerificationError):
        verify_legacy(b"{}", b"", annotations[mt.ANNOTATION_CERTIFICATE], annotations[mt.ANNOTATION_REKOR_BUNDLE], KeylessIdentity(name="p", subject=IDENTITY, issuer=GITHUB))


@pytest.mark.parametrize("pattern, value, matches", [
    (r"^https://github\.com/acme/.*$", "https://github.com/acme/app", True),
    (r"^https://github\.com/acme/.*$", "https://github.com/acme/app\n", False),  # Python's `$` would accept it; RE2 does not
    (r"^https://github\.com/acme/app$", "https://github.com/acme/app\n", False),
    (r"acme", "https://github.com/acme/app", True),  # search semantics, like cosign: anchor your regexps
    (r"^a\$$", "a$", True),
    (r"^a[$]$", "a$", True),
    (r"(?m)^line$", "first\nline\nlast", True),
    (r"^\d+$", "١٢٣", False),  # RE2's \d is ASCII
    (r"^\w+@example\.com$", "ünïcode@example.com", False),
])
def test_identity_regexps_match_as_cosign_does(pattern, value, matches):
    from signer.trust.keyless import go_regexp

    assert (go_regexp(pattern).search(value) is not None) is matches


@pytest.mark.parametrize("pattern", [r"^(?=x)", r"(a)\1", r"(?<!a)b", r"(?P=name)", "("])
def test_identity_regexps_that_re2_refuses_are_refused(pattern):
    from signer.errors import UsageError
    from signer.trust.keyless import go_regexp

    with pytest.raises(UsageError, match="invalid identity regexp"):
        go_regexp(pattern)
