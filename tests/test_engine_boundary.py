"""The policy-engine boundary: request and registry strings cannot shape the decision.

Found by trying to break it: a Pod from a registry not on the allow-list was admitted by one
annotation, `X"}], "exempt": false, "violations": [], "zz": [{"q": "Y`, because the engine's
result was rendered as text (strings unescaped) and parsed back. Now strings are encoded on
the way in, results are read as structure, their shape is checked, and a floor in Python
refuses any answer that lets a must-fail artifact through. These tests try the class of
attack: hostile strings in every field that reaches the policy, through the embedded engine
and the OPA path, must give the decision harmless strings give.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.admission import isvc, pod, review
from webhook.admission.config import parse_policy
from webhook.admission.engine.engines import OpaEngine, PolicyEngineError, RegoEngine
from webhook.admission.engine.values import decode_string, encode_string, read_decision, strict_json
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review

INJECTION = 'X"}], "exempt": false, "violations": [], "zz": [{"q": "Y'
DIGEST = "sha256:" + "cd" * 32
# Fragments that broke, or could break, a text round trip or rego-cpp itself.
HOSTILE = [
    INJECTION, '"', "\\", '\\"', '"}]}', "a\x00b", "\x00", "\x01\x1f\x7f", "\u2028\u2029", "\ud800", "%", "%22", "%u0041", "%%",
    '{"exempt": true}', '"], "exempt": true, "x": ["', "violations", "\\u0000", "\\\\\\", "é😀", "\u202e", "\n\r\t",
    'data.modelsign.config', '`raw`', 'input.request', '}} {{', "[]", "null", "true",
]
hostile_text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=24),
                         st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3).map("".join))


def policy_text(key_file: Path, extra: str = "") -> str:
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["registry.example.com"]
trustedKeys:
  ml-team: {{file: {key_file}}}
rules:
  - name: all
    require: {{signedBy: [ml-team]}}
{extra}
"""


@pytest.fixture(scope="module")
def policy(key_dir):
    return parse_policy(policy_text(key_dir / "ml-team.pub"), source="boundary")


@pytest.fixture(scope="module")
def rego(policy):
    return RegoEngine(policy.rego_sources, policy.data_document())


@pytest.fixture(scope="module")
def opa(policy, tmp_path_factory):
    """The real OPA server (built by .ci/peers), as opa.url would point at."""
    from support.opa_server import start_opa

    server = start_opa(tmp_path_factory.mktemp("opa"))
    yield OpaEngine(server.url, "modelsign/decision", 2.0, policy.rego_sources, policy.data_document())
    server.stop()


# -- the attack that was found, end to end through the pipeline ------------------------------


def _with_annotation(obj: dict, path: tuple[str, ...], value: str) -> dict:
    node = obj
    for key in path:
        node = node.setdefault(key, {})
    node.setdefault("annotations", {})["internal.serving.kserve.io/storage-note"] = value
    return obj


