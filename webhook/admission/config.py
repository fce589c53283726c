"""The admission policy file (`kind: AdmissionPolicy`): schema, validation, trust anchors.

Validation errors name the field (`rules[0].require.signedBy[1]: unknown key 'x'`). Relative
`file:` paths are relative to the policy file. The policy hash covers the normalised policy,
the key material it resolves to and the Rego sources, so a change to any of them
invalidates cached verifications and shows in every audit record.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from signer import (KeylessIdentity, ModelsignError, PublicKey, RegistryOptions, TrustAnchor, UsageError, load_public_key_file, read_limited,
                    load_public_key_pem, mediatypes as mt, parse_duration, unsafe_character)
from webhook.admission.limits import VerificationLimits
from webhook.admission.policy_hints import describe_errors, hint
from webhook.admission.policy_yaml import POLICY_YAML_HINT, PolicySource, PolicyYamlError, is_configmap, read_policy_source

API_VERSION = "modelsign.dev/v1alpha1"
POLICY_KIND = "AdmissionPolicy"
MAX_POLICY_BYTES = 4 * 1024 * 1024


class PolicyError(ModelsignError):
    """The policy file is missing, malformed or refers to unusable keys."""


def _host_glob(value: str) -> str:
    if "/" in value or not value.strip():
        raise ValueError(f"{value!r} must be a host[:port] glob without a path")
    return value.lower()  # references are matched by their canonical (lowercase) host


HostGlob = Annotated[str, AfterValidator(_host_glob)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class FileRef(_Strict):
    file: str


class KeylessSpec(_Strict):
    issuer: str | None = None
    issuer_regexp: str | None = Field(default=None, alias="issuerRegExp")
    subject: str | None = None
    subject_regexp: str | None = Field(default=None, alias="subjectRegExp")

    @model_validator(mode="after")
    def _both_halves(self) -> KeylessSpec:
        if not (self.issuer or self.issuer_regexp):
            raise ValueError("needs issuer or issuerRegExp")
        if not (self.subject or self.subject_regexp):
            raise ValueError("needs subject or subjectRegExp")
        return self


class TrustedKeySpec(_Strict):
    file: str | None = None
    pem: str | None = None
    keyless: KeylessSpec | None = None
    trusted_root: FileRef | None = Field(default=None, alias="trustedRoot")

    @model_validator(mode="after")
    def _exactly_one(self) -> TrustedKeySpec:
        given = [name for name in ("file", "pem", "keyless") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, pem or keyless")
        if self.trusted_root and not self.keyless:
            raise ValueError("trustedRoot only applies to keyless keys")
        return self


def _duration(value: str) -> int:
    try:
        return parse_duration(value)
    except UsageError as exc:
        raise ValueError(exc.message) from None


Duration = Annotated[str, AfterValidator(lambda v: (_duration(v), v)[1])]


class ScanRequirement(_Strict):
    signed_by: list[str] = Field(alias="signedBy", min_length=1)
    max_age: Duration = Field(default="168h", alias="maxAge")
    max_severity: dict[Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"], Annotated[int, Field(ge=0)]] = Field(default_factory=dict, alias="maxSeverity")
    ignore_unfixed: bool = Field(default=False, alias="ignoreUnfixed")
    unsafe_model_files: Literal["deny", "allow"] = Field(default="deny", alias="unsafeModelFiles")
    max_secrets: Annotated[int, Field(ge=0)] | None = Field(default=None, alias="maxSecrets")


class ApprovalRequirement(_Strict):
    signed_by: list[str] = Field(alias="signedBy", min_length=1)
    environment: str | None = None  # default: the environment the namespace maps to
    min_approvers: int = Field(default=1, alias="minApprovers", ge=1, le=10)


MetricName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class MetricBound(_Strict):
    """`{min: 0.9}`, `{max: 150}` or both: the metric must lie within (bounds included)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> MetricBound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}: no value could pass")
        return self


