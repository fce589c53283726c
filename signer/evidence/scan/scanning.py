"""`modelsign scan`: run trivy (and the model-file check), or take a report CI produced, and
turn the result into a cosign vulnerability predicate to sign as an attestation.

Predicate (`https://cosign.sigstore.dev/attestation/vuln/v1`):
  {"invocation": {...}, "scanner": {"uri", "version", "db": {"uri", "version"},
   "result": {severityCounts, fixableSeverityCounts, secretCount, misconfigurationCount,
              vulnerabilities[], secrets[], misconfigurations[], truncated,
              modelFiles: {scanner, unsafeFiles, suspiciousFiles, files[]} | null}},
   "metadata": {"scanStartedOn", "scanFinishedOn"}}
`modelFiles` is null when no model files were examined (images, --from-report).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import certifi

from signer.errors import FormatError, UsageError
from signer.evidence.scan.modelfiles import scan_model_files
from signer.evidence.scan.safe_extract import shown
from signer.evidence.scan.trivy import SEVERITIES, ScanSummary, Trivy, load_report, summarize_report
from signer.evidence.scan.unpack import UnpackLimits, Unpacked, unpack_image, unpack_modelkit
from signer.progress import PhasedProgress
from signer.jsonread import mapping, text
from signer.modelkit.kitfile import is_modelkit
from signer.oci.auth import load_credentials
from signer.oci.manifest import Descriptor, Manifest
from signer.oci.registry import RegistryOptions
from signer.oci.stores import Stores
from signer.references import ArtifactReference, ImageReference, is_loopback_host
from signer.signatures.artifacts import resolve_target


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ScanOutcome:
    reference: str
    digest: str
    predicate: dict[str, Any]


def vuln_predicate(summary: ScanSummary, model_files: dict[str, Any] | None, *, scanner_version: str, db_version: str,
                   started: str, finished: str, parameters: list[str]) -> dict[str, Any]:
    return {
        "invocation": {"parameters": parameters, "uri": "", "event_id": "", "builder.id": "modelsign"},
        "scanner": {
            "uri": f"pkg:github/aquasecurity/trivy@{scanner_version}",
            "version": scanner_version,
            "db": {"uri": "", "version": db_version},
            "result": {**summary.to_json(), "modelFiles": model_files},
        },
        "metadata": {"scanStartedOn": started, "scanFinishedOn": finished},
    }


def _check_report_subject(report: dict[str, Any], path: Path, digest: str, pinned: str) -> None:
    """A report pulled from a registry names the digests it scanned: refuse to attest it onto
    another artifact. Reports of tarballs and directories carry none; their ArtifactName and
    ImageID are recorded in the predicate instead."""
    repo_digests = [d for d in mapping(report.get("Metadata")).get("RepoDigests") or [] if isinstance(d, str)]
    if repo_digests and not any(d.endswith("@" + digest) for d in repo_digests):
        raise UsageError(f"report {path} is about {', '.join(repo_digests[:3])}, not {pinned}",
                         hint="attest the report of this very digest (trivy image REF@sha256:...)")


def trivy_registry_env(registry: str, options: RegistryOptions, workdir: Path) -> dict[str, str]:
    """What trivy needs to pull from `registry` as we would: our credentials (in its
    environment, never on its command line) and our extra CA bundle added to the system ones."""
    env: dict[str, str] = {}
    credentials = load_credentials(registry, options.docker_config)
    if options.docker_config is not None:
        env["DOCKER_CONFIG"] = str(options.docker_config.parent)  # identity tokens: trivy exchanges them itself
    if credentials is not None and credentials.username and not credentials.identity_token:
        env["TRIVY_USERNAME"], env["TRIVY_PASSWORD"] = credentials.username, credentials.password or ""
    if options.ca_file is not None:
        bundle = workdir / "ca-bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + options.ca_file.read_bytes())
        env["SSL_CERT_FILE"] = str(bundle)  # Go reads its roots from here; the system roots are kept in the bundle
    return env


@dataclass(frozen=True)
class _Findings:
    summary: ScanSummary
    scanner_version: str
    db_version: str
    started: str
    finished: str
    parameters: list[str]


def scan_artifact(
    stores: Stores,
    reference: ArtifactReference,
    *,
    trivy: Trivy | None = None,
    from_report: Path | None = None,
    scanners: str = "vuln,secret,misconfig",
    offline: bool = False,
    limits: UnpackLimits = UnpackLimits(),
    image_model_files: bool = False,
    progress: PhasedProgress | None = None,
) -> ScanOutcome:
    """Scan the digest `reference` resolves to, once. ModelKits are unpacked: trivy scans the
    code/docs/datasets and our model-file check reads every file. With `from_report` the
    findings come from that trivy report, but the model-file check still runs.
    `image_model_files`: unpack an image's layers for the model-file check too (a modelcar).
    `progress` is told each step: pulling and unpacking (bytes), the model-file check, trivy."""
    resolved, _ = resolve_target(stores, reference)
    repository = stores.repository(reference)
    manifest = resolved.manifest or repository.fetch_manifest(resolved.digest)
    kit = manifest if manifest is not None and is_modelkit(manifest) else None
    pinned = str(resolved.pinned)
    if from_report is None and trivy is None:
        raise UsageError("no trivy to run", hint="install trivy, pass --trivy PATH, or use --from-report")
    if from_report is None and kit is None and not isinstance(reference, ImageReference):
        raise UsageError(f"{reference} is an image in a local layout; trivy cannot pull it from there", hint="scan it in a registry, or attest a report with --from-report")
    with tempfile.TemporaryDirectory(prefix="modelsign-scan-") as workdir:
        unpacked = None
        if kit is not None:
            _phase(progress, f"pulling and unpacking {len(kit.layers)} layer(s) of {pinned}", sum(layer.size for layer in kit.layers))
            unpacked = unpack_modelkit(repository, kit, Path(workdir), limits, progress)
        elif image_model_files:
            if manifest is None or manifest.is_index:
                raise UsageError(f"{pinned} is an image index; the model-file check needs one image", hint="scan the platform image's digest")
            _phase(progress, f"pulling and unpacking {len(manifest.layers)} layer(s) of {pinned}", sum(layer.size for layer in manifest.layers))
            unpacked = unpack_image(repository, manifest, Path(workdir), limits, progress)
        if unpacked is not None:
            _phase(progress, f"checking {unpacked.files} unpacked entries for unsafe model files")
        model_files = _model_files(unpacked) if unpacked is not None else None
        if from_report is None:
            _phase(progress, f"trivy ({scanners})")
        if from_report is not None:
            findings = _report_findings(from_report, resolved.digest, pinned)
        elif kit is not None and unpacked is not None:
            findings = _trivy_findings(trivy, ["fs", "--scanners", scanners, "<unpacked ModelKit layers>"],
                                       lambda t: [t.scan("fs", str(unpacked.context), scanners=scanners, offline=offline)])
        else:
            assert isinstance(reference, ImageReference)
            insecure = ["--insecure"] if is_loopback_host(reference.registry) or stores.options.is_insecure(reference.registry) else []
            env = trivy_registry_env(reference.registry, stores.options, Path(workdir))
            # An index is scanned platform by platform; its attestation sums them.
            images = [str(reference.pinned(d.digest)) for d in _platform_images(manifest)] if manifest is not None and manifest.is_index else [pinned]
            findings = _trivy_findings(trivy, ["image", "--scanners", scanners, *images],
                                       lambda t: [t.scan("image", image, scanners=scanners, offline=offline, extra=insecure, env=env) for image in images])
    predicate = vuln_predicate(findings.summary, model_files, scanner_version=findings.scanner_version, db_version=findings.db_version,
                               started=findings.started, finished=findings.finished, parameters=findings.parameters)
    return ScanOutcome(reference=pinned, digest=resolved.digest, predicate=predicate)


def _phase(progress: PhasedProgress | None, label: str, total: int | None = None) -> None:
    if progress is not None:
        progress.phase(label, total)


def _report_findings(path: Path, digest: str, pinned: str) -> _Findings:
    report = load_report(path)
    _check_report_subject(report, path, digest, pinned)
    created = text(report.get("CreatedAt")) or now_rfc3339()
    return _Findings(
        summary=summarize_report(report), scanner_version=text(mapping(report.get("Trivy")).get("Version")) or "unknown", db_version="unknown",
        started=created, finished=created,
        parameters=["--from-report", path.name, f"ArtifactName={text(report.get('ArtifactName'))}", f"ImageID={text(mapping(report.get('Metadata')).get('ImageID'))}"],
    )


def _trivy_findings(trivy: Trivy | None, parameters: list[str], run: Callable[[Trivy], list[dict[str, Any]]]) -> _Findings:
    assert trivy is not None
    info = trivy.version()
    started = now_rfc3339()
    summary = ScanSummary()
    for report in run(trivy):
        summary.merge(summarize_report(report))
    return _Findings(summary=summary, scanner_version=str(info.get("Version", "unknown")),
                     db_version=str(mapping(info.get("VulnerabilityDB")).get("Version", "unknown")), started=started, finished=now_rfc3339(),
                     parameters=parameters)


def _platform_images(index: Manifest) -> list[Descriptor]:
    """The runnable images of an index (not attestation manifests, which say unknown/unknown)."""
    images = [d for d in index.manifests if (d.platform or {}).get("os") != "unknown"]
    if not images:
        raise UsageError(f"index {index.digest} lists no platform images to scan")
    return images


def _model_files(unpacked: Unpacked) -> dict[str, Any]:
    """One report over both trees, each file marked with the layer kind it came from."""
    try:
        context, models = scan_model_files(unpacked.context), scan_model_files(unpacked.models)
    except OSError as exc:  # a path the OS will not resolve (ENAMETOOLONG, ELOOP...): the check failed, it did not pass
        raise FormatError(f"the model-file check could not read {shown(str(exc.filename or unpacked.models))}: {exc.strerror or exc}",
                          hint="the unpacked artifact holds paths too long or too deep to read; it is hostile or broken, do not deploy it") from None
    context.files = [{**f, "layer": "context"} for f in context.files] + [{**f, "layer": "model"} for f in models.files]
    context.unsafe += models.unsafe
    context.suspicious += models.suspicious
    context.truncated = context.truncated or models.truncated
    return context.to_json()


def _unsafe_entry(entry: dict[str, Any]) -> str:
    """`model/x.bin (imports os.system)`: the file and why it is unsafe."""
    imports = [str(i) for i in entry.get("dangerousImports") or [] if isinstance(i, str)]
    why = f"imports {', '.join(imports[:3])}" if imports else text(entry.get("issue")) or text(entry.get("format")) or "unsafe"
    return f"{text(entry.get('path'))} ({why})"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def scan_facts(predicate: Any) -> dict[str, Any] | None:
    """What a policy needs from a (verified) vuln predicate. Strict: a missing or malformed
    count makes the whole predicate unusable (None), never a zero."""
    if not isinstance(predicate, dict):
        return None
    scanner = mapping(predicate.get("scanner"))
    result = mapping(scanner.get("result"))
    metadata = mapping(predicate.get("metadata"))

    def counts(name: str) -> dict[str, int] | None:
        raw = result.get(name)
        if not isinstance(raw, dict):
            return None
        checked = {s: _count(raw.get(s)) for s in SEVERITIES}
        return None if None in checked.values() else {s: int(n) for s, n in checked.items() if n is not None}

    severity, fixable, secrets = counts("severityCounts"), counts("fixableSeverityCounts"), _count(result.get("secretCount"))
    finished = metadata.get("scanFinishedOn")
    if severity is None or fixable is None or secrets is None or not isinstance(finished, str):
        return None
    model_files = result.get("modelFiles")
    if model_files is not None and (not isinstance(model_files, dict) or _count(model_files.get("unsafeFiles")) is None):
        return None
    files = mapping(model_files).get("files")
    top = [v for v in result.get("vulnerabilities") or [] if isinstance(v, dict)]

    def ids(severity_name: str, fixable_only: bool) -> list[str]:
        return list(dict.fromkeys(str(v.get("id")) for v in top if v.get("severity") == severity_name and (v.get("fixed") or not fixable_only)))[:5]

    return {
        "finishedOn": finished,
        "scanner": str(scanner.get("uri", "")),
        "severityCounts": severity,
        "fixableSeverityCounts": fixable,
        "secretCount": secrets,
        "unsafeModelFiles": model_files["unsafeFiles"] if isinstance(model_files, dict) else None,
        "unsafeFiles": [_unsafe_entry(f) for f in files if isinstance(f, dict) and f.get("safe") is False][:10] if isinstance(files, list) else [],
        "findings": {s: ids(s, False) for s in SEVERITIES},
        "fixableFindings": {s: ids(s, True) for s in SEVERITIES},
    }
