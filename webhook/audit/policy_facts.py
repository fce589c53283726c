"""What a `policy-load` record says about the policy it loaded, so a report can show the
policy in force by its hash without the policy file: mode, exemptions, registries, every rule
and every trusted key with its fingerprint, where it came from and which rules rely on it."""

from __future__ import annotations

from typing import Any

from webhook.admission.config import LoadedPolicy, Rule, TrustedKeySpec


def _key_roles(rule: Rule) -> dict[str, list[str]]:
    """key name -> what the rule trusts it for (signature, scan, approval, ...)."""
    require = rule.require
    roles: dict[str, list[str]] = {}
    for role, names in (("signature", require.signed_by), ("scan", require.scan.signed_by if require.scan else []),
                        ("approval", require.approval.signed_by if require.approval else []),
                        ("evaluation", require.evaluation.signed_by if require.evaluation else []),
                        *((f"attestation {a.type}", a.signed_by) for a in require.attestations)):
        for name in names:
            roles.setdefault(name, []).append(role)
    return roles


def _key_source(spec: TrustedKeySpec) -> tuple[str, str]:
    if spec.keyless is not None:
        who = spec.keyless
        return "keyless", f"issuer {who.issuer or who.issuer_regexp} subject {who.subject or who.subject_regexp}"
    return "key", f"file {spec.file}" if spec.file else "inline PEM in the policy"


def _no_floats(value: Any) -> Any:
    """Records hold no floats (they have no canonical form): metric bounds become their text."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {k: _no_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_floats(v) for v in value]
    return value


def policy_facts(policy: LoadedPolicy) -> dict[str, Any]:
    spec = policy.spec
    uses: dict[str, list[str]] = {}
    for rule in spec.rules:
        for name, roles in _key_roles(rule).items():
            uses.setdefault(name, []).append(f"{rule.name} ({', '.join(roles)})")
    keys = []
    for name, fingerprint in sorted(policy.key_fingerprints.items()):
        key_spec = spec.trusted_keys.get(name)
        kind, source = _key_source(key_spec) if key_spec is not None else ("key", "")
        keys.append({"name": name, "fingerprint": fingerprint, "kind": kind, "source": source, "usedBy": uses.get(name, [])})
    return {
        "mode": spec.mode,
        "exemptNamespaces": list(spec.exempt_namespaces),
        "allowedRegistries": list(spec.allowed_registries),
        "requireDigest": spec.require_digest,
        "rules": [_no_floats(rule.model_dump(mode="json", by_alias=True, exclude_none=True)) for rule in spec.rules],
        "keys": keys,
    }