def deployment(image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": image}]}}}}


ATTACKS = {
    "pod annotation": ("Pod", lambda v: _with_annotation(pod("evil.example.com/x:1"), ("metadata",), v)),
    "isvc storageUri": ("InferenceService", lambda v: isvc(v)),
    "deployment template annotation": ("Deployment", lambda v: _with_annotation(deployment("evil.example.com/x:1"), ("spec", "template", "metadata"), v)),
    "image reference": ("Pod", lambda v: pod("evil.example.com/x:1", v)),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("payload", [INJECTION, INJECTION.replace('"', '\\"'), '"}],"exempt":true,"violations":[],"z":["', 'x\\'])
def test_request_strings_cannot_rewrite_the_decision(policy, attack, payload):
    kind, build = ATTACKS[attack]
    pipeline = AdmissionPipeline(policy)
    try:
        decision = pipeline.decide(parse_review(review(kind, build(payload))))
    finally:
        pipeline.close()
    assert decision.allowed is False and decision.outcome in ("deny", "error"), decision
    codes = {v["code"] for v in decision.violations}
    assert codes & {"registry-not-allowed", "invalid-reference", "unverifiable-uri"}, codes


# -- hostile strings in every field that reaches the policy ----------------------------------


def _artifacts() -> list[dict]:
    """One artifact per code path: unsigned, disallowed registry, verification error, URI,
    malformed, and a signed one; each field holding free text is marked for replacement."""
    def oci(index: int, *, allowed=True, error=None, signers=()):
        return {"source": f"spec.containers[{index}].image", "value": f"registry.example.com/m/x{index}:1", "role": "image", "kind": "oci",
                "problem": None, "scheme": "", "name": f"registry.example.com/m/x{index}", "registry": "registry.example.com" if allowed else "evil.example.com",
                "repository": f"m/x{index}", "tag": "1", "pinnedByDigest": False,
                "evidence": {"registryAllowed": allowed, "digest": DIGEST, "error": error, "scans": [], "approvals": [],
                             "rejected": [{"location": "loc", "reason": "why"}],
                             "signatures": [{"signer": s, "keyId": "kid", "form": "legacy", "annotations": {"note": "n"},
                                             "dockerReference": "registry.example.com/m/x", "identity": None, "issuer": None} for s in signers]}}
    return [
        oci(0), oci(1, allowed=False), oci(2, error="boom"), oci(3, signers=["ml-team"]),
        {"source": "spec.predictor.model.storageUri", "value": "gs://bucket/model", "role": "model", "kind": "uri", "problem": None, "scheme": "gs",
         "name": None, "registry": None, "repository": None, "tag": None, "pinnedByDigest": False, "evidence": None},
        {"source": "spec.containers[5].image", "value": "???", "role": "image", "kind": "invalid", "problem": "bad", "scheme": "",
         "name": None, "registry": None, "repository": None, "tag": None, "pinnedByDigest": False, "evidence": None},
    ]


def _request() -> dict:
    return {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "resource": "pods", "subResource": "", "name": "p",
            "namespace": "ml", "operation": "CREATE", "dryRun": False, "userInfo": {"username": "alice", "uid": "1", "groups": ["devs"]}}


def _replace(document: dict, strings: list[str]) -> dict:
    """`document` with its free-text fields (those that must not steer the decision) set
    from `strings`, cycled. Artifact sources keep a unique prefix: they identify violations."""
    hostile = copy.deepcopy(document)
    source = iter(strings * 40)
    request = hostile["request"]
    request["uid"], request["name"] = next(source), next(source)
    request["userInfo"] = {"username": next(source), "uid": next(source), "groups": [next(source), next(source)]}
    for index, artifact in enumerate(hostile["artifacts"]):
        artifact["source"] = f"{index}:{next(source)}"
        artifact["value"] = next(source)
        if artifact["kind"] == "invalid":
            artifact["problem"] = next(source)
        evidence = artifact["evidence"]
        if evidence:
            evidence["digest"] = next(source)
            evidence["rejected"] = [{"location": next(source), "reason": next(source)}]
            if evidence["error"] is not None:
                evidence["error"] = next(source)
            for signature in evidence["signatures"]:
                signature.update(keyId=next(source), dockerReference=next(source), annotations={next(source): next(source)})
    return hostile


def _outcome(decision) -> list[tuple]:
    return sorted((v["source"].split(":", 1)[0] if ":" in v["source"] else v["source"], v["code"], v["enforce"]) for v in decision.violations)


def _check_same_decision(engine, strings: list[str]) -> None:
    harmless = {"request": _request(), "artifacts": _artifacts()}
    for index, artifact in enumerate(harmless["artifacts"]):
        artifact["source"] = f"{index}:plain"
    expected = engine.decide(harmless)
    hostile = _replace(harmless, strings)
    got = engine.decide(hostile)
    assert got.exempt is expected.exempt is False
    assert _outcome(got) == _outcome(expected)
    by_source = {a["source"]: a for a in hostile["artifacts"]}
    for violation in got.violations:  # the strings come back exactly as they went in
        artifact = by_source[violation["source"]]
        assert violation["value"] == artifact["value"]
        if violation["code"] == "verification-error":
            assert violation["error"] == artifact["evidence"]["error"]
        if violation["code"] == "invalid-reference":
            assert violation["problem"] == artifact["problem"]
        if violation["code"] == "not-signed":
            assert violation["name"] == artifact["name"] and violation["digest"] == artifact["evidence"]["digest"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strings=st.lists(hostile_text, min_size=1, max_size=8))
def test_embedded_engine_decides_the_same_whatever_the_strings_hold(rego, strings):
    _check_same_decision(rego, strings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strings=st.lists(hostile_text, min_size=1, max_size=8))
def test_opa_path_decides_the_same_whatever_the_strings_hold(opa, strings):
    _check_same_decision(opa, strings)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strings=st.lists(hostile_text, min_size=1, max_size=8))
def test_both_engines_give_the_same_decision_for_the_same_hostile_input(rego, opa, strings):
    hostile = _replace({"request": _request(), "artifacts": _artifacts()}, strings)
    embedded, server = rego.decide(hostile), opa.decide(hostile)
    assert embedded.exempt == server.exempt
    key = lambda v: (v["source"], v["code"])  # noqa: E731
    assert sorted(embedded.violations, key=key) == sorted(server.violations, key=key)


@pytest.mark.parametrize("strings", [[h] for h in HOSTILE])
def test_each_known_fragment_in_every_field(rego, opa, strings):
    _check_same_decision(rego, strings)
    _check_same_decision(opa, strings)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(uri=st.lists(hostile_text, min_size=1, max_size=4).map(lambda parts: "gs://bucket/" + "".join(parts)),
       namespace=hostile_text)
def test_glob_matching_hostile_uris_and_namespaces_never_crashes_the_engine(rego, uri, namespace):
    """rego-cpp aborted the whole process on a backslash in glob.match: the URI and the
    namespace both go through glob.match."""
    document = {"request": {**_request(), "namespace": namespace},
                "artifacts": [{**_artifacts()[4], "value": uri}]}
    result = rego.decide(document)
    assert [v["code"] for v in result.violations] == ["unverifiable-uri"] and result.violations[0]["value"] == uri


def test_allowed_storage_uri_glob_still_matches_encoded_characters(key_dir):
    policy = parse_policy(policy_text(key_dir / "ml-team.pub", 'storageUris: {allow: ["gs://bucket/100%/*"]}'), source="p")
    engine = RegoEngine(policy.rego_sources, policy.data_document())
    request = {"request": _request(), "artifacts": [{**_artifacts()[4], "value": 'gs://bucket/100%/a"b\\c'}]}
    assert engine.decide(request).violations == ()
    request["artifacts"][0]["value"] = "gs://bucket/100%25/x"
    assert [v["code"] for v in engine.decide(request).violations] == ["unverifiable-uri"]


# -- the encoding and the strict readers ------------------------------------------------------


@given(st.text())
def test_string_encoding_is_injective_and_leaves_nothing_rego_cpp_mishandles(text):
    encoded = encode_string(text)
    assert decode_string(encoded) == text
    assert not any(c in encoded for c in '"\\') and all(0x20 <= ord(c) < 0x7F or ord(c) > 0x9F for c in encoded)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in encoded)


