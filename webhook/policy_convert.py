"""`modelsign policy convert`: the KitOps guide's security policy as a modelsign AdmissionPolicy.

The guide's policy (a ConfigMap holding `policy.yaml`, or that file alone) says what users
want in words modelsign does not use. Each field is mapped where modelsign has a meaning for
it, and reported line by line: what it became, what the user still has to supply (an OIDC
issuer for a keyless identity, the scanner's public key), and what has no admission meaning
(and where that concern lives instead). Nothing is guessed silently: what needs input is
left out of the policy, so the written policy does not load until it is supplied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from webhook.admission.policy_hints import hint
from webhook.admission.policy_yaml import PolicySource

API_VERSION = "modelsign.dev/v1alpha1"
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# The guide's fields, by section (anything else is reported as unknown, with a suggestion).
KNOWN = {
    (): ("security",),
    ("security",): ("signing", "scanning", "access_control", "audit"),
    ("security", "signing"): ("required", "trusted_keys"),
    ("security", "scanning"): ("enabled", "vulnerability_threshold", "scan_on_push"),
    ("security", "access_control"): ("registry_auth", "rbac_enabled", "allowed_registries"),
    ("security", "audit"): ("log_all_operations", "retention_days", "compliance_mode"),
}
_EMAIL = re.compile(r"[^@\s/]+@[^@\s/]+\.[^@\s/]+")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9*]+)?")

MAPPED, NEEDS, NO_EQUIVALENT, UNKNOWN = "mapped", "needs input", "no equivalent", "unknown"


@dataclass(frozen=True)
class Finding:
    """What one field of the input became."""

    line: int | None
    path: str  # security.signing.trusted_keys[0]
    value: Any
    status: str  # mapped | needs input | no equivalent | unknown
    text: str


@dataclass(frozen=True)
class ConvertOptions:
    name: str = "kitops-security-policy"
    issuers: dict[str, str] = field(default_factory=dict)  # identity -> OIDC issuer ("" -> the default for all)
    key_files: dict[str, str] = field(default_factory=dict)  # trusted_keys entry -> public key file
    scanner_key: str | None = None
    scan_max_age: str = "168h"


@dataclass
class Conversion:
    policy: dict[str, Any]
    findings: list[Finding]
    server_flags: list[str]  # `modelsign webhook serve` flags the input maps to

    @property
    def complete(self) -> bool:
        return not any(f.status in (NEEDS, UNKNOWN) for f in self.findings)


class _Converter:
    def __init__(self, read: PolicySource, options: ConvertOptions) -> None:
        self.read = read
        self.options = options
        self.findings: list[Finding] = []
        self.flags: list[str] = []
        self.keys: dict[str, dict[str, Any]] = {}
        self.signers: list[str] = []

    def note(self, path: tuple[Any, ...], value: Any, status: str, text: str) -> None:
        shown = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        self.findings.append(Finding(self.read.line_of(path), shown, value, status, text))

    def section(self, path: tuple[str, ...]) -> dict[str, Any]:
        node: Any = self.read.document
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.note(path, node, UNKNOWN, "must be a mapping of the fields below it; it is ignored")
            return {}
        for key in node:
            if key not in KNOWN.get(path, ()) and path in KNOWN:
                self.note((*path, key), node[key], UNKNOWN, f"not a field of the KitOps policy{hint(str(key), KNOWN[path])}; ignored")
        return node

    # -- signing -------------------------------------------------------------------------

    def signing(self) -> str | None:
        """Maps the trusted keys; returns the signing rule's mode override (None: enforce)."""
        section = self.section(("security", "signing"))
        base = ("security", "signing")
        required = section.get("required", True)
        keys = section.get("trusted_keys")
        if not isinstance(keys, list) or not keys:
            self.note((*base, "trusted_keys"), keys, NEEDS,
                      "no trusted keys: modelsign admits only what a trusted key signed; list the teams' keys or identities here, "
                      "or add them to trustedKeys and rules[0].require.signedBy in the written policy")
        else:
            for index, entry in enumerate(keys):
                self.trusted_key((*base, "trusted_keys", index), entry)
        if "required" in section:
            if required is True:
                self.note((*base, "required"), True, MAPPED,
                          "rule `signed` (rules[0]) denies any image or model not signed by one of the trusted keys (require.signedBy)")
            else:
                self.note((*base, "required"), required, MAPPED,
                          "modelsign has no unsigned mode; rule `signed` runs in mode: warn, which admits unsigned artifacts "
                          "with a warning (\"modelsign would deny\") and records them in the audit trail")
        return "warn" if required is False else None

    def trusted_key(self, path: tuple[Any, ...], entry: Any) -> None:
        if not isinstance(entry, str) or not entry.strip():
            self.note(path, entry, UNKNOWN, "a trusted key must be a string (an email, a URI identity, a key file or a PEM key); ignored")
            return
        entry = entry.strip()
        name = self.key_name(entry)
        given_file = self.options.key_files.get(entry)
        if given_file:
            self.keys[name] = {"file": given_file}
            self.signers.append(name)
            self.note(path, entry, MAPPED, f"trustedKeys.{name}: public key file {given_file} (--key)")
        elif entry.startswith("-----BEGIN PUBLIC KEY-----"):
            self.keys[name] = {"pem": entry}
            self.signers.append(name)
            self.note(path, "PEM public key", MAPPED, f"trustedKeys.{name}: this PEM public key")
        elif entry.endswith((".pub", ".pem")) or entry.startswith(("/", "./", "../")):
            self.keys[name] = {"file": entry}
            self.signers.append(name)
            self.note(path, entry, MAPPED, f"trustedKeys.{name}: public key file {entry} (relative to the written policy; it must exist there)")
        elif _EMAIL.fullmatch(entry) or entry.startswith(("https://", "http://")):
            self.keyless(path, entry, name)
        else:
            self.keys[name] = {"file": f"keys/{name}.pub"}
            self.signers.append(name)
            self.note(path, entry, NEEDS,
                      f"a key name, not a key: written as trustedKeys.{name} {{file: keys/{name}.pub}}; put {entry}'s public key "
                      f"there (`modelsign public-key --key {name}.key > keys/{name}.pub`), or pass --key {entry}=FILE")

    def keyless(self, path: tuple[Any, ...], identity: str, name: str) -> None:
        kind = "an email" if "@" in identity and "://" not in identity else "a URI"
        issuer = self.options.issuers.get(identity) or self.options.issuers.get("")
        self.signers.append(name)
        if issuer:
            self.keys[name] = {"keyless": {"subject": identity, "issuer": issuer}}
            self.note(path, identity, MAPPED, f"keyless identity ({kind} in a Sigstore certificate): trustedKeys.{name} "
                                              f"{{keyless: {{subject: {identity}, issuer: {issuer}}}}}")
            return
        self.keys[name] = {"keyless": {"subject": identity}}
        example = GITHUB_ISSUER if "github.com" in identity else "https://accounts.google.com, https://login.microsoftonline.com/<tenant>/v2.0, ..."
        self.note(path, identity, NEEDS,
                  f"a keyless identity ({kind} in a Sigstore certificate), written as trustedKeys.{name}; an identity is only "
                  f"trusted together with the OIDC issuer that vouches for it, which the KitOps policy does not say: pass "
                  f"--oidc-issuer {identity}=ISSUER (e.g. {example}), or --key {identity}=FILE to trust a key file instead")

    def key_name(self, entry: str) -> str:
        if _EMAIL.fullmatch(entry):
            base = entry.split("@")[0]
        elif "://" in entry:
            base = entry.rstrip("/").rsplit("/", 1)[-1]
        elif entry.startswith("-----BEGIN"):
            base = "pem-key"
        else:
            base = entry.rsplit("/", 1)[-1].removesuffix(".pub").removesuffix(".pem")
        base = re.sub(r"[^A-Za-z0-9-]+", "-", base).strip("-").lower() or "key"
        name, number = base, 2
        while name in self.keys or name == "scanner":
            name, number = f"{base}-{number}", number + 1
        return name

    # -- scanning ------------------------------------------------------------------------

    def scanning(self) -> dict[str, Any] | None:
        section = self.section(("security", "scanning"))
        base = ("security", "scanning")
        if not section:
            return None
        if "scan_on_push" in section:
            self.note((*base, "scan_on_push"), section["scan_on_push"], NO_EQUIVALENT,
                      "no admission meaning: modelsign decides when a workload is admitted, not when an artifact is pushed. "
                      "Scan in CI after the push with `modelsign scan REF --key scanner.key`; the admission rule then requires "
                      "that signed scan (and `modelsign report cluster` flags scans that have grown old)")
        if section.get("enabled", True) is not True:
            self.note((*base, "enabled"), section.get("enabled"), MAPPED, "scanning off: no scan requirement in the rule")
            return None
        threshold = section.get("vulnerability_threshold")
        if threshold is None:
            limits = {"CRITICAL": 0}
            self.note((*base, "enabled"), True, MAPPED, "no vulnerability_threshold: CRITICAL findings are denied (maxSeverity {CRITICAL: 0})")
        else:
            level = str(threshold).upper()
            if level not in SEVERITIES:
                self.note((*base, "vulnerability_threshold"), threshold, UNKNOWN,
                          f"not a severity{hint(level, SEVERITIES)} (one of {', '.join(SEVERITIES)}); CRITICAL findings are denied meanwhile")
                limits = {"CRITICAL": 0}
            else:
                limits = {s: 0 for s in SEVERITIES[: SEVERITIES.index(level) + 1]}
                shown = ", ".join(f"{s}: 0" for s in limits)
                self.note((*base, "vulnerability_threshold"), threshold, MAPPED,
                          f"{level} and above are denied: rules[0].require.scan.maxSeverity {{{shown}}}; findings below {level} "
                          f"are allowed. The scan must be signed and at most {self.options.scan_max_age} old (maxAge)")
        if "enabled" in section:
            self.note((*base, "enabled"), True, MAPPED, "rules[0].require.scan: a signed scan attestation is required at admission")
        scanner = self.options.scanner_key
        self.keys["scanner"] = {"file": scanner or "keys/scanner.pub"}
        if scanner:
            self.note((*base, "vulnerability_threshold"), threshold, MAPPED, f"scans count when signed by trustedKeys.scanner ({scanner}, --scanner-key)")
        else:
            self.note((*base, "vulnerability_threshold"), threshold, NEEDS,
                      "a scan counts only when signed by the scanner's key, which the KitOps policy does not name: written as "
                      "trustedKeys.scanner {file: keys/scanner.pub}; create it (`modelsign keygen --output-prefix keys/scanner`, "
                      "the private half stays in CI) or pass --scanner-key FILE")
        return {"signedBy": ["scanner"], "maxAge": self.options.scan_max_age, "maxSeverity": limits}

    # -- access control and audit -----------------------------------------------------------

    def access_control(self) -> list[str]:
        section = self.section(("security", "access_control"))
        base = ("security", "access_control")
        if "registry_auth" in section:
            self.note((*base, "registry_auth"), section["registry_auth"], NO_EQUIVALENT,
                      "registry credentials are the webhook's, not policy: it pulls signatures with the Docker config.json of "
                      "registry.dockerConfig (or the default one); set that in the written policy if a registry needs them")
        if "rbac_enabled" in section:
            self.note((*base, "rbac_enabled"), section["rbac_enabled"], NO_EQUIVALENT,
                      "Kubernetes RBAC is the cluster's (who may create Pods); modelsign's own permissions are in "
                      "manifests/base/rbac.yaml. The admission webhook applies to everyone RBAC lets through")
        registries = section.get("allowed_registries")
        if registries is None:
            self.note((*base, "allowed_registries"), None, NEEDS,
                      "no allowed registries: allowedRegistries [] denies every image; list the registry hosts in the written policy")
            return []
        hosts: list[str] = []
        for index, entry in enumerate(registries if isinstance(registries, list) else [registries]):
            path = (*base, "allowed_registries", index)
            host = str(entry).strip().removeprefix("https://").removeprefix("http://").rstrip("/")
            host, _, rest = host.partition("/")
            if not _HOST.fullmatch(host):
                self.note(path, entry, UNKNOWN, "not a registry host (host or host:port); ignored")
                continue
            hosts.append(host.lower())
            extra = (f"; the path /{rest} cannot be expressed in allowedRegistries (hosts only): narrow it with "
                     f"rules[0].artifacts: [\"{host.lower()}/{rest}/**\"]") if rest else ""
            self.note(path, entry, MAPPED, f"allowedRegistries: {host.lower()}" + extra)
        return hosts

    def audit(self) -> None:
        section = self.section(("security", "audit"))
        base = ("security", "audit")
        if "log_all_operations" in section:
            if section["log_all_operations"] is True:
                self.flags += ["--audit-log", "/var/log/modelsign/audit.jsonl", "--audit-key", "audit.key"]
            self.note((*base, "log_all_operations"), section["log_all_operations"], MAPPED,
                      "every admission decision (and policy load, key change, error) is a hash-chained audit record, made durable "
                      "before the answer: `modelsign webhook serve --audit-log DIR/audit.jsonl --audit-key audit.key` (server flags, "
                      "not policy; the shipped Deployment sets them)")
        if "retention_days" in section:
            days = section["retention_days"]
            if isinstance(days, (int, float)) and not isinstance(days, bool) and days > 0:
                self.flags += ["--audit-retention-days", f"{days:g}"]
                self.note((*base, "retention_days"), days, MAPPED,
                          f"the audit retention: `modelsign webhook serve --audit-retention-days {days:g}` (a server flag; files are "
                          "removed once the audit key's signed checkpoints prove them that old)")
            else:
                self.note((*base, "retention_days"), days, UNKNOWN, "must be a positive number of days; ignored")
        if "compliance_mode" in section:
            self.note((*base, "compliance_mode"), section["compliance_mode"], NO_EQUIVALENT,
                      "modelsign has no compliance modes: the evidence auditors ask for is the verified audit trail and its export "
                      "(`modelsign audit export --format pdf --signing-key audit.key`, with a signed manifest), and the compliance "
                      "report of what runs now (`modelsign report cluster`)")


