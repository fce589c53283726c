"""`modelsign policy validate FILE`: every problem of a policy file at once, with its line.

Errors make the webhook refuse the policy (it keeps the last good one): YAML errors and
duplicate keys, schema problems (unknown or misspelt fields, with "did you mean"), trusted
keys named by rules but not defined, key files that cannot be read, Rego that does not
compile. Warnings are legal but probably not what was meant (a key no rule uses, no allowed
registry, warn mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from signer import ModelsignError
from webhook.admission.config import LoadedPolicy, PolicyError, PolicySpec, load_rego_dir, parse_policy, read_policy_document
from webhook.admission.engine.engines import build_engine
from webhook.admission.policy_hints import describe_errors
from webhook.admission.policy_yaml import PolicySource


@dataclass
class ValidationReport:
    source: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    policy: LoadedPolicy | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _lint(read: PolicySource, spec: PolicySpec) -> list[str]:
    warnings = []
    if not spec.allowed_registries:
        warnings.append(f"{read.at(('allowedRegistries',))}: allowedRegistries is empty, so every image and model is denied; list your registries")
    if spec.mode == "warn":
        warnings.append(f"{read.at(('mode',))}: mode: warn admits everything (with warnings); use enforce once the warnings are gone")
    used = {name for rule in spec.rules for name in rule.require.signed_by}
    for rule in spec.rules:
        require = rule.require
        used.update(require.scan.signed_by if require.scan else [])
        used.update(require.approval.signed_by if require.approval else [])
        used.update(require.evaluation.signed_by if require.evaluation else [])
        used.update(name for item in require.attestations for name in item.signed_by)
    for name in sorted(set(spec.trusted_keys) - used):
        warnings.append(f"{read.at(('trustedKeys', name))}: trustedKeys.{name} is used by no rule (it can still revoke or reject approvals)")
    for name, key in sorted(spec.trusted_keys.items()):
        issuer = key.keyless.issuer if key.keyless else None
        if issuer and not issuer.startswith("https://"):
            warnings.append(f"{read.at(('trustedKeys', name, 'keyless', 'issuer'))}: issuer {issuer!r} is not an https:// URL; OIDC issuers are")
    return warnings


def validate_policy_text(text: str | bytes, *, source: str, base_dir: Path, rego_dir: Path | None = None, key_dir: Path | None = None) -> ValidationReport:
    report = ValidationReport(source=source)
    try:
        read = read_policy_document(text, source=source)
    except PolicyError as exc:
        report.errors.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return report
    report.source = read.source
    try:
        spec = PolicySpec.model_validate(read.document)
    except ValidationError as exc:
        report.errors += describe_errors(exc.errors(), PolicySpec, read)
        return report
    report.warnings += _lint(read, spec)
    try:
        rego = load_rego_dir(rego_dir) if rego_dir else None
        report.policy = parse_policy(text, source=source, base_dir=base_dir, rego_sources=rego, key_dir=key_dir)
    except ModelsignError as exc:
        report.errors.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return report
    if spec.opa is None:
        try:
            build_engine(report.policy)  # compiles the Rego with the policy's data, as the webhook does
        except ModelsignError as exc:
            report.errors.append(exc.message)
    else:
        report.warnings.append(f"{read.at(('opa',))}: the Rego runs on the OPA server at {spec.opa.url}; it was not contacted")
    return report


def validate_policy_file(path: Path, *, rego_dir: Path | None = None, key_dir: Path | None = None) -> ValidationReport:
    try:
        text = path.read_bytes()
    except OSError as exc:
        return ValidationReport(source=str(path), errors=[f"cannot read {path}: {exc.strerror}"])
    return validate_policy_text(text, source=str(path), base_dir=path.parent, rego_dir=rego_dir, key_dir=key_dir)