class EvaluationRequirement(_Strict):
    """The newest evaluation attestation by these keys must be fresh and within every bound."""

    signed_by: list[str] = Field(alias="signedBy", min_length=1)
    max_age: Duration = Field(default="30d", alias="maxAge")
    metrics: dict[MetricName, MetricBound] = Field(default_factory=dict, max_length=64)
    dataset: str | None = None  # optional: the evaluation must be on this dataset (its name)


def _predicate_type(value: str) -> str:
    resolved = mt.PREDICATE_ALIASES.get(value, value)
    if "://" not in resolved or unsafe_character(resolved) or len(resolved) > 512:
        raise ValueError(f"{value!r} is not a predicate type: give its URI (e.g. https://example.com/model-card/v1) "
                         f"or one of {', '.join(sorted(mt.PREDICATE_ALIASES))}")
    return resolved


class AttestationRequirement(_Strict):
    """A verified attestation of this predicate type by one of these keys must exist; its
    predicate reaches the Rego input (`evidence.attestations`) for rules of your own."""

    type: Annotated[str, AfterValidator(_predicate_type)]
    signed_by: list[str] = Field(alias="signedBy", min_length=1)


class Requirements(_Strict):
    signed_by: list[str] = Field(default_factory=list, alias="signedBy")
    annotations: dict[str, str] = Field(default_factory=dict)
    scan: ScanRequirement | None = None
    approval: ApprovalRequirement | None = None
    evaluation: EvaluationRequirement | None = None
    attestations: list[AttestationRequirement] = Field(default_factory=list, max_length=16)


class EnvironmentMapping(_Strict):
    name: str = Field(min_length=1)
    namespaces: list[str] = Field(min_length=1)


class Environments(_Strict):
    """Which environment a namespace belongs to: its label `namespaceLabel` if set (read
    from the API server), else the first mapping whose namespace globs match."""

    mappings: list[EnvironmentMapping] = Field(default_factory=list)
    namespace_label: str | None = Field(default=None, alias="namespaceLabel")
    label_cache_seconds: float = Field(default=60, alias="labelCacheSeconds", ge=0)
    api_server: str | None = Field(default=None, alias="apiServer")  # a URL that needs no credentials (kubectl proxy)
    kubeconfig: str | None = None  # a kubeconfig file (outside the cluster); default: in-cluster configuration


class Rule(_Strict):
    name: str = Field(min_length=1)
    artifacts: list[str] = Field(default_factory=lambda: ["**"])
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    mode: Literal["enforce", "warn"] | None = None
    require: Requirements

    @model_validator(mode="after")
    def _requires_something(self) -> Rule:
        require = self.require
        if not (require.signed_by or require.scan or require.approval or require.evaluation or require.attestations):
            raise ValueError(f"rule {self.name!r} requires nothing: give require.signedBy, scan, approval, evaluation or attestations")
        if require.annotations and not require.signed_by:
            raise ValueError(f"rule {self.name!r}: require.annotations apply to signatures; add require.signedBy")
        return self


class StorageUris(_Strict):
    """Model URIs modelsign cannot verify (gs://, s3://, pvc://, hf://, http(s)://...)."""

    allow: list[str] = Field(default_factory=list)  # URI globs admitted without verification


class RegistryAccess(_Strict):
    timeout_seconds: float = Field(default=3.0, alias="timeoutSeconds", gt=0, le=30)
    retries: int = Field(default=1, ge=0, le=5)
    ca_file: str | None = Field(default=None, alias="caFile")
    docker_config: str | None = Field(default=None, alias="dockerConfig")


class CacheSettings(_Strict):
    ttl_seconds: float = Field(default=300, alias="ttlSeconds", ge=0)
    max_entries: int = Field(default=10000, alias="maxEntries", ge=1)
    # Policy decisions are memoised by their complete input (evidence included). Set 0 if
    # your own Rego rules read the clock or other outside state.
    decision_ttl_seconds: float = Field(default=10, alias="decisionTtlSeconds", ge=0)


class OpaSettings(_Strict):
    url: str
    decision_path: str = Field(default="modelsign/decision", alias="decisionPath")
    timeout_seconds: float = Field(default=1.0, alias="timeoutSeconds", gt=0, le=2)


