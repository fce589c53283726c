"""Audit settings for `webhook serve`: flags in the parent, environment in each worker.

The parent process turns the `--audit-*` flags into MODELSIGN_AUDIT_* variables; every
uvicorn worker reads them and opens its own writer (its own chain). The audit key's password
comes from MODELSIGN_AUDIT_PASSWORD, else MODELSIGN_PASSWORD / COSIGN_PASSWORD: a server
never prompts.

The checkpoint file is never beside the chains by default: it goes to
`${MODELSIGN_STATE_DIR:-/var/lib/modelsign}/audit-checkpoints/<NAME>.checkpoints.jsonl`, and a
server that cannot create it does not start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from signer import UsageError, load_signing_key_file, password_from_environment_or_prompt
from webhook.audit.witness import WitnessSettings, parse_witness
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
    "witness": "MODELSIGN_AUDIT_WITNESS",
    "witness_docker_config": "MODELSIGN_AUDIT_WITNESS_DOCKER_CONFIG",
    "witness_insecure": "MODELSIGN_AUDIT_WITNESS_INSECURE",
}
PASSWORD_ENV = "MODELSIGN_AUDIT_PASSWORD"
STATE_DIR_ENV = "MODELSIGN_STATE_DIR"
DEFAULT_STATE_DIR = Path("/var/lib/modelsign")
CHECKPOINTS_HINT = ("pass --audit-checkpoints FILE on a volume the chain writers' directory cannot reach "
                    f"(or set {STATE_DIR_ENV} to a writable directory on such a volume)")


def default_checkpoint_path(stem: str, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR) / "audit-checkpoints" / f"{stem}.checkpoints.jsonl"


def prepare_checkpoint_file(path: Path) -> None:
    """Create the checkpoint file (and its directory), or say why not and what to do."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640))
    except OSError as exc:
        raise UsageError(f"cannot create the audit checkpoint file {path}: {exc.strerror}", hint=CHECKPOINTS_HINT) from None


def placement_warnings(settings: AuditSettings) -> list[str]:
    """What weakens the trail's protection, said at start (log line and audit record)."""
    warnings = []
    chains = settings.directory.resolve()
    if settings.checkpoint_path is not None:
        checkpoints = settings.checkpoint_path.resolve()
        if checkpoints.parent == chains or chains in checkpoints.parents:
            warnings.append(f"the checkpoint file {settings.checkpoint_path} is in the audit log directory {settings.directory}: whoever can "
                            f"rewrite the chains can rewrite it too; {CHECKPOINTS_HINT}")
    if settings.key is None:
        warnings.append("no --audit-key: checkpoints are not signed, so the trail can never be verified; pass --audit-key")
    return warnings


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
    stem = Path(path).name.removesuffix(".jsonl")
    checkpoints = Path(environ.get(ENV["checkpoints"]) or default_checkpoint_path(stem, environ))
    prepare_checkpoint_file(checkpoints)
    witness = environ.get(ENV["witness"])
    witness_config = environ.get(ENV["witness_docker_config"])
    return AuditSettings(
        path=Path(path),
        key=load_signing_key_file(Path(key_path), password=audit_password, name="audit") if key_path else None,
        checkpoint_path=checkpoints,
        witness=WitnessSettings(witness, docker_config=Path(witness_config) if witness_config else None,
                                insecure=environ.get(ENV["witness_insecure"], "") == "1") if witness else None,
        checkpoint_records=int(_number(environ, "checkpoint_records", DEFAULT_CHECKPOINT_RECORDS)),
        checkpoint_seconds=_number(environ, "checkpoint_seconds", DEFAULT_CHECKPOINT_SECONDS),
        rotate_bytes=int(_number(environ, "rotate_bytes", DEFAULT_ROTATE_BYTES)),
        rotate_seconds=_number(environ, "rotate_seconds", DEFAULT_ROTATE_SECONDS),
        retention_days=_number(environ, "retention_days", DEFAULT_RETENTION_DAYS),
        stdout=environ.get(ENV["stdout"], "").lower() in ("1", "true", "yes"),
    )


def export_to_environment(*, path: Path | None, key: Path | None, checkpoints: Path | None, stdout: bool, retention_days: float,
                          rotate_bytes: int, rotate_seconds: float, checkpoint_records: int, checkpoint_seconds: float,
                          witness: str | None = None, witness_docker_config: Path | None = None, witness_insecure: bool = False) -> None:
    """In the parent process: hand the flags to the workers. Checks first that the key loads,
    the checkpoint file can be created and the witness is well formed, so a mistake fails
    `webhook serve` at once rather than in every worker."""
    if path is None:
        if checkpoints or witness:
            raise UsageError("--audit-checkpoints and --audit-witness need --audit-log", hint="add --audit-log DIR/NAME.jsonl")
        return
    if witness is not None:
        parse_witness(witness)
        if key is None:
            raise UsageError("--audit-witness needs --audit-key: it witnesses signed checkpoints", hint="add --audit-key AUDIT_KEY")
        if witness_docker_config is not None and not witness_docker_config.is_file():
            raise UsageError(f"--audit-witness-docker-config {witness_docker_config} does not exist",
                             hint="give the config.json of a credential that may push to the witness repository")
    if checkpoint_records < 1:
        raise UsageError(f"--audit-checkpoint-records must be at least 1, not {checkpoint_records}")
    checkpoints = (checkpoints or default_checkpoint_path(path.name.removesuffix(".jsonl"))).resolve()
    prepare_checkpoint_file(checkpoints)
    values = {"path": path.resolve(), "key": key.resolve() if key else None, "checkpoints": checkpoints,
              "stdout": "1" if stdout else "", "retention_days": retention_days, "rotate_bytes": rotate_bytes, "rotate_seconds": rotate_seconds,
              "checkpoint_records": checkpoint_records, "checkpoint_seconds": checkpoint_seconds, "witness": witness,
              "witness_docker_config": witness_docker_config.resolve() if witness_docker_config else None,
              "witness_insecure": "1" if witness_insecure else ""}
    for name, value in values.items():
        if value is None or value == "":
            os.environ.pop(ENV[name], None)
        else:
            os.environ[ENV[name]] = str(value)
    settings_from_environment()
