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
effect. Keeping governance statements where only approvers can push closes the gap for good.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

DENYING_DECISIONS = ("rejected", "revoked")


@dataclass
class _Seen:
    denials: dict[str, str] = field(default_factory=dict)            # statement id -> what it was
    newest_evaluations: dict[str, tuple[str, str]] = field(default_factory=dict)  # signer -> (evaluatedAt, id)


class StatementMemory:
    def __init__(self, max_digests: int = 10000) -> None:
        self._max = max_digests
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, digest: str, approvals: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> str | None:
        """Remember what these facts show, and say what was seen before and is missing now."""
        denials = {str(a.get("id")): f"{a.get('decision')} for environment {a.get('environment')} by {a.get('signer')}"
                   for a in approvals if a.get("decision") in DENYING_DECISIONS}
        newest = {str(e.get("signer")): (str(e.get("evaluatedAt")), str(e.get("id"))) for e in evaluations}
        with self._lock:
            if digest not in self._seen and not denials and not newest:
                return None  # nothing to remember: unsigned or unevaluated digests never take a place (nor evict one)
            seen = self._seen.pop(digest, None) or _Seen()
            missing = [f"the {what} (statement {id_[:19]})" for id_, what in seen.denials.items() if id_ not in denials]
            for signer, (at, id_) in seen.newest_evaluations.items():
                current = newest.get(signer)
                if current is None or current[0] < at:
                    missing.append(f"the evaluation by {signer} of {at} (statement {id_[:19]})")
                    newest[signer] = max(current, (at, id_)) if current else (at, id_)
            seen.denials.update(denials)
            seen.newest_evaluations.update({s: v for s, v in newest.items() if v >= seen.newest_evaluations.get(s, ("", ""))})
            self._seen[digest] = seen
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        if not missing:
            return None
        return (f"{', '.join(missing)} on {digest}, verified earlier by this webhook, is no longer in the registry: someone "
                "removed it (re-pushing the .att tag needs only push rights); restore it from the signer's copy (or attach it "
                "again with the same key); an intended removal takes effect when the webhook restarts")
