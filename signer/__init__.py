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
them first cannot close an import circle.
"""

from __future__ import annotations

from signer.cli.main import run as run_command
from signer.cli.options import output_option
from signer.cli.progress import Progress
from signer.cli.render import emit as emit_output
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
    "load_json", "parse_json_object", "read_limited", "mapping", "text", "strings",
    # the signer's command line (extended by the `modelsign` program)
    "command_parser", "run_command", "output_option", "emit_output", "Progress",
]
