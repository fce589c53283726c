"""What the pickle walker knows about the objects an unpickler would build.

Constants (None, bool, int, float, str, bytes, tuple) are plain Python values. Everything the
walker cannot know exactly is `Unknown`; an import is a `Global`; a call or instantiation is
an `Obj` (its maker and arguments kept for the few patterns we read back: joblib array
wrappers, numpy dtypes, torch persistent ids). Nothing here is ever executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Value = Any  # a constant or one of the classes below


@dataclass(eq=False, slots=True)
class Unknown:
    why: str


@dataclass(eq=False, slots=True)
class Global:
    module: str
    name: str

    def is_(self, pair: tuple[str, str]) -> bool:
        return (self.module, self.name) == pair


@dataclass(eq=False, slots=True)
class Obj:
    """The result of REDUCE/NEWOBJ/OBJ/INST: `maker(*args)`, then BUILD's `state`."""

    maker: Value
    args: Value
    state: Value = None


@dataclass(eq=False, slots=True)
class PList:
    items: list[Value] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class PDict:
    items: list[tuple[Value, Value]] = field(default_factory=list)

    def get(self, key: str) -> Value:
        for k, v in reversed(self.items):
            if isinstance(k, str) and k == key:
                return v
        return None

    def has(self, key: str) -> bool:
        return any(isinstance(k, str) and k == key for k, _ in self.items)


@dataclass(eq=False, slots=True)
class PSet:
    items: list[Value] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Persistent:
    """What BINPERSID hands to the loader's persistent_load (torch: a storage)."""

    pid: Value


@dataclass(frozen=True, slots=True)
class Opaque:
    """A str, bytes or int too large to keep; its size is all we need."""

    kind: str
    length: int
