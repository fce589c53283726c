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
from typing import Any

import certifi

from signer.artifacts import resolve_target
from signer.errors import UsageError
from signer.jsonenc import mapping, text
from signer.modelfiles import scan_model_files
from signer.modelkit import is_modelkit
from signer.oci.auth import load_credentials
from signer.oci.registry import RegistryOptions
from signer.oci.stores import Stores
from signer.references import ArtifactReference, ImageReference, is_loopback_host
from signer.trivy import SEVERITIES, ScanSummary, Trivy, load_report, summarize_report
from signer.unpack import UnpackLimits, unpack_image, unpack_modelkit


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
) -> ScanOutcome:
    """`image_model_files`: also unpack an image's layers and check its model files (a KServe
    modelcar); ModelKits always get that check."""
    resolved, _ = resolve_target(stores, reference)
    repository = stores.repository(reference)
    started = now_rfc3339()
    if from_report is not None:
        report = load_report(from_report)
        _check_report_subject(report, from_report, resolved.digest, str(resolved.pinned))
        summary = summarize_report(report)
        version = text(mapping(report.get("Trivy")).get("Version")) or "unknown"
        created = text(report.get("CreatedAt")) or started
        subject = [f"ArtifactName={text(report.get('ArtifactName'))}", f"ImageID={text(mapping(report.get('Metadata')).get('ImageID'))}"]
        predicate = vuln_predicate(summary, None, scanner_version=version, db_version="unknown", started=created, finished=created,
                                   parameters=["--from-report", from_report.name, *subject])
        return ScanOutcome(reference=str(resolved.pinned), digest=resolved.digest, predicate=predicate)
    if trivy is None:
        raise UsageError("no trivy to run", hint="install trivy, pass --trivy PATH, or use --from-report")
    info = trivy.version()
    db = mapping(info.get("VulnerabilityDB"))
    manifest = resolved.manifest or repository.fetch_manifest(resolved.digest)
    model_files = None
    if manifest is not None and is_modelkit(manifest):
        with tempfile.TemporaryDirectory(prefix="modelsign-scan-") as workdir:
            unpacked = unpack_modelkit(repository, manifest, Path(workdir), limits)
            report = trivy.scan("fs", str(unpacked.context), scanners=scanners, offline=offline)
            model_report = scan_model_files(unpacked.context)
            model_layers = scan_model_files(unpacked.models)
            model_report.files = [{**f, "layer": "context"} for f in model_report.files] + [{**f, "layer": "model"} for f in model_layers.files]
            model_report.unsafe += model_layers.unsafe
            model_report.suspicious += model_layers.suspicious
            model_files = model_report.to_json()
        parameters = ["fs", "--scanners", scanners, "<unpacked ModelKit layers>"]
    elif isinstance(reference, ImageReference):
        insecure = is_loopback_host(reference.registry) or stores.options.is_insecure(reference.registry)
        target = str(reference.pinned(resolved.digest))
        with tempfile.TemporaryDirectory(prefix="modelsign-trivy-") as workdir:
            env = trivy_registry_env(reference.registry, stores.options, Path(workdir))
            report = trivy.scan("image", target, scanners=scanners, offline=offline, extra=["--insecure"] if insecure else [], env=env)
            if image_model_files:
                if manifest is None or manifest.is_index:
                    raise UsageError(f"{target} is an image index; the model-file check needs one image", hint="scan the platform image's digest")
                model_files = scan_model_files(unpack_image(repository, manifest, Path(workdir), limits).models).to_json()
        parameters = ["image", "--scanners", scanners, target]
    else:
        raise UsageError(f"{reference} is an image in a local layout; trivy cannot pull it from there", hint="scan it in a registry, or attest a report with --from-report")
    summary = summarize_report(report)
    predicate = vuln_predicate(summary, model_files, scanner_version=str(info.get("Version", "unknown")), db_version=str(db.get("Version", "unknown")),
                               started=started, finished=now_rfc3339(), parameters=parameters)
    return ScanOutcome(reference=str(resolved.pinned), digest=resolved.digest, predicate=predicate)


def scan_facts(predicate: Any) -> dict[str, Any] | None:
    """What a policy needs from a (verified) vuln predicate, with types checked; None if the
    predicate is not usable."""
    if not isinstance(predicate, dict):
        return None
    scanner = mapping(predicate.get("scanner"))
    result = mapping(scanner.get("result"))
    metadata = mapping(predicate.get("metadata"))

    def counts(name: str) -> dict[str, int] | None:
        raw = result.get(name)
        if not isinstance(raw, dict):
            return None
        return {s: int(raw[s]) if isinstance(raw.get(s), int) and raw[s] >= 0 else 0 for s in SEVERITIES}

    severity, fixable = counts("severityCounts"), counts("fixableSeverityCounts")
    finished = metadata.get("scanFinishedOn")
    if severity is None or not isinstance(finished, str):
        return None
    model_files = result.get("modelFiles") if isinstance(result.get("modelFiles"), dict) else None
    files = mapping(model_files).get("files")
    top = [v for v in result.get("vulnerabilities") or [] if isinstance(v, dict)]
    return {
        "finishedOn": finished,
        "scanner": str(scanner.get("uri", "")),
        "severityCounts": severity,
        "fixableSeverityCounts": fixable or dict.fromkeys(SEVERITIES, 0),
        "secretCount": result.get("secretCount") if isinstance(result.get("secretCount"), int) else 0,
        "unsafeModelFiles": mapping(model_files).get("unsafeFiles") if isinstance(mapping(model_files).get("unsafeFiles"), int) else None,
        "unsafeFiles": [text(f.get("path")) for f in files if isinstance(f, dict) and f.get("safe") is False][:10] if isinstance(files, list) else [],
        "findings": {s: list(dict.fromkeys(str(v.get("id")) for v in top if v.get("severity") == s))[:5] for s in ("CRITICAL", "HIGH")},
    }
