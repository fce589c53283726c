"""Values across the policy-engine boundary: what goes in, and what may come out.

Strings from the AdmissionReview and from registries reach the engine, and the engine's
answer decides admission, so nothing a string holds may change the shape of that answer:

- **In**: every string (keys included) is percent-encoded for the characters rego-cpp
  mishandles: `%` itself, `"`, `\\`, C0/C1 control characters and lone surrogates. rego-cpp
  writes strings into its text output unescaped, cuts them at NUL, stores JSON data strings
  in escaped form (so `"a\\"b"` in data never equals the same string in input) and aborts the
  whole process on some of them (a backslash in `glob.match`). The encoding is injective and
  applied alike to input and data, for every engine, so equality and globs compare like with
  like and both engines see the same documents.
- **Length**: no string (key or value) reaches the engine longer than MAX_ENGINE_STRING
  characters once encoded. rego-cpp's `regex.match` recurses per character and dies with
  SIGSEGV (the whole webhook process, every in-flight review) on a long enough string:
  about 20k characters for `(a|b)*`, 40k for `a*`. A longer string is cut, on a whole
  escape, and ends in a visible marker naming its length and a digest of the whole, so two
  long strings are still equal in Rego only if they were equal (keys stay distinct); nested
  groups recurse deeper per character, which the evaluation threads' stack (engines.py) covers. Named
  attestations never reach this cut: `attestation_facts` refuses a predicate holding such a
  string, so a rule never judges a silently shortened statement.
- **Out**: results are read as structure (rego-cpp's node tree, or OPA's JSON parsed with
  duplicate keys refused), never by parsing text a string could have shaped; strings are
  decoded on the way out.
- **Shape**: the decision must be exactly `{"exempt": bool, "violations": [...]}` with typed
  violations; anything else is an engine error, which the pipeline turns into a deny.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from signer import ModelsignError

INT64 = (-(2**63), 2**63 - 1)  # rego-cpp's integer range
MAX_DEPTH = 64
MAX_VIOLATIONS = 10_000
MAX_ENGINE_STRING = 8192  # characters once encoded; regex.match crashed rego-cpp from ~20k
_NEEDS_ESCAPE = re.compile(r'[%"\\\x00-\x1f\x7f-\x9f\ud800-\udfff]')
_ESCAPED = re.compile(r"%(?:u([0-9A-F]{4})|([0-9A-F]{2}))")
_VIOLATION_TYPES: dict[str, tuple[type, ...]] = {"code": (str,), "enforce": (bool,), "source": (str,), "value": (str,)}


class PolicyEngineError(ModelsignError):
    """The policy could not be evaluated (bad Rego, OPA unreachable, no or malformed decision)."""


def _escape_char(match: re.Match[str]) -> str:
    point = ord(match.group())
    return f"%{point:02X}" if point <= 0xFF else f"%u{point:04X}"


def _unescape_char(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


def encode_string(value: str) -> str:
    return _NEEDS_ESCAPE.sub(_escape_char, value)


def fits_engine(value: str) -> bool:
    """Whether `value` reaches the engine whole (not cut by `bounded`)."""
    return len(value) <= MAX_ENGINE_STRING // 6 or len(encode_string(value)) <= MAX_ENGINE_STRING


def truncation_marker(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"...[cut: {len(value)} characters, sha256 {digest}]"


def bounded(value: str) -> str:
    """`value` encoded, cut to MAX_ENGINE_STRING characters with a marker if longer.
    The cut falls before an escape, never inside one, so the kept part decodes exactly."""
    encoded = encode_string(value)
    if len(encoded) <= MAX_ENGINE_STRING:
        return encoded
    marker = truncation_marker(value)
    kept = encoded[:MAX_ENGINE_STRING - len(marker)]
    start = kept.rfind("%", len(kept) - 5)  # every % in `encoded` opens an escape: %XX or %uXXXX
    if start != -1 and start + (6 if encoded[start + 1] == "u" else 3) > len(kept):
        kept = kept[:start]
    return kept + marker


def decode_string(value: str) -> str:
    """Inverse of `encode_string`; a `%` that starts no escape (a Rego literal) stays as is."""
    return _ESCAPED.sub(_unescape_char, value) if "%" in value else value


def _engine_string(value: str, where: str) -> str:
    """Input strings are cut (`bounded`); the policy's own data is never silently changed."""
    if where == "data" and not fits_engine(value):
        raise PolicyEngineError(f"a string in the policy data is {len(value)} characters long ({value[:60]!r}...); the engine takes at most "
                                f"{MAX_ENGINE_STRING} (percent-encoded)", hint="shorten that value in the policy file")
    return bounded(value)


