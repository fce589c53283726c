"""Model directories, signed in the OpenSSF model signing format (model_signing 1.x).

The manifest and payload model come from the `model-signing` library; sha256 hashing is
our parallel engine (signer.dirhash), other hash types a foreign signature may use go
through model_signing's hashers. The DSSE envelope is signed with our own keys
(cosign-encrypted keys included) and written as the same sigstore v0.3 bundle
model_signing writes, with model_signing's key hint.

Default serialization is `shards` (sha256, 64 MiB shards hashed in parallel), so one large
file uses every core. Two interop details:
- model_signing 1.1.1 writes `shard_size` as a float (via protobuf) and then cannot verify
  its own shard bundles; we write an integer, and accept integral floats when verifying.
- shard serialization lists no zero-length files, so adding or removing an empty file
  would go unnoticed. Our predicate also lists them under `modelsign.emptyFiles`
  (model_signing ignores unknown predicate fields) and our verifier checks that list.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from signer import mediatypes as mt
from signer.bundles import parse_bundle
from signer.dirhash import model_manifest, scan
from signer.dsse import sign_envelope
from signer.errors import FormatError, ModelsignError, UsageError, VerificationError
from signer.jsonenc import parse_json_object
from signer.keyless import KeylessIdentity, verify_bundle_dsse
from signer.keys import PublicKey, SigningKey, curve_hash
from signer.trust import TrustAnchor, describe_anchors

MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
DEFAULT_SHARD_SIZE = 64 * 1024 * 1024
EXTENSION_KEY = "modelsign"
MAX_SIGNATURE_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class HashingChoice:
    method: str = "shards"  # "shards" or "files"
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
    """`./my-model` -> `./my-model.sig`, beside (outside) the signed directory."""
    resolved = model_dir.resolve()
    return resolved.parent / (resolved.name + ".sig")


def _manifest(model_dir: Path, choice: HashingChoice, ignore: list[str]):
    """(model_signing Manifest, scanned files) for `choice`; sha256 uses our parallel engine."""
    if choice.method not in ("shards", "files"):
        raise UsageError(f"unknown serialization method {choice.method!r}", hint="use 'shards' or 'files'")
    shard_size = choice.shard_size if choice.method == "shards" else None
    if choice.hash_type == "sha256":
        return model_manifest(model_dir, shard_size=shard_size, ignore=ignore, allow_symlinks=choice.allow_symlinks)
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


def _check_directory(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise UsageError(f"{model_dir} is not a directory", hint="pass the model directory to sign or verify")


def sign_model_dir(
    model_dir: Path,
    key: SigningKey,
    *,
    signature_path: Path | None = None,
    ignore_paths: Iterable[str] = (),
    choice: HashingChoice = HashingChoice(),
) -> ModelDirSignResult:
    from google.protobuf import json_format
    from model_signing._signing.signing import Payload

    _check_directory(model_dir)
    public = key.public
    if not public.algorithm.startswith("ecdsa-"):
        raise UsageError(f"model directory signatures need an ECDSA key; {key.name} is {public.algorithm}", hint="create one with `modelsign keygen`")
    signature_path = signature_path or default_signature_path(model_dir)
    ignores = _relative_ignores(model_dir, signature_path, ignore_paths)
    try:
        manifest, files = _manifest(model_dir, choice, ignores)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot hash {model_dir}: {exc}") from None
    statement = json_format.MessageToDict(Payload(manifest).statement.pb)
    serialization = statement["predicate"]["serialization"]
    if "shard_size" in serialization:
        serialization["shard_size"] = int(serialization["shard_size"])
    if choice.method == "shards":
        statement["predicate"][EXTENSION_KEY] = {"emptyFiles": [f.relative for f in files if f.size == 0]}
    payload = json.dumps(statement, indent=2).encode()
    envelope = sign_envelope(mt.INTOTO_PAYLOAD, payload, key, hash_algorithm=curve_hash(public))
    bundle = {
        "mediaType": mt.SIGSTORE_BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": public.model_signing_hint}, "tlogEntries": []},
        "dsseEnvelope": envelope.to_json(),
    }
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
    )


def verify_model_dir(
    model_dir: Path,
    anchors: list[TrustAnchor],
    *,
    signature_path: Path | None = None,
    ignore_paths: Iterable[str] = (),
) -> ModelDirReport:
    from model_signing._signing.signing import dsse_payload_to_manifest

    _check_directory(model_dir)
    signature_path = signature_path or default_signature_path(model_dir)
    signer, key_id, payload = _verified_payload(signature_path, anchors)
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
    ignores = sorted(set(_relative_ignores(model_dir, signature_path, ignore_paths)) | set(serialization.get("ignore_paths", [])))
    try:
        actual, files = _manifest(model_dir, choice, ignores)
    except (ValueError, OSError) as exc:
        raise VerificationError(f"cannot hash {model_dir} for verification: {exc}") from None
    differences = _differences(actual, expected, sharded=choice.method == "shards")
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


def _verified_payload(signature_path: Path, anchors: list[TrustAnchor]) -> tuple[str, str | None, bytes]:
    try:
        size = signature_path.stat().st_size
        if size > MAX_SIGNATURE_FILE_BYTES:
            raise FormatError(f"signature file {signature_path} is {size} bytes; that is not a model signature")
        data = signature_path.read_bytes()
    except FileNotFoundError:
        raise VerificationError(
            f"signature file {signature_path} does not exist", hint="sign the directory with `modelsign sign DIR --key KEY`, or pass --signature"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read signature file {signature_path}: {exc.strerror}") from None
    bundle = parse_bundle(data, what=f"signature file {signature_path}")
    if bundle.envelope is None or bundle.envelope.payload_type != mt.INTOTO_PAYLOAD:
        raise FormatError(f"signature file {signature_path} holds no in-toto DSSE envelope")
    if bundle.is_keyless:
        reasons = []
        for identity in (a for a in anchors if isinstance(a, KeylessIdentity)):
            try:
                _, payload, _ = verify_bundle_dsse(bundle.raw, identity)
                return identity.name, None, payload
            except ModelsignError as exc:
                reasons.append(f"{identity.name}: {exc}")
        raise VerificationError(
            f"keyless signature {signature_path} not accepted" + (": " + "; ".join(reasons) if reasons else " (no keyless identity given)"),
            hint="pass --certificate-identity and --certificate-oidc-issuer for the expected signer",
        )
    for key in (a for a in anchors if isinstance(a, PublicKey)):
        if bundle.envelope.verified_by(key, hash_algorithm=curve_hash(key)):
            return key.name, key.key_id, bundle.envelope.payload
    raise VerificationError(
        f"signature {signature_path} was not made by {describe_anchors(anchors)}",
        hint="verify with the public key that matches the signing key, or re-sign with a trusted key",
    )


def _differences(actual: Any, expected: Any, *, sharded: bool) -> list[str]:
    """Human-readable added/removed/modified files (shard identifiers are `path:start:end`)."""

    def by_file(manifest: Any) -> dict[str, list[tuple[str, str]]]:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for descriptor in manifest.resource_descriptors():
            path = descriptor.identifier.rsplit(":", 2)[0] if sharded else descriptor.identifier
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
