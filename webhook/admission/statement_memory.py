"""Statements against a digest that were once verified, remembered so that removing them from
the registry does not turn a deny into an allow.

Attestations live beside the image (`sha256-<hex>.att`, bundle referrers), and whoever may
push to the repository can re-push that tag without a layer: no key and no delete right are
needed. A rejection, a revocation or a newer failing evaluation would then simply vanish, and
their absence grants admission. So each process remembers, per digest, the rejections and
revocations and each signer's newest evaluation it has verified, and denies (naming the
statement) when one of them is gone. The memory is per process and bounded (least recently
used digests are forgotten first; only digests with something to remember take a place, so
unsigned junk cannot evict them); a restart forgets, which is how an intended removal takes
effect. With the shared cache on (`webhook serve --shared-cache`), what any replica saw is
also kept in Redis (shared_cache.SharedStatements, authenticated members) and recalled by
every replica, across restarts: there an intended removal takes effect with `modelsign webhook
forget-statements DIGEST` (each replica drops its own memory of the digest when it reads the
mark), or 400 days after the last sighting.
Keeping governance statements where only approvers can push closes the gap for good.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

DENYING_DECISIONS = ("rejected", "revoked")


class SharedStatementStore(Protocol):
    """Where replicas share what they remember (shared_cache.SharedStatements)."""

    def recall(self, digest: str) -> Any:
        """None (unavailable), or `.statements` (each with `seenAt`) and `.forgotten_at`."""

    def remember(self, digest: str, statements: list[dict[str, str]], recalled: list[dict[str, Any]]) -> None: ...


@dataclass
class _Seen:
    denials: dict[str, str] = field(default_factory=dict)            # statement id -> what it was
    newest_evaluations: dict[str, tuple[str, str]] = field(default_factory=dict)  # signer -> (evaluatedAt, id)
    forgotten_at: float = 0.0  # the newest forget mark read from the shared store: nothing seen before it counts


class StatementMemory:
    def __init__(self, max_digests: int = 10000, shared: SharedStatementStore | None = None) -> None:
        self._max = max_digests
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._lock = threading.Lock()
        self.shared = shared  # set on each policy load: the shared cache's store, or None

    def check(self, digest: str, approvals: list[dict[str, Any]], evaluations: list[dict[str, Any]], *, recall: bool = True) -> str | None:
        """Remember what these facts show, and say what was seen before and is missing now.
        `recall=False`: facts this process checked moments ago (its own cache): no shared round trip."""
        denials = {str(a.get("id")): _short(f"{a.get('decision')} for environment {a.get('environment')} by {a.get('signer')}")
                   for a in approvals if a.get("decision") in DENYING_DECISIONS}
        newest = {str(e.get("signer")): (str(e.get("evaluatedAt")), str(e.get("id"))) for e in evaluations}
        shared = self.shared if recall else None
        recalled = shared.recall(digest) if shared is not None else None  # other replicas' sightings (I/O: outside the lock)
        statements = recalled.statements if recalled is not None else []
        with self._lock:
            if digest not in self._seen and not denials and not newest and not statements:
                return None  # nothing to remember: unsigned or unevaluated digests never take a place (nor evict one)
            seen = self._seen.pop(digest, None) or _Seen()
            if recalled is not None and recalled.forgotten_at > seen.forgotten_at:
                seen = _Seen(forgotten_at=recalled.forgotten_at)  # lifted by an operator: this replica forgets too
            statements = [st for st in statements if st["seenAt"] > seen.forgotten_at]  # a replay from before the mark: ignored
            _merge(seen, statements)
            missing = [f"the {what} (statement {id_[:19]})" for id_, what in seen.denials.items() if id_ not in denials]
            for signer, (at, id_) in seen.newest_evaluations.items():
                current = newest.get(signer)
                # (evaluatedAt to the second, statement id): the order the policy picks the newest by
                if current is None or current < (at, id_):
                    missing.append(f"the evaluation by {signer} of {at} (statement {id_[:19]})")
                    newest[signer] = max(current, (at, id_)) if current else (at, id_)
            seen.denials.update(denials)
            seen.newest_evaluations.update({s: v for s, v in newest.items() if v >= seen.newest_evaluations.get(s, ("", ""))})
            self._seen[digest] = seen
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            known = _statements(seen)
        if recalled is not None:  # written only against what was just read (else it would rewrite everything)
            shared.remember(digest, known, statements)
        if not missing:
            return None
        lifted = f"run `modelsign webhook forget-statements {digest}` against the shared cache" if self.shared is not None else "restart the webhook"
        return (f"{', '.join(missing)} on {digest}, verified earlier by this webhook, is no longer in the registry: someone "
                "removed it (re-pushing the .att tag needs only push rights); restore it from the signer's copy (or attach it "
                f"again with the same key); if the removal is intended, {lifted}")


def _statements(seen: _Seen) -> list[dict[str, str]]:
    """What a digest's memory holds, as the shared store keeps it."""
    return ([{"kind": "denial", "id": id_, "what": what} for id_, what in seen.denials.items()]
            + [{"kind": "evaluation", "signer": signer, "at": at, "id": id_} for signer, (at, id_) in seen.newest_evaluations.items()])


def _merge(seen: _Seen, statements: list[dict[str, str]]) -> None:
    """Add what the shared store recalled: every denial, and each signer's newest evaluation."""
    for statement in statements:
        if statement.get("kind") == "denial" and statement.get("id"):
            seen.denials.setdefault(statement["id"], statement.get("what", "denying statement"))
        elif statement.get("kind") == "evaluation" and statement.get("signer") and statement.get("at"):
            mark = (statement["at"], statement.get("id", ""))
            if mark > seen.newest_evaluations.get(statement["signer"], ("", "")):
                seen.newest_evaluations[statement["signer"]] = mark


def _short(text: str, limit: int = 512) -> str:
    """A statement's description, bounded (it is kept, and shared, for as long as the digest)."""
    return text if len(text) <= limit else text[:limit] + "…"
