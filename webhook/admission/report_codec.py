"""Verification results as JSON-ready data and back, for the shared cache.

The decoder is driven by the dataclasses' own type hints and accepts exactly the shapes they
declare (a missing or extra field, a wrong type: ReportCodecError), so a damaged entry can
only be a miss. Nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from typing import Any

from signer import AttestationReport, SignatureReport, to_jsonable


class ReportCodecError(ValueError):
    """Data that is not the shape the dataclass declares."""


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(hint: Any, data: Any) -> Any:
    """`data` as a value of type `hint` (dataclasses, X | None, tuple[X, ...], dict[str, X],
    str, int, bool, datetime, Any)."""
    if hint is Any:
        return data
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        if len(candidates) != 1:
            raise ReportCodecError(f"cannot decode the union {hint}")
        return from_data(candidates[0], data)
    if origin is tuple:
        if not isinstance(data, list):
            raise ReportCodecError(f"expected a list for {hint}")
        return tuple(from_data(args[0], item) for item in data)
    if origin is dict:
        if not isinstance(data, dict):
            raise ReportCodecError(f"expected an object for {hint}")
        return {from_data(args[0], k): from_data(args[1], v) for k, v in data.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise ReportCodecError(f"expected an object for {hint.__name__}")
        hints = _hints(hint)
        names = {f.name for f in dataclasses.fields(hint)}
        if set(data) != names:
            raise ReportCodecError(f"{hint.__name__} fields differ: {sorted(set(data) ^ names)}")
        return hint(**{name: from_data(hints[name], data[name]) for name in names})
    if hint is datetime:
        if not isinstance(data, str):
            raise ReportCodecError("expected a time string")
        try:
            return datetime.fromisoformat(data)
        except ValueError:
            raise ReportCodecError(f"not a time: {data!r}") from None
    if hint is bool or hint is int or hint is str:
        if type(data) is not hint:
            raise ReportCodecError(f"expected {hint.__name__}, got {type(data).__name__}")
        return data
    raise ReportCodecError(f"no decoder for {hint}")


def encode_reports(reports: tuple[SignatureReport, AttestationReport]) -> Any:
    return [to_jsonable(reports[0]), to_jsonable(reports[1])]  # the CLI's -o json shape; decoded by the type hints below


def decode_reports(data: Any) -> tuple[SignatureReport, AttestationReport]:
    if not isinstance(data, list) or len(data) != 2:
        raise ReportCodecError("expected [signature report, attestation report]")
    return from_data(SignatureReport, data[0]), from_data(AttestationReport, data[1])
