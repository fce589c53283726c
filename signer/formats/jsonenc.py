"""JSON encodings that other tools sign or hash byte for byte.

cosign is written in Go, whose `encoding/json` writes compact JSON, keeps map keys sorted,
and escapes `<`, `>`, `&`, U+2028 and U+2029 as `\\u003c`-style sequences. Payloads and
manifests that must match cosign's bytes go through `go_json`. Signed payloads are read back
with `load_signed_json` and `check_fields`, so that nothing Go would read otherwise than we
do is accepted. Reading other untrusted JSON is `signer.jsonread`.
"""

from __future__ import annotations

import json
from typing import Any

from signer.errors import FormatError
from signer.jsonread import refuse_constant

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(value: Any) -> bytes:
    """Encode like Go's json.Marshal (field order is the caller's dict order)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


class JsonObject(dict):  # type: ignore[type-arg]
    """A parsed JSON object that also keeps its members as written (a key may repeat)."""

    members: tuple[tuple[str, Any], ...] = ()


def _keep_members(pairs: list[tuple[str, Any]]) -> JsonObject:
    value = JsonObject(pairs)
    value.members = tuple(pairs)
    return value


def load_signed_json(data: bytes | str, *, what: str) -> Any:
    """`load_json` for signed payloads: objects remember their members, so `check_fields`
    can refuse what another implementation would read differently."""
    try:
        return json.loads(data, object_pairs_hook=_keep_members, parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise FormatError(f"{what} is nested too deeply to be valid") from None


def check_fields(value: Any, fields: frozenset[str], what: str) -> None:
    """Refuse an object that Go's encoding/json (cosign, sigstore-go) could read otherwise than
    we do: Go matches struct fields case-insensitively and keeps the last duplicate, so a key
    given twice, or a case variant of a field (`Critical` for `critical`), means one thing
    there and another here. Members of maps (annotations, predicates) are not struct fields
    and are compared exactly by both, so they are not checked."""
    if not isinstance(value, dict):
        return
    members = value.members if isinstance(value, JsonObject) else tuple(value.items())
    wanted = {field.casefold(): field for field in fields}
    seen: dict[str, str] = {}
    for key, _ in members:
        folded = key.casefold()
        if folded in seen:
            twice = f"{key!r} twice" if seen[folded] == key else f"{seen[folded]!r} and {key!r}, which Go reads as one field"
            raise FormatError(f"{what} holds {twice}", hint="a signed payload with ambiguous keys is refused; re-sign it with a standard tool")
        seen[folded] = key
        if folded in wanted and wanted[folded] != key:
            raise FormatError(f"{what} has the key {key!r} where the field is spelled {wanted[folded]!r}",
                              hint="a signed payload with ambiguous keys is refused; re-sign it with a standard tool")
