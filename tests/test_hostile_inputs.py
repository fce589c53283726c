"""Content an attacker controls (registry objects, bundles, key files, server answers) gives
clean errors or rejections, never a raw exception or a wrong "verified"."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import COSIGN, run_cli
from signer.errors import AuthenticationError, FormatError, KeyFormatError, RegistryError, VerificationError
from signer.formats import mediatypes as mt
from signer.formats.bundles import build_key_bundle
from signer.formats.digests import sha256_digest, signature_tag
from signer.formats.dsse import sign_envelope
from signer.formats.intoto import encode_statement, subject_for_digest
from signer.formats.legacy import signature_image_config
from signer.modelkit.kitfile import parse_kitfile
from signer.oci.auth import Challenge
from signer.oci.layout import LayoutRepository
from signer.oci.manifest import Descriptor, encode_image_manifest, encode_index, parse_manifest
from signer.oci.registry import RegistryClient
from signer.oci.samples import push_image
from signer.references import parse_reference
from signer.signatures.blobs import verify_blob
from signer.signatures.signing import SignatureFormat, sign_artifact
from signer.signatures.verification import verify_signatures
from signer.trust.keyless import KeylessIdentity, verify_legacy
from signer.trust.keys import load_signing_key_pem

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_json_is_a_format_error():
    with pytest.raises(FormatError, match="nested too deeply"):
        parse_manifest(DEEP, digest=sha256_digest(DEEP))
    with pytest.raises(FormatError, match="nested too deeply"):
        parse_kitfile(b"[" * 100_000)


@pytest.mark.parametrize("size", [2**63, 10**400, -1])
def test_a_layer_size_beyond_int64_is_a_format_error(size):
    """OCI sizes are int64: a larger one (a hostile registry's) is refused where the manifest is
    read, not carried into arithmetic (a scan's progress line, budgets)."""
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "a" * 64, "size": 0}
    raw = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {**layer, "mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": [layer]}).encode()
    raw = raw.replace(b'"size": 0}]', b'"size": ' + str(size).encode() + b'}]')
    with pytest.raises(FormatError, match="invalid size"):
        parse_manifest(raw, digest=sha256_digest(raw))


def test_deeply_nested_signature_payload_is_a_rejection(tmp_path, stores, ml_key):
    repository = LayoutRepository(tmp_path / "store", create=True)
    image = push_image(repository, {"f": b"x"}, tag="v1")
    deep = b"[" * 30_000 + b"]" * 30_000  # under the 64 KiB payload cap, far over the nesting limit
    repository.push_blob(deep)
    layer = Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, deep, annotations={mt.ANNOTATION_SIGNATURE: base64.b64encode(b"sig").decode()})
    config = signature_image_config([layer.digest])
    repository.push_blob(config)
    repository.push_manifest(encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), [layer]), mt.OCI_MANIFEST, tag=signature_tag(image.digest))
    report = verify_signatures(repository, image.digest, [ml_key.public], reference="x")
    assert not report.ok and "nested too deeply" in report.rejected[0].reason


def test_a_broken_sig_tag_does_not_hide_a_valid_bundle_signature(tmp_path, stores, ml_key):
    repository = LayoutRepository(tmp_path / "store", create=True)
    image = push_image(repository, {"f": b"x"}, tag="v1")
    sign_artifact(stores, parse_reference(f"oci:{tmp_path}/store:v1"), ml_key, signature_format=SignatureFormat.BUNDLE)
    repository.push_manifest(encode_index([]), mt.OCI_INDEX, tag=signature_tag(image.digest))  # an index where a .sig belongs
    report = verify_signatures(repository, image.digest, [ml_key.public], reference="x")
    assert report.ok and [v.form for v in report.verified] == ["bundle"]
    assert "is an index, not a cosign signature manifest" in report.rejected[0].reason


@pytest.mark.parametrize("integrated_time", ["123", 1e300, 99999999999999999, -5, None])
def test_hostile_rekor_bundle_values(integrated_time):
    manifest = json.loads((COSIGN / "connaisseur__sig-manifest__sha256-31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee.sig.json").read_text())
    annotations = manifest["layers"][0]["annotations"]
    rekor = json.loads(annotations[mt.ANNOTATION_REKOR_BUNDLE])
    rekor["Payload"]["integratedTime"] = integrated_time
    identity = KeylessIdentity(name="p", subject="philipp.belitz@securesystems.de", issuer="https://github.com/login/oauth", trusted_root=COSIGN / "cosign__trusted_root_pgi.json")
    with pytest.raises(FormatError, match="malformed Rekor bundle annotation"):
        verify_legacy(b"{}", b"", annotations[mt.ANNOTATION_CERTIFICATE], json.dumps(rekor), identity)