@pytest.mark.parametrize("answer", [
    b'{"result": {"exempt": false, "violations": []}, "result": {"exempt": true, "violations": []}}',
    b'{"result": {"exempt": false, "exempt": true, "violations": []}}',
    b'{"result": {"exempt": false, "violations": [{"code": "x", "code": "y"}]}}',
    b'{"result": NaN}', b'{"result": Infinity}', b'{"result": ', b"\xff\xfe",
])
def test_engine_json_with_duplicate_keys_or_non_json_is_refused(answer):
    with pytest.raises(PolicyEngineError):
        strict_json(answer, what="answer")


GOOD = {"source": "s", "value": "v", "code": "c", "enforce": True}


@pytest.mark.parametrize("value, problem", [
    (None, "expected an object"),
    ([], "expected an object"),
    ({"violations": []}, "exactly the keys"),
    ({"exempt": False, "violations": [], "zz": []}, "exactly the keys"),
    ({"exempt": "false", "violations": []}, "exempt is not a boolean"),
    ({"exempt": 0, "violations": []}, "exempt is not a boolean"),
    ({"exempt": False, "violations": {}}, "violations is not a list"),
    ({"exempt": False, "violations": ["x"]}, r"violations\[0\] is not an object"),
    ({"exempt": False, "violations": [{**GOOD, "code": ""}]}, r"violations\[0\].code"),
    ({"exempt": False, "violations": [{**GOOD, "code": 5}]}, r"violations\[0\].code"),
    ({"exempt": False, "violations": [{**GOOD, "enforce": "true"}]}, r"violations\[0\].enforce"),
    ({"exempt": False, "violations": [{**GOOD, "enforce": 1}]}, r"violations\[0\].enforce"),
    ({"exempt": False, "violations": [{k: v for k, v in GOOD.items() if k != "source"}]}, r"violations\[0\].source"),
    ({"exempt": False, "violations": [{**GOOD, "value": None}]}, r"violations\[0\].value"),
    ({"exempt": False, "violations": [{**GOOD, "message": ["x"]}]}, r"violations\[0\].message"),
    ({"exempt": False, "violations": [GOOD] * 10_001}, "more than"),
])
def test_a_decision_of_any_other_shape_is_an_engine_error(value, problem):
    with pytest.raises(PolicyEngineError, match=problem):
        read_decision(value, "Rego")


