"""Redaction by field: references, digests, sources and names are evidence and are recorded
byte for byte, whatever they look like; real secrets in free text and under secret-named keys
are still scrubbed, and a URI password is removed by parsing the URI, with a note saying so."""

from __future__ import annotations

import json

import pytest

from support.admission import pod, review
from support.audit import audited_webhook, records
from webhook.audit.redaction import REDACTED, is_secret_key, redact, without_uri_password
from webhook.audit.trail import AuditTrail
from webhook.audit.writer import AuditSettings, AuditWriter

DIGEST = "sha256:" + "ab" * 32
# Values an attacker may choose (an image name, a tag) that look like credentials.
LOOKALIKES = [
    "registry.example.com/models/llm:AKIAIOSFODNN7EXAMPLE",
    "registry.example.com/ASIAIOSFODNN7EXAMPLE/llm:1",
    "registry.example.com/team/token-service:v1",
    "registry.example.com/secret/password-reset:secret",
    "registry.example.com/auth/bearer:Bearer-abcdefghijklmnop1234",
    "registry.example.com/x/basic-auth:Basic",
    "registry.example.com/apikey/private-key:token",
    "registry.example.com/passwd/credentials@" + DIGEST,
    "kit://registry.example.com/tokens/authorization:AKIAIOSFODNN7EXAMPLE",
    "Bearer abcdefghijklmnop1234",
    "Basic dXNlcjpwYXNzd29yZA==",
    "s3://bucket/models/llm?token=abc123&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE",
    "https://registry.example.com/v2/models/blobs?password=open-sesame",
    "gs://bucket/-----BEGIN PRIVATE KEY-----/model",
    "deployer:hunter2@registry.example.com/models/llm:1",  # no scheme: not a URI, so not parsed as one
    "hf://org/model-with-secret-in-its-name",
]


def _decision(reference: str, *, error: str | None = None, name: str = "p") -> dict:
    return {"review": {"uid": "u", "name": name, "namespace": "token-ns"}, "user": {"username": "secret-admirer"},
            "artifacts": [{"source": "spec.containers[0].image", "reference": reference, "digest": DIGEST, "error": error}],
            "decision": {"id": "d", "outcome": "deny", "allowed": False, "message": f"{reference} is not signed", "warnings": []}}