def _repository_prefix(value: str) -> str:
    if not value or any(c in value for c in "*?[]{}@") or "://" in value or value.endswith("/") or unsafe_character(value):
        raise ValueError(f"{value!r} must be a registry host or registry/repository prefix, without scheme, tag, digest or globs")
    host, slash, path = value.partition("/")
    host = host.lower()  # hosts are compared in their canonical, lowercase form
    return ("docker.io" if host == "index.docker.io" else host) + slash + path


RepositoryPrefix = Annotated[str, AfterValidator(_repository_prefix)]


class ImageMirror(_Strict):
    """Prefixes that serve the same content (as in an ImageDigestMirrorSet): a digest signed
    under one may be pulled under another when requireSignedReference is on."""

    source: RepositoryPrefix
    mirrors: list[RepositoryPrefix] = Field(min_length=1)

    @property
    def group(self) -> tuple[str, ...]:
        return (self.source, *self.mirrors)


class PinDigests(_Strict):
    """Which objects `/mutate` rewrites, each verified tag becoming `name@sha256:…`."""

    pods: bool = True
    kserve: bool = True
    # Deployment, Job, CronJob... templates: off by default, since GitOps tools that compare the
    # stored template with Git would see a change they did not make.
    templates: bool = False


class Metadata(_Strict):
    name: str = "default"


class PolicySpec(_Strict):
    api_version: Literal["modelsign.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionPolicy"]
    metadata: Metadata = Field(default_factory=Metadata)
    mode: Literal["enforce", "warn"] = "enforce"
    exempt_namespaces: list[str] = Field(default_factory=lambda: ["kube-system", "modelsign-system"], alias="exemptNamespaces")
    allowed_registries: list[HostGlob] = Field(default_factory=list, alias="allowedRegistries")
    insecure_registries: list[HostGlob] = Field(default_factory=list, alias="insecureRegistries")
    # registry host -> directory of OCI layouts (<dir>/<repository>), served from disk (demo, air-gapped)
    local_registries: dict[HostGlob, str] = Field(default_factory=dict, alias="localRegistries")
    require_digest: bool = Field(default=False, alias="requireDigest")
    # A signature counts only where its signed name is the pulled one (or a mirror of it).
    require_signed_reference: bool = Field(default=False, alias="requireSignedReference")
    # A signature that names no repository (cosign v3 bundles bind the digest only) says
    # nothing about where it was signed, so copying it alone to another repository sheds the
    # rules scoped to the original one. "ignore": such signatures never count.
    nameless_signatures: Literal["count", "ignore"] = Field(default="count", alias="namelessSignatures")
    image_mirrors: list[ImageMirror] = Field(default_factory=list, alias="imageMirrors")
    trusted_keys: dict[str, TrustedKeySpec] = Field(default_factory=dict, alias="trustedKeys")
    rules: list[Rule] = Field(default_factory=list)
    storage_uris: StorageUris = Field(default_factory=StorageUris, alias="storageUris")
    # Must leave room for the policy step inside the API server's webhook timeout (10 s in manifests/).
    deadline_seconds: float = Field(default=8.0, alias="deadlineSeconds", gt=0, le=9)
    registry: RegistryAccess = Field(default_factory=RegistryAccess)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    limits: VerificationLimits = Field(default_factory=VerificationLimits)
    pin_digests: PinDigests = Field(default_factory=PinDigests, alias="pinDigests")
    opa: OpaSettings | None = None
    environments: Environments = Field(default_factory=Environments)

    @model_validator(mode="after")
    def _known_keys(self) -> PolicySpec:
        if not any(rule.require.signed_by for rule in self.rules):
            raise ValueError("rules: at least one rule with require.signedBy is needed; artifacts no signing rule covers are denied")
        known = set(self.trusted_keys)
        for index, rule in enumerate(self.rules):
            lists = [("signedBy", rule.require.signed_by)]
            lists += [("scan.signedBy", rule.require.scan.signed_by)] if rule.require.scan else []
            lists += [("approval.signedBy", rule.require.approval.signed_by)] if rule.require.approval else []
            lists += [("evaluation.signedBy", rule.require.evaluation.signed_by)] if rule.require.evaluation else []
            lists += [(f"attestations[{i}].signedBy", item.signed_by) for i, item in enumerate(rule.require.attestations)]
            for field, names in lists:
                for position, name in enumerate(names):
                    if name not in known:
                        raise ValueError(
                            f"rules[{index}].require.{field}[{position}]: unknown key {name!r}{hint(name, known)} "
                            f"(trustedKeys: {', '.join(sorted(known)) or 'none'})"
                        )
            approval = rule.require.approval
            if approval and not approval.environment and not (self.environments.mappings or self.environments.namespace_label):
                raise ValueError(f"rules[{index}].require.approval: name an environment, or map namespaces to environments under environments")
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        return self


