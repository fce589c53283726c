"""Run each review's decision on threads of its own, and answer by the deadline whatever happens.

- Not starlette's `run_in_threadpool`: its 40 anyio tokens are shared by every request in the
  worker, so reviews blocked on slow registries would make new reviews queue behind them.
- The pipeline stops its own work at `deadlineSeconds` (budgets, per-request timeouts); this
  is the guarantee at the HTTP layer on top of it: a decision not made by the deadline plus
  `margin_seconds` is replaced by a deny with the reason, and the late one is discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from typing import Callable, TypeVar

from webhook.admission.pinning import DigestPinner, Pinning
from webhook.admission.pipeline import AdmissionPipeline, Decision
from webhook.admission.review import AdmissionRequest

T = TypeVar("T")

MARGIN_SECONDS = 0.5
# Each decision ends by its deadline (at most 9 s), so this many threads serve a burst of
# reviews far above what the API server sends; beyond it reviews wait, and the guard still answers.
DECISION_THREADS = 256


class InTimeDecider:
    def __init__(self, threads: int = DECISION_THREADS, margin_seconds: float = MARGIN_SECONDS) -> None:
        self.margin_seconds = margin_seconds
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelsign-decide")

    async def decide(self, pipeline: AdmissionPipeline, review: AdmissionRequest) -> Decision:
        return await self._within(pipeline, pipeline.decide, review, pipeline.overdue)

    async def pin(self, pipeline: AdmissionPipeline, review: AdmissionRequest) -> Pinning:
        """Digest pinning, by the same deadline; late, it pins nothing (the validating webhook decides)."""
        pinner = DigestPinner(pipeline)
        return await self._within(pipeline, pinner.pin, review, lambda _, waited: Pinning(
            pinning_id=str(uuid.uuid4()), reason="deadline", latency_ms=round(waited * 1000, 3)))

    async def _within(self, pipeline: AdmissionPipeline, work: Callable[[AdmissionRequest], T], review: AdmissionRequest,
                      overdue: Callable[[AdmissionRequest, float], T]) -> T:
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(self._executor, work, review)
        try:
            return await asyncio.wait_for(asyncio.shield(future), pipeline.policy.spec.deadline_seconds + self.margin_seconds)
        except asyncio.TimeoutError:
            future.cancel()  # not started: it never runs; running: its result is dropped
            return overdue(review, time.monotonic() - started)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