def _written(tmp_path, **fields) -> dict:
    trail = AuditTrail(AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl")))
    trail.event("decision", **fields)
    trail.close()
    return records(tmp_path)[0]["record"]


@pytest.mark.parametrize("reference", LOOKALIKES)
def test_references_digests_sources_and_names_are_recorded_byte_for_byte(tmp_path, reference):
    record = _written(tmp_path, **_decision(reference, name=reference))
    artifact = record["artifacts"][0]
    assert artifact["reference"] == reference and artifact["digest"] == DIGEST and artifact["source"] == "spec.containers[0].image"
    assert record["review"]["name"] == reference and record["review"]["namespace"] == "token-ns" and record["user"]["username"] == "secret-admirer"
    # The deny message quotes the reference: a credential shape there is scrubbed (it is free text), the evidence is not.
    assert all(r["field"] == "decision.message" for r in record.get("redactions", [])), record["redactions"]


@pytest.mark.parametrize("secret, text", [
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "registry said 401 for Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
    ("dXNlcjpwYXNzd29yZA==", "sent Basic dXNlcjpwYXNzd29yZA== and was refused"),
    ("s3cr3t-pass", "GET https://robot:s3cr3t-pass@registry.example.com/v2/ failed"),
    ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END RSA PRIVATE KEY-----"),
])
@pytest.mark.parametrize("field", ["error", "message", "warnings"])
def test_credentials_in_free_text_are_scrubbed(tmp_path, secret, text, field):
    fields = _decision("registry.example.com/team/token-service:AKIAIOSFODNN7EXAMPLE")
    if field == "error":
        fields["artifacts"][0]["error"] = text
    else:
        fields["decision"][field] = [text] if field == "warnings" else text
    record = _written(tmp_path, **fields)
    raw = json.dumps(record)
    assert secret not in raw and REDACTED in raw
    assert record["artifacts"][0]["reference"] == "registry.example.com/team/token-service:AKIAIOSFODNN7EXAMPLE"
    assert any(r["field"].startswith(("artifacts[0].error", "decision.message", "decision.warnings")) for r in record["redactions"])


def test_words_are_not_credentials():
    assert redact({"message": "Basic authentication failed; Bearer realm=\"https://auth.example\"", "detail": "token expired"}) == {
        "message": "Basic authentication failed; Bearer realm=\"https://auth.example\"", "detail": "token expired"}


@pytest.mark.parametrize("key, secret", [("password", True), ("apiToken", True), ("client_secret", True), ("Authorization", True),
                                         ("X-Auth-Token", True), ("privateKey", True), ("secretCount", False), ("passthrough", False),
                                         ("tokenizer", False), ("keyId", False), ("reference", False), ("digest", False)])
def test_secret_named_keys(key, secret):
    assert is_secret_key(key) is secret
    assert (redact({key: "value"})[key] == REDACTED) is secret


@pytest.mark.parametrize("uri, expected", [
    ("https://deployer:hunter2@registry.example/models/x:1", "https://deployer:[redacted]@registry.example/models/x:1"),
    ("s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG@bucket/model?x=1#f", "s3://AKIAIOSFODNN7EXAMPLE:[redacted]@bucket/model?x=1#f"),
    ("oci://user:p%40ss:word@host:5000/repo:tag@" + DIGEST, "oci://user:[redacted]@host:5000/repo:tag@" + DIGEST),
    ("https://:only-password@host/x", "https://:[redacted]@host/x"),
    ("https://user@host/x", None),  # no password: nothing to remove
    ("oci://registry.example/repo:tag@" + DIGEST, None),
    ("registry.example/repo@" + DIGEST, None),
    # Texts a URL parser cleans or refuses before it finds the userinfo (found by attack review):
    ("s3://user:hunter2@[bucket", "s3://user:[redacted]@[bucket"),  # urlsplit: "Invalid IPv6 URL"
    ("s3://user:hunter2@bucket\uff03x", "s3://user:[redacted]@bucket\uff03x"),  # urlsplit: NFKC check of the host
    ("s3://us\ter:hun\tter2@b/k", "s3://us\ter:[redacted]@b/k"),  # urlsplit drops tabs: its offsets left "r2"
    (" s3://u:p@h", " s3://u:[redacted]@h"),
    # Authorities a lenient reader (WHATWG, urlsplit) finds without a literal `://` (attack review r10):
    ("https:/\t/user:pw@host/m", "https:/\t/user:[redacted]@host/m"),
    ("https:///user:pw@host/m", "https:///user:[redacted]@host/m"),
    ("https:\\\\user:pw@host/m", "https:\\\\user:[redacted]@host/m"),
    ("https:user:pw@host/m", "https:user:[redacted]@host/m"),
    ("ht\ttps:u:p@h", "ht\ttps:u:[redacted]@h"),
    ("//user:pw@host/m", "//user:[redacted]@host/m"),
    # No authority, so no password: image references and text that only contains `://`
    ("ubuntu:22.04@" + DIGEST, None),
    ("localhost:5000/repo:tag@" + DIGEST, None),
    ("s3:u:p@h", None),
    ("kit://ubuntu:22.04@" + DIGEST, None),  # urlsplit alone reads user `ubuntu`, password `22.04`: an image with a tag and a digest
])
def test_a_uri_password_is_removed_by_structure_and_noted(tmp_path, uri, expected):
    assert without_uri_password(uri) == expected
    record = _written(tmp_path, **_decision(uri))
    if expected is None:
        assert record["artifacts"][0]["reference"] == uri and "redactions" not in record
    else:
        assert record["artifacts"][0]["reference"] == expected
        assert {"field": "artifacts[0].reference", "kind": "URI userinfo password"} in record["redactions"]


@pytest.mark.parametrize("uri", ["https:\\\\deployer:hunter2@registry.example/m", "https:deployer:hunter2@registry.example/m",
                                 "//deployer:hunter2@registry.example/m", "https:/\t/deployer:hunter2@registry.example/m",
                                 "https://deploy\ter:hunter2@registry.example/m"])
def test_a_message_quoting_a_lenient_uri_loses_its_password_too(tmp_path, uri):
    """The deny message quotes the storage URI it is about (attack review r11): the password
    goes from the message and the warnings as it goes from the reference."""
    fields = _decision(uri)
    fields["decision"]["warnings"] = [fields["decision"]["message"]]
    record = _written(tmp_path, **fields)
    assert "hunter2" not in json.dumps(record)
    assert {"field": "decision.message", "kind": "URL password"} in record["redactions"]


def test_a_reference_is_redacted_only_where_its_own_text_starts_a_uri():
    """A `://` deep inside a reference is not an authority (the reference field is kept byte for
    byte; a message quoting it is free text, scrubbed by its own rule)."""
    assert without_uri_password("registry.example.com/team/x://a:b@c") is None


IMAGES = ["127.0.0.1:5000/models/llm:AKIAIOSFODNN7EXAMPLE", "registry.example.com/team/token-service:secret",
          "registry.example.com/secret/password-reset@" + DIGEST, "registry.example.com/auth/bearer:Bearer-abcdefghijklmnop1234",
          "docker.io/apikey/private-key:token"]


def test_the_webhook_records_lookalike_references_exactly(tmp_path, key_dir):
    audited = audited_webhook(tmp_path, key_dir, workers=1)
    try:
        with audited.server.client() as client:
            answer = client.post("/validate", content=review("Pod", pod(*IMAGES), uid="u-lookalikes")).json()["response"]
    finally:
        audited.server.stop()
    assert answer["allowed"] is False
    record = next(e["record"] for e in records(audited.log_dir) if e["record"]["type"] == "decision")
    assert [a["reference"] for a in record["artifacts"]] == IMAGES
    assert [a["source"] for a in record["artifacts"]] == [f"spec.containers[{i}].image" for i in range(len(IMAGES))]
    assert next(a for a in record["artifacts"] if a["reference"].endswith(DIGEST))["reference"].endswith("@" + DIGEST)
    assert "redactions" not in record


def _literal_keys_of_decision_records() -> set[str]:
    """Every key records.decision_fields can write, read from its source: each dict display has
    constant string keys (or unpacks another of these functions), each dict comprehension
    iterates over a tuple of constant strings. Anything else fails here."""
    import ast
    import inspect

    from webhook.audit import records

    builders = {"decision_fields", "review_fields", "_artifact", "_scan_evidence", "_approval_evidence", "_evaluation_evidence"}
    keys: set[str] = set()
    for function in ast.parse(inspect.getsource(records)).body:
        if not isinstance(function, ast.FunctionDef) or function.name not in builders:
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if key is None:  # **other(...): one of the builders
                        assert isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in builders, ast.dump(value)
                    else:
                        assert isinstance(key, ast.Constant) and isinstance(key.value, str), ast.dump(key)
                        keys.add(key.value)
            elif isinstance(node, ast.DictComp):
                (generator,) = node.generators
                assert isinstance(generator.iter, ast.Tuple) and isinstance(node.key, ast.Name) and node.key.id == generator.target.id
                assert all(isinstance(element, ast.Constant) and isinstance(element.value, str) for element in generator.iter.elts)
                keys.update(element.value for element in generator.iter.elts)
    return keys


def test_decision_records_take_their_keys_from_code_so_only_values_are_checked(tmp_path):
    """The decision path's pre-check skips the secret-name needles (records.decision_fields
    writes every key itself, none secret-named); the values are still checked: a bearer token
    in the message and a URI password in a reference are redacted."""
    import asyncio

    keys = _literal_keys_of_decision_records()
    assert {"review", "artifacts", "reference", "message", "warnings", "error", "latencyUs"} <= keys
    assert not [key for key in keys if is_secret_key(key)]

    fields = _decision("https://deployer:hunter2@registry.example/models/x:1")
    fields["decision"]["message"] = "pull failed: Authorization: Bearer abcdefghijklmnop1234"
    trail = AuditTrail(AuditWriter(AuditSettings(path=tmp_path / "audit.jsonl")))

    async def write():
        await trail._decision_record(fields)
        await trail._decision_record(_decision("registry.example/models/x@" + DIGEST))

    asyncio.run(write())
    trail.close()
    secret, plain = (entry["record"] for entry in records(tmp_path))
    assert secret["artifacts"][0]["reference"] == "https://deployer:[redacted]@registry.example/models/x:1"
    assert "abcdefghijklmnop1234" not in secret["decision"]["message"]
    assert {r["kind"] for r in secret["redactions"]} == {"URI userinfo password", "bearer credential"}
    assert "redactions" not in plain and plain["artifacts"][0]["reference"] == "registry.example/models/x@" + DIGEST