@dataclass(frozen=True)
class LoadedPolicy:
    spec: PolicySpec
    source: str  # where it came from, for messages
    anchors: dict[str, TrustAnchor]
    key_fingerprints: dict[str, str]  # name -> cosign key id or keyless identity description
    rego_sources: dict[str, str]  # filename -> text
    policy_hash: str
    base_dir: Path  # relative paths in the policy are relative to this

    @property
    def name(self) -> str:
        return self.spec.metadata.name

    def registry_options(self) -> RegistryOptions:
        access = self.spec.registry
        return RegistryOptions(
            insecure_registries=tuple(self.spec.insecure_registries),
            ca_file=_resolve(self.base_dir, access.ca_file) if access.ca_file else None,
            timeout_seconds=access.timeout_seconds,
            connect_timeout_seconds=min(access.timeout_seconds, 2.0),
            retries=access.retries,
            backoff_seconds=0.05,
            docker_config=_resolve(self.base_dir, access.docker_config) if access.docker_config else None,
        )

    def local_registries(self) -> dict[str, Path]:
        return {host: _resolve(self.base_dir, directory) for host, directory in self.spec.local_registries.items()}

    def registry_allowed(self, registry: str) -> bool:
        return any(fnmatch.fnmatchcase(registry, pattern) for pattern in self.spec.allowed_registries)

    @functools.cached_property
    def attestation_types(self) -> set[str]:
        """The attestations some rule needs (none: they are not even fetched)."""
        types = set()
        for rule in self.spec.rules:
            if rule.require.scan:
                types.add(mt.VULN_PREDICATE)
            if rule.require.approval:
                # requests too: the keys that signed them never count as approvers
                types.update((mt.APPROVAL_PREDICATE, mt.APPROVAL_REQUEST_PREDICATE))
            if rule.require.evaluation:
                types.add(mt.EVALUATION_PREDICATE)
            types.update(item.type for item in rule.require.attestations)
        return types

    @functools.cached_property
    def named_attestation_types(self) -> frozenset[str]:
        """Predicate types some rule names under require.attestations: their predicates reach the Rego input."""
        return frozenset(item.type for rule in self.spec.rules for item in rule.require.attestations)

    @functools.cached_property
    def evaluation_metrics(self) -> frozenset[str]:
        """Metric names some evaluation rule bounds: only these reach the Rego input."""
        return frozenset(name for rule in self.spec.rules if rule.require.evaluation for name in rule.require.evaluation.metrics)

    @functools.cached_property
    def mirror_groups(self) -> tuple[tuple[str, ...], ...]:
        return tuple(mirror.group for mirror in self.spec.image_mirrors)

    @functools.cached_property
    def needs_environment(self) -> bool:
        """Some approval rule takes its environment from the request's namespace."""
        return any(rule.require.approval is not None and rule.require.approval.environment is None for rule in self.spec.rules)

    def data_document(self) -> dict[str, Any]:
        """What the Rego policy sees as `data.modelsign.config` (durations in seconds)."""
        document = self.spec.model_dump(mode="json", by_alias=True, exclude={"trusted_keys", "registry", "cache", "opa", "api_version", "kind", "local_registries", "environments", "image_mirrors", "limits", "pin_digests"})
        for rule in document["rules"]:
            scan = rule["require"].get("scan")
            if scan:
                scan["maxAgeSeconds"] = parse_duration(scan["maxAge"])
            evaluation = rule["require"].get("evaluation")
            if evaluation:
                evaluation["maxAgeSeconds"] = parse_duration(evaluation["maxAge"])
        types = self.attestation_types
        return {"name": self.name, "hash": self.policy_hash, **document, "trustedKeys": self.key_fingerprints,
                # lets the Rego skip the scan, approval, evaluation and attestation rules at once when no rule asks for them
                "requiresScans": mt.VULN_PREDICATE in types, "requiresApprovals": mt.APPROVAL_PREDICATE in types,
                "requiresEvaluations": mt.EVALUATION_PREDICATE in types, "requiresAttestations": bool(self.named_attestation_types)}


