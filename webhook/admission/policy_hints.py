"""Policy validation errors as people need them: the line, the field, and "did you mean".

`describe_errors` turns pydantic's errors into `FILE:LINE: field: problem (did you mean X?)`,
suggesting a known field for a misspelt one (`sigendBy` -> `signedBy`, `signed_by` ->
`signedBy`) and a known value for a misspelt choice (`enfroce` -> `enforce`, `HIHG` -> `HIGH`).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Iterable

from pydantic import BaseModel

from webhook.admission.policy_yaml import PolicySource

MAX_ERRORS = 20
# Checks across fields name the field at the start of their message: "rules[0].require.signedBy[1]: ..."
_LEADING_PATH = re.compile(r"^([A-Za-z_][\w]*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): ")


def _folded(word: str) -> str:
    return word.replace("_", "").replace("-", "").lower()


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` most likely meant: same letters in another case or separator style,
    else the closest spelling; None when nothing is close."""
    options = sorted({str(c) for c in choices})
    folded = {_folded(option): option for option in options}
    if _folded(word) in folded and folded[_folded(word)] != word:
        return folded[_folded(word)]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6) or difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.6)
    return close[0] if close and close[0] != word else None


def hint(word: str, choices: Iterable[str]) -> str:
    """` (did you mean X?)`, or nothing."""
    guess = did_you_mean(word, choices)
    return f" (did you mean {guess}?)" if guess else ""


def _unwrap(annotation: Any) -> Any:
    """The model, list or dict type inside Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def fields_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str] | None:
    """The field names (aliases) the model accepts at `path`, or None if it is no object."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for name, f in current.model_fields.items() if (f.alias or name) == part or name == part), None)
            if field is None:
                return None
            current = field.annotation
        elif origin in (list, tuple) or origin is dict:
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return None


def _expected_values(item: dict[str, Any]) -> list[str]:
    expected = str((item.get("ctx") or {}).get("expected", ""))
    return [part.strip().strip("'\"") for part in expected.replace(" or ", ",").split(",") if part.strip()]


def _path_in(message: str) -> tuple[Any, ...]:
    match = _LEADING_PATH.match(message)
    if not match:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in re.findall(r"[A-Za-z_][\w-]*|\d+", match.group(1)))


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in loc).replace(".[", "[")


def describe_error(item: dict[str, Any], model: type[BaseModel], where: PolicySource) -> str:
    """One pydantic error as `FILE:LINE: field: problem (did you mean X?)`."""
    loc = tuple(part for part in item["loc"] if part != "[key]")
    message = str(item["msg"]).removeprefix("Value error, ")
    suggestion = ""
    if item["type"] == "extra_forbidden" and loc:
        known = fields_at(model, loc[:-1]) or []
        guess = hint(str(loc[-1]), known)
        message = "unknown field" + (guess or (f" (fields here: {', '.join(sorted(known))})" if known else ""))
    elif item["type"] == "literal_error":
        value = item.get("input")
        suggestion = hint(str(value), _expected_values(item)) if isinstance(value, str) else ""
        if "[key]" in item["loc"]:
            message = f"unknown key {value!r}: {message}"
    location = _location(loc)
    text = f"{location}: {message}{suggestion}" if location else f"{message}{suggestion}"
    return f"{where.at(loc or _path_in(message))}: {text}"


def describe_errors(errors: list[dict[str, Any]], model: type[BaseModel], where: PolicySource) -> list[str]:
    return [describe_error(item, model, where) for item in errors[:MAX_ERRORS]]