def test_invalid_identity_regexp_is_a_usage_error(capsys, key_dir):
    code, _, err = run_cli(capsys, "verify-blob", COSIGN / "sigstore-python__bundle.txt", "--bundle", COSIGN / "sigstore-python__bundle.txt.sigstore",
                           "--certificate-identity-regexp", "(", "--certificate-oidc-issuer", "x")
    assert code == 2 and "invalid certificate identity regexp" in err


@pytest.mark.parametrize("n", ["Infinity", "32768.0", '"32768"', "1073741824"])
def test_hostile_scrypt_parameter_types(n):
    body = '{"kdf":{"name":"scrypt","params":{"N":%s,"r":8,"p":1},"salt":"AA=="},"cipher":{"name":"nacl/secretbox","nonce":"%s"},"ciphertext":"AA=="}' % (n, base64.b64encode(b"0" * 24).decode())
    pem = b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + base64.b64encode(body.encode()) + b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    with pytest.raises(KeyFormatError):
        load_signing_key_pem(pem, name="k", password=lambda _: b"")


def test_an_attestation_over_a_file_is_not_a_blob_signature(tmp_path, ml_key):
    artifact = b"model weights"
    digest = sha256_digest(artifact)
    for payload_type, predicate in ((mt.INTOTO_PAYLOAD, "https://cosign.sigstore.dev/attestation/vuln/v1"), ("text/plain", mt.COSIGN_SIGN_PREDICATE)):
        statement = encode_statement([subject_for_digest(digest)], predicate, {})
        bundle = build_key_bundle(sign_envelope(payload_type, statement, ml_key), ml_key.public.key_id)
        with pytest.raises(VerificationError):
            verify_blob(artifact, bundle, [ml_key.public])
    statement = encode_statement([subject_for_digest(digest)], mt.COSIGN_SIGN_PREDICATE, {})
    assert verify_blob(artifact, build_key_bundle(sign_envelope(mt.INTOTO_PAYLOAD, statement, ml_key), ml_key.public.key_id), [ml_key.public]) == ml_key.name


def test_server_supplied_urls_cannot_steal_credentials_or_downgrade():
    client = RegistryClient("registry.example.com")
    assert client._same_origin("https://registry.example.com/v2/x/blobs/uploads/1")
    assert not client._same_origin("https://evil.example.net/upload")
    with pytest.raises(RegistryError, match="plain-HTTP URL"):
        client._checked_url("http://evil.example.net/upload")
    with pytest.raises(RegistryError, match="plain-HTTP URL"):
        client._checked_url("http://registry.example.com/v2/")  # downgrade of the registry itself
    with pytest.raises(RegistryError, match="unsupported URL"):
        client._checked_url("ftp://registry.example.com/x")
    with pytest.raises(AuthenticationError, match="not HTTPS; refusing"):
        client._fetch_token(Challenge("bearer", {"realm": "http://auth.example.net/token", "service": "s"}), ["repository:x:pull"], None)
    with pytest.raises(AuthenticationError, match="malformed token realm"):
        client._fetch_token(Challenge("bearer", {"realm": "https://[::1/token"}), [], None)
    client.close()


def test_malformed_model_signature_extension(tmp_path, ml_key):
    from signer.modeldir.signing import HashingChoice, sign_model_dir, verify_model_dir

    model = tmp_path / "m"
    model.mkdir()
    (model / "a").write_text("a")
    result = sign_model_dir(model, ml_key, choice=HashingChoice(method="shards"))  # the extension exists only for shards
    bundle = json.loads(result.signature_path.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["modelsign"]["emptyFiles"] = [{"not": "a path"}]
    envelope = sign_envelope(mt.INTOTO_PAYLOAD, json.dumps(statement).encode(), ml_key)
    result.signature_path.write_bytes(build_key_bundle(envelope, ml_key.public.model_signing_hint))
    with pytest.raises(FormatError, match="non-path entries"):
        verify_model_dir(model, [ml_key.public])
