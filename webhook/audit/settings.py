"""Audit settings for `webhook serve`: flags in the parent, environment in each worker.

The parent process turns the `--audit-*` flags into MODELSIGN_AUDIT_* variables; every
uvicorn worker reads them and opens its own writer (its own chain). The audit key's password
comes from MODELSIGN_AUDIT_PASSWORD, else MODELSIGN_PASSWORD / COSIGN_PASSWORD: a server
never prompts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from signer.errors import UsageError
from signer.keys import load_signing_key_file, password_from_environment_or_prompt
from webhook.audit.writer import (
    DEFAULT_CHECKPOINT_RECORDS,
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_ROTATE_BYTES,
    DEFAULT_ROTATE_SECONDS,
    AuditSettings,
)

ENV = {
    "path": "MODELSIGN_AUDIT_LOG",
    "key": "MODELSIGN_AUDIT_KEY",
    "checkpoints": "MODELSIGN_AUDIT_CHECKPOINTS",
    "stdout": "MODELSIGN_AUDIT_STDOUT",
    "retention_days": "MODELSIGN_AUDIT_RETENTION_DAYS",
    "rotate_bytes": "MODELSIGN_AUDIT_ROTATE_BYTES",
    "rotate_seconds": "MODELSIGN_AUDIT_ROTATE_SECONDS",
    "checkpoint_records": "MODELSIGN_AUDIT_CHECKPOINT_RECORDS",
    "checkpoint_seconds": "MODELSIGN_AUDIT_CHECKPOINT_SECONDS",
}
PASSWORD_ENV = "MODELSIGN_AUDIT_PASSWORD"


def audit_password(prompt: str) -> bytes:
    """MODELSIGN_AUDIT_PASSWORD, else the usual password sources (a server has no terminal,
    so there it is an error, never a prompt)."""
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV].encode()
    return password_from_environment_or_prompt(prompt)


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(ENV[name])
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{ENV[name]}={raw!r} is not a number") from None
    if value <= 0:
        raise UsageError(f"{ENV[name]} must be positive, not {raw}")
    return value


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> AuditSettings | None:
    """None when auditing is off (no MODELSIGN_AUDIT_LOG)."""
    path = environ.get(ENV["path"])
    if not path:
        return None
    key_path = environ.get(ENV["key"])
    checkpoints = environ.get(ENV["checkpoints"])
    return AuditSettings(
        path=Path(path),
        key=load_signing_key_file(Path(key_path), password=audit_password, name="audit") if key_path else None,
        checkpoint_path=Path(checkpoints) if checkpoints else None,
        checkpoint_records=int(_number(environ, "checkpoint_records", DEFAULT_CHECKPOINT_RECORDS)),
        checkpoint_seconds=_number(environ, "checkpoint_seconds", DEFAULT_CHECKPOINT_SECONDS),
        rotate_bytes=int(_number(environ, "rotate_bytes", DEFAULT_ROTATE_BYTES)),
        rotate_seconds=_number(environ, "rotate_seconds", DEFAULT_ROTATE_SECONDS),
        retention_days=_number(environ, "retention_days", DEFAULT_RETENTION_DAYS),
        stdout=environ.get(ENV["stdout"], "").lower() in ("1", "true", "yes"),
    )


def export_to_environment(*, path: Path | None, key: Path | None, checkpoints: Path | None, stdout: bool, retention_days: float,
                          rotate_bytes: int, rotate_seconds: float, checkpoint_records: int, checkpoint_seconds: float) -> None:
    """In the parent process: hand the flags to the workers. Checks the key loads first, so a
    wrong password fails `webhook serve` at once rather than in every worker."""
    if path is None:
        return
    values = {"path": path.resolve(), "key": key.resolve() if key else None, "checkpoints": checkpoints.resolve() if checkpoints else None,
              "stdout": "1" if stdout else "", "retention_days": retention_days, "rotate_bytes": rotate_bytes, "rotate_seconds": rotate_seconds,
              "checkpoint_records": checkpoint_records, "checkpoint_seconds": checkpoint_seconds}
    for name, value in values.items():
        if value is None or value == "":
            os.environ.pop(ENV[name], None)
        else:
            os.environ[ENV[name]] = str(value)
    settings_from_environment()