def test_out_of_range_numbers_and_non_json_values_are_refused_before_the_engine(rego):
    for bad in (2**63, -(2**63) - 1, float("nan"), float("inf"), b"bytes", {1: "x"}, object()):
        with pytest.raises(PolicyEngineError):
            rego.decide({"request": _request(), "artifacts": [], "x": bad})


# -- control characters never reach the policy -------------------------------------------------


@pytest.mark.parametrize("value", ["registry.example.com/m/x\x00y:1", "registry.example.com/m/x:1\x00", "registry.example.com/m\n/x:1",
                                   "registry.example.com/m/x:1\u202e", "registry.example.com/m/x:t\x7f"])
def test_control_characters_in_images_are_invalid_with_a_clear_message(policy, value):
    pipeline = AdmissionPipeline(policy)
    try:
        decision = pipeline.decide(parse_review(review("Pod", pod(value))))
    finally:
        pipeline.close()
    assert not decision.allowed and [v["code"] for v in decision.violations] == ["invalid-reference"]
    assert "contains the control character U+" in decision.message and "remove it" in decision.message


@pytest.mark.parametrize("uri", ["gs://bucket/a\x00b", "kit://registry.example.com/m/x\x00:1", "s3://b/\x1b[31mred", "hf://org/model\u2028"])
def test_control_characters_in_storage_uris_are_invalid(policy, uri):
    pipeline = AdmissionPipeline(policy)
    try:
        decision = pipeline.decide(parse_review(review("InferenceService", isvc(uri))))
    finally:
        pipeline.close()
    assert not decision.allowed and "invalid-reference" in {v["code"] for v in decision.violations}
    assert "contains the control character U+" in decision.message


def test_control_characters_in_the_request_names_are_denied(policy):
    pipeline = AdmissionPipeline(policy)
    try:
        body = json.loads(review("Pod", pod("registry.example.com/m/x:1")))
        body["request"]["namespace"] = "ml\x00kube-system"
        decision = pipeline.decide(parse_review(json.dumps(body).encode()))
    finally:
        pipeline.close()
    assert not decision.allowed and "namespace" in decision.message and "U+0000" in decision.message


# -- the floor: an answer that contradicts the evidence is refused -------------------------------


def _custom_policy(tmp_path: Path, key_dir: Path, rego: str):
    directory = tmp_path / "rego"
    directory.mkdir()
    (directory / "modelsign.rego").write_text(rego)
    from webhook.admission.config import load_rego_dir

    return parse_policy(policy_text(key_dir / "ml-team.pub"), source="custom", rego_sources=load_rego_dir(directory))


@pytest.mark.parametrize("rego, reason", [
    ('package modelsign\nimport rego.v1\ndecision := {"exempt": false, "violations": []}\n', "contradicts the evidence"),
    ('package modelsign\nimport rego.v1\ndecision := {"exempt": true, "violations": []}\n', "not in exemptNamespaces"),
    ('package modelsign\nimport rego.v1\ndecision := {"exempt": false, "violations": [], "allowed": true}\n', "exactly the keys"),
    ('package modelsign\nimport rego.v1\ndecision := {"exempt": false} if false\n', "undefined"),
])
def test_rules_that_let_a_must_fail_artifact_through_are_refused(tmp_path, key_dir, rego, reason):
    pipeline = AdmissionPipeline(_custom_policy(tmp_path, key_dir, rego))
    try:
        decision = pipeline.decide(parse_review(review("Pod", pod("evil.example.com/x:1"))))
    finally:
        pipeline.close()
    assert not decision.allowed and decision.outcome == "error" and reason in decision.message


# -- end to end: the real TLS webhook and `modelsign check` ------------------------------------


def test_the_injection_is_denied_by_the_tls_webhook_and_by_check(tmp_path, key_dir, capsys):
    import yaml

    from conftest import run_cli
    from support.webhook_server import start_webhook
    from webhook.certs import generate

    certs = tmp_path / "certs"
    generate("modelsign-webhook", "modelsign-system", certs, extra_sans=["127.0.0.1"])
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy_text(key_dir / "ml-team.pub"))
    server = start_webhook(policy_file, certs, tmp_path, workers=1)
    try:
        with server.client() as client:
            for attack in sorted(ATTACKS):
                kind, build = ATTACKS[attack]
                answer = client.post("/validate", content=review(kind, build(INJECTION)), headers={"Content-Type": "application/json"}).json()
                assert answer["response"]["allowed"] is False, attack
                assert answer["response"]["auditAnnotations"]["decision"] == "deny"
    finally:
        server.stop()
    manifests = tmp_path / "attack.yaml"
    manifests.write_text(yaml.safe_dump_all([build(INJECTION) for _, build in ATTACKS.values()]))
    code, out, _ = run_cli(capsys, "check", "-f", manifests, "--config", policy_file, "-n", "ml")
    assert code == 1 and "ALLOW" not in out and out.count("DENY") == len(ATTACKS)


