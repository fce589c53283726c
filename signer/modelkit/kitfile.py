"""KitOps ModelKits: recognise them and read their Kitfile (package name and version)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.jsonread import mapping
from signer.oci.manifest import Manifest
from signer.oci.repository import Repository

MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ModelKitInfo:
    package_name: str | None
    package_version: str | None
    model_name: str | None
    layer_count: int
    format: str  # "kitops" or "modelpack"


def is_modelkit(manifest: Manifest) -> bool:
    if manifest.is_index or manifest.config is None:
        return False
    return (
        manifest.config.media_type == mt.KITOPS_CONFIG
        or manifest.artifact_type == mt.KITOPS_MANIFEST_ARTIFACT
        or mt.KITFILE_ANNOTATION in manifest.annotations
    )


def describe_modelkit(repository: Repository, manifest: Manifest) -> ModelKitInfo | None:
    if not is_modelkit(manifest):
        return None
    assert manifest.config is not None
    modelpack = mt.KITFILE_ANNOTATION in manifest.annotations
    if modelpack:
        kitfile_text: bytes | str = manifest.annotations[mt.KITFILE_ANNOTATION]
    else:
        kitfile_text = repository.fetch_blob(manifest.config.digest, max_bytes=MAX_CONFIG_BYTES)
    kitfile = parse_kitfile(kitfile_text)
    package, model = mapping(kitfile.get("package")), mapping(kitfile.get("model"))
    return ModelKitInfo(
        package_name=_text(package.get("name")),
        package_version=_text(package.get("version")),
        model_name=_text(model.get("name")),
        layer_count=len(manifest.layers),
        format="modelpack" if modelpack else "kitops",
    )


def parse_kitfile(data: bytes | str) -> dict[str, Any]:
    """A Kitfile is YAML (its JSON form, stored as the ModelKit config, is YAML too)."""
    try:
        value = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise FormatError(f"Kitfile is not valid YAML/JSON: {exc}") from None
    except RecursionError:
        raise FormatError("Kitfile is nested too deeply to be valid") from None
    if not isinstance(value, dict):
        raise FormatError("Kitfile must be a mapping")
    return value


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None
