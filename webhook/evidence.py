"""Gather evidence for each unique artifact: registry allowed?, digest, verified signatures.

- The allowed-registry check needs no network and happens first; a disallowed artifact is
  never contacted.
- Each unique reference is resolved once per request (tags are not cached across requests:
  a moved tag must be seen), then its digest's signatures are verified through a cache keyed
  by (repository, digest, policy hash) with single-flight.
- All lookups run in parallel under one deadline; whatever is not done by then is evidence
  of failure ("did not finish within ..."), which the policy turns into a deny.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from signer.errors import ModelsignError, NotFoundError, RegistryError
from signer.oci.stores import Stores
from signer import mediatypes as mt
from signer.approvals import CLOCK_SKEW_SECONDS, approval_facts, parse_time, with_status
from signer.scanning import scan_facts
from signer.verification import AttestationReport, SignatureReport, collect_statements
from webhook.cache import SingleFlightCache
from webhook.config import LoadedPolicy
from webhook.targets import Target

NEGATIVE_TTL_SECONDS = 10.0  # an unsigned result is re-checked soon: someone may be signing it now
ATTESTATION_TTL_SECONDS = 30.0  # a new approval, scan or revocation takes effect within this
UNREACHABLE_PAUSE_SECONDS = 5.0  # after a timeout or refused connection, fail fast for this long


@dataclass
class Evidence:
    """What the policy learns about one unique OCI reference."""

    reference: str
    registry: str
    repository: str
    registry_allowed: bool
    digest: str | None = None
    signatures: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    scans: list[dict[str, Any]] = field(default_factory=list)  # newest first
    approvals: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cached: bool = False
    registry_error: bool = False

    def to_input(self) -> dict[str, Any]:
        return {
            "registryAllowed": self.registry_allowed,
            "digest": self.digest,
            "signatures": self.signatures,
            "rejected": self.rejected,
            "scans": self.scans,
            "approvals": self.approvals,
            "error": self.error,
        }

    def fill(self, reports: tuple[SignatureReport, AttestationReport]) -> None:
        """Facts from verified statements; time-dependent ones (scan age, approval status) as of now."""
        signatures, attestations = reports
        self.signatures, self.rejected = _signature_facts(signatures)
        if attestations.incomplete:
            # Approvals and scans are only as good as the complete set: a flood of entries
            # could push a revocation out of view.
            self.error = (f"the attestations of {attestations.digest} could not all be read ({'; '.join(attestations.incomplete[:2])}), "
                          "so a revocation or a newer scan might be missed; remove the excess attestations from the registry")
            return
        now = datetime.now(timezone.utc)
        scans = []
        for attestation in attestations.of_type(mt.VULN_PREDICATE):
            facts = scan_facts(attestation.predicate)
            finished = parse_time(facts["finishedOn"]) if facts else None
            if facts is None or finished is None:
                self.rejected.append({"location": attestation.location, "reason": "scan attestation has a malformed predicate"})
                continue
            if (finished - now).total_seconds() > CLOCK_SKEW_SECONDS:
                self.rejected.append({"location": attestation.location, "reason": f"scan attestation finished in the future ({facts['finishedOn']})"})
                continue
            scans.append({**facts, "id": attestation.statement_digest, "signer": attestation.signer, "keyId": attestation.key_id,
                          "ageSeconds": int((now - finished).total_seconds())})
        self.scans = sorted(scans, key=lambda s: s["ageSeconds"])
        approvals = [f for f in (approval_facts(a) for a in attestations.of_type(mt.APPROVAL_PREDICATE)) if f is not None]
        self.approvals = [{**f.to_input(status, now), "approverId": f.key_id or f.identity} for f, status in with_status(approvals, now)]


def _signature_facts(report: SignatureReport) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    signatures = [
        {
            "signer": v.signer,
            "keyId": v.key_id,
            "form": v.form,
            "annotations": v.annotations,
            "dockerReference": v.docker_reference,
            "identity": list(v.keyless.subjects) if v.keyless else None,
            "issuer": v.keyless.issuer if v.keyless else None,
        }
        for v in report.verified
    ]
    rejected = [{"location": r.location, "reason": r.reason} for r in report.rejected]
    return signatures, rejected


class EvidenceGatherer:
    def __init__(self, policy: LoadedPolicy, stores: Stores, cache: SingleFlightCache, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self.policy = policy
        self.stores = stores
        self.cache = cache
        self.executor = executor
        # registry -> (monotonic time until which it is treated as down, why): a registry that
        # hangs must not tie up every verification thread, request after request.
        self._unreachable: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._anchors = list(policy.anchors.values())
        self._positive_ttl = policy.spec.cache.ttl_seconds
        self._attestation_types = policy.attestation_types

    def gather(self, targets: list[Target], deadline: float) -> dict[str, Evidence]:
        """Evidence per `Target.key` for every OCI target; returns by `deadline` (monotonic)."""
        evidence: dict[str, Evidence] = {}
        futures: dict[concurrent.futures.Future[Evidence], str] = {}
        for target in targets:
            if target.kind != "oci" or target.key in evidence:
                continue
            reference = target.reference
            assert reference is not None
            item = Evidence(
                reference=str(reference),
                registry=reference.registry,
                repository=reference.repository,
                registry_allowed=self.policy.registry_allowed(reference.registry),
            )
            evidence[target.key] = item
            if not item.registry_allowed:
                continue
            if reference.digest and self._from_cache(item, reference.name, reference.digest):
                continue  # warm path: no thread hop, no network
            down = self._down(reference.registry)
            if down is not None:
                item.error, item.registry_error = down, True
                continue
            futures[self.executor.submit(self._verify, target, item, deadline)] = target.key
        if futures:
            done, pending = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            for future in pending:
                future.cancel()  # not started yet: do not let it hold a worker after the answer went out
                key = futures[future]
                evidence[key].error = f"verification of {evidence[key].reference} did not finish within the {self.policy.spec.deadline_seconds:g}s deadline"
                evidence[key].registry_error = True
            for future in done:
                exception = future.exception()
                if exception is not None:  # _verify maps expected failures; anything else still fails closed
                    evidence[futures[future]].error = f"internal error while verifying: {type(exception).__name__}: {exception}"
        return evidence

    def _down(self, registry: str) -> str | None:
        with self._lock:
            until, reason = self._unreachable.get(registry, (0.0, ""))
        if time.monotonic() < until:
            return f"registry {registry} did not answer moments ago ({reason}); not contacted again for {UNREACHABLE_PAUSE_SECONDS:g}s"
        return None

    def _mark_down(self, registry: str, reason: str) -> None:
        with self._lock:
            self._unreachable[registry] = (time.monotonic() + UNREACHABLE_PAUSE_SECONDS, reason)

    def _from_cache(self, item: Evidence, name: str, digest: str) -> bool:
        reports = self.cache.peek((name, digest, self.policy.policy_hash))
        if reports is None:
            return False
        item.digest, item.cached = digest, True
        item.fill(reports)
        return True

    def _ttl(self, reports: tuple[SignatureReport, AttestationReport]) -> float:
        ttl = self._positive_ttl if reports[0].ok else min(self._positive_ttl, NEGATIVE_TTL_SECONDS)
        return min(ttl, ATTESTATION_TTL_SECONDS) if self._attestation_types else ttl

    def _verify(self, target: Target, item: Evidence, deadline: float) -> Evidence:
        reference = target.reference
        assert reference is not None
        if time.monotonic() >= deadline:  # queued behind other work for too long: the answer has gone out
            item.error = f"verification of {item.reference} did not start before the {self.policy.spec.deadline_seconds:g}s deadline"
            item.registry_error = True
            return item
        try:
            repository = self.stores.repository(reference)
            # A tag is resolved here, once per request; the digest is what gets verified.
            digest = reference.digest or repository.resolve(reference.reference).digest
            item.digest = digest
            key = (reference.name, digest, self.policy.policy_hash)
            reports, item.cached = self.cache.get_or_compute(
                key,
                lambda: collect_statements(repository, digest, self._anchors, reference=str(reference.pinned(digest)), attestation_types=self._attestation_types),
                ttl=self._ttl,
                wait_seconds=max(0.0, deadline - time.monotonic()),
            )
            item.fill(reports)
        except ModelsignError as exc:
            item.error = str(exc)
            item.registry_error = True
            if isinstance(exc, RegistryError) and exc.status is None and not isinstance(exc, NotFoundError):
                self._mark_down(reference.registry, str(exc))
        except concurrent.futures.TimeoutError:  # another request's lookup of this digest outlived our deadline
            item.error = f"verification of {item.reference} did not finish within the {self.policy.spec.deadline_seconds:g}s deadline"
            item.registry_error = True
        return item
