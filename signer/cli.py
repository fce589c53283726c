"""`modelsign`: a thin command line over the `signer` library.

Exit codes: 0 ok, 1 verification failed, 2 usage or environment error. User errors print
what failed and how to fix it, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from signer import mediatypes as mt
from signer import render
from signer.approvals import approval_facts, approval_predicate, parse_duration, parse_time, with_status
from signer.artifacts import resolve_artifact, verify_artifact
from signer.attestations import attest, predicate_type_for
from signer.blobs import blob_argument, verify_blob, verify_blob_attestation
from signer.certificates import load_certificate_trust, load_signing_certificate
from signer.errors import EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION_FAILED, ModelsignError, UsageError
from signer.keyless import KeylessIdentity
from signer.jsonenc import load_json
from signer.keys import SigningKey, generate_key_pair, load_public_key_file, load_signing_key_file, password_from_environment_or_prompt
from signer.modeldir import HashingChoice, default_hashing, sign_model_dir, verify_model_dir
from signer.oci.registry import RegistryOptions
from signer.oci.stores import Stores
from signer.references import ArtifactReference, parse_reference
from signer.scanning import scan_artifact
from signer.signing import SignatureFormat, sign_artifact
from signer.trivy import Trivy
from signer.trust import TrustAnchor, describe_anchors
from signer.unpack import UnpackLimits
from signer.verification import failure_message, verify_attestations


def _annotation(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"annotation {text!r} must be KEY=VALUE")
    return key, value


def _registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry access")
    group.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                       help="allow plain HTTP / unverified TLS for this registry (glob; repeatable). Loopback registries may use HTTP anyway.")
    group.add_argument("--ca-file", type=Path, help="extra PEM CA bundle for registry TLS (system CAs are always used)")
    group.add_argument("--registry-timeout", type=float, default=30.0, metavar="SECONDS", help="time one registry request may take, retries and backoff included (default 30); "
                       "a registry that did not answer is not asked again for 5 s")


def _trust_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("who must have signed")
    group.add_argument("--key", action="append", default=[], type=Path, metavar="PUB", help="trusted public key (PEM; repeatable: any one suffices)")
    group.add_argument("--certificate-identity", help="keyless: expected certificate identity (email or URI SAN)")
    group.add_argument("--certificate-identity-regexp", help="keyless: regexp the identity must match (search semantics, as cosign)")
    group.add_argument("--certificate-oidc-issuer", help="keyless: expected OIDC issuer")
    group.add_argument("--certificate-oidc-issuer-regexp", help="keyless: regexp the OIDC issuer must match")
    group.add_argument("--trusted-root", type=Path, help="keyless: trusted_root.json (default: the Sigstore production root embedded in the sigstore package; offline)")


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=("text", "json"), default="text", help="text for people (default), json for machines")


def base_parser() -> tuple[argparse.ArgumentParser, "argparse._SubParsersAction[argparse.ArgumentParser]"]:
    """The parser with the signer's commands, and its subcommand table for others to extend."""
    parser = argparse.ArgumentParser(prog="modelsign", description="Sign and verify ML models: KitOps ModelKits, OCI images and model directories.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="create a key pair (cosign encrypted .key + PEM .pub)")
    keygen.add_argument("--output-prefix", default="cosign", type=Path, help="write PREFIX.key and PREFIX.pub (default: cosign)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(handler=cmd_keygen)

    public = commands.add_parser("public-key", help="print the public key (and key id) of a private key")
    public.add_argument("--key", required=True, type=Path)
    public.set_defaults(handler=cmd_public_key)

    sign = commands.add_parser("sign", help="sign an image/ModelKit reference, an oci: layout image, or a model directory or file")
    sign.add_argument("target", help="registry reference, kit://, oci://, oci:PATH[:tag|@digest], or a model directory or file")
    sign.add_argument("--key", required=True, type=Path, help="private key (cosign encrypted, PKCS#8 or SEC1 PEM)")
    sign.add_argument("--format", choices=[f.value for f in SignatureFormat], default="legacy", help="OCI signature form (default legacy .sig; bundle = cosign v3 referrer)")
    sign.add_argument("-a", "--annotation", action="append", default=[], type=_annotation, metavar="KEY=VALUE", help="signed annotation (repeatable)")
    _model_dir_options(sign)
    sign.add_argument("--serialization", choices=("shards", "files"), default=None,
                      help="models: shards (parallel; the default for directories) or files (the default for a single file)")
    sign.add_argument("--shard-size", type=int, default=HashingChoice().shard_size, help="model directories: shard size in bytes (default 64 MiB)")
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
    scan.add_argument("--trivy", type=Path, help="trivy binary (default: trivy on PATH)")
    scan.add_argument("--scanners", default="vuln,secret,misconfig", help="trivy --scanners (default vuln,secret,misconfig)")
    scan.add_argument("--offline", action="store_true", help="do not let trivy download its DB or checks")
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
    listing = approvals_commands.add_parser("list", help="who approved what, for where, until when (verified)")
    listing.add_argument("target")
    _trust_options(listing)
    _registry_options(listing)
    _output_option(listing)
    listing.set_defaults(handler=cmd_approvals_list)
    return parser, commands


def _attestation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("legacy", "bundle"), default="legacy", help="legacy .att layer (default) or a sigstore bundle referrer")
    _registry_options(parser)
    _output_option(parser)


def build_parser() -> argparse.ArgumentParser:
    return base_parser()[0]


def _model_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signature", type=Path, help="model directories: signature file (default: DIR.sig beside the directory)")
    parser.add_argument("--ignore-path", action="append", default=[], metavar="PATH", help="model directories: path (relative to DIR) left out of the signature")


# -- targets ------------------------------------------------------------------------------


def _is_local_model(target: str) -> bool:
    """An existing directory or file is a model on disk (it wins over a registry reference
    of the same spelling); a path-like target that does not exist is an error."""
    if target.startswith("oci:") or "://" in target:
        return False
    if Path(target).is_dir() or Path(target).is_file():
        return True
    if target.startswith(("./", "../", "/", "~")):
        raise UsageError(f"{target} is not a directory or a file (it does not exist)",
                         hint="pass an existing model directory or file, or a registry reference such as registry.example.com/models/llm:1.0")
    return False


def _model_text(text: str, path: Path) -> str:
    # render's model texts speak of directories; a single-file model is a file
    return text if path.is_dir() else text.replace("model directory", "model file", 1)


def _names_key_or_identity(args: argparse.Namespace) -> bool:
    return bool(args.key or args.certificate_identity or args.certificate_identity_regexp or args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp)


def _stores(args: argparse.Namespace) -> Stores:
    return Stores(RegistryOptions(insecure_registries=tuple(args.insecure_registry), ca_file=args.ca_file, timeout_seconds=args.registry_timeout))


def _anchors(args: argparse.Namespace) -> list[TrustAnchor]:
    anchors: list[TrustAnchor] = [load_public_key_file(path) for path in args.key]
    identity = args.certificate_identity or args.certificate_identity_regexp
    issuer = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    if identity or issuer:
        if not (identity and issuer):
            raise UsageError("keyless verification needs both a certificate identity and an OIDC issuer",
                             hint="pass --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]")
        anchors.append(KeylessIdentity(
            name=identity, subject=args.certificate_identity, subject_regexp=args.certificate_identity_regexp,
            issuer=args.certificate_oidc_issuer, issuer_regexp=args.certificate_oidc_issuer_regexp, trusted_root=args.trusted_root,
        ))
    if not anchors:
        raise UsageError("nothing to verify against", hint="pass --key PUB, or --certificate-identity and --certificate-oidc-issuer")
    return anchors


def _sign_hint(target: str, args: argparse.Namespace) -> str:
    keys = [p for p in args.key]
    key = keys[0].with_suffix(".key") if keys else Path("KEY")
    return f"modelsign sign {target} --key {key}"


def _emit(args: argparse.Namespace, text: str, data: Any) -> None:
    if getattr(args, "output", "text") == "json":
        print(json.dumps(render.to_jsonable(data), indent=2))
    else:
        print(text)


# -- commands -----------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    password = password_from_environment_or_prompt("Enter password for the new private key", confirm=True)
    key_path, pub_path, public = generate_key_pair(args.output_prefix, password, force=args.force)
    print(f"Private key written to {key_path}\nPublic key written to {pub_path}\nKey id: {public.key_id}")
    return EXIT_OK


def cmd_public_key(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    sys.stdout.write(key.public.pem.decode())
    print(f"# key id {key.public.key_id}", file=sys.stderr)
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    annotations = dict(args.annotation) or None
    local = _is_local_model(args.target)
    if not local and (args.certificate or args.certificate_chain):
        raise UsageError("--certificate and --certificate-chain apply to model directories and files", hint="OCI artifacts are signed with --key alone")
    if args.certificate_chain and not args.certificate:
        raise UsageError("--certificate-chain needs --certificate", hint="pass the signing certificate issued for --key with --certificate")
    key = load_signing_key_file(args.key)
    if local:
        if annotations or args.format != "legacy":
            raise UsageError("--annotation and --format apply to OCI artifacts, not model directories or files")
        path = Path(args.target)
        certificate = load_signing_certificate(args.certificate, args.certificate_chain, key) if args.certificate else None
        choice = HashingChoice(method=args.serialization or default_hashing(path).method, shard_size=args.shard_size)
        result = sign_model_dir(path, key, signature_path=args.signature, ignore_paths=args.ignore_path, choice=choice, certificate=certificate)
        text = _model_text(render.model_sign_text(result), path) + (f"\n  certificate: {result.certificate}" if result.certificate else "")
        _emit(args, text, result)
        return EXIT_OK
    reference = parse_reference(args.target)
    with _stores(args) as stores:
        signed = sign_artifact(stores, reference, key, signature_format=SignatureFormat(args.format), annotations=annotations)
    _emit(args, render.sign_text(signed), signed)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    if _is_local_model(args.target):
        path = Path(args.target)
        certificates = load_certificate_trust(args.certificate_chain) if args.certificate_chain else None
        if certificates is None and not _names_key_or_identity(args):
            raise UsageError("nothing to verify against", hint="pass --key PUB, --certificate-chain ROOT.pem (a model signed with a certificate), "
                                                               "or --certificate-identity and --certificate-oidc-issuer")
        anchors = _anchors(args) if _names_key_or_identity(args) else []
        report = verify_model_dir(path, anchors, signature_path=args.signature, ignore_paths=args.ignore_path, certificates=certificates)
        _emit(args, _model_text(render.model_verify_text(report), path), {"verified": True, **render.to_jsonable(report)})
        return EXIT_OK
    if args.certificate_chain:
        raise UsageError("--certificate-chain applies to model directories and files", hint="verify OCI signatures with --key or the keyless flags")
    anchors = _anchors(args)
    reference: ArtifactReference = parse_reference(args.target)
    with _stores(args) as stores:
        result = verify_artifact(stores, reference, anchors, required_annotations=dict(args.annotation) or None, describe=args.describe)
    if args.output == "json":
        print(json.dumps(render.verification_json(result), indent=2))
    else:
        print(render.verification_text(result))
    if not result.ok:
        print("error: " + failure_message(result.report, anchors, sign_hint=_sign_hint(str(result.resolved.pinned), args)), file=sys.stderr)
        return EXIT_VERIFICATION_FAILED
    return EXIT_OK


def _read_bundle(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read bundle {path}: {exc.strerror}") from None


def cmd_verify_blob(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    blob = blob_argument(args.file)
    signer = verify_blob(blob, _read_bundle(args.bundle), anchors, what=f"bundle {args.bundle}")
    _emit(args, f"Verified {blob.label}: signed by {signer}", {"verified": True, "signer": signer, "digest": blob.digest})
    return EXIT_OK


def cmd_verify_blob_attestation(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    blob = blob_argument(args.file)
    wanted = predicate_type_for(args.type) if args.type else None
    result = verify_blob_attestation(blob, _read_bundle(args.bundle), anchors, predicate_type=wanted, what=f"bundle {args.bundle}")
    subject = {"name": result.subject.name, "digest": result.subject.digest}
    _emit(args, f"Verified attestation {args.bundle} over {blob.label}: signed by {result.signer}\n"
                f"  predicate type: {result.predicate_type}\n  subject: {result.subject.name or '(unnamed)'} {result.digest}",
          {"verified": True, "signer": result.signer, "digest": result.digest, "predicateType": result.predicate_type, "subject": subject,
           "predicate": result.predicate})
    return EXIT_OK


def _load_predicate(path: Path) -> Any:
    try:
        return load_json(path.read_bytes(), what=f"predicate {path}")
    except OSError as exc:
        raise UsageError(f"cannot read predicate {path}: {exc.strerror}") from None


def _attest_and_report(args: argparse.Namespace, stores: Stores, reference: ArtifactReference, key: SigningKey, predicate_type: str, predicate: Any) -> int:
    result = attest(stores, reference, key, predicate_type, predicate, form=args.format)
    _emit(args, f"Attested {result.reference} ({result.predicate_type}) with key {result.key_name} (key id {result.key_id})\n  wrote {result.written}",
          {**render.to_jsonable(result), "predicate": predicate})
    return EXIT_OK


def cmd_attest(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    with _stores(args) as stores:
        return _attest_and_report(args, stores, reference, key, predicate_type_for(args.predicate_type), _load_predicate(args.predicate))


def cmd_verify_attestation(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    predicate_type = predicate_type_for(args.type)
    reference = parse_reference(args.target)
    with _stores(args) as stores:
        resolved = resolve_artifact(stores, reference)
        report = verify_attestations(stores.repository(reference), resolved.digest, anchors, predicate_types={predicate_type})
    found = report.of_type(predicate_type)
    if args.output == "json":
        print(json.dumps({"verified": bool(found), "digest": resolved.digest, "attestations": render.to_jsonable(found), "rejected": render.to_jsonable(report.rejected)}, indent=2))
    else:
        print(f"{len(found)} verified {predicate_type} attestation(s) for {resolved.pinned}")
        for item in found:
            print(f"  by {item.signer} ({item.form}, {item.location})")
        for rejection in report.rejected:
            print(f"  rejected: {rejection.location}: {rejection.reason}")
    if not found:
        print(f"error: no {predicate_type} attestation by {describe_anchors(anchors)} for {resolved.pinned}", file=sys.stderr)
        return EXIT_VERIFICATION_FAILED
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    trivy = None if args.from_report else Trivy.find(args.trivy, timeout_seconds=args.timeout)
    with _stores(args) as stores:
        outcome = scan_artifact(stores, reference, trivy=trivy, from_report=args.from_report, scanners=args.scanners, offline=args.offline,
                                limits=UnpackLimits(max_bytes=args.max_bytes), image_model_files=args.model_files)
        result = outcome.predicate["scanner"]["result"]
        counts = ", ".join(f"{n} {s}" for s, n in result["severityCounts"].items() if n)
        model = result.get("modelFiles")
        if args.output == "text":
            print(f"Scanned {outcome.reference}: {counts or 'no vulnerabilities'}; {result['secretCount']} secret(s); "
                  f"{result['misconfigurationCount']} misconfiguration(s)" + (f"; {model['unsafeFiles']} unsafe model file(s)" if model else ""))
            for item in (model or {}).get("files", []):
                if item.get("safe") is False:
                    print(f"  UNSAFE {item['path']}: {', '.join(item.get('dangerousImports', [])) or item.get('issue', '')}")
        return _attest_and_report(args, stores, reference, key, mt.VULN_PREDICATE, outcome.predicate)


def cmd_approve(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    not_before = parse_time(args.not_before) if args.not_before else None
    if args.not_before and not_before is None:
        raise UsageError(f"--not-before {args.not_before!r} is not an RFC 3339 time")
    predicate = approval_predicate(decision="approved", environment=args.environment, namespaces=args.namespace,
                                   approver=args.approver or os.environ.get("USER", ""), requester=args.requester, ticket=args.ticket,
                                   url=args.url, reason=args.reason, not_before=not_before, expires_in_seconds=parse_duration(args.expires))
    with _stores(args) as stores:
        return _attest_and_report(args, stores, reference, key, mt.APPROVAL_PREDICATE, predicate)


def cmd_revoke(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    predicate = approval_predicate(decision="revoked", environment=args.environment, namespaces=["*"], approver=args.approver or os.environ.get("USER", ""),
                                   requester="", ticket=args.ticket, reason=args.reason)
    with _stores(args) as stores:
        return _attest_and_report(args, stores, reference, key, mt.APPROVAL_PREDICATE, predicate)


def cmd_approvals_list(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    reference = parse_reference(args.target)
    with _stores(args) as stores:
        resolved = resolve_artifact(stores, reference)
        report = verify_attestations(stores.repository(reference), resolved.digest, anchors, predicate_types={mt.APPROVAL_PREDICATE})
    now = datetime.now(timezone.utc)
    facts = [f for f in (approval_facts(a) for a in report.verified) if f is not None]
    listed = [{**f.to_input(status, now), "reason": f.reason, "location": f.location} for f, status in with_status(facts, now)]
    if args.output == "json":
        print(json.dumps({"digest": resolved.digest, "approvals": listed, "rejected": render.to_jsonable(report.rejected)}, indent=2))
    else:
        print(f"Approvals of {resolved.pinned} (signatures verified):")
        for item in listed:
            until = f" until {item['expiresAt']}" if item["expiresAt"] else ""
            print(f"  {item['status']:<13} {item['decision']:<8} {item['environment']} {','.join(item['namespaces'])} by {item['signer']} "
                  f"({item['approver'] or '?'}) for {item['requester'] or '?'}, ticket {item['ticket'] or '-'}, at {item['approvedAt']}{until}")
        if not listed:
            print("  none")
        for rejection in report.rejected:
            print(f"  rejected: {rejection.location}: {rejection.reason}")
    return EXIT_OK


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, dispatch, and turn user errors into a message and an exit code."""
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ModelsignError as exc:
        if getattr(args, "output", "text") == "json":
            print(json.dumps({"ok": False, "error": exc.message, "hint": exc.hint, "kind": type(exc).__name__}, indent=2))
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_USAGE
    except Exception as exc:  # a bug, not a user error: one line, the traceback on request
        if os.environ.get("MODELSIGN_DEBUG"):
            raise
        print(f"error: modelsign failed unexpectedly: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  hint: this is a bug in modelsign; rerun with MODELSIGN_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
