"""The manifest of an export: the sha256 of every exported file, the report's identity, the
period, filters and integrity result, signed with the audit key so an auditor can tell the
package is whole. Each export writes its own (`<report>.manifest.json`), so a second export
into the same folder never overwrites the proof of the first.

    {"schema": "modelsign.audit-export/v1", "reportId", "generated", "generatedBy", "modelsignVersion",
     "auditKeys", "selection", "integrity": {...}, "files": [{"name", "bytes", "sha256"}], "keyId", "signature"}
The signature (base64, ECDSA with the audit key) covers the canonical JSON of the manifest
without `keyId` and `signature`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signer import FormatError, PublicKey, SigningKey, UsageError, parse_json_object
from webhook.audit.canonical import canonical_json

SCHEMA = "modelsign.audit-export/v1"


def file_entry(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"name": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


MANIFEST_SUFFIX = ".manifest.json"


def write_manifest(path: Path, files: list[Path], *, identity: dict[str, Any], selection: dict[str, Any], integrity: dict[str, Any],
                   key: SigningKey | None) -> Path:
    """`identity`: reportId, generated, generatedBy, modelsignVersion, auditKeys. Never
    replaces an existing manifest (the proof of an earlier export)."""
    manifest: dict[str, Any] = {"schema": SCHEMA, **identity, "selection": selection, "integrity": integrity, "files": [file_entry(f) for f in files]}
    if key is not None:
        manifest["keyId"] = key.public.key_id
        manifest["signature"] = base64.b64encode(key.sign(canonical_json({k: v for k, v in manifest.items() if k != "keyId"}))).decode()
    try:
        with path.open("xb") as handle:
            handle.write(canonical_json(manifest) + b"\n")
    except FileExistsError:
        raise UsageError(f"{path} already exists: it is the signed proof of an earlier export", hint="export to another -o path") from None
    return path


def manifests_in(path: Path) -> list[Path]:
    """`path` itself, or every export manifest in the directory `path`."""
    if not path.is_dir():
        return [path]
    found = sorted(path.glob(f"*{MANIFEST_SUFFIX}")) + ([path / "manifest.json"] if (path / "manifest.json").is_file() else [])
    if not found:
        raise UsageError(f"{path} holds no export manifest (*{MANIFEST_SUFFIX})", hint="pass the directory `audit export -o` wrote, or a manifest in it")
    return found


@dataclass(frozen=True)
class ManifestCheck:
    signed: bool
    signature_ok: bool
    files: list[tuple[str, str]]  # (name, "ok" | "changed" | "missing")

    @property
    def ok(self) -> bool:
        return self.signature_ok and all(state == "ok" for _, state in self.files)


def check_manifest(path: Path, keys: list[PublicKey]) -> ManifestCheck:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="pass the *.manifest.json written next to the exported report") from None
    manifest = parse_json_object(raw, what=f"export manifest {path}")
    files = manifest.get("files")
    if manifest.get("schema") != SCHEMA or not isinstance(files, list):
        raise FormatError(f"{path} is not a modelsign export manifest ({SCHEMA})")
    signature = manifest.get("signature")
    signed = isinstance(signature, str)
    body = {k: v for k, v in manifest.items() if k not in ("keyId", "signature")}
    try:
        raw = base64.b64decode(str(signature), validate=True) if signed else b""
    except (binascii.Error, ValueError):
        raw = b""
    signature_ok = bool(raw) and any(key.verify(raw, canonical_json(body)) for key in keys)
    states = []
    for entry in files:
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        target = path.parent / Path(name).name  # names only: a manifest cannot point outside its directory
        if not name or not target.is_file():
            states.append((name or "?", "missing"))
        else:
            states.append((name, "ok" if hashlib.sha256(target.read_bytes()).hexdigest() == entry.get("sha256") else "changed"))
    return ManifestCheck(signed=signed, signature_ok=signature_ok, files=states)
