"""The policy file (validation, named errors) and the Rego policy (unit tests run in pytest)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from signer.formats import mediatypes as mt

from conftest import COSIGN
from webhook.admission.config import PolicyError, load_policy, parse_policy
from webhook.admission.engine.engines import PolicyEngineError, RegoEngine
from webhook.admission.messages import render

DIGEST = "sha256:" + "ab" * 32
ONE_RULE = "rules: [{name: r, require: {signedBy: [k]}}]"


def policy_text(extra: str = "", rules: str | None = None) -> str:
    rules = rules if rules is not None else """
rules:
  - name: models-signed
    artifacts: ["**"]
    namespaces: ["*"]
    require: {signedBy: [ml-team]}
"""
    return f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["registry.example.com", "127.0.0.1:*"]
trustedKeys:
  ml-team: {{file: {COSIGN / 'kwctl__cosign1.pub'}}}
  release-ci: {{keyless: {{issuer: "https://token.actions.githubusercontent.com", subjectRegExp: "^https://github.com/acme/.*"}}, trustedRoot: {{file: {COSIGN / 'cosign__trusted_root_pgi.json'}}}}}
{extra}
{rules}
"""


def engine_for(text: str) -> RegoEngine:
    policy = parse_policy(text, source="test-policy")
    return RegoEngine(policy.rego_sources, policy.data_document())


def artifact(value="registry.example.com/models/llm:1.0", *, signers=(), annotations=None, allowed=True, error=None, kind="oci", pinned=False, name=None):
    return {
        "source": "spec.containers[0].image", "value": value, "role": "image", "kind": kind, "problem": None, "scheme": "",
        "name": name or value.split("@")[0].rsplit(":", 1)[0], "registry": value.split("/")[0], "repository": "models/llm", "tag": "1.0",
        "pinnedByDigest": pinned,
        "evidence": None if kind != "oci" else {
            "registryAllowed": allowed, "digest": DIGEST, "error": error, "cached": False, "rejected": [],
            "signatures": [{"signer": s, "keyId": "k", "form": "legacy", "annotations": annotations or {}, "dockerReference": None, "identity": None, "issuer": None} for s in signers],
        },
    }


def decide(engine: RegoEngine, artifacts: list[dict], namespace: str = "ml") -> dict:
    result = engine.decide({"request": {"namespace": namespace, "operation": "CREATE", "kind": {"kind": "Pod"}}, "artifacts": artifacts})
    return {"exempt": result.exempt, "violations": list(result.violations)}


def codes(result: dict) -> list[str]:
    return sorted(v["code"] for v in result["violations"])


# -- configuration -----------------------------------------------------------------------


def test_example_policy_loads_with_keyed_and_keyless_keys():
    policy = parse_policy(policy_text(), source="p.yaml")
    assert set(policy.anchors) == {"ml-team", "release-ci"}
    assert policy.key_fingerprints["ml-team"] == "CX8fOmdC3lrXgw3qR1uTuWzLQCpoBB16lPRicWX3U1o="
    assert policy.key_fingerprints["release-ci"].startswith("keyless:")
    assert policy.policy_hash.startswith("sha256:")
    assert policy.registry_allowed("127.0.0.1:5000") and not policy.registry_allowed("docker.io")


def test_policy_hash_covers_rules_and_keys():
    a = parse_policy(policy_text(), source="p")
    b = parse_policy(policy_text(extra="mode: warn"), source="p")
    assert a.policy_hash != b.policy_hash
    assert a.policy_hash == parse_policy(policy_text(), source="p").policy_hash


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("apiVersion: x\nkind: AdmissionPolicy", "apiVersion"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nmode: strict", "mode: Input should be 'enforce' or 'warn'"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nallowedRegistries: [a/b]", "allowedRegistries[0]"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nrules: [{name: r, require: {signedBy: [nobody]}}]", "rules[0].require.signedBy[0]: unknown key 'nobody'"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {}}", "trustedKeys.k"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {keyless: {issuer: x}}}", "needs subject or subjectRegExp"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nrulez: []", "p.yaml:3: rulez: unknown field (did you mean rules?)"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {file: /does/not/exist.pub}}\n" + ONE_RULE, "trustedKeys.k: public key /does/not/exist.pub does not exist"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {pem: nope}}\n" + ONE_RULE, "trustedKeys.k: trustedKeys.k.pem is not a PEM file"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {keyless: {issuer: x, subjectRegExp: '('}}}\n" + ONE_RULE, "invalid certificate identity regexp"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\n", "rules: at least one rule with require.signedBy is needed"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {pem: nope}}\nrules: [{name: r, require: {annotations: {a: b}}}]", "rules[0]: Value error, rule 'r' requires nothing".replace("Value error, ", "")),
        ("[1, 2", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ndeadlineSeconds: 60", "deadlineSeconds"),
    ],
)
def test_bad_policies_name_the_field(text, fragment):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert fragment in str(info.value) and str(info.value).startswith("p.yaml")


