"""Byte-level checks of the wire formats against real fixtures written by cosign."""

import base64
import json

import pytest

from conftest import COSIGN
from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.bundles import build_key_bundle, parse_bundle
from signer.formats.digests import sha256_digest
from signer.formats.dsse import pae, parse_envelope, sign_envelope
from signer.formats.intoto import encode_statement, parse_statement, subject_for_digest
from signer.formats.jsonenc import go_json
from signer.formats.legacy import signature_image_config
from signer.formats.simplesigning import build_payload, parse_payload
from signer.oci.manifest import parse_manifest

SINGLE = "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81"
TRIPLE = "sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533"


def _fixture(name: str) -> bytes:
    return (COSIGN / name).read_bytes()


def _sig_manifest(digest: str) -> dict:
    return json.loads(_fixture(f"connaisseur__sig-manifest__{digest.replace(':', '-')}.sig.json"))


def test_payload_is_byte_identical_to_cosign():
    golden = _fixture("connaisseur__payload__sha256-d8ee807d96efe7441b132967ad94eaffbc0172a763e69f2cd8df8f583f0ba0d4.json")
    assert build_payload("index.docker.io/securesystemsengineering/testimage", SINGLE) == golden
    assert sha256_digest(golden) == _sig_manifest(SINGLE)["layers"][0]["digest"]


def test_payload_annotations_are_sorted_and_go_escaped():
    payload = build_payload("r.example/x", SINGLE, {"z": "1", "a": "<&>"})
    assert payload.endswith(b'"optional":{"a":"\\u003c\\u0026\\u003e","z":"1"}}')
    assert parse_payload(payload).annotations() == {"a": "<&>", "z": "1"}


def test_signature_image_config_matches_cosign_for_one_and_three_layers():
    single = _sig_manifest(SINGLE)
    config = signature_image_config([single["layers"][0]["digest"]])
    assert (len(config), sha256_digest(config)) == (single["config"]["size"], single["config"]["digest"])
    triple = _sig_manifest(TRIPLE)
    config = signature_image_config([layer["digest"] for layer in triple["layers"]])
    assert (len(config), sha256_digest(config)) == (triple["config"]["size"], triple["config"]["digest"])


def test_golden_signature_manifest_parses():
    raw = _fixture(f"connaisseur__sig-manifest__{TRIPLE.replace(':', '-')}.sig.json")
    manifest = parse_manifest(raw, digest=sha256_digest(raw))
    assert [layer.media_type for layer in manifest.layers] == [mt.COSIGN_SIMPLESIGNING] * 3
    assert all(mt.ANNOTATION_SIGNATURE in layer.annotations for layer in manifest.layers)


