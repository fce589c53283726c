"""Reading a small file the user named (a key, a certificate, a policy, a report): bounded, and
every failure an error of the caller's kind that says which file and how to fix it."""

from __future__ import annotations

from pathlib import Path

from signer.errors import ModelsignError, UsageError


def read_limited(path: Path, *, what: str, max_bytes: int, error: type[ModelsignError] = UsageError, missing_hint: str = "check the path") -> bytes:
    try:
        if path.stat().st_size > max_bytes:
            raise error(f"{what} {path} is larger than {max_bytes} bytes: too large to be one")
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist", hint=missing_hint) from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory, not a file", hint=missing_hint) from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
