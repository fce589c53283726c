"""modelsign's trust core, as a library: verify signed statements about a digest.

This module is the public API: the webhook and users import from `signer` only; everything
in the subpackages is internal and may move. Rooms (README "Architecture"):
`trust/` who may sign, `formats/` the signed bytes, `oci/` registries and layouts,
`signatures/` signing and verifying statements about a digest, `modeldir/` model
directories, `modelkit/` ModelKits, `evidence/` what scans, approvals, approval requests and
evaluations say, `cli/` the signer's commands.

    from signer import Stores, load_public_key_file, parse_reference, verify_artifact

    with Stores() as stores:
        result = verify_artifact(stores, parse_reference("kit://registry.example.com/models/llm:1.0"),
                                 [load_public_key_file(Path("ml-team.pub"))])
        result.ok, result.resolved.digest, result.report.verified, result.report.rejected, result.modelkit

Internal modules never import from this module (only from each other), so importing any of
them first cannot close an import circle. Names are imported when first used (PEP 562), so a
command that needs no registry never pays for httpx, nor `--version` for cryptography.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers (tests/test_public_api.py keeps the two lists equal)
    from signer.cli.command_parser import lazy_handler
    from signer.cli.main import run as run_command
    from signer.cli.options import output_option
    from signer.cli.progress import Progress
    from signer.cli.render import emit as emit_output
    from signer.cli.render import to_jsonable
    from signer.cli.parser import base_parser as command_parser
    from signer.errors import (EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION_FAILED, AuthenticationError, FormatError, KeyFormatError, ModelsignError,
                               NotFoundError, PasswordError, ReferenceFormatError, RegistryError, TooLargeError, UsageError, VerificationError)
    from signer.evidence.approvals import (CLOCK_SKEW_SECONDS, ApprovalFacts, approval_facts, approval_predicate, format_time, parse_duration,
                                           parse_time, with_status)
    from signer.evidence.evaluations import EvaluationFacts, evaluation_facts, evaluation_predicate, metric_groups
    from signer.evidence.requests import RequestFacts, RequestState, request_facts, request_predicate, request_state
    from signer.evidence.scan.modelfiles import ModelFileReport, classify_file, scan_model_files
    from signer.evidence.scan.scanning import ScanOutcome, now_rfc3339, scan_artifact, scan_facts, vuln_predicate
    from signer.evidence.scan.trivy import ScanError, ScanSummary, Trivy, load_report, summarize_report
    from signer.evidence.scan.unpack import UnpackLimits
    from signer.formats import mediatypes
    from signer.jsonread import load_json, mapping, parse_json_object, strings, text
    from signer.modeldir.signing import HashingChoice, ModelDirReport, ModelDirSignResult, sign_model_dir, verify_model_dir
    from signer.modelkit.kitfile import ModelKitInfo, describe_modelkit, is_modelkit
    from signer.modelkit.pack import pack_modelkit
    from signer.oci.budget import Budget, BudgetExceeded, DeadlineExceeded
    from signer.oci.budget import using as using_budget
    from signer.oci.layout import LayoutRepository
    from signer.oci.manifest import Descriptor, Manifest, encode_image_manifest, encode_index
    from signer.oci.registry import RegistryOptions, RegistryRepository, ThrottleBoard, set_throttle_board, throttled_until
    from signer.oci.repository import Repository
    from signer.oci.samples import push_image, push_index
    from signer.oci.stores import Stores
    from signer.files import read_limited
    from signer.formats.digests import is_digest
    from signer.references import (REMOTE_SCHEMES, ArtifactReference, ImageReference, LayoutReference, is_loopback_host, parse_image_reference,
                                   parse_reference, printable, printable_lines, unsafe_character)
    from signer.signatures.artifacts import ArtifactVerification, ResolvedArtifact, resolve_artifact, verify_artifact
    from signer.signatures.attestations import AttestResult, attest, predicate_type_for
    from signer.signatures.blobs import verify_blob, verify_blob_attestation
    from signer.signatures.signing import SignatureFormat, SignResult, sign_artifact
    from signer.signatures.verification import (AttestationReport, Rejection, SignatureReport, VerifiedAttestation, VerifiedSignature,
                                                collect_statements, failure_message, verify_attestations, verify_signatures)
    from signer.trust.anchors import TrustAnchor, describe_anchor, describe_anchors
    from signer.trust.certificates import load_certificate_trust, load_signing_certificate
    from signer.trust.keyless import KeylessIdentity
    from signer.trust.keys import (PublicKey, SigningKey, generate_key_pair, load_public_key_file, load_public_key_pem, load_signing_key_file,
                                   load_signing_key_pem, password_from_environment_or_prompt)

# public name -> (module, attribute); attribute None: the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "lazy_handler": ("signer.cli.command_parser", "lazy_handler"),
    "to_jsonable": ("signer.cli.render", "to_jsonable"),
    "run_command": ("signer.cli.main", "run"),
    "output_option": ("signer.cli.options", "output_option"),
    "command_parser": ("signer.cli.parser", "base_parser"),
    "Progress": ("signer.cli.progress", "Progress"),
    "emit_output": ("signer.cli.render", "emit"),
    "AuthenticationError": ("signer.errors", "AuthenticationError"),
    "EXIT_OK": ("signer.errors", "EXIT_OK"),
    "EXIT_USAGE": ("signer.errors", "EXIT_USAGE"),
    "EXIT_VERIFICATION_FAILED": ("signer.errors", "EXIT_VERIFICATION_FAILED"),
    "FormatError": ("signer.errors", "FormatError"),
    "KeyFormatError": ("signer.errors", "KeyFormatError"),
    "ModelsignError": ("signer.errors", "ModelsignError"),
    "NotFoundError": ("signer.errors", "NotFoundError"),
    "PasswordError": ("signer.errors", "PasswordError"),
    "ReferenceFormatError": ("signer.errors", "ReferenceFormatError"),
    "RegistryError": ("signer.errors", "RegistryError"),
    "TooLargeError": ("signer.errors", "TooLargeError"),
    "UsageError": ("signer.errors", "UsageError"),
    "VerificationError": ("signer.errors", "VerificationError"),
    "ApprovalFacts": ("signer.evidence.approvals", "ApprovalFacts"),
    "CLOCK_SKEW_SECONDS": ("signer.evidence.approvals", "CLOCK_SKEW_SECONDS"),
    "approval_facts": ("signer.evidence.approvals", "approval_facts"),
    "approval_predicate": ("signer.evidence.approvals", "approval_predicate"),
    "format_time": ("signer.evidence.approvals", "format_time"),
    "parse_duration": ("signer.evidence.approvals", "parse_duration"),
    "parse_time": ("signer.evidence.approvals", "parse_time"),
    "with_status": ("signer.evidence.approvals", "with_status"),
    "EvaluationFacts": ("signer.evidence.evaluations", "EvaluationFacts"),
    "evaluation_facts": ("signer.evidence.evaluations", "evaluation_facts"),
    "evaluation_predicate": ("signer.evidence.evaluations", "evaluation_predicate"),
    "metric_groups": ("signer.evidence.evaluations", "metric_groups"),
    "RequestFacts": ("signer.evidence.requests", "RequestFacts"),
    "RequestState": ("signer.evidence.requests", "RequestState"),
    "request_facts": ("signer.evidence.requests", "request_facts"),
    "request_predicate": ("signer.evidence.requests", "request_predicate"),
    "request_state": ("signer.evidence.requests", "request_state"),
    "ModelFileReport": ("signer.evidence.scan.modelfiles", "ModelFileReport"),
    "classify_file": ("signer.evidence.scan.modelfiles", "classify_file"),
    "scan_model_files": ("signer.evidence.scan.modelfiles", "scan_model_files"),
    "ScanOutcome": ("signer.evidence.scan.scanning", "ScanOutcome"),
    "now_rfc3339": ("signer.evidence.scan.scanning", "now_rfc3339"),
    "scan_artifact": ("signer.evidence.scan.scanning", "scan_artifact"),
    "scan_facts": ("signer.evidence.scan.scanning", "scan_facts"),
    "vuln_predicate": ("signer.evidence.scan.scanning", "vuln_predicate"),
    "ScanError": ("signer.evidence.scan.trivy", "ScanError"),
    "ScanSummary": ("signer.evidence.scan.trivy", "ScanSummary"),
    "Trivy": ("signer.evidence.scan.trivy", "Trivy"),
    "load_report": ("signer.evidence.scan.trivy", "load_report"),
    "summarize_report": ("signer.evidence.scan.trivy", "summarize_report"),
    "UnpackLimits": ("signer.evidence.scan.unpack", "UnpackLimits"),
    "read_limited": ("signer.files", "read_limited"),
    "is_digest": ("signer.formats.digests", "is_digest"),
    "mediatypes": ("signer.formats.mediatypes", None),
    "load_json": ("signer.jsonread", "load_json"),
    "mapping": ("signer.jsonread", "mapping"),
    "parse_json_object": ("signer.jsonread", "parse_json_object"),
    "strings": ("signer.jsonread", "strings"),
    "text": ("signer.jsonread", "text"),
    "HashingChoice": ("signer.modeldir.signing", "HashingChoice"),
    "ModelDirReport": ("signer.modeldir.signing", "ModelDirReport"),
    "ModelDirSignResult": ("signer.modeldir.signing", "ModelDirSignResult"),
    "sign_model_dir": ("signer.modeldir.signing", "sign_model_dir"),
    "verify_model_dir": ("signer.modeldir.signing", "verify_model_dir"),
    "ModelKitInfo": ("signer.modelkit.kitfile", "ModelKitInfo"),
    "describe_modelkit": ("signer.modelkit.kitfile", "describe_modelkit"),
    "is_modelkit": ("signer.modelkit.kitfile", "is_modelkit"),
    "pack_modelkit": ("signer.modelkit.pack", "pack_modelkit"),
    "Budget": ("signer.oci.budget", "Budget"),
    "BudgetExceeded": ("signer.oci.budget", "BudgetExceeded"),
    "DeadlineExceeded": ("signer.oci.budget", "DeadlineExceeded"),
    "using_budget": ("signer.oci.budget", "using"),
    "LayoutRepository": ("signer.oci.layout", "LayoutRepository"),
    "Descriptor": ("signer.oci.manifest", "Descriptor"),
    "Manifest": ("signer.oci.manifest", "Manifest"),
    "encode_image_manifest": ("signer.oci.manifest", "encode_image_manifest"),
    "encode_index": ("signer.oci.manifest", "encode_index"),
    "RegistryOptions": ("signer.oci.registry", "RegistryOptions"),
    "RegistryRepository": ("signer.oci.registry", "RegistryRepository"),
    "ThrottleBoard": ("signer.oci.registry", "ThrottleBoard"),
    "set_throttle_board": ("signer.oci.registry", "set_throttle_board"),
    "throttled_until": ("signer.oci.registry", "throttled_until"),
    "Repository": ("signer.oci.repository", "Repository"),
    "push_image": ("signer.oci.samples", "push_image"),
    "push_index": ("signer.oci.samples", "push_index"),
    "Stores": ("signer.oci.stores", "Stores"),
    "ArtifactReference": ("signer.references", "ArtifactReference"),
    "ImageReference": ("signer.references", "ImageReference"),
    "LayoutReference": ("signer.references", "LayoutReference"),
    "REMOTE_SCHEMES": ("signer.references", "REMOTE_SCHEMES"),
    "is_loopback_host": ("signer.references", "is_loopback_host"),
    "parse_image_reference": ("signer.references", "parse_image_reference"),
    "parse_reference": ("signer.references", "parse_reference"),
    "printable": ("signer.references", "printable"),
    "printable_lines": ("signer.references", "printable_lines"),
    "unsafe_character": ("signer.references", "unsafe_character"),
    "ArtifactVerification": ("signer.signatures.artifacts", "ArtifactVerification"),
    "ResolvedArtifact": ("signer.signatures.artifacts", "ResolvedArtifact"),
    "resolve_artifact": ("signer.signatures.artifacts", "resolve_artifact"),
    "verify_artifact": ("signer.signatures.artifacts", "verify_artifact"),
    "AttestResult": ("signer.signatures.attestations", "AttestResult"),
    "attest": ("signer.signatures.attestations", "attest"),
    "predicate_type_for": ("signer.signatures.attestations", "predicate_type_for"),
    "verify_blob": ("signer.signatures.blobs", "verify_blob"),
    "verify_blob_attestation": ("signer.signatures.blobs", "verify_blob_attestation"),
    "SignResult": ("signer.signatures.signing", "SignResult"),
    "SignatureFormat": ("signer.signatures.signing", "SignatureFormat"),
    "sign_artifact": ("signer.signatures.signing", "sign_artifact"),
    "AttestationReport": ("signer.signatures.verification", "AttestationReport"),
    "Rejection": ("signer.signatures.verification", "Rejection"),
    "SignatureReport": ("signer.signatures.verification", "SignatureReport"),
    "VerifiedAttestation": ("signer.signatures.verification", "VerifiedAttestation"),
    "VerifiedSignature": ("signer.signatures.verification", "VerifiedSignature"),
    "collect_statements": ("signer.signatures.verification", "collect_statements"),
    "failure_message": ("signer.signatures.verification", "failure_message"),
    "verify_attestations": ("signer.signatures.verification", "verify_attestations"),
    "verify_signatures": ("signer.signatures.verification", "verify_signatures"),
    "TrustAnchor": ("signer.trust.anchors", "TrustAnchor"),
    "describe_anchor": ("signer.trust.anchors", "describe_anchor"),
    "describe_anchors": ("signer.trust.anchors", "describe_anchors"),
    "load_certificate_trust": ("signer.trust.certificates", "load_certificate_trust"),
    "load_signing_certificate": ("signer.trust.certificates", "load_signing_certificate"),
    "KeylessIdentity": ("signer.trust.keyless", "KeylessIdentity"),
    "PublicKey": ("signer.trust.keys", "PublicKey"),
    "SigningKey": ("signer.trust.keys", "SigningKey"),
    "generate_key_pair": ("signer.trust.keys", "generate_key_pair"),
    "load_public_key_file": ("signer.trust.keys", "load_public_key_file"),
    "load_public_key_pem": ("signer.trust.keys", "load_public_key_pem"),
    "load_signing_key_file": ("signer.trust.keys", "load_signing_key_file"),
    "load_signing_key_pem": ("signer.trust.keys", "load_signing_key_pem"),
    "password_from_environment_or_prompt": ("signer.trust.keys", "password_from_environment_or_prompt"),
}

__all__ = [
    # errors and exit codes
    "EXIT_OK", "EXIT_USAGE", "EXIT_VERIFICATION_FAILED", "AuthenticationError", "FormatError", "KeyFormatError", "ModelsignError",
    "NotFoundError", "PasswordError", "ReferenceFormatError", "RegistryError", "TooLargeError", "UsageError", "VerificationError",
    # references
    "REMOTE_SCHEMES", "ArtifactReference", "ImageReference", "LayoutReference", "is_loopback_host", "parse_image_reference",
    "parse_reference", "printable", "printable_lines", "unsafe_character",
    # keys and trust anchors
    "PublicKey", "SigningKey", "generate_key_pair", "load_public_key_file", "load_public_key_pem", "load_signing_key_file",
    "load_signing_key_pem", "password_from_environment_or_prompt", "KeylessIdentity", "TrustAnchor", "describe_anchor",
    "describe_anchors", "load_certificate_trust", "load_signing_certificate",
    # OCI stores, repositories and budgets
    "Stores", "RegistryOptions", "RegistryRepository", "ThrottleBoard", "set_throttle_board", "throttled_until", "LayoutRepository", "Repository", "Descriptor", "Manifest",
    "encode_image_manifest", "encode_index", "push_image", "push_index", "Budget", "BudgetExceeded", "DeadlineExceeded",
    "using_budget", "mediatypes",
    # resolve, sign, attest, verify
    "ResolvedArtifact", "ArtifactVerification", "resolve_artifact", "verify_artifact", "SignatureFormat", "SignResult",
    "sign_artifact", "AttestResult", "attest", "predicate_type_for", "verify_signatures", "verify_attestations",
    "collect_statements", "failure_message", "SignatureReport", "AttestationReport", "VerifiedSignature", "VerifiedAttestation",
    "Rejection", "verify_blob", "verify_blob_attestation",
    # model directories and ModelKits
    "HashingChoice", "ModelDirReport", "ModelDirSignResult", "sign_model_dir", "verify_model_dir", "ModelKitInfo",
    "describe_modelkit", "is_modelkit", "pack_modelkit",
    # evidence: scans, approvals, approval requests and evaluations
    "ScanOutcome", "scan_artifact", "scan_facts", "vuln_predicate", "now_rfc3339", "ScanError", "ScanSummary", "Trivy",
    "load_report", "summarize_report", "UnpackLimits", "ModelFileReport", "classify_file", "scan_model_files",
    "CLOCK_SKEW_SECONDS", "ApprovalFacts", "approval_facts", "approval_predicate", "format_time", "parse_duration", "parse_time",
    "with_status", "EvaluationFacts", "evaluation_facts", "evaluation_predicate", "metric_groups", "RequestFacts", "RequestState",
    "request_facts", "request_predicate", "request_state",
    # JSON from untrusted input
    "load_json", "parse_json_object", "read_limited", "is_digest", "mapping", "text", "strings",
    # the signer's command line (extended by the `modelsign` program)
    "command_parser", "run_command", "output_option", "emit_output", "to_jsonable", "Progress", "lazy_handler",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'signer' has no attribute {name!r}") from None
    value = importlib.import_module(module) if attribute is None else getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # once: later look-ups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