def to_engine(value: Any, *, where: str = "input", depth: int = 0) -> Any:
    """A JSON-like document as the engine gets it: strings encoded and bounded, numbers in range."""
    if depth > MAX_DEPTH:
        raise PolicyEngineError(f"the policy {where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _engine_string(value, where)
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise PolicyEngineError(f"a number in the policy {where} is out of the 64-bit range the engine accepts ({value})",
                                    hint="the evidence holds an absurd count; check the attestation that carries it")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyEngineError(f"the policy {where} holds a non-finite number ({value})")
        return value
    if isinstance(value, dict):
        encoded: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PolicyEngineError(f"the policy {where} has a non-string key {key!r}")
            encoded[_engine_string(key, where)] = to_engine(item, where=where, depth=depth + 1)
        return encoded
    if isinstance(value, (list, tuple)):
        return [to_engine(item, where=where, depth=depth + 1) for item in value]
    raise PolicyEngineError(f"the policy {where} holds a {type(value).__name__}, which is not a JSON value")


def from_engine(value: Any, *, depth: int = 0) -> Any:
    """The engine's answer with its strings decoded; keys must stay distinct once decoded."""
    if depth > MAX_DEPTH:
        raise PolicyEngineError(f"the engine's result is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        return decode_string(value)
    if isinstance(value, list):
        return [from_engine(item, depth=depth + 1) for item in value]
    if isinstance(value, dict):
        decoded: dict[str, Any] = {}
        for key, item in value.items():
            plain = decode_string(key)
            if plain in decoded:
                raise PolicyEngineError(f"the engine's result has the key {plain!r} twice")
            decoded[plain] = from_engine(item, depth=depth + 1)
        return decoded
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PolicyEngineError(f"the engine's answer has the key {key!r} twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise PolicyEngineError(f"the engine's answer holds {name}, which is not JSON")


def strict_json(data: bytes, *, what: str) -> Any:
    """Parse an engine's JSON answer: duplicate keys and NaN/Infinity are errors, not "last wins"."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        if isinstance(exc, PolicyEngineError):
            raise
        raise PolicyEngineError(f"{what} is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class EngineDecision:
    exempt: bool
    violations: tuple[dict[str, Any], ...]


def read_decision(value: Any, engine: str) -> EngineDecision:
    """The decision if `value` has exactly its shape; a PolicyEngineError naming the first
    difference otherwise."""
    def wrong(problem: str) -> PolicyEngineError:
        return PolicyEngineError(f"{engine} returned a malformed modelsign decision: {problem}",
                                 hint="is the modelsign Rego policy loaded, and do your own rules build violations as README.md describes?")

    if not isinstance(value, dict):
        raise wrong(f"expected an object, got {type(value).__name__}")
    if set(value) != {"exempt", "violations"}:
        raise wrong(f"expected exactly the keys exempt and violations, got {', '.join(sorted(map(str, value))) or 'none'}")
    if not isinstance(value["exempt"], bool):
        raise wrong("exempt is not a boolean")
    violations = value["violations"]
    if not isinstance(violations, list):
        raise wrong("violations is not a list")
    if len(violations) > MAX_VIOLATIONS:
        raise wrong(f"{len(violations)} violations, more than {MAX_VIOLATIONS}")
    for index, violation in enumerate(violations):
        if not isinstance(violation, dict):
            raise wrong(f"violations[{index}] is not an object")
        for field, types in _VIOLATION_TYPES.items():
            if not isinstance(violation.get(field), types) or (field == "code" and not violation[field]):
                raise wrong(f"violations[{index}].{field} is missing or not a {types[0].__name__}")
        if "message" in violation and not isinstance(violation["message"], str):
            raise wrong(f"violations[{index}].message is not a string")
    return EngineDecision(exempt=value["exempt"], violations=tuple(violations))
