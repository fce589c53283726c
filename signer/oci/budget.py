"""A deadline and an allowance of bytes and signature checks for one piece of verification work.

Whoever starts the work (the webhook, per review and per artifact) puts a `Budget` in effect
with `using(budget)`; the registry client charges every byte it reads and stops at the
deadline (before each request, retry and backoff, and between streamed chunks), and the
verifier charges every signature check. A budget may have a parent (an artifact's inside a
review's): a charge counts against both, and the first limit reached raises `BudgetExceeded`
naming it. Without a budget in effect (the CLI) only the registry client's own timeout applies.

The budget travels in a context variable so that the trust core stays a plain library; a
thread pool does not copy it, so each task sets it again (`using`).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Iterator

from signer.errors import ModelsignError

_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("modelsign_budget", default=None)


class BudgetExceeded(ModelsignError):
    """A limit of the budget in effect was reached; the work stopped there."""

    def __init__(self, message: str, *, budget: Budget, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.budget = budget  # the budget whose limit was reached (artifact or request)


class DeadlineExceeded(BudgetExceeded):
    """The deadline passed; in-flight registry work stopped."""


class Budget:
    def __init__(self, name: str, *, deadline: float | None = None, max_bytes: int | None = None, max_checks: int | None = None,
                 parent: Budget | None = None) -> None:
        self.name = name  # for messages: "verifying registry.example.com/app@sha256:…", "review uid-1"
        deadlines = [d for d in (deadline, parent.deadline if parent else None) if d is not None]
        self.deadline = min(deadlines) if deadlines else None
        self.max_bytes = max_bytes
        self.max_checks = max_checks
        self.parent = parent
        self.bytes_used = 0
        self.checks_used = 0
        self._lock = threading.Lock()  # one review's budget is charged from several threads

    def child(self, name: str, *, max_bytes: int | None = None, max_checks: int | None = None) -> Budget:
        return Budget(name, max_bytes=max_bytes, max_checks=max_checks, parent=self)

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check_deadline(self, doing: str) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineExceeded(f"the deadline passed while {doing}", budget=self)

    def charge_bytes(self, count: int, doing: str) -> None:
        self._charge(count, 0, doing)

    def charge_checks(self, count: int, doing: str) -> None:
        self._charge(0, count, doing)

    def _charge(self, byte_count: int, checks: int, doing: str) -> None:
        self.check_deadline(doing)
        exceeded: BudgetExceeded | None = None
        budget: Budget | None = self
        while budget is not None:  # every level is charged (the bytes were read); the innermost limit is named
            with budget._lock:
                budget.bytes_used += byte_count
                budget.checks_used += checks
                over_bytes = budget.max_bytes is not None and budget.bytes_used > budget.max_bytes
                over_checks = budget.max_checks is not None and budget.checks_used > budget.max_checks
            if exceeded is None and over_bytes:
                exceeded = BudgetExceeded(f"{budget.name} needs more than the {budget.max_bytes} bytes of signature objects allowed "
                                          f"(stopped while {doing})", budget=budget)
            elif exceeded is None and over_checks:
                exceeded = BudgetExceeded(f"{budget.name} needs more than the {budget.max_checks} signature checks allowed (stopped while {doing})",
                                          budget=budget)
            budget = budget.parent
        if exceeded is not None:
            raise exceeded


def current() -> Budget | None:
    return _CURRENT.get()


@contextlib.contextmanager
def using(budget: Budget | None) -> Iterator[Budget | None]:
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)
