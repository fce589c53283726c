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
from typing import Any, Callable, Sequence

from signer import render
from signer.artifacts import verify_artifact
from signer.blobs import verify_blob
from signer.errors import EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION_FAILED, ModelsignError, UsageError
from signer.keyless import KeylessIdentity
from signer.keys import generate_key_pair, load_public_key_file, load_signing_key_file, password_from_environment_or_prompt
from signer.modeldir import HashingChoice, sign_model_dir, verify_model_dir
from signer.oci.registry import RegistryOptions
from signer.oci.stores import Stores
from signer.references import ArtifactReference, parse_reference
from signer.signing import SignatureFormat, sign_artifact
from signer.trust import TrustAnchor
from signer.verification import failure_message


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
    group.add_argument("--registry-timeout", type=float, default=30.0, metavar="SECONDS", help="per-request registry timeout (default 30)")


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

    sign = commands.add_parser("sign", help="sign an image/ModelKit reference, an oci: layout image, or a model directory")
    sign.add_argument("target", help="registry reference, kit://, oci://, oci:PATH[:tag|@digest], or a model directory")
    sign.add_argument("--key", required=True, type=Path, help="private key (cosign encrypted, PKCS#8 or SEC1 PEM)")
    sign.add_argument("--format", choices=[f.value for f in SignatureFormat], default="legacy", help="OCI signature form (default legacy .sig; bundle = cosign v3 referrer)")
    sign.add_argument("-a", "--annotation", action="append", default=[], type=_annotation, metavar="KEY=VALUE", help="signed annotation (repeatable)")
    _model_dir_options(sign)
    sign.add_argument("--serialization", choices=("shards", "files"), default="shards", help="model directories: shards (parallel, default) or files")
    sign.add_argument("--shard-size", type=int, default=HashingChoice().shard_size, help="model directories: shard size in bytes (default 64 MiB)")
    _registry_options(sign)
    _output_option(sign)
    sign.set_defaults(handler=cmd_sign)

    verify = commands.add_parser("verify", help="verify signatures on a reference or a model directory")
    verify.add_argument("target")
    _trust_options(verify)
    verify.add_argument("-a", "--annotation", action="append", default=[], type=_annotation, metavar="KEY=VALUE", help="require this signed annotation")
    verify.add_argument("--describe", action="store_true", help="for digest references, also fetch the manifest (never layers) to report ModelKit details")
    _model_dir_options(verify)
    _registry_options(verify)
    _output_option(verify)
    verify.set_defaults(handler=cmd_verify)

    blob = commands.add_parser("verify-blob", help="verify a sigstore bundle over a file")
    blob.add_argument("file", type=Path)
    blob.add_argument("--bundle", required=True, type=Path)
    _trust_options(blob)
    blob.set_defaults(handler=cmd_verify_blob)
    return parser, commands


def build_parser() -> argparse.ArgumentParser:
    return base_parser()[0]


def _model_dir_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signature", type=Path, help="model directories: signature file (default: DIR.sig beside the directory)")
    parser.add_argument("--ignore-path", action="append", default=[], metavar="PATH", help="model directories: path (relative to DIR) left out of the signature")


# -- targets ------------------------------------------------------------------------------


def _is_model_directory(target: str) -> bool:
    if target.startswith("oci:") or "://" in target:
        return False
    if Path(target).is_dir():
        return True
    if target.startswith(("./", "../", "/", "~")):
        raise UsageError(f"{target} is not a directory", hint="pass an existing model directory, or a registry reference such as registry.example.com/models/llm:1.0")
    return False


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
    key = load_signing_key_file(args.key)
    if _is_model_directory(args.target):
        if annotations or args.format != "legacy":
            raise UsageError("--annotation and --format apply to OCI artifacts, not model directories")
        choice = HashingChoice(method=args.serialization, shard_size=args.shard_size)
        result = sign_model_dir(Path(args.target), key, signature_path=args.signature, ignore_paths=args.ignore_path, choice=choice)
        _emit(args, render.model_sign_text(result), result)
        return EXIT_OK
    reference = parse_reference(args.target)
    with _stores(args) as stores:
        signed = sign_artifact(stores, reference, key, signature_format=SignatureFormat(args.format), annotations=annotations)
    _emit(args, render.sign_text(signed), signed)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    if _is_model_directory(args.target):
        report = verify_model_dir(Path(args.target), anchors, signature_path=args.signature, ignore_paths=args.ignore_path)
        _emit(args, render.model_verify_text(report), {"verified": True, **render.to_jsonable(report)})
        return EXIT_OK
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


def cmd_verify_blob(args: argparse.Namespace) -> int:
    anchors = _anchors(args)
    try:
        artifact, bundle = args.file.read_bytes(), args.bundle.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    signer = verify_blob(artifact, bundle, anchors, what=f"bundle {args.bundle}")
    print(f"Verified {args.file}: signed by {signer}")
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


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
