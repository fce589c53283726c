"""Reading JSON from untrusted input: every failure is a `FormatError` naming what was read,
and fields of the wrong type read as empty.

Signed payloads, which must also read as Go reads them, go through
`signer.formats.jsonenc.load_signed_json` instead.
"""

from __future__ import annotations

import json
from typing import Any

from signer.errors import FormatError


def refuse_constant(name: str) -> Any:
    """`parse_constant` for untrusted input: NaN and the infinities are not JSON (RFC 8259),
    whatever Python's reader accepts; no peer writes them, and no record could hold them."""
    raise ValueError(f"{name} is not a JSON value")


def load_json(data: bytes | str, *, what: str) -> Any:
    """json.loads for untrusted input: every failure (including hostile nesting depth, and NaN
    or Infinity) is a FormatError naming `what`."""
    try:
        return json.loads(data, parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise FormatError(f"{what} is nested too deeply to be valid") from None


def parse_json_object(data: bytes | str, *, what: str) -> dict[str, Any]:
    """Parse JSON that must be an object; malformed input raises a FormatError naming `what`."""
    value = load_json(data, what=what)
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def mapping(value: Any) -> dict[str, Any]:
    """A field that should be an object, or {} when it is anything else."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    """A field that should be a string, or "" when it is anything else."""
    return value if isinstance(value, str) else ""


def strings(value: Any) -> list[str]:
    """A field that should be a list of strings: its strings, or []."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