def read_policy_document(text: str | bytes, *, source: str) -> PolicySource:
    """The AdmissionPolicy document in `text` (itself, or held by a ConfigMap), with lines;
    YAML errors and duplicate keys raise PolicyError naming the line."""
    try:
        read = read_policy_source(text, source=source)
    except PolicyYamlError as exc:
        raise PolicyError(str(exc), hint=POLICY_YAML_HINT) from None
    document = read.document
    if isinstance(document, dict) and isinstance(document.get("security"), dict) and "kind" not in document:
        raise PolicyError(f"{read.source} is a KitOps security policy, not a modelsign AdmissionPolicy",
                          hint=f"convert it with `modelsign policy convert {source}` and review what it reports")
    if not isinstance(document, dict):
        raise PolicyError(f"{read.source} must be a mapping with apiVersion {API_VERSION} and kind {POLICY_KIND}")
    return read


def validate_spec(read: PolicySource) -> PolicySpec:
    """The schema check, every problem with its line and a "did you mean" where one fits."""
    try:
        return PolicySpec.model_validate(read.document)
    except ValidationError as exc:
        problems = describe_errors(exc.errors(), PolicySpec, read)
        raise PolicyError("; ".join(problems), hint="see the policy reference in README.md (`modelsign policy validate FILE` lists every problem)") from None


def parse_policy(text: str | bytes, *, source: str = "policy", base_dir: Path | None = None, rego_sources: dict[str, str] | None = None,
                 key_dir: Path | None = None) -> LoadedPolicy:
    """`key_dir`: where to look for a trusted key file whose path does not exist here, by its
    file name (a policy written for the cluster names the Secret's mount, /etc/modelsign/keys)."""
    spec = validate_spec(read_policy_document(text, source=source))
    base = base_dir or Path.cwd()
    anchors, fingerprints = _load_anchors(spec, base, source, key_dir)
    for field, value in (("registry.caFile", spec.registry.ca_file), ("registry.dockerConfig", spec.registry.docker_config),
                         ("environments.kubeconfig", spec.environments.kubeconfig)):
        if value and not _resolve(base, value).is_file():
            raise PolicyError(f"{source}: {field}: {_resolve(base, value)} does not exist")
    rego = rego_sources if rego_sources is not None else default_rego_sources()
    digest = hashlib.sha256()
    digest.update(json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True).encode())
    digest.update(json.dumps(fingerprints, sort_keys=True).encode())
    for name in sorted(rego):
        digest.update(name.encode() + b"\0" + rego[name].encode())
    return LoadedPolicy(
        spec=spec, source=source, anchors=anchors, key_fingerprints=fingerprints, rego_sources=rego,
        policy_hash="sha256:" + digest.hexdigest(), base_dir=base_dir or Path.cwd(),
    )


def load_policy(path: Path, *, rego_dir: Path | None = None, key_dir: Path | None = None) -> LoadedPolicy:
    text = read_limited(path, what="policy file", max_bytes=MAX_POLICY_BYTES, error=PolicyError,
                        missing_hint="pass --config with an AdmissionPolicy YAML file")
    rego = load_rego_dir(rego_dir) if rego_dir else None
    return parse_policy(text, source=str(path), base_dir=path.parent, rego_sources=rego, key_dir=key_dir)


