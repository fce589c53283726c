"""Canonical JSON (RFC 8785, JCS) for audit records.

Records hold strings, integers, booleans, null, lists and objects; floats are refused (RFC
8785 prints them as ECMAScript does, which no record needs: durations are integers of
microseconds). Keys are sorted by UTF-16 code units, strings are escaped as
`JSON.stringify` does (Python's encoder with `ensure_ascii=False` matches it), and the
output is UTF-8. Text that is not valid Unicode (lone surrogates from a hostile request)
is made valid (replacement characters) by `prepare`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1  # beyond this an I-JSON reader cannot hold the number exactly

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
_SORTING_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False, sort_keys=True)
# Numbers that may be floats or too large: member values (`":1.5`, `":12345678901234567`) and
# arrays that start with a number (mixed arrays are not something records hold). Text that
# merely looks like this sends the record down the exact path, which is never wrong.
# Two patterns, each with a literal first character, so `re` can skip ahead quickly.
_SUSPECT_MEMBER = re.compile(r'":-?\d+[.eE]')
_NUMBER_ARRAY = re.compile(r"\[-?\d")
# Anywhere, 16 digits in a row: an integer too large to be exact (or text with a long digit run).
# Found as a run of NULs after mapping digits to NUL (the encoding holds no raw NUL): one C pass
# that a record of megabytes gets through in milliseconds, where `\d{16}` held the GIL 16 times longer.
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", b"\0" * 10)
_LONG_NUMBER = b"\0" * 16


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
    raise CanonicalError(f"{kind.__name__} values have no canonical form in audit records")


def encode_prepared(value: Any) -> bytes:
    """Canonical bytes of a value `prepare` returned (or built in canonical order)."""
    return _ENCODER.encode(value).encode("utf-8")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of `value`. The common case (ASCII text, integers) is one pass of the C
    encoder: for ASCII keys code point order is UTF-16 order and the escaping is the same.
    Anything else (non-ASCII text, floats, huge integers) takes the exact path. Keys must be
    strings, as in every record (the C encoder would turn other keys into strings)."""
    try:
        text = _SORTING_ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise CanonicalError(str(exc)) from None
    if text.isascii() and _SUSPECT_MEMBER.search(text) is None and _NUMBER_ARRAY.search(text) is None:
        encoded = text.encode("ascii")
        if _LONG_NUMBER not in encoded.translate(_DIGITS_TO_NUL):
            return encoded
    return encode_prepared(prepare(value))