def test_a_review_waits_for_a_busy_interpreter_only_until_its_deadline(policy):
    import time

    engine = RegoEngine(policy.rego_sources, policy.data_document(), interpreters=1)
    held = engine._free.get()  # another review is evaluating on the only interpreter
    try:
        started = time.monotonic()
        with pytest.raises(PolicyEngineError, match="busy with other reviews until the deadline"):
            engine.decide({"request": _request(), "artifacts": []}, deadline=started + 0.2)
        assert time.monotonic() - started < 1.0
    finally:
        engine._free.put(held)
    assert engine.decide({"request": _request(), "artifacts": []}, deadline=time.monotonic() + 5).violations == ()


def test_a_value_too_long_to_be_a_reference_is_invalid_before_the_engine(policy):
    pipeline = AdmissionPipeline(policy)
    try:
        decision = pipeline.decide(parse_review(review("InferenceService", isvc("gs://bucket/" + "a" * 9000))))
    finally:
        pipeline.close()
    assert not decision.allowed and "characters long; modelsign reads image references and model URIs of up to 8192" in decision.message
    assert decision.violations[0]["value"].endswith("... (9012 characters)") and len(decision.message) < 12000


# -- long strings: cut at the boundary, never a crash (review 4, R1) ----------------------------
# rego-cpp's regex.match recursed per character and killed the process (SIGSEGV) from about
# 20k characters ("(a|b)*") or 40k ("a*"): a user's rule over a predicate or a rejection
# reason could reach it. Every string crossing into the engine is now at most MAX_ENGINE_STRING.

LONG = ["a" * 100_000, "ab" * 50_000, '"' * 100_000, "\ud800" * 100_000, "%" * 99_999 + "x"]


def _with_long_strings(text: str) -> dict:
    """The hostile document with `text` in every free-text channel, attestations included."""
    document = _replace({"request": _request(), "artifacts": _artifacts()}, [text])
    for artifact in document["artifacts"]:
        evidence = artifact["evidence"]
        if evidence:
            evidence["attestations"] = [{"type": text, "id": text, "signer": text, "keyId": text, "predicate": {text: [text, {text: text}]}}]
            evidence["attestationsRejected"] = [{"type": text, "location": text, "reason": text}]
    return document


def _strings(value, found: list[str]) -> list[str]:
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append(key)
            _strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _strings(item, found)
    return found


@pytest.mark.parametrize("text", LONG, ids=["a", "ab", "quotes", "surrogates", "percent"])
def test_every_string_reaches_the_engine_bounded_and_marked(text):
    from webhook.admission.engine.values import MAX_ENGINE_STRING, to_engine

    encoded = to_engine(_with_long_strings(text))
    strings = _strings(encoded, [])
    assert max(map(len, strings)) <= MAX_ENGINE_STRING
    cut = [s for s in strings if len(s) > 1000]
    marker = re.compile(r"\.\.\.\[cut: (\d+) characters, sha256 [0-9a-f]{16}\]")
    assert cut and all(marker.search(s) and s.endswith("]") and int(marker.search(s).group(1)) >= len(text) for s in cut)
    for value in cut:  # the kept part is whole escapes: it decodes to the start of the original (sources start "N:")
        kept = re.sub(r"^\d+:", "", decode_string(value[:value.index("...[cut: ")]))
        assert text.startswith(kept) and len(kept) > 1000


def test_a_policy_data_string_over_the_limit_is_an_error_not_a_cut(policy):
    data = policy.data_document()
    with pytest.raises(PolicyEngineError, match="a string in the policy data is 9000 characters long"):
        RegoEngine(policy.rego_sources, {**data, "allowedRegistries": ["r" * 9000]})


