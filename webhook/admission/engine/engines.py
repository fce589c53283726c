"""Policy engines: Rego in-process (regopy, the default) or an OPA server (opa-python-client).

Both evaluate the same modules for `data.modelsign.decision` with the policy file as
`data.modelsign.config`. Input and data cross the boundary through `values` (strings
encoded, results read as structure and checked for the exact decision shape); any engine
failure raises `PolicyEngineError`, which the pipeline turns into a deny (fail closed).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import queue
import threading
import time
import weakref
from typing import Any, Protocol
from urllib.parse import urlparse

from webhook.admission.cache import SingleFlightCache
from webhook.admission.engine.values import EngineDecision, PolicyEngineError, from_engine, read_decision, strict_json, to_engine

DECISION_QUERY = "data.modelsign.decision"
MAX_MEMO_INPUT_BYTES = 64 * 1024
MAX_OPA_ANSWER_BYTES = 16 * 1024 * 1024
INTERPRETERS = 4  # per worker process
# rego-cpp recurses on the evaluating thread's stack (regex.match: per character, more per
# nested group). On the usual 8 MiB stack `((a|b)|(c|d))*` over 8192 characters (the longest
# string values.py lets in) killed the process; on 64 MiB it held at 100k. Only touched pages
# are committed, so the size costs address space, not memory.
EVALUATION_STACK_BYTES = 64 * 1024 * 1024
_STACK_SIZE_LOCK = threading.Lock()

__all__ = ["DECISION_QUERY", "EngineDecision", "MemoizedEngine", "OpaEngine", "PolicyEngine", "PolicyEngineError", "RegoEngine", "build_engine"]


class PolicyEngine(Protocol):
    name: str

    def decide(self, policy_input: dict[str, Any], *, deadline: float | None = None) -> EngineDecision:
        """`deadline` (monotonic): when to give up waiting for the engine."""
        ...


class RegoEngine:
    """regopy (rego-cpp), compiled into a few interpreters. One interpreter evaluates one query
    at a time, and rego-cpp gives up the GIL while it evaluates, so several reviews decide in
    parallel; a review waits for a free interpreter only until its deadline, so one costly
    evaluation never holds up the others."""

    name = "rego"

    def __init__(self, sources: dict[str, str], data: dict[str, Any], *, interpreters: int = INTERPRETERS) -> None:
        # Encoded strings hold no quote, backslash or control character, so this JSON text
        # is the data itself: rego-cpp keeps no escaped forms that input strings could not equal.
        document = json.dumps(to_engine({"modelsign": {"config": data}}, where="data"), ensure_ascii=False)
        self._free: queue.SimpleQueue[_Evaluator] = queue.SimpleQueue()
        evaluators = [_Evaluator(*_compile(sources, document)) for _ in range(interpreters)]
        for evaluator in evaluators:
            self._free.put(evaluator)
        weakref.finalize(self, _Evaluator.stop_all, evaluators)  # the threads end with the engine

    def decide(self, policy_input: dict[str, Any], *, deadline: float | None = None) -> EngineDecision:
        encoded = to_engine(policy_input)
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            evaluator = self._free.get(timeout=wait)
        except queue.Empty:
            raise PolicyEngineError("every policy interpreter was busy with other reviews until the deadline",
                                    hint="retry; if it persists, the webhook is overloaded: add replicas or workers") from None
        try:
            value = evaluator.evaluate(encoded)
        finally:
            self._free.put(evaluator)
        return read_decision(from_engine(value), "Rego")


class _Evaluator:
    """One compiled interpreter and the thread, with an EVALUATION_STACK_BYTES stack, that
    evaluates on it (whichever thread asked for the decision)."""

    def __init__(self, interpreter: Any, bundle: Any) -> None:
        self._interpreter, self._bundle = interpreter, bundle
        self._inbox: queue.SimpleQueue[tuple[Any, concurrent.futures.Future[Any]] | None] = queue.SimpleQueue()
        with _STACK_SIZE_LOCK:  # the size applies to threads started while it is set
            previous = threading.stack_size(EVALUATION_STACK_BYTES)
            try:
                threading.Thread(target=self._serve, name="modelsign-rego", daemon=True).start()
            finally:
                threading.stack_size(previous)

    def evaluate(self, encoded: Any) -> Any:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._inbox.put((encoded, done))
        return done.result()

    def _serve(self) -> None:
        while (job := self._inbox.get()) is not None:
            encoded, done = job
            try:
                done.set_result(self._query(encoded))
            except BaseException as exc:  # handed to the review that asked, which fails closed
                done.set_exception(exc)

    def _query(self, encoded: Any) -> Any:
        from webhook.admission.engine import regocpp

        try:
            self._interpreter.set_input(encoded)
        except Exception as exc:  # regopy raises RegoError, ctypes errors...
            raise PolicyEngineError(f"the policy input could not be given to Rego: {type(exc).__name__}: {exc}") from None
        return regocpp.query(self._interpreter, self._bundle)

    @staticmethod
    def stop_all(evaluators: list[_Evaluator]) -> None:
        for evaluator in evaluators:
            evaluator._inbox.put(None)


def _compile(sources: dict[str, str], document: str) -> tuple[Any, Any]:
    from regopy import Interpreter

    interpreter = Interpreter()
    try:
        for filename, text in sorted(sources.items()):
            interpreter.add_module(filename, text)
        interpreter.add_data_json(document)
        return interpreter, interpreter.build(DECISION_QUERY)
    except Exception as exc:  # regopy reports compile errors as several exception types
        raise PolicyEngineError(f"the Rego policy does not compile: {exc}", hint="check the .rego files in the policy directory") from None


class OpaEngine:
    """An OPA server: modules and policy data are pushed on load, the decision is queried per
    request. An unreachable or empty OPA is an error (deny), never a silent allow."""

    name = "opa"

    def __init__(self, url: str, decision_path: str, timeout_seconds: float, sources: dict[str, str], data: dict[str, Any]) -> None:
        from opa_client.opa import OpaClient

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise PolicyEngineError(f"opa.url {url!r} must be http(s)://host[:port]")
        self.url = url
        self._decision_path = decision_path.strip("/")
        self._timeout = timeout_seconds
        self._sources, self._data = sources, to_engine(data, where="data")
        self._client = OpaClient(
            host=parsed.hostname,
            port=parsed.port or (443 if parsed.scheme == "https" else 8181),
            ssl=parsed.scheme == "https",
            timeout=timeout_seconds,
            retries=0,
        )
        self._pushed = False
        self._lock = threading.Lock()

    def _push(self) -> None:
        try:
            for filename, text in sorted(self._sources.items()):
                self._client.update_policy_from_string(text, f"modelsign/{filename}")
            self._client.update_or_create_data(self._data, "modelsign/config")
        except Exception as exc:  # the client raises its own and requests' exception types
            raise PolicyEngineError(f"cannot load the policy into OPA at {self.url}: {exc}", hint="check opa.url and that OPA is running") from None
        self._pushed = True

    def _query(self, body: bytes, deadline: float | None) -> Any:
        """POST the decision query through the client's session and read the answer strictly
        (the client's own query helper parses with "last duplicate key wins")."""
        started = time.monotonic()
        try:
            response = self._client._session.post(
                f"{self._client.root_url}/data/{self._decision_path}", data=body,
                headers={"Content-Type": "application/json"}, stream=True,
                timeout=self._timeout if deadline is None else max(0.01, min(self._timeout, deadline - started)),
            )
            with response:
                raw = response.raw.read(MAX_OPA_ANSWER_BYTES + 1, decode_content=True)
                status = response.status_code
        except Exception as exc:  # requests' and urllib3's exception types
            raise PolicyEngineError(f"OPA at {self.url} did not answer within {time.monotonic() - started:.1f}s: {type(exc).__name__}: {exc}",
                                    hint="check that OPA is running and reachable") from None
        if status != 200:
            raise PolicyEngineError(f"OPA at {self.url} answered HTTP {status}: {raw[:300]!r}", hint="check OPA's logs and the pushed policy")
        if len(raw) > MAX_OPA_ANSWER_BYTES:
            raise PolicyEngineError(f"OPA at {self.url} answered more than {MAX_OPA_ANSWER_BYTES} bytes")
        answer = strict_json(raw, what=f"the answer of OPA at {self.url}")
        return answer.get("result") if isinstance(answer, dict) else None

    def decide(self, policy_input: dict[str, Any], *, deadline: float | None = None) -> EngineDecision:
        body = json.dumps({"input": to_engine(policy_input)}, ensure_ascii=False, allow_nan=False).encode()
        with self._lock:
            if not self._pushed:
                self._push()
        value = self._query(body, deadline)
        if value is None:  # OPA restarted and lost the pushed policy: push again once
            with self._lock:
                self._push()
            value = self._query(body, deadline)
        return read_decision(from_engine(value), f"OPA at {self.url}")


class MemoizedEngine:
    """Decisions are a pure function of (policy, input): identical inputs (replicas of one
    workload, retries) reuse the decision instead of evaluating Rego again. The request uid
    is left out of the key; everything else, evidence included, is in it."""

    def __init__(self, engine: PolicyEngine, ttl_seconds: float, max_entries: int) -> None:
        self.name = engine.name
        self._engine = engine
        self._ttl = ttl_seconds
        self._cache: SingleFlightCache[str, EngineDecision] = SingleFlightCache(max_entries=max_entries)

    def decide(self, policy_input: dict[str, Any], *, deadline: float | None = None) -> EngineDecision:
        request = {k: v for k, v in policy_input.get("request", {}).items() if k != "uid"}
        canonical = json.dumps({**policy_input, "request": request}, sort_keys=True, separators=(",", ":"))
        if len(canonical) > MAX_MEMO_INPUT_BYTES:  # huge objects are rare: not worth the memory
            return self._engine.decide(policy_input, deadline=deadline)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            value, _ = self._cache.get_or_compute(key, lambda: self._engine.decide(policy_input, deadline=deadline), ttl=lambda _: self._ttl,
                                                  wait_seconds=wait)
        except concurrent.futures.TimeoutError:
            raise PolicyEngineError("the policy evaluation of an identical review did not finish before the deadline",
                                    hint="retry; if it persists, the webhook is overloaded: add replicas or workers") from None
        return value


def build_engine(policy: Any) -> PolicyEngine:
    """The engine a LoadedPolicy asks for, memoised unless decisionTtlSeconds is 0."""
    data = policy.data_document()
    engine: PolicyEngine
    if policy.spec.opa is not None:
        opa = policy.spec.opa
        engine = OpaEngine(opa.url, opa.decision_path, opa.timeout_seconds, policy.rego_sources, data)
    else:
        engine = RegoEngine(policy.rego_sources, data)
    cache = policy.spec.cache
    return MemoizedEngine(engine, cache.decision_ttl_seconds, cache.max_entries) if cache.decision_ttl_seconds > 0 else engine
