"""Evaluations and the attestation types rules name, as the policy input carries them.

Both come from verified statements (a trusted key signed them, about this digest), but their
number and size are still bounded here, so the engine's work stays a function of the policy,
not of what someone attached:
- evaluations: the newest of each signer (signers are the policy's keys), and of its metrics
  only those some rule bounds (`metricCount` says how many it had);
- named types (`require.attestations`): at most MAX_PER_TYPE statements per type, each
  predicate at most MAX_PREDICATE_BYTES of JSON and MAX_PREDICATE_DEPTH levels deep; others
  are listed as rejected with the reason.
Rejected statements carry their `type`, so a rule's denial can cite why the statement it
needed did not count. Numbers the engine cannot hold (beyond 64 bits, not finite) and strings
the engine boundary would cut (over MAX_ENGINE_STRING characters encoded, see engine/values.py)
reject the statement rather than fail the whole review or give a rule a shortened statement.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from signer import CLOCK_SKEW_SECONDS, AttestationReport, EvaluationFacts, evaluation_facts, format_time, mediatypes as mt
from webhook.admission.engine.values import MAX_ENGINE_STRING, fits_engine

MAX_PER_TYPE = 10
MAX_PREDICATE_BYTES = 64 * 1024
MAX_PREDICATE_DEPTH = 16
INT64 = (-(2**63), 2**63 - 1)


def evaluation_inputs(report: AttestationReport, now: datetime, metrics: frozenset[str]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(evaluations newest first, one per signer; rejected statements with the reason)."""
    newest: dict[str, Any] = {}
    rejected: list[dict[str, str]] = []
    for attestation in report.of_type(mt.EVALUATION_PREDICATE):
        facts = evaluation_facts(attestation)
        if facts is None:
            rejected.append({"type": mt.EVALUATION_PREDICATE, "location": attestation.location,
                             "reason": "evaluation attestation has a malformed predicate (see README \"Evaluations\" for its shape)"})
            continue
        if (facts.evaluated_at - now).total_seconds() > CLOCK_SKEW_SECONDS:
            rejected.append({"type": mt.EVALUATION_PREDICATE, "location": attestation.location,
                             "reason": f"evaluation attestation is dated in the future ({facts.evaluated_at:%Y-%m-%dT%H:%M:%SZ})"})
            continue
        current = newest.get(facts.signer)
        # Newest by the second, then by statement digest (not by the order the registry lists
        # them in, which whoever can push controls): the order the policy sees as `evaluatedAt`
        # and the statement memory remembers (statement_memory.py), so both pick the same one.
        if current is None or _newest_key(facts) > _newest_key(current):
            newest[facts.signer] = facts
    ordered = sorted(newest.values(), key=lambda f: f.evaluated_at, reverse=True)
    return [f.to_input(now, metrics) for f in ordered], rejected


def _newest_key(facts: EvaluationFacts) -> tuple[str, str]:
    return format_time(facts.evaluated_at), facts.statement_digest


def _problem(value: Any) -> str | None:
    """Why the engine cannot be given this predicate whole: too deep, a number it cannot hold,
    or a string (key or value) it would cut."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_PREDICATE_DEPTH:
            return f"is nested over {MAX_PREDICATE_DEPTH} levels deep"
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds a number that is not finite ({item})"
        if isinstance(item, int) and not isinstance(item, bool) and not INT64[0] <= item <= INT64[1]:
            return "holds an integer beyond 64 bits"
        if isinstance(item, str) and not fits_engine(item) or isinstance(item, dict) and not all(map(fits_engine, item)):
            return f"holds a string over {MAX_ENGINE_STRING} characters (as the policy engine is given it)"
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return None


def named_inputs(report: AttestationReport, types: frozenset[str]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(statements of the named types for the policy; rejected ones with the reason)."""
    found: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    for predicate_type in sorted(types):
        statements = report.of_type(predicate_type)
        for attestation in statements[:MAX_PER_TYPE]:
            problem = _problem(attestation.predicate)
            if problem:
                rejected.append({"type": predicate_type, "location": attestation.location,
                                 "reason": f"{predicate_type} predicate {problem}: not given to the policy"})
                continue
            size = len(json.dumps(attestation.predicate, separators=(",", ":")))
            if size > MAX_PREDICATE_BYTES:
                rejected.append({"type": predicate_type, "location": attestation.location,
                                 "reason": f"{predicate_type} predicate is {size} bytes, over {MAX_PREDICATE_BYTES}: not given to the policy"})
                continue
            found.append({"type": predicate_type, "id": attestation.statement_digest, "signer": attestation.signer, "keyId": attestation.key_id,
                          "predicate": attestation.predicate})
        if len(statements) > MAX_PER_TYPE:
            rejected.append({"type": predicate_type, "location": f"{len(statements) - MAX_PER_TYPE} more {predicate_type} attestation(s)",
                             "reason": f"only the first {MAX_PER_TYPE} of each type reach the policy"})
    return found, rejected
