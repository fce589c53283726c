"""Pack a directory into a KitOps ModelKit, in kit's layer format.

One uncompressed tar per Kitfile entry (model, each dataset, code and docs entry), paths
relative to the context directory, headers normalised as kit writes them (mtime 0,
uid 1000, gid 0, no user/group names), entries sorted so the digest is reproducible.
The config is the Kitfile as JSON with each entry's layer digest; the manifest, like
kit 1.7's, has no mediaType field. Used by the demo and the tests to make real ModelKits.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from signer.errors import UsageError
from signer.formats import mediatypes as mt
from signer.oci.manifest import Descriptor
from signer.oci.repository import Repository

_SECTIONS = (("model", "model"), ("datasets", "dataset"), ("code", "code"), ("docs", "docs"))


def _tar_layer(context: Path, relative: str) -> bytes:
    source = (context / relative).resolve()
    if not source.is_relative_to(context.resolve()):
        raise UsageError(f"Kitfile path {relative!r} escapes the context directory {context}")
    if not source.exists():
        raise UsageError(f"Kitfile path {relative!r} does not exist under {context}")
    paths = [source] if source.is_file() else sorted([source, *source.rglob("*")])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in paths:
            info = archive.gettarinfo(str(path), arcname=path.relative_to(context.resolve()).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 1000, 0, "", ""
            if info.isfile():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return buffer.getvalue()


def pack_modelkit(repository: Repository, context: Path, kitfile: dict[str, Any], *, tag: str) -> Descriptor:
    config = json.loads(json.dumps(kitfile))
    layers: list[Descriptor] = []
    for section, kind in _SECTIONS:
        entries = config.get(section)
        if entries is None:
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise UsageError(f"Kitfile {section} entry needs a 'path'")
            content = _tar_layer(context, entry["path"])
            digest = repository.push_blob(content)
            entry["digest"] = digest
            entry["diffId"] = digest
            layers.append(Descriptor(media_type=f"{mt.KITOPS_LAYER_PREFIX}{kind}.v1.tar", digest=digest, size=len(content)))
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    repository.push_blob(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "config": Descriptor.for_content(mt.KITOPS_CONFIG, config_bytes).to_json(),
        "layers": [layer.to_json() for layer in layers],
        "annotations": {"ml.kitops.modelkit.cli-version": "modelsign-kitpack"},
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    pushed = repository.push_manifest(raw, mt.OCI_MANIFEST, tag=tag)
    return Descriptor(media_type=mt.OCI_MANIFEST, digest=pushed.digest, size=len(raw))
