"""Numbers read from a file, kept to sizes a loader could use. A dimension, offset or count is
refused past 2**64 before any arithmetic (multiplying hundreds of 4000-digit integers takes
minutes, and Python refuses to print an integer of more than 4300 digits), and messages show
such a number's size, never its digits."""

from __future__ import annotations

from typing import Any

MAX_SIZE = 2**64 - 1  # safetensors and GGUF sizes are u64, numpy's int64: nothing larger is a size
MAX_SIZE_DIGITS = 20  # len(str(MAX_SIZE)): a longer digit string is no size
_SHOWN_ITEMS = 8
_SHOWN_TEXT = 60


def checked_product(dims: Any, limit: int = MAX_SIZE) -> int | None:
    """The product of a list or tuple of non-negative ints, each and every partial product at
    most `limit` (as safetensors' checked multiplication and numpy's overflow check refuse),
    or None."""
    if not isinstance(dims, (list, tuple)):
        return None
    total = 1
    for n in dims:
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= limit:
            return None
        total *= n
        if total > limit:
            return None
    return total


def is_size(value: Any, limit: int = MAX_SIZE) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def brief(value: Any, depth: int = 0) -> str:
    """A short repr for messages: large integers by their size, long text and containers cut."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -MAX_SIZE <= value <= MAX_SIZE else f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, (str, bytes)):
        return repr(value[:_SHOWN_TEXT]) + ("..." if len(value) > _SHOWN_TEXT else "")
    if isinstance(value, (list, tuple, dict)):
        if depth >= 3:
            return "[...]" if isinstance(value, list) else "(...)" if isinstance(value, tuple) else "{...}"
        if isinstance(value, dict):
            items = [f"{brief(k, depth + 1)}: {brief(v, depth + 1)}" for k, v in list(value.items())[:_SHOWN_ITEMS]]
        else:
            items = [brief(v, depth + 1) for v in value[:_SHOWN_ITEMS]]
        if len(value) > _SHOWN_ITEMS:
            items.append(f"... {len(value) - _SHOWN_ITEMS} more")
        text = ", ".join(items) + ("," if isinstance(value, tuple) and len(value) == 1 else "")
        return "[" + text + "]" if isinstance(value, list) else "(" + text + ")" if isinstance(value, tuple) else "{" + text + "}"
    return f"<{type(value).__name__}>"


def exception_text(exc: BaseException) -> str:
    """`Type: message`, cut to a readable length."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}" if text else type(exc).__name__