def test_cut_strings_stay_equal_only_when_they_were_equal():
    from webhook.admission.engine.values import bounded

    same_start = ["a" * 50_000 + "x", "a" * 50_000 + "y"]
    assert bounded(same_start[0]) != bounded(same_start[1])
    assert bounded(same_start[0]) == bounded("a" * 50_000 + "x")
    assert len({bounded(key) for key in same_start}) == 2  # keys stay distinct in a cut object


@settings(max_examples=200, deadline=None)
@given(head=st.integers(min_value=8100, max_value=8200), tail=st.text(alphabet='a"%\ud800\x00é', min_size=1, max_size=12))
def test_a_cut_never_splits_an_escape(head, tail):
    from webhook.admission.engine.values import MAX_ENGINE_STRING, bounded

    text = "a" * (head - 100) + tail * 20
    value = bounded(text)
    assert len(value) <= MAX_ENGINE_STRING
    kept = value.split("...[cut: ")[0]
    assert text.startswith(decode_string(kept))


@pytest.mark.parametrize("text", LONG[:3], ids=["a", "ab", "quotes"])
def test_long_strings_leave_the_decision_the_same_in_both_engines(rego, opa, text):
    harmless = {"request": _request(), "artifacts": _artifacts()}
    for index, artifact in enumerate(harmless["artifacts"]):
        artifact["source"] = f"{index}:plain"
    expected = rego.decide(harmless)
    hostile = _with_long_strings(text)
    embedded, server = rego.decide(hostile), opa.decide(hostile)
    assert embedded.exempt is server.exempt is False
    assert _outcome(embedded) == _outcome(server) == _outcome(expected)
    key = lambda v: (v["source"], v["code"])  # noqa: E731
    assert sorted(embedded.violations, key=key) == sorted(server.violations, key=key)


REGEX_CHILD = r'''
import json, sys
from webhook.admission.engine.engines import RegoEngine
pattern, path = sys.argv[1], sys.argv[2]
policy = """package modelsign
import rego.v1
hits contains p if {
  walk(input, [p, value])
  is_string(value)
  regex.match(%s, value)
}
hits contains p if {
  walk(input, [p, _])
  some key in p
  is_string(key)
  regex.match(%s, key)
}
decision := {"exempt": false, "violations": [v | some p in hits; v := {"code": "hit", "enforce": true, "source": "s", "value": json.marshal(p)}]}
""" % (json.dumps(pattern), json.dumps(pattern))
with open(path) as f:
    document = json.load(f)
print(len(RegoEngine({"p.rego": policy}, {}, interpreters=1).decide(document).violations))
'''


@pytest.mark.parametrize("pattern", ["(a|b)*", "a*", "^[a-z]+$", "((a|b)|(c|d))*", "((((a|b))))*"])
def test_a_users_regex_rule_over_100k_strings_in_every_channel_does_not_crash_the_engine(tmp_path, pattern):
    """In a child process, so that a crash (SIGSEGV) fails this test rather than the run. The
    cut alone stops the first three; the nested ones crashed on 8192 characters too, until
    evaluation moved to threads with a deeper stack (engines.EVALUATION_STACK_BYTES)."""
    import subprocess
    import sys

    document = tmp_path / "input.json"
    document.write_text(json.dumps(_with_long_strings("ab" * 50_000)))
    result = subprocess.run([sys.executable, "-c", REGEX_CHILD, pattern, str(document)], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    assert int(result.stdout.strip()) > 0  # the rule ran over the (cut) strings


def test_a_named_attestation_with_a_string_over_the_cut_is_rejected_with_the_reason():
    from signer import AttestationReport, VerifiedAttestation
    from webhook.admission.attestation_facts import named_inputs

    def statement(predicate, name):
        return VerifiedAttestation(predicate_type="https://example.com/review/v1", predicate=predicate, form="legacy", signer="ml-team",
                                   key_id="kid", keyless=None, location=name, statement_digest="sha256:" + name * 64)

    report = AttestationReport(digest=DIGEST, verified=(
        statement({"files": ["ok.bin"]}, "a"),
        statement({"files": ["x" * 20_000]}, "b"),
        statement({"y" * 20_000: True}, "c"),
        statement({"note": '"' * 3000}, "d"),  # 3000 characters, 9000 once encoded
    ), rejected=())
    found, rejected = named_inputs(report, frozenset({"https://example.com/review/v1"}))
    assert [f["predicate"] for f in found] == [{"files": ["ok.bin"]}]
    assert [r["location"] for r in rejected] == ["b", "c", "d"]
    assert all("holds a string over 8192 characters" in r["reason"] and "not given to the policy" in r["reason"] for r in rejected)
