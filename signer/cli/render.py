"""Turn results into the CLI's text and JSON output (JSON shapes are documented in README)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from signer.references import printable_lines

if TYPE_CHECKING:  # only named in annotations: printing a result needs none of these imported
    from signer.modeldir.signing import ModelDirReport, ModelDirSignResult
    from signer.signatures.artifacts import ArtifactVerification
    from signer.signatures.signing import SignResult


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (Path, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def dump_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


class _YamlDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings (PEM keys, caBundles) as `|` blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_YamlDumper.add_representer(str, _text)


def dump_yaml(value: Any) -> str:
    return yaml.dump(to_jsonable(value), Dumper=_YamlDumper, sort_keys=False, allow_unicode=True, width=120)


def emit(output: str, text: str, data: Any) -> None:
    """Print a result as `-o text|json|yaml` asks (json and yaml carry the same data)."""
    if output == "json":
        print(dump_json(data))
    elif output == "yaml":
        print(dump_yaml(data), end="")
    else:  # text quotes registry and manifest content: no escape sequence reaches the terminal
        print(printable_lines(text))


def verification_json(result: ArtifactVerification) -> dict[str, Any]:
    report = result.report
    return {
        "verified": report.ok,
        "reference": str(result.resolved.reference),
        "digest": report.digest,
        "pinned": report.reference,
        "mediaType": result.media_type,
        "modelKit": to_jsonable(result.modelkit),
        "signatures": to_jsonable(report.verified),
        "rejected": to_jsonable(report.rejected),
        "ignored": list(report.ignored),
    }


def verification_text(result: ArtifactVerification) -> str:
    report = result.report
    lines = [f"{'Verified' if report.ok else 'NOT verified'}: {report.reference}"]
    if result.modelkit:
        kit = result.modelkit
        lines.append(f"  ModelKit: package {kit.package_name or '?'} version {kit.package_version or '?'} ({kit.layer_count} layers, {kit.format})")
    elif result.media_type:
        lines.append(f"  media type: {result.media_type}")
    for sig in report.verified:
        who = f"{sig.signer} (key id {sig.key_id})" if sig.key_id else sig.signer
        if sig.keyless:
            who += f" [{', '.join(sig.keyless.subjects)} via {sig.keyless.issuer}, Rekor index {sig.keyless.log_index}]"
        extras = []
        if sig.docker_reference:
            extras.append(f"docker-reference {sig.docker_reference}")
        if sig.annotations:
            extras.append("annotations " + ", ".join(f"{k}={v}" for k, v in sorted(sig.annotations.items())))
        lines.append(f"  signed ({sig.form}) by {who}" + (f"; {'; '.join(extras)}" if extras else ""))
    for rejection in report.rejected:
        lines.append(f"  rejected: {rejection.location}: {rejection.reason}")
    for note in report.ignored:
        lines.append(f"  ignored: {note}")
    return "\n".join(lines)


def sign_text(result: SignResult) -> str:
    lines = [f"Signed {result.reference} with key {result.key_name} (key id {result.key_id})"]
    lines += [f"  wrote {where}" for where in result.written]
    lines += [f"  already signed, unchanged: {where}" for where in result.unchanged]
    return "\n".join(lines)


def model_sign_text(result: ModelDirSignResult) -> str:
    return (
        f"Signed model directory {result.model_dir} ({result.resources} entries, {result.method} serialization, root {result.root_digest})\n"
        f"  with key {result.key_name} (key id {result.key_id})\n  signature: {result.signature_path}"
    )


def model_verify_text(report: ModelDirReport) -> str:
    who = f"{report.signer} (key id {report.key_id})" if report.key_id else report.signer
    lines = [
        f"Verified model directory {report.model_dir} against {report.signature_path}",
        f"  signed by {who}; {report.resources} entries, {report.method} serialization; root {report.root_digest}",
    ]
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
