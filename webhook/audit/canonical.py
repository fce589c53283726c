"""Canonical JSON (RFC 8785, JCS) for audit records.

Records hold strings, integers, booleans, null, lists and objects; floats are refused (RFC
8785 prints them as ECMAScript does, which no record needs: durations are integers of
microseconds). Keys are sorted by UTF-16 code units, strings are escaped as
`JSON.stringify` does (Python's encoder with `ensure_ascii=False` matches it), and the
output is UTF-8. Text that is not valid Unicode (lone surrogates from a hostile request)
is made valid (replacement characters) by `prepare`.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from typing import Any

import orjson

MAX_SAFE_INTEGER = 2**53 - 1  # beyond this an I-JSON reader cannot hold the number exactly

# The exact path's encoder: the reference every fast result must equal (tests/test_audit_chain.py).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
# The fast path: orjson writes the same bytes as the encoder above for sorted ASCII keys (same
# separators and escapes, `/` and U+007F unescaped, control characters as lowercase \u00xx),
# ten times faster, which the append rate needs (bench/bench_audit.py). Integers beyond 2**53
# are refused by it; datetimes and dataclasses, which it would write its own way, go to the exact
# path, which refuses them. Enum members, UUIDs and subclasses of builtin types both paths write
# alike (`_as_builtin`). orjson.Fragment, raw JSON by design, is for callers of orjson only.
_FAST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Outside strings, canonical output holds structure, integers and these three words only: a
# float leaves `.`, `e`, `E` or `+` behind.
_STRUCTURE_AND_DIGITS = b"{}[]:,-0123456789"
_LITERALS = (b"true", b"false", b"null")


class CanonicalError(ValueError):
    """A value that has no canonical form here."""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a str holds surrogates only unpaired


def _valid_text(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates from a hostile request
        return _LONE_SURROGATE.sub("\ufffd", text)


def prepare(value: Any) -> Any:
    """The value ready for `encode_prepared`: keys in canonical order, text valid Unicode,
    and only types with a canonical form (CanonicalError otherwise)."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else _valid_text(value)
    if kind is dict:
        keys = list(value)
        if all(type(k) is str and k.isascii() for k in keys):
            keys.sort()  # for ASCII, code point order is UTF-16 order
        else:
            for key in keys:
                if not isinstance(key, str):
                    raise CanonicalError(f"object key {key!r} is not a string")
            keys = sorted(keys, key=lambda k: _utf16_key(_valid_text(k)))
        return {_valid_text(k): prepare(value[k]) for k in keys}
    if kind is list or kind is tuple:
        return [prepare(item) for item in value]
    if value is None or kind is bool:
        return value
    if kind is int:
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalError(f"integer {value} is outside the exactly representable range")
        return value
    builtin = _as_builtin(value)
    if builtin is _NO_FORM:
        raise CanonicalError(f"{kind.__name__} values have no canonical form in audit records")
    return prepare(builtin)


_NO_FORM = object()


def _as_builtin(value: Any) -> Any:
    """What orjson (the fast path) writes for a value that is not of a builtin type, so both
    paths give the same bytes, checked in orjson's order: subclasses of str, int, dict and
    list as their base type (the base's own data, whatever the subclass overrides; str and int
    enums too), then other enum members by their value, UUIDs as text. _NO_FORM for the rest,
    which neither path writes (tuple and float subclasses, bytes, dates, sets...)."""
    for base, data in _BASES:
        if isinstance(value, base):
            return data(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    return _NO_FORM


_BASES: tuple[tuple[type, Any], ...] = ((str, str.__str__), (int, int.__int__), (dict, dict.copy), (list, list.copy))


def encode_prepared(value: Any) -> bytes:
    """Canonical bytes of a value `prepare` returned (or built in canonical order)."""
    return _ENCODER.encode(value).encode("utf-8")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of `value`. The common case (ASCII text, integers) is one orjson call and
    a check of what stands outside its strings; anything else (non-ASCII text, whose keys sort
    by UTF-16 units; floats; lone surrogates; other types) takes the exact path. Keys must be
    strings, as in every record.

    Not JSON, so never in a record: NaN and the infinities, which orjson writes as null. No
    input reader accepts them (signer/jsonread.py) and records hold integers, not floats."""
    try:
        encoded = orjson.dumps(value, option=_FAST_OPTIONS)
    except orjson.JSONEncodeError:
        return _exact(value)  # raises the exact CanonicalError, or encodes what orjson cannot (lone surrogates)
    if encoded.isascii() and _integers_only(encoded):
        return encoded
    return _exact(value)


def _exact(value: Any) -> bytes:
    try:
        return encode_prepared(prepare(value))
    except RecursionError:
        raise CanonicalError("the value is nested too deeply to encode") from None


def _integers_only(encoded: bytes) -> bool:
    """Are all the numbers in canonical ASCII JSON integers? Strings are cut out first: with
    escaped quotes and backslashes removed, every remaining quote opens or closes one."""
    if b"\\" in encoded:  # escaped backslashes first, then escaped quotes: pairs from the left, as a reader pairs them
        encoded = encoded.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(encoded.split(b'"')[::2]).translate(None, _STRUCTURE_AND_DIGITS)
    for literal in _LITERALS:
        outside = outside.replace(literal, b"")
    return not outside
