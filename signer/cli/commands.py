"""The signer's commands (`modelsign sign`, `verify`, `attest`, `scan`, `approve`...): one
handler per command, a thin layer over the `signer` library.

Each returns its exit code: 0 ok, 1 verification failed; user errors are raised as
`ModelsignError`, which `signer.cli.main.run` turns into a message and its exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

from signer.cli import render
from signer.cli.completion import completion_script
from signer.cli.progress import Progress
from signer.errors import EXIT_OK, EXIT_VERIFICATION_FAILED, ModelsignError, NotFoundError, UsageError
from signer.evidence.approvals import approval_predicate, parse_duration, parse_time
from signer.formats import mediatypes as mt
from signer.jsonread import load_json
from signer.modeldir.signing import HashingChoice, sign_model_dir, verify_model_dir
from signer.oci.registry import RegistryOptions
from signer.oci.stores import Stores
from signer.references import ArtifactReference, parse_reference
from signer.signatures.artifacts import ArtifactVerification, resolve_artifact, verify_artifact
from signer.signatures.attestations import attest, predicate_type_for
from signer.signatures.blobs import blob_argument, verify_blob, verify_blob_attestation
from signer.signatures.signing import SignatureFormat, sign_artifact
from signer.signatures.verification import failure_message, verify_attestations
from signer.trust.anchors import TrustAnchor, describe_anchors
from signer.trust.certificates import load_certificate_trust, load_signing_certificate
from signer.trust.keyless import KeylessIdentity
from signer.trust.keys import PublicKey, SigningKey, generate_key_pair, load_public_key_file, load_signing_key_file, password_from_environment_or_prompt


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


def _looks_like_a_path(target: str) -> bool:
    """A bare name that would resolve to Docker Hub (`my-model`, `models/llm`) and is not on
    disk: maybe a local model typed without `./` (or from the wrong directory)."""
    if target.startswith("oci:") or "://" in target or "@" in target or ":" in target:
        return False
    first = target.split("/", 1)[0]
    return "." not in first and first != "localhost" and not Path(target).exists()


@contextmanager
def _or_local_path(target: str) -> Iterator[None]:
    """Adds "did you mean ./NAME?" to a registry error about a bare name (it stays the error)."""
    try:
        yield
    except ModelsignError as exc:
        if _looks_like_a_path(target):
            guess = f"did you mean ./{target}? (a local model directory or file: none of that name is here)"
            exc.hint = f"{exc.hint}; {guess}" if exc.hint else guess
        raise


def _hashing_choice(serialization: str | None, shard_size: int | None) -> HashingChoice:
    """`files` unless `--serialization shards` is asked for; `--shard-size` only with shards."""
    if shard_size is not None and serialization != "shards":
        raise UsageError("--shard-size applies to shard signatures", hint="add --serialization shards, or leave out --shard-size")
    if shard_size is not None and shard_size <= 0:
        raise UsageError(f"--shard-size must be a positive number of bytes, not {shard_size}")
    if serialization == "shards":
        return HashingChoice(method="shards", shard_size=shard_size or HashingChoice().shard_size)
    return HashingChoice(method="files")


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


def _quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def _sign_hint(target: str, args: argparse.Namespace) -> str:
    keys = [p for p in args.key]
    key = keys[0].with_suffix(".key") if keys else Path("KEY")
    return f"modelsign sign {target} --key {key}"


def _emit(args: argparse.Namespace, text: str, data: Any) -> None:
    render.emit(getattr(args, "output", "text"), text, data)


# -- commands -----------------------------------------------------------------------------


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    sys.stdout.write(completion_script(parser, args.shell))
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    password = password_from_environment_or_prompt("Enter password for the new private key", confirm=True)
    key_path, pub_path, public = generate_key_pair(args.output_prefix, password, force=args.force)
    print(f"Private key written to {key_path}\nPublic key written to {pub_path}\nKey id: {public.key_id}")
    return EXIT_OK


def cmd_public_key(args: argparse.Namespace) -> int:
    key = load_signing_key_file(args.key)
    if args.output == "text":
        sys.stdout.write(key.public.pem.decode())
        print(f"# key id {key.public.key_id}", file=sys.stderr)
    else:
        _emit(args, "", {"keyId": key.public.key_id, "name": key.public.name, "publicKey": key.public.pem.decode()})
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
        choice = _hashing_choice(args.serialization, args.shard_size)
        progress = Progress(f"hashing {path}", quiet=_quiet(args))
        try:
            result = sign_model_dir(path, key, signature_path=args.signature, ignore_paths=args.ignore_path, choice=choice, certificate=certificate,
                                    progress=progress)
        finally:
            progress.close()
        text = _model_text(render.model_sign_text(result), path) + (f"\n  certificate: {result.certificate}" if result.certificate else "")
        _emit(args, text, result)
        return EXIT_OK
    reference = parse_reference(args.target)
    with _stores(args) as stores, _or_local_path(args.target):
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
        progress = Progress(f"hashing {path}", quiet=_quiet(args))
        try:
            report = verify_model_dir(path, anchors, signature_path=args.signature, ignore_paths=args.ignore_path, certificates=certificates,
                                      progress=progress)
        finally:
            progress.close()
        _emit(args, _model_text(render.model_verify_text(report), path), {"verified": True, **render.to_jsonable(report)})
        return EXIT_OK
    if args.certificate_chain:
        raise UsageError("--certificate-chain applies to model directories and files", hint="verify OCI signatures with --key or the keyless flags")
    anchors = _anchors(args)
    reference: ArtifactReference = parse_reference(args.target)
    with _stores(args) as stores, _or_local_path(args.target):
        result = verify_artifact(stores, reference, anchors, required_annotations=dict(args.annotation) or None, describe=args.describe)
        if not result.ok and not result.report.rejected and stores.repository(reference).fetch_manifest(result.resolved.digest) is None:
            raise NotFoundError(f"{result.resolved.pinned} not found: no manifest has that digest in {stores.repository(reference).display_name}",
                                hint="check the digest (verify REPOSITORY:TAG to look it up by tag), or push the artifact first")
        other_signers = _other_signers(stores, reference, args.key) if not result.ok and _all_by_other_keys(result) else None
    _emit(args, render.verification_text(result), render.verification_json(result))
    if not result.ok:
        if other_signers is not None:
            print(f"error: {_other_signers_message(result, anchors, other_signers, args.key)}", file=sys.stderr)
        else:
            print("error: " + failure_message(result.report, anchors, sign_hint=_sign_hint(str(result.resolved.pinned), args)), file=sys.stderr)
        return EXIT_VERIFICATION_FAILED
    return EXIT_OK


DEFAULT_SCANNERS = "vuln,secret,misconfig"
NOT_BY_TRUSTED_KEY = "not made by any trusted key"
MAX_NEIGHBOUR_KEYS = 50  # public keys tried beside --key, to name the one that signed


def _all_by_other_keys(result: ArtifactVerification) -> bool:
    """Signatures are there, and every one was only made by a key we were not given."""
    rejected = result.report.rejected
    return bool(rejected) and all(r.reason.endswith(NOT_BY_TRUSTED_KEY) for r in rejected)


def _other_signers(stores: Stores, reference: ArtifactReference, given: list[Path]) -> list[tuple[str, str, Path]]:
    """(name, key id, file) of the public keys beside the --key files that did sign: which key
    signed is in no cosign .sig, so the keys the user keeps next to the one given are tried."""
    candidates: list[tuple[PublicKey, Path]] = []
    given_resolved = {path.resolve() for path in given}
    for folder in sorted({path.resolve().parent for path in given}):
        for path in sorted(folder.glob("*.pub"))[:MAX_NEIGHBOUR_KEYS]:
            if path.resolve() in given_resolved:
                continue
            try:
                candidates.append((load_public_key_file(path), path))
            except ModelsignError:
                continue  # not a key: nothing to say about it
    if not candidates:
        return []
    found = verify_artifact(stores, reference, [key for key, _ in candidates]).report.verified
    signed_ids = {signature.key_id for signature in found}
    return [(key.name, key.key_id, path) for key, path in candidates if key.key_id in signed_ids]


def _other_signers_message(result: ArtifactVerification, anchors: list[TrustAnchor], signers: list[tuple[str, str, Path]], given: list[Path]) -> str:
    ours = ", ".join(f"{a.name} (key id {a.key_id})" for a in anchors if isinstance(a, PublicKey)) or describe_anchors(anchors)
    count = len(result.report.rejected)
    head = f"{result.resolved.pinned} is signed ({count} signature(s)), but not by {ours}"
    if signers:
        who = ", ".join(f"{name} (key id {key_id}, {path})" for name, key_id, path in signers)
        return (f"{head}: it was signed by {who}\n  hint: if you trust that key, verify with --key {signers[0][2]}; "
                "re-signing with the key you passed is not the fix")
    reasons = "; ".join(sorted({f"{r.location}: {r.reason}" for r in result.report.rejected})[:3])
    if any(r.reason.startswith("keyless") for r in result.report.rejected):
        return (f"{head} [{reasons}]\n  hint: a keyless signature is verified by its signer's identity, not a key: "
                "pass --certificate-identity (or --certificate-identity-regexp) and --certificate-oidc-issuer")
    folders = ", ".join(sorted({str(path.parent) for path in given}))
    return (f"{head}: by a key none of the public keys in {folders} match (cosign .sig signatures do not name their key) [{reasons}]\n"
            "  hint: ask the signer for their public key (`modelsign public-key --key THEIR.key` prints it with its key id) and verify with it")


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
    _emit(args, f"Attested {result.reference} ({result.predicate_type}) with key {result.key_name} (key id {result.key_id})\n  wrote {result.written}"
                f"\n  id {result.statement_digest}",
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
    lines = [f"{len(found)} verified {predicate_type} attestation(s) for {resolved.pinned}"]
    lines += [f"  by {item.signer} ({item.form}, {item.location})" for item in found]
    lines += [f"  rejected: {rejection.location}: {rejection.reason}" for rejection in report.rejected]
    _emit(args, "\n".join(lines), {"verified": bool(found), "digest": resolved.digest, "attestations": found, "rejected": report.rejected})
    if not found:
        print(f"error: no {predicate_type} attestation by {describe_anchors(anchors)} for {resolved.pinned}", file=sys.stderr)
        return EXIT_VERIFICATION_FAILED
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    # The scanner (trivy, unpacking, the model-file readers) is imported only by the command that scans.
    from signer.evidence.scan.scanning import scan_artifact
    from signer.evidence.scan.trivy import Trivy
    from signer.evidence.scan.unpack import UnpackLimits

    if args.offline and args.scanners is None and not args.from_report:  # before pulling gigabytes, not after
        raise UsageError("--offline needs --scanners: offline, trivy has no vulnerability database to scan with",
                         hint="pass --scanners secret,misconfig (they need no database), or --scanners vuln with a database already "
                              "in trivy's cache, or leave out --offline")
    key = load_signing_key_file(args.key)
    reference = parse_reference(args.target)
    trivy = None if args.from_report else Trivy.find(args.trivy, timeout_seconds=args.timeout)
    progress = Progress(f"resolving {args.target}", quiet=_quiet(args))
    with _stores(args) as stores, _or_local_path(args.target):
        with progress.ticking():
            outcome = scan_artifact(stores, reference, trivy=trivy, from_report=args.from_report, scanners=args.scanners or DEFAULT_SCANNERS,
                                    offline=args.offline, limits=UnpackLimits(max_bytes=args.max_bytes), image_model_files=args.model_files,
                                    progress=progress)
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