def test_relative_key_paths_are_relative_to_the_policy_file(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "team.pub").write_bytes((COSIGN / "kwctl__cosign1.pub").read_bytes())
    (tmp_path / "policy.yaml").write_text("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys:\n  team: {file: keys/team.pub}\nrules: [{name: r, require: {signedBy: [team]}}]\n")
    assert "team" in load_policy(tmp_path / "policy.yaml").anchors
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "absent.yaml")


def test_broken_rego_is_a_clear_error():
    policy = parse_policy(policy_text(), source="p")
    with pytest.raises(PolicyEngineError, match="does not compile"):
        RegoEngine({"broken.rego": "package modelsign\nthis is not rego"}, policy.data_document())


# -- Rego decisions (unit tests of policies/modelsign.rego) --------------------------------


def test_signed_artifact_passes_and_unsigned_fails_with_a_fix_hint():
    engine = engine_for(policy_text())
    assert decide(engine, [artifact(signers=["ml-team"])])["violations"] == []
    result = decide(engine, [artifact(signers=["release-ci"])])
    (violation,) = result["violations"]
    assert (violation["code"], violation["rule"], violation["enforce"]) == ("not-signed", "models-signed", True)
    message = render(violation)
    assert f"no signature by key ml-team for registry.example.com/models/llm@{DIGEST}" in message
    assert f"sign it with `modelsign sign registry.example.com/models/llm@{DIGEST} --key ml-team.key`" in message


def test_registry_not_allowed_and_errors_and_invalid_values():
    engine = engine_for(policy_text())
    result = decide(engine, [artifact("docker.io/library/nginx:1", allowed=False), artifact(error="registry down"),
                             {**artifact(kind="invalid"), "problem": "spec.containers[0].image: bad"}])
    assert codes(result) == ["invalid-reference", "registry-not-allowed", "verification-error"]
    messages = [render(v) for v in result["violations"]]
    assert any("add docker.io to allowedRegistries" in m for m in messages)
    assert any("cannot verify registry.example.com/models/llm:1.0 (spec.containers[0].image): registry down" in m for m in messages)


def test_rules_select_by_artifact_glob_and_namespace():
    rules = """
rules:
  - name: prod-models
    artifacts: ["registry.example.com/models/**"]
    namespaces: ["prod-*"]
    require: {signedBy: [ml-team]}
"""
    engine = engine_for(policy_text(rules=rules))
    unsigned = artifact()
    assert codes(decide(engine, [unsigned], namespace="prod-eu")) == ["not-signed"]
    # No signing rule covers these, so they are not trusted either (fail closed), with their own reason:
    assert codes(decide(engine, [unsigned], namespace="dev")) == ["no-rule"]  # namespace not selected
    other = artifact("registry.example.com/apps/web:1", name="registry.example.com/apps/web", signers=["ml-team"])
    (violation,) = decide(engine, [other], namespace="prod-eu")["violations"]  # artifact glob not matched
    assert violation["code"] == "no-rule" and "not covered by any rule that requires a signature" in render(violation)


def test_required_annotations_and_any_of_several_keys():
    rules = """
rules:
  - name: release
    require: {signedBy: [ml-team, release-ci], annotations: {stage: prod}}
"""
    engine = engine_for(policy_text(rules=rules))
    assert codes(decide(engine, [artifact(signers=["release-ci"], annotations={"stage": "prod"})])) == []
    result = decide(engine, [artifact(signers=["ml-team"], annotations={"stage": "dev"})])
    assert codes(result) == ["not-signed"]
    assert "any of keys ml-team, release-ci with stage=prod" in render(result["violations"][0])
    assert "-a stage=prod" in render(result["violations"][0])


def test_warn_mode_globally_and_per_rule():
    warn_all = engine_for(policy_text(extra="mode: warn"))
    (violation,) = decide(warn_all, [artifact()])["violations"]
    assert violation["enforce"] is False
    per_rule = engine_for(policy_text(rules="rules:\n  - name: soft\n    mode: warn\n    require: {signedBy: [ml-team]}\n"))
    (violation,) = decide(per_rule, [artifact()])["violations"]
    assert violation["enforce"] is False
    (registry,) = decide(per_rule, [artifact("docker.io/x/y:1", allowed=False)])["violations"]
    assert registry["enforce"] is True  # the registry allow-list follows the global mode


