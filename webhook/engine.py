"""Policy engines: Rego in-process (regopy, the default) or an OPA server (opa-python-client).

Both evaluate the same modules for `data.modelsign.decision` with the policy file as
`data.modelsign.config`. Any engine failure raises `PolicyEngineError`; the pipeline turns
that into a deny (fail closed).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol
from urllib.parse import urlparse

from signer.errors import ModelsignError
from webhook.cache import SingleFlightCache

DECISION_QUERY = "data.modelsign.decision"
MAX_MEMO_INPUT_BYTES = 64 * 1024


class PolicyEngineError(ModelsignError):
    """The policy could not be evaluated (bad Rego, OPA unreachable, no decision)."""


class PolicyEngine(Protocol):
    name: str

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        ...


def _check_decision(value: Any, engine: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("violations"), list):
        raise PolicyEngineError(f"{engine} returned no modelsign decision (got {json.dumps(value)[:200]})", hint="is the modelsign Rego policy loaded?")
    return value


class RegoEngine:
    """regopy (rego-cpp) compiled once into a bundle; queries are serialised per process."""

    name = "rego"

    def __init__(self, sources: dict[str, str], data: dict[str, Any]) -> None:
        from regopy import Interpreter

        self._lock = threading.Lock()
        self._interpreter = Interpreter()
        try:
            for filename, text in sorted(sources.items()):
                self._interpreter.add_module(filename, text)
            self._interpreter.add_data_json(json.dumps({"modelsign": {"config": data}}))
            self._bundle = self._interpreter.build(DECISION_QUERY)
        except Exception as exc:  # regopy reports compile errors as several exception types
            raise PolicyEngineError(f"the Rego policy does not compile: {exc}", hint="check the .rego files in the policy directory") from None

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                self._interpreter.set_input(policy_input)
                output = self._interpreter.query_bundle(self._bundle)
            except Exception as exc:
                raise PolicyEngineError(f"Rego evaluation failed: {exc}") from None
        try:
            result = json.loads(str(output))
            value = result["expressions"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise PolicyEngineError(f"Rego evaluation returned no result: {str(output)[:300]}") from None
        return _check_decision(value, "Rego")


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
        self._package, _, self._rule = decision_path.rpartition("/")
        self._sources, self._data = sources, data
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

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if not self._pushed:
                self._push()
        try:
            answer = self._client.query_rule(input_data=policy_input, package_path=self._package, rule_name=self._rule)
        except Exception as exc:
            raise PolicyEngineError(f"OPA at {self.url} did not answer: {exc}", hint="check that OPA is running and reachable") from None
        value = answer.get("result") if isinstance(answer, dict) else None
        if value is None:  # OPA restarted and lost the pushed policy: push again once
            with self._lock:
                self._push()
            try:
                answer = self._client.query_rule(input_data=policy_input, package_path=self._package, rule_name=self._rule)
            except Exception as exc:
                raise PolicyEngineError(f"OPA at {self.url} did not answer: {exc}") from None
            value = answer.get("result") if isinstance(answer, dict) else None
        return _check_decision(value, f"OPA at {self.url}")


class MemoizedEngine:
    """Decisions are a pure function of (policy, input): identical inputs (replicas of one
    workload, retries) reuse the decision instead of evaluating Rego again. The request uid
    is left out of the key; everything else, evidence included, is in it."""

    def __init__(self, engine: PolicyEngine, ttl_seconds: float, max_entries: int) -> None:
        self.name = engine.name
        self._engine = engine
        self._ttl = ttl_seconds
        self._cache: SingleFlightCache[str, dict[str, Any]] = SingleFlightCache(max_entries=max_entries)

    def decide(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        request = {k: v for k, v in policy_input.get("request", {}).items() if k != "uid"}
        canonical = json.dumps({**policy_input, "request": request}, sort_keys=True, separators=(",", ":"))
        if len(canonical) > MAX_MEMO_INPUT_BYTES:  # huge objects are rare: not worth the memory
            return self._engine.decide(policy_input)
        key = hashlib.sha256(canonical.encode()).hexdigest()
        value, _ = self._cache.get_or_compute(key, lambda: self._engine.decide(policy_input), ttl=lambda _: self._ttl)
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
