"""`Repository` over a local OCI image layout directory (the embedded default store).

Layout: `oci-layout`, `index.json` (tags as `org.opencontainers.image.ref.name`
annotations) and content-addressed `blobs/<alg>/<hex>`. Writes are atomic (temp file +
rename) and `index.json` updates hold an advisory lock, so concurrent signers do not lose
each other's tags.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from signer.errors import FormatError, NotFoundError, RegistryError, TooLargeError
from signer.formats import mediatypes as mt
from signer.formats.digests import check_content, is_digest, sha256_digest, write_checked
from signer.jsonread import parse_json_object
from signer.oci.budget import current as current_budget
from signer.oci.manifest import Descriptor, Manifest, parse_descriptor, parse_manifest
from signer.oci.repository import DEFAULT_MAX_BLOB_BYTES, MAX_MANIFEST_BYTES, PushedManifest

_LAYOUT_MARKER = {"imageLayoutVersion": "1.0.0"}


class LayoutRepository:
    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not (path / "oci-layout").is_file():
            if not create:
                raise NotFoundError(
                    f"{path} is not an OCI image layout (no oci-layout file)",
                    hint="point oci:PATH at a layout directory, e.g. one written by `kit export`, `skopeo copy` or `modelsign demo`",
                )
            self._initialise()

    @property
    def display_name(self) -> str:
        return f"oci:{self.path}"

    def _initialise(self) -> None:
        try:
            (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            if not (self.path / "index.json").exists():
                _atomic_write(self.path / "index.json", json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode())
            _atomic_write(self.path / "oci-layout", json.dumps(_LAYOUT_MARKER).encode())
        except OSError as exc:
            raise RegistryError(f"cannot create OCI layout at {self.path}: {exc}") from None

    # -- index.json -------------------------------------------------------------------

    def _read_index(self) -> list[Descriptor]:
        try:
            raw = (self.path / "index.json").read_bytes()
        except OSError as exc:
            raise RegistryError(f"cannot read {self.path / 'index.json'}: {exc}") from None
        body = parse_json_object(raw, what=f"{self.path / 'index.json'}")
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise FormatError(f"{self.path / 'index.json'} has no 'manifests' list")
        return [parse_descriptor(entry, what=f"{self.path / 'index.json'} entry {i}") for i, entry in enumerate(entries)]

    @contextlib.contextmanager
    def _locked_index(self) -> Iterator[list[Descriptor]]:
        """Read-modify-write index.json under an exclusive lock."""
        lock_path = self.path / "index.json.lock"
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self._read_index()
                yield entries
                body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [e.to_json() for e in entries]}
                _atomic_write(self.path / "index.json", json.dumps(body, indent=2).encode() + b"\n")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _tagged(self, tag: str) -> Descriptor | None:
        for entry in self._read_index():
            name = entry.annotations.get(mt.ANNOTATION_REF_NAME, "")
            if name == tag or name.endswith(":" + tag) and "/" in name:
                return entry
        return None

    # -- Repository ---------------------------------------------------------------------

    def resolve(self, reference: str | None) -> Descriptor:
        if reference is None:
            entries = self._read_index()
            if len(entries) == 1:
                return entries[0]
            tags = sorted(e.annotations.get(mt.ANNOTATION_REF_NAME, "?") for e in entries)
            raise RegistryError(
                f"{self.display_name} holds {len(entries)} manifests; say which one",
                hint="write oci:PATH:TAG or oci:PATH@sha256:...; tags here: " + (", ".join(tags) or "none"),
            )
        if is_digest(reference):
            for entry in self._read_index():
                if entry.digest == reference:
                    return entry
            manifest = self.fetch_manifest(reference)
            if manifest is None:
                raise NotFoundError(f"{reference} not found in {self.display_name}")
            return manifest.descriptor()
        tagged = self._tagged(reference)
        if tagged is None:
            raise NotFoundError(
                f"tag {reference!r} not found in {self.display_name}",
                hint="tags here: " + (", ".join(self.list_tags()) or "none"),
            )
        return tagged

    def fetch_manifest(self, reference: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest | None:
        if not is_digest(reference):
            entry = self._tagged(reference)
            if entry is None:
                return None
            reference = entry.digest
        what = f"manifest {reference} in {self.display_name}"
        path = self._blob_path(reference)
        if not path.is_file():
            return None
        raw = _read_capped(path, max_bytes, what)
        check_content(raw, reference, what=what)
        return parse_manifest(raw, digest=reference, what=what)

    def push_manifest(self, data: bytes, media_type: str, *, tag: str | None = None) -> PushedManifest:
        digest = self.push_blob(data)
        if tag is not None:
            body = parse_json_object(data, what="manifest")
            artifact_type = body.get("artifactType") if isinstance(body.get("artifactType"), str) else None
            descriptor = Descriptor(
                media_type=media_type, digest=digest, size=len(data), annotations={mt.ANNOTATION_REF_NAME: tag}, artifact_type=artifact_type
            )
            with self._locked_index() as entries:
                entries[:] = [e for e in entries if e.annotations.get(mt.ANNOTATION_REF_NAME) != tag]
                entries.append(descriptor)
        return PushedManifest(digest=digest, subject_indexed=False)

    def fetch_blob(self, digest: str, *, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> bytes:
        what = f"blob {digest} in {self.display_name}"
        path = self._blob_path(digest)
        if not path.is_file():
            raise NotFoundError(f"{what} not found")
        data = _read_capped(path, max_bytes, what)
        check_content(data, digest, what=what)
        return data

    def fetch_blob_to_file(self, digest: str, path: Path, *, max_bytes: int, advance: Callable[[int], None] | None = None) -> None:
        source = self._blob_path(digest)
        what = f"blob {digest} in {self.display_name}"
        if not source.is_file():
            raise NotFoundError(f"{what} not found")
        with source.open("rb") as handle:
            write_checked(iter(lambda: handle.read(8 * 1024 * 1024), b""), path, digest, max_bytes, what, advance)

    def has_blob(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def push_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self._blob_path(digest)
        if not path.is_file():
            _atomic_write(path, data)
        return digest

    def push_blob_file(self, path: Path) -> str:
        hasher_digest, temp = _copy_hashing(path, self.path / "blobs" / "sha256")
        target = self._blob_path(hasher_digest)
        if target.is_file():
            temp.unlink()
        else:
            os.replace(temp, target)
        return hasher_digest

    def list_tags(self, *, page_size: int = 1000) -> list[str]:
        return [e.annotations[mt.ANNOTATION_REF_NAME] for e in self._read_index() if mt.ANNOTATION_REF_NAME in e.annotations]

    def referrers_api(self, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        return None  # layouts have no referrers API; the fallback tag scheme applies

    def _blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise FormatError(f"invalid digest {digest!r}")
        algorithm, hexpart = digest.split(":", 1)
        return self.path / "blobs" / algorithm / hexpart


def _read_capped(path: Path, max_bytes: int, what: str) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise TooLargeError(f"{what} is {size} bytes, more than the {max_bytes} allowed")
    budget = current_budget()
    if budget is not None:  # a local store is budgeted like a registry
        budget.charge_bytes(size, f"reading {what}")
    return path.read_bytes()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _copy_hashing(source: Path, directory: Path) -> tuple[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        while chunk := src.read(8 * 1024 * 1024):
            hasher.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return "sha256:" + hasher.hexdigest(), Path(temp)