def test_go_json_escapes_like_go():
    assert go_json({"k": "a<b>&\u2028"}) == b'{"k":"a\\u003cb\\u003e\\u0026\\u2028"}'
    assert go_json({"k": "caf\u00e9"}) == '{"k":"café"}'.encode()


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"critical":{}}', "payload type"),
        (b'{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"sha256:short"}}}', "no valid manifest digest"),
    ],
)
def test_malformed_payloads(payload, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse_payload(payload)


def test_dsse_pae_matches_the_spec_example():
    # From the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_dsse_envelope_round_trip(ml_key, other_key):
    envelope = sign_envelope(mt.INTOTO_PAYLOAD, b"{}", ml_key)
    parsed = parse_envelope(json.loads(json.dumps(envelope.to_json())))
    assert parsed.verified_by(ml_key.public) and not parsed.verified_by(other_key.public)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("x", "must be a JSON object"),
        ({}, "no payloadType"),
        ({"payloadType": "t", "payload": "%%%", "signatures": [{"sig": "AA=="}]}, "not valid base64"),
        ({"payloadType": "t", "payload": "AA==", "signatures": []}, "no signatures"),
    ],
)
def test_malformed_envelopes(value, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse_envelope(value)


def test_key_bundle_shape(ml_key):
    statement = encode_statement([subject_for_digest(SINGLE)], mt.COSIGN_SIGN_PREDICATE, {})
    bundle = build_key_bundle(sign_envelope(mt.INTOTO_PAYLOAD, statement, ml_key), ml_key.public.key_id)
    body = json.loads(bundle)
    assert body["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert body["verificationMaterial"] == {"publicKey": {"hint": ml_key.public.key_id}, "tlogEntries": []}
    parsed_statement = json.loads(base64.b64decode(body["dsseEnvelope"]["payload"]))
    assert parsed_statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": SINGLE.split(":")[1]}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }
    assert parse_bundle(bundle).envelope.verified_by(ml_key.public)


def test_golden_sigstore_bundles_parse():
    assert parse_bundle(_fixture("sigstore-python__bundle_v3.txt.sigstore")).is_keyless
    assert parse_bundle(_fixture("cosign__oci-attestation.sigstore.json")).envelope is not None
    with pytest.raises(FormatError, match="unsupported mediaType 'this is completely wrong'"):
        parse_bundle(_fixture("sigstore-python__bundle_invalid_version.txt.sigstore"))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}', "no verificationMaterial"),
        (b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}', "neither a certificate nor a public key"),
        (b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}}}', "neither a dsseEnvelope nor a messageSignature"),
    ],
)
def test_malformed_bundles(data, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse_bundle(data)


def test_statement_parsing():
    statement = parse_statement(encode_statement([subject_for_digest(SINGLE, name="x")], "https://example/p", {"a": 1}))
    assert statement.subject_for(SINGLE) is not None and statement.subject_for(TRIPLE) is None
    with pytest.raises(FormatError, match="no subject"):
        parse_statement(b'{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[]}')
    with pytest.raises(FormatError, match="_type"):
        parse_statement(b'{"_type":"other","predicateType":"p","subject":[{"digest":{}}]}')


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{}", "schemaVersion"),
        (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}', "no 'layers' list"),
        (b'{"schemaVersion":2,"layers":[],"config":{"mediaType":"x","digest":"sha256:configA","size":1}}', "invalid digest"),
        (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}', "without a 'manifests' list"),
        (b'{"schemaVersion":2,"mediaType":"text/plain"}', "unsupported mediaType"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_manifests(raw, fragment):
    with pytest.raises(FormatError, match=fragment):
        parse_manifest(raw, digest=sha256_digest(raw))


def test_kitops_fixture_manifest_with_fake_digests_is_refused_clearly():
    raw = _fixture("kitops__compare-manifest__manifestA.json")
    with pytest.raises(FormatError, match="invalid digest 'sha256:configA'"):
        parse_manifest(raw, digest=sha256_digest(raw))


# -- whole-string validation: `^...$` with .match let "x\n" through (review 4, E1) ------------

GOOD_DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00", " "])
def test_a_trailing_newline_or_junk_makes_every_validated_name_invalid(suffix, tmp_path):
    from signer.errors import UsageError
    from signer.evidence.approvals import parse_duration
    from signer.evidence.evaluations import metric_groups
    from signer.evidence.requests import request_predicate
    from signer.formats.digests import is_digest, validate_digest
    from signer.signatures.blobs import blob_argument
    from webhook.compliance.binding import running_digest

    assert is_digest(GOOD_DIGEST) and not is_digest(GOOD_DIGEST + suffix)
    with pytest.raises(FormatError, match="not a valid digest"):
        validate_digest(GOOD_DIGEST + suffix)
    assert metric_groups({"accuracy": 0.9}, what="m") == {"metrics": {"accuracy": 0.9}, "fairness": {}}
    with pytest.raises(UsageError, match="metric name"):
        metric_groups({"accuracy" + suffix: 0.5, "accuracy": 0.95}, what="m")
    assert blob_argument(GOOD_DIGEST).digest == GOOD_DIGEST
    with pytest.raises(UsageError):
        blob_argument(GOOD_DIGEST + suffix)
    with pytest.raises(UsageError, match="evidence id"):
        request_predicate(environment="prod", namespaces=["*"], requester="bob", approvers=["alice"], count=1, ticket="",
                          lifetime_seconds=3600, evidence=[{"id": GOOD_DIGEST + suffix, "type": "scan"}])
    assert running_digest(f"docker-pullable://r/x@{GOOD_DIGEST}") == GOOD_DIGEST
    assert running_digest(f"docker-pullable://r/x@{GOOD_DIGEST}\nx") is None
    assert parse_duration("30d") == 30 * 86400
    with pytest.raises(UsageError):
        parse_duration("30d" + suffix + "x")