def _key_file(base_dir: Path, value: str, key_dir: Path | None) -> Path:
    path = _resolve(base_dir, value)
    return key_dir / path.name if key_dir is not None and not path.exists() else path


def _load_anchors(spec: PolicySpec, base_dir: Path, source: str, key_dir: Path | None = None) -> tuple[dict[str, TrustAnchor], dict[str, str]]:
    anchors: dict[str, TrustAnchor] = {}
    fingerprints: dict[str, str] = {}
    for name, key in spec.trusted_keys.items():
        field = f"{source}: trustedKeys.{name}"
        try:
            if key.file:
                anchor: TrustAnchor = load_public_key_file(_key_file(base_dir, key.file, key_dir), name=name)
            elif key.pem:
                anchor = load_public_key_pem(key.pem.encode(), name=name, source=f"trustedKeys.{name}.pem")
            else:
                assert key.keyless is not None
                anchor = KeylessIdentity(
                    name=name,
                    subject=key.keyless.subject,
                    subject_regexp=key.keyless.subject_regexp,
                    issuer=key.keyless.issuer,
                    issuer_regexp=key.keyless.issuer_regexp,
                    trusted_root=_resolve(base_dir, key.trusted_root.file) if key.trusted_root else None,
                )
                if anchor.trusted_root is not None and not anchor.trusted_root.is_file():
                    raise PolicyError(f"trusted root {anchor.trusted_root} does not exist")
        except ModelsignError as exc:
            raise PolicyError(f"{field}: {exc.message}", hint=exc.hint) from None
        anchors[name] = anchor
        fingerprints[name] = anchor.key_id if isinstance(anchor, PublicKey) else "keyless:" + anchor.describe()
    return anchors, fingerprints


def referenced_files(document: Any, base_dir: Path, key_dir: Path | None = None) -> list[Path]:
    """Files a policy document names (keys, trusted roots, CA, Docker config), read leniently
    so that even a policy that failed validation can be watched for the fix."""
    if is_configmap(document):
        held = (document.get("data") or {}).get("policy.yaml") if isinstance(document.get("data"), dict) else None
        try:
            document = yaml.safe_load(held) if isinstance(held, str) else None
        except (yaml.YAMLError, RecursionError):
            document = None
    document = document if isinstance(document, dict) else {}
    names: list[Any] = []
    key_files: list[Path] = []
    keys = document.get("trustedKeys")
    for key in keys.values() if isinstance(keys, dict) else []:
        if isinstance(key, dict):
            if isinstance(key.get("file"), str) and key["file"]:
                key_files.append(_key_file(base_dir, key["file"], key_dir))
            root = key.get("trustedRoot")
            names.append(root.get("file") if isinstance(root, dict) else None)
    registry = document.get("registry")
    if isinstance(registry, dict):
        names += [registry.get("caFile"), registry.get("dockerConfig")]
    environments = document.get("environments")
    if isinstance(environments, dict):
        names.append(environments.get("kubeconfig"))
    return key_files + [_resolve(base_dir, name) for name in names if isinstance(name, str) and name]


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def default_rego_dir() -> Path:
    """policies/ of a checkout (editable install), else the copy a wheel installs under
    <prefix>/share/modelsign/policies."""
    checkout = Path(__file__).resolve().parents[2]  # webhook/admission/config.py -> the checkout
    for candidate in (checkout / "policies", Path(sys.prefix) / "share" / "modelsign" / "policies"):
        if (candidate / "modelsign.rego").is_file():
            return candidate
    raise UsageError("cannot find the default Rego policy (policies/modelsign.rego)")


def load_rego_dir(directory: Path) -> dict[str, str]:
    sources = {}
    for path in sorted(directory.glob("*.rego")):
        if path.name.endswith("_test.rego"):
            continue
        try:
            sources[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read Rego file {path}: {exc}") from None
    if not sources:
        raise PolicyError(f"no .rego files in {directory}")
    return sources


def default_rego_sources() -> dict[str, str]:
    return load_rego_dir(default_rego_dir())
