"""Model directories and single-file models, signed in the OpenSSF model signing format
(model_signing 1.x), with a key or with a certificate from a private PKI (signer.trust.certificates).

The manifest and payload model come from the `model-signing` library; sha256 hashing is
our parallel engine (signer.modeldir.hashing), other hash types a foreign signature may use go
through model_signing's hashers. The DSSE envelope is signed with our own keys
(cosign-encrypted keys included) and written as the same sigstore v0.3 bundle
model_signing writes, with model_signing's key hint.

Default serialization is `files` (sha256, one digest per file, files hashed in parallel):
the form model_signing's CLI writes and the only one its CLI (1.1.1) verifies, so a default
signature verifies with `model_signing verify key|certificate` too. `shards` (64 MiB
shards hashed in parallel, so one large file uses every core) is an opt-in that only
model_signing's library and modelsign verify. Two details of shard signatures:
- model_signing 1.1.1 writes `shard_size` as a float (via protobuf) and then cannot verify
  its own shard bundles; we write an integer, and accept integral floats when verifying.
- shard serialization lists no zero-length files, so adding or removing an empty file
  would go unnoticed. Our predicate also lists them under `modelsign.emptyFiles`
  (model_signing ignores unknown predicate fields) and our verifier checks that list.
A single file is a model too, as in model_signing: its one resource is named "." and the
subject is the file name.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from signer.errors import FormatError, UsageError, VerificationError
from signer.formats import mediatypes as mt
from signer.formats.bundles import parse_bundle
from signer.formats.dsse import sign_envelope
from signer.jsonread import parse_json_object
from signer.modeldir.hashing import DEFAULT_SHARD_SIZE, SINGLE_FILE, model_manifest, preload_model_signing, scan
from signer.progress import ProgressCallback
from signer.trust.anchors import TrustAnchor
from signer.trust.certificates import CertificateTrust, SigningCertificate
from signer.trust.envelopes import verify_envelope
from signer.trust.keys import SigningKey, curve_hash

MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
EXTENSION_KEY = "modelsign"
MAX_SIGNATURE_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class HashingChoice:
    method: str = "files"  # "files" (model_signing's CLI verifies only these) or "shards"
    hash_type: str = "sha256"  # "sha256", "blake2" or "blake3"
    shard_size: int = DEFAULT_SHARD_SIZE
    allow_symlinks: bool = False


@dataclass(frozen=True)
class ModelDirSignResult:
    model_dir: Path
    signature_path: Path
    model_name: str
    root_digest: str
    resources: int
    key_name: str
    key_id: str
    method: str
    certificate: str | None = None  # subject of the signing certificate, if one was embedded


@dataclass(frozen=True)
class ModelDirReport:
    model_dir: Path
    signature_path: Path
    model_name: str
    root_digest: str
    signer: str
    key_id: str | None
    method: str
    resources: int
    warnings: tuple[str, ...]


def default_signature_path(model_dir: Path) -> Path:
    """`./my-model` -> `./my-model.sig`, beside (outside) the signed directory or file."""
    resolved = model_dir.resolve()
    return resolved.parent / (resolved.name + ".sig")


def _manifest(model_dir: Path, choice: HashingChoice, ignore: list[str], progress: ProgressCallback | None = None):
    """(model_signing Manifest, scanned files) for `choice`; sha256 uses our parallel engine."""
    if choice.method not in ("shards", "files"):
        raise UsageError(f"unknown serialization method {choice.method!r}", hint="use 'shards' or 'files'")
    shard_size = choice.shard_size if choice.method == "shards" else None
    if choice.hash_type == "sha256":
        return model_manifest(model_dir, shard_size=shard_size, ignore=ignore, allow_symlinks=choice.allow_symlinks, progress=progress)
    from model_signing import hashing  # blake2/blake3 signatures made by model_signing

    files = scan(model_dir, ignore, allow_symlinks=choice.allow_symlinks)

    algorithm: Any = choice.hash_type  # validated by model_signing ("sha256", "blake2", "blake3")
    config = hashing.Config()
    if shard_size is None:
        config.use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=choice.allow_symlinks)
    else:
        config.use_shard_serialization(hashing_algorithm=algorithm, shard_size=shard_size, allow_symlinks=choice.allow_symlinks)
    config.set_ignored_paths(paths=ignore, ignore_git_paths=True)
    return config.hash(model_dir), files


def _relative_ignores(model_dir: Path, signature_path: Path, extra: Iterable[str]) -> list[str]:
    ignores = [str(PurePosixPath(p)) for p in extra]
    try:
        ignores.append(signature_path.resolve().relative_to(model_dir.resolve()).as_posix())
    except ValueError:
        pass  # the signature lives outside the directory: nothing to ignore
    return sorted(set(ignores))


def _check_model_path(model_path: Path, ignore_paths: Iterable[str]) -> None:
    if model_path.is_dir():
        return
    if not model_path.exists():
        raise UsageError(f"{model_path} does not exist", hint="pass the model directory or file to sign or verify")
    if not model_path.is_file():
        raise UsageError(f"{model_path} is neither a directory nor a regular file")
    if list(ignore_paths):
        raise UsageError(f"{model_path} is a single file: there is nothing in it to ignore", hint="leave out --ignore-path")


def sign_model_dir(
    model_dir: Path,
    key: SigningKey,
    *,
    signature_path: Path | None = None,
    ignore_paths: Iterable[str] = (),
    choice: HashingChoice | None = None,
    certificate: SigningCertificate | None = None,
    progress: ProgressCallback | None = None,
) -> ModelDirSignResult:
    """Sign a model directory or file with `key`; with `certificate` (issued for that key),
    the bundle carries it and its chain instead of a key hint, as model_signing's
    certificate signer writes it."""
    ignore_paths = list(ignore_paths)
    _check_model_path(model_dir, ignore_paths)
    choice = choice or HashingChoice()
    public = key.public
    if not public.algorithm.startswith("ecdsa-"):
        raise UsageError(f"model signatures need an ECDSA key; {key.name} is {public.algorithm}", hint="create one with `modelsign keygen`")
    if certificate is not None and certificate.certificate.public_key() != public.key:
        raise UsageError(f"the signing certificate {certificate.subject} is not for key {key.name}", hint="pass the certificate issued for this key")
    signature_path = signature_path or default_signature_path(model_dir)
    ignores = _relative_ignores(model_dir, signature_path, ignore_paths)
    preload_model_signing()
    try:
        manifest, files = _manifest(model_dir, choice, ignores, progress)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot hash {model_dir}: {exc}") from None
    from google.protobuf import json_format
    from model_signing._signing.signing import Payload

    statement = json_format.MessageToDict(Payload(manifest).statement.pb)
    serialization = statement["predicate"]["serialization"]
    if "shard_size" in serialization:
        serialization["shard_size"] = int(serialization["shard_size"])
    if choice.method == "shards":
        statement["predicate"][EXTENSION_KEY] = {"emptyFiles": [f.relative for f in files if f.size == 0]}
    payload = json.dumps(statement, indent=2).encode()
    envelope = sign_envelope(mt.INTOTO_PAYLOAD, payload, key, hash_algorithm=curve_hash(public))
    material = certificate.verification_material() if certificate else {"publicKey": {"hint": public.model_signing_hint}, "tlogEntries": []}
    bundle = {"mediaType": mt.SIGSTORE_BUNDLE_V03, "verificationMaterial": material, "dsseEnvelope": envelope.to_json()}
    _write_atomically(signature_path, json.dumps(bundle).encode())
    return ModelDirSignResult(
        model_dir=model_dir,
        signature_path=signature_path,
        model_name=manifest.model_name,
        root_digest="sha256:" + statement["subject"][0]["digest"]["sha256"],
        resources=len(statement["predicate"]["resources"]),
        key_name=key.name,
        key_id=public.key_id,
        method=choice.method,
        certificate=certificate.subject if certificate else None,
    )


def verify_model_dir(
    model_dir: Path,
    anchors: list[TrustAnchor],
    *,
    signature_path: Path | None = None,
    ignore_paths: Iterable[str] = (),
    certificates: CertificateTrust | None = None,
    progress: ProgressCallback | None = None,
) -> ModelDirReport:
    """Verify a model directory or file against its signature by one of `anchors`, or by a
    certificate chaining to one of the roots in `certificates`."""
    from model_signing._signing.signing import dsse_payload_to_manifest

    ignore_paths = list(ignore_paths)
    _check_model_path(model_dir, ignore_paths)
    signature_path = signature_path or default_signature_path(model_dir)
    signer, key_id, payload = _verified_payload(signature_path, anchors, certificates)
    statement = parse_json_object(payload, what=f"signed payload of {signature_path}")
    try:
        if statement.get("predicateType") != MODEL_SIGNING_PREDICATE:
            raise FormatError(f"signature {signature_path} has predicateType {statement.get('predicateType')!r}, expected {MODEL_SIGNING_PREDICATE}")
        expected = dsse_payload_to_manifest(statement)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"signature {signature_path} holds a malformed model_signing payload: {exc}") from None
    serialization = dict(expected.serialization_type)
    choice = HashingChoice(
        method=serialization.get("method", "files"),
        hash_type=serialization.get("hash_type", "sha256"),
        shard_size=_integral(serialization.get("shard_size", DEFAULT_SHARD_SIZE)),
        allow_symlinks=bool(serialization.get("allow_symlinks", False)),
    )
    _check_same_shape(model_dir, expected, signature_path, sharded=choice.method == "shards")
    ignores = sorted(set(_relative_ignores(model_dir, signature_path, ignore_paths)) | set(serialization.get("ignore_paths", [])))
    try:
        actual, files = _manifest(model_dir, choice, ignores, progress)
    except (ValueError, OSError) as exc:
        raise VerificationError(f"cannot hash {model_dir} for verification: {exc}") from None
    differences = _differences(actual, expected, sharded=choice.method == "shards", root_name=model_dir.name)
    warnings: list[str] = []
    predicate = statement.get("predicate") or {}
    extension = predicate.get(EXTENSION_KEY) if isinstance(predicate, dict) else None
    if choice.method == "shards":
        signed_list = extension.get("emptyFiles") if isinstance(extension, dict) else None
        if isinstance(signed_list, list):
            if not all(isinstance(p, str) for p in signed_list):
                raise FormatError(f"signature {signature_path} lists non-path entries under {EXTENSION_KEY}.emptyFiles")
            signed_empty = set(signed_list)
            present_empty = {f.relative for f in files if f.size == 0}
            differences += [f"added empty file {p}" for p in sorted(present_empty - signed_empty)]
            differences += [f"removed empty file {p}" for p in sorted(signed_empty - present_empty)]
        else:
            warnings.append("this shard-format signature does not list empty files, so added or removed empty files are not detected")
    if differences:
        shown = "; ".join(differences[:10]) + (f" (+{len(differences) - 10} more)" if len(differences) > 10 else "")
        raise VerificationError(
            f"{model_dir} does not match its signature {signature_path}: {shown}",
            hint="restore the signed files, or re-sign the directory with `modelsign sign` if the change is intended",
        )
    resources = list(expected.resource_descriptors())
    return ModelDirReport(
        model_dir=model_dir,
        signature_path=signature_path,
        model_name=expected.model_name,
        root_digest="sha256:" + statement["subject"][0]["digest"]["sha256"],
        signer=signer,
        key_id=key_id,
        method=choice.method,
        resources=len(resources),
        warnings=tuple(warnings),
    )


def _verified_payload(signature_path: Path, anchors: list[TrustAnchor], certificates: CertificateTrust | None) -> tuple[str, str | None, bytes]:
    try:
        size = signature_path.stat().st_size
        if size > MAX_SIGNATURE_FILE_BYTES:
            raise FormatError(f"signature file {signature_path} is {size} bytes; that is not a model signature")
        data = signature_path.read_bytes()
    except FileNotFoundError:
        raise VerificationError(
            f"signature file {signature_path} does not exist", hint="sign the model with `modelsign sign PATH --key KEY`, or pass --signature"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read signature file {signature_path}: {exc.strerror}") from None
    bundle = parse_bundle(data, what=f"signature file {signature_path}")
    if bundle.envelope is None or bundle.envelope.payload_type != mt.INTOTO_PAYLOAD:
        raise FormatError(f"signature file {signature_path} holds no in-toto DSSE envelope")
    # model_signing pairs each ECDSA curve with its hash (P-384 with SHA-384...).
    signer = verify_envelope(bundle, anchors, what=f"signature {signature_path}", certificates=certificates, key_hash=curve_hash,
                             chain_option=True)
    return signer.name, signer.key_id, signer.payload


def _check_same_shape(model_path: Path, expected: Any, signature_path: Path, *, sharded: bool) -> None:
    """A signature of a single file has one resource named "." (or its shards); say so
    plainly when it is checked against a directory, or a directory's against a file."""
    files = {d.identifier.rsplit(":", 2)[0] if sharded else d.identifier for d in expected.resource_descriptors()}
    if not files:
        return
    if files == {SINGLE_FILE} and model_path.is_dir():
        raise VerificationError(f"signature {signature_path} is for a single file ({expected.model_name}), but {model_path} is a directory",
                                hint="verify the signed file itself, or pass the directory's own signature")
    if files != {SINGLE_FILE} and not model_path.is_dir():
        raise VerificationError(f"signature {signature_path} is for a model directory ({expected.model_name}), but {model_path} is a single file",
                                hint="verify the signed directory, or pass this file's own signature")


def _differences(actual: Any, expected: Any, *, sharded: bool, root_name: str) -> list[str]:
    """Human-readable added/removed/modified files (shard identifiers are `path:start:end`;
    a single-file model's one file is "." and is named by `root_name`)."""

    def by_file(manifest: Any) -> dict[str, list[tuple[str, str]]]:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for descriptor in manifest.resource_descriptors():
            path = descriptor.identifier.rsplit(":", 2)[0] if sharded else descriptor.identifier
            path = root_name if path == SINGLE_FILE else path
            grouped.setdefault(path, []).append((descriptor.identifier, descriptor.digest.digest_hex))
        return grouped

    have, want = by_file(actual), by_file(expected)
    out = [f"added {p}" for p in sorted(set(have) - set(want))]
    out += [f"removed {p}" for p in sorted(set(want) - set(have))]
    out += [f"modified {p}" for p in sorted(set(have) & set(want)) if sorted(have[p]) != sorted(want[p])]
    return out


def _integral(value: Any) -> int:
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise FormatError(f"signature has an invalid shard_size {value!r}")


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        raise UsageError(f"cannot write signature file {path}: {exc.strerror}") from None