def convert(read: PolicySource, options: ConvertOptions | None = None) -> Conversion:
    """The AdmissionPolicy document and the findings, one or more per input field."""
    converter = _Converter(read, options or ConvertOptions())
    document = read.document
    if not isinstance(document, dict) or not isinstance(document.get("security"), dict):
        raise ValueError(f"{read.source} is not a KitOps security policy (no `security:` mapping at the top)")
    converter.section(())
    converter.section(("security",))
    mode = converter.signing()
    scan = converter.scanning()
    hosts = converter.access_control()
    converter.audit()
    require: dict[str, Any] = {"signedBy": converter.signers}
    if scan:
        require["scan"] = scan
    rule: dict[str, Any] = {"name": "signed", "artifacts": ["**"], "namespaces": ["*"], "require": require}
    if mode:
        rule["mode"] = mode
    policy = {
        "apiVersion": API_VERSION, "kind": "AdmissionPolicy", "metadata": {"name": converter.options.name}, "mode": "enforce",
        "exemptNamespaces": ["kube-system", "kube-public", "kube-node-lease", "modelsign-system"],
        "allowedRegistries": hosts, "trustedKeys": converter.keys, "rules": [rule],
    }
    findings = sorted(converter.findings, key=lambda f: (f.line or 0, f.path))
    return Conversion(policy=policy, findings=findings, server_flags=converter.flags)


def render_report(conversion: Conversion, source: str) -> str:
    """The findings, line by line, then what is left to do."""
    lines = [f"Converted {source} (KitOps security policy) to a modelsign AdmissionPolicy:"]
    for finding in conversion.findings:
        where = f"line {finding.line}" if finding.line else "-"
        value = finding.value if not isinstance(finding.value, (dict, list)) else "..."
        lines.append(f"  {where:<8} {finding.status.upper():<14} {finding.path}: {value}")
        lines.append(f"  {'':<8} {'':<14} -> {finding.text}")
    needs = [f for f in conversion.findings if f.status in (NEEDS, UNKNOWN)]
    if conversion.server_flags:
        lines.append(f"Server flags: modelsign webhook serve ... {' '.join(conversion.server_flags)}")
    if needs:
        lines.append(f"{len(needs)} item(s) need you before the policy loads (see NEEDS INPUT / UNKNOWN above); then run "
                     "`modelsign policy validate` on the written policy.")
    else:
        lines.append("Complete: the written policy loads as it is (check it with `modelsign policy validate`).")
    return "\n".join(lines)