def test_unverifiable_uris_are_denied_unless_allowed():
    engine = engine_for(policy_text(extra='storageUris:\n  allow: ["gs://approved-bucket/**"]'))
    uri = {**artifact(kind="uri"), "value": "gs://other/model", "scheme": "gs"}
    (violation,) = decide(engine, [uri])["violations"]
    assert violation["code"] == "unverifiable-uri" and "cannot be verified by modelsign (scheme 'gs')" in render(violation)
    assert decide(engine, [{**uri, "value": "gs://approved-bucket/models/x"}])["violations"] == []


def test_require_digest():
    engine = engine_for(policy_text(extra="requireDigest: true"))
    result = decide(engine, [artifact(signers=["ml-team"])])
    assert codes(result) == ["tag-not-pinned"]
    assert f"pin it by digest: registry.example.com/models/llm@{DIGEST}" in render(result["violations"][0])
    assert decide(engine, [artifact(signers=["ml-team"], pinned=True)])["violations"] == []


def test_exempt_namespaces():
    engine = engine_for(policy_text(extra="exemptNamespaces: [kube-*]"))
    result = decide(engine, [artifact("docker.io/x/y:1", allowed=False)], namespace="kube-system")
    assert result["exempt"] is True and result["violations"] == []


def test_users_can_add_rules_beside_the_default_policy():
    policy = parse_policy(policy_text(), source="p")
    custom = """package modelsign
import rego.v1
violations contains v if {
  some a in input.artifacts
  a.tag == "latest"
  v := {"source": a.source, "value": a.value, "code": "latest-tag", "message": "do not use :latest", "enforce": true}
}
"""
    engine = RegoEngine({**policy.rego_sources, "custom.rego": custom}, policy.data_document())
    latest = copy.deepcopy(artifact(signers=["ml-team"]))
    latest["tag"] = "latest"
    (violation,) = decide(engine, [latest])["violations"]
    assert render(violation) == "do not use :latest"


def test_rego_sources_ship_with_the_package():
    from webhook.admission.config import default_rego_dir

    assert (default_rego_dir() / "modelsign.rego").is_file()
    assert Path(default_rego_dir()).name == "policies"


def test_the_readme_policy_example_is_valid(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## The admission policy", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "keys").mkdir()
    for name in ("ml-team", "scanner", "mlops-approvers", "eval-ci"):
        (tmp_path / "keys" / f"{name}.pub").write_bytes((COSIGN / "kwctl__cosign1.pub").read_bytes())
    (tmp_path / "keys" / "trusted_root.json").write_bytes((COSIGN / "cosign__trusted_root_pgi.json").read_bytes())
    (tmp_path / "policy.yaml").write_text(example)
    policy = load_policy(tmp_path / "policy.yaml")
    assert set(policy.anchors) == {"ml-team", "scanner", "mlops-approvers", "eval-ci", "release-ci"} and policy.spec.opa is not None
    assert policy.attestation_types == {mt.VULN_PREDICATE, mt.APPROVAL_PREDICATE, mt.APPROVAL_REQUEST_PREDICATE, mt.EVALUATION_PREDICATE,
                                        "https://example.com/model-card/v1"}
    assert policy.evaluation_metrics == {"accuracy", "latency_p95_ms", "demographic_parity"}


def test_registry_files_are_resolved_and_checked(tmp_path):
    text = policy_text(extra="registry: {caFile: ca.pem}")
    with pytest.raises(PolicyError, match=r"registry.caFile: .*ca.pem does not exist"):
        parse_policy(text, source="p", base_dir=tmp_path)
    (tmp_path / "ca.pem").write_text("x")
    policy = parse_policy(text, source="p", base_dir=tmp_path)
    assert policy.registry_options().ca_file == tmp_path / "ca.pem"


def test_unreadable_rego_is_a_policy_error(tmp_path):
    from webhook.admission.config import load_rego_dir

    (tmp_path / "bad.rego").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(PolicyError, match="cannot read Rego file"):
        load_rego_dir(tmp_path)


def test_reload_notices_a_key_file_that_appears_after_a_failed_load(tmp_path):
    from webhook.server.app import Settings, WebhookState

    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\ntrustedKeys: {k: {file: keys/k.pub}}\n" + ONE_RULE + "\n")
    state = WebhookState(Settings(policy_path=policy))
    assert state.load() is False and "does not exist" in state.last_error
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "k.pub").write_bytes((COSIGN / "kwctl__cosign1.pub").read_bytes())
    state.reload_if_changed()
    assert state.pipeline is not None and state.last_error is None
    state.stop()
