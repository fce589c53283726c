"""Signed payloads mean one thing: no key that Go's decoder (cosign, sigstore-go) would read
differently from ours. Go matches struct fields case-insensitively and keeps the last of
duplicate keys, so a payload holding `critical` twice, or `Critical` beside `critical`, could
name one digest to cosign and another to us. Such payloads are refused, whatever the format."""

from __future__ import annotations

import base64
import json

import pytest

from signer.errors import FormatError
from signer.formats.bundles import parse_bundle
from signer.formats.dsse import parse_envelope
from signer.formats.intoto import parse_statement
from signer.formats.jsonenc import load_signed_json
from signer.formats.simplesigning import build_payload, parse_payload

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
PAYLOAD = build_payload("registry.example.com/models/llm", DIGEST).decode()
STATEMENT = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}],
                        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}, separators=(",", ":"))
ENVELOPE = json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": base64.b64encode(STATEMENT.encode()).decode(),
                       "signatures": [{"keyid": "", "sig": "c2ln"}]}, separators=(",", ":"))
BUNDLE = json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {"publicKey": {"hint": "h"}},
                     "dsseEnvelope": json.loads(ENVELOPE)}, separators=(",", ":"))


def test_the_well_formed_documents_parse():
    assert parse_payload(PAYLOAD.encode()).manifest_digest == DIGEST
    assert parse_statement(STATEMENT.encode()).subjects[0].name == "x"
    assert parse_envelope(load_signed_json(ENVELOPE, what="e")).payload == STATEMENT.encode()
    assert parse_bundle(BUNDLE.encode()).envelope is not None


@pytest.mark.parametrize("text", [
    PAYLOAD.replace('"critical":{', '"critical":{"image":{"docker-manifest-digest":"%s"},' % OTHER),  # duplicate inner key
    PAYLOAD[:-1] + ',"critical":' + json.dumps({"identity": {"docker-reference": "r"}, "image": {"docker-manifest-digest": OTHER},
                                                "type": "cosign container image signature"}) + "}",  # duplicate section
    PAYLOAD.replace('"critical"', '"Critical"'),  # a case variant alone
    PAYLOAD[:-1] + ',"CRITICAL":{}}',  # a case variant beside the field
    PAYLOAD.replace('"docker-manifest-digest"', '"Docker-Manifest-Digest"'),
    PAYLOAD.replace('"type"', '"TYPE"'),
    PAYLOAD.replace('"optional":null', '"optional":null,"Optional":{"env":"prod"}'),
    PAYLOAD.replace('"docker-manifest-digest"', '"doc\u212aer-manifest-digest"'),  # KELVIN SIGN: Go folds it to k
])
def test_ambiguous_simple_signing_payloads_are_refused(text):
    with pytest.raises(FormatError, match="holds|spelled|no 'critical'"):
        parse_payload(text.encode())


@pytest.mark.parametrize("text", [
    STATEMENT[:-1] + ',"subject":[{"digest":{"sha256":"%s"}}]}' % ("cd" * 32),
    STATEMENT.replace('"predicateType"', '"PredicateType"'),
    STATEMENT.replace('"subject"', '"Subject"'),
    STATEMENT.replace('"name":"x"', '"name":"x","Name":"y"'),
    STATEMENT.replace('"digest":', '"Digest":'),
])
def test_ambiguous_statements_are_refused(text):
    with pytest.raises(FormatError, match="holds|spelled|no subject|no predicateType"):
        parse_statement(text.encode())


def test_maps_inside_statements_keep_exact_keys():
    """A predicate is a map to both decoders (exact keys): trivy reports hold `Name`, `Digest`."""
    body = json.loads(STATEMENT)
    body["predicate"] = {"scanner": {"result": {"Results": [{"Name": "a", "name": "b", "Digest": "d"}]}}}
    body["subject"][0]["annotations"] = {"Stage": "x", "stage": "y"}
    assert parse_statement(json.dumps(body).encode()).predicate["scanner"]["result"]["Results"][0]["Name"] == "a"


@pytest.mark.parametrize("text", [
    ENVELOPE[:-1] + ',"payload":"%s"}' % base64.b64encode(b"{}").decode(),
    ENVELOPE.replace('"payloadType"', '"PayloadType"'),
    ENVELOPE.replace('"sig"', '"Sig"'),
    ENVELOPE.replace('"keyid":""', '"keyid":"","KeyID":"x"'),
])
def test_ambiguous_envelopes_are_refused(text):
    with pytest.raises(FormatError, match="holds|spelled|no payloadType|not valid base64|is missing"):
        parse_envelope(load_signed_json(text, what="envelope"))


@pytest.mark.parametrize("text", [
    BUNDLE.replace('"dsseEnvelope"', '"DsseEnvelope"'),
    BUNDLE[:-1] + ',"dsse_envelope":%s}' % ENVELOPE,
    BUNDLE[:-1] + ',"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}',
])
def test_ambiguous_bundles_are_refused(text):
    with pytest.raises(FormatError, match="holds|spell"):
        parse_bundle(text.encode())
