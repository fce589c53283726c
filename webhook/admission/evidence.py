"""Gather evidence for each unique artifact: registry allowed?, digest, verified signatures.

- The allowed-registry check needs no network and happens first; a disallowed artifact is
  never contacted.
- Each unique reference is resolved once per request (tags are not cached across requests:
  a moved tag must be seen), then its digest's signatures are verified through a cache keyed
  by (repository, digest, policy hash) with single-flight.
- All lookups run in parallel under one deadline; whatever is not done by then is evidence
  of failure ("did not finish within ..."), which the policy turns into a deny. They run on a
  fair scheduler (one lane per review) and under a budget (signer.oci.budget) per review and
  per artifact, set from the policy's `limits`: registry work stops at the deadline, and
  padded signature objects cost a bounded amount once, then are remembered as such.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from signer import (CLOCK_SKEW_SECONDS, AttestationReport, Budget, BudgetExceeded, DeadlineExceeded, ImageReference, ModelsignError,
                    Repository, SignatureReport, Stores, approval_facts, collect_statements, mediatypes as mt, parse_image_reference,
                    parse_time, request_facts, scan_facts, using_budget, verify_attestations, with_status)
from webhook.admission.attestation_facts import evaluation_inputs, named_inputs
from webhook.admission.cache import SingleFlightCache
from webhook.admission.config import LoadedPolicy
from webhook.admission.scheduler import FairScheduler
from webhook.admission.signed_names import normalised_name, same_repository
from webhook.admission.statement_memory import StatementMemory
from webhook.admission.targets import Target

MAX_REJECTED_IN_INPUT = 5
MAX_REQUESTERS_IN_INPUT = 20
NEGATIVE_TTL_SECONDS = 10.0  # an unsigned result is re-checked soon: someone may be signing it now
ATTESTATION_TTL_SECONDS = 30.0  # a new approval, scan or revocation takes effect within this
# A failed verification that cost more than this was padding (a real unsigned or foreign-signed
# artifact costs a few KiB and a few checks): it is remembered like objects over their caps.
PADDING_BYTES = 1024 * 1024
PADDING_CHECKS = 50
# Repositories other than the pulled one whose attestations are read (named by the signatures).
MAX_SIGNED_NAME_REPOSITORIES = 4


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
    # who signed approval requests, per environment: their keys never count as approvers
    approval_requesters: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # newest first, one per signer
    attestations: list[dict[str, Any]] = field(default_factory=list)  # the types rules name (require.attestations)
    # evaluation and named statements not given to the policy, with the reason (their denials cite them)
    attestations_rejected: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    cached: bool = False
    registry_error: bool = False

    def to_input(self) -> dict[str, Any]:
        return {
            "registryAllowed": self.registry_allowed,
            "digest": self.digest,
            "signatures": self.signatures,
            # Anyone who can push can add rejected entries: the policy gets a few and the count,
            # so the engine's work does not grow with the padding.
            "rejected": self.rejected[:MAX_REJECTED_IN_INPUT],
            "rejectedCount": len(self.rejected),
            "scans": self.scans,
            "approvals": self.approvals,
            "approvalRequesters": self.approval_requesters,
            "evaluations": self.evaluations,
            "attestations": self.attestations,
            "attestationsRejected": self.attestations_rejected[:MAX_REJECTED_IN_INPUT],
            "error": self.error,
        }

    def fill(self, reports: tuple[SignatureReport, AttestationReport], metrics: frozenset[str] = frozenset(),
             named: frozenset[str] = frozenset()) -> None:
        """Facts from verified statements; time-dependent ones (scan age, approval status) as of now.
        `metrics`: the evaluation metrics rules bound; `named`: the attestation types rules name."""
        signatures, attestations = reports
        self.signatures, self.rejected = _signature_facts(signatures)
        if attestations.incomplete:
            # Approvals and scans are only as good as the complete set: a flood of entries
            # could push a revocation out of view.
            self.error = (f"the attestations of {attestations.digest} could not all be read ({'; '.join(attestations.incomplete[:2])}), "
                          "so a revocation or a newer scan might be missed; make the repositories named there reachable, or remove the "
                          "excess attestations from the registry")
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
        requests = [f for f in (request_facts(a) for a in attestations.of_type(mt.APPROVAL_REQUEST_PREDICATE)) if f is not None]
        self.approval_requesters = sorted(({"id": f.key_id, "environment": f.environment} for f in requests if f.key_id),
                                          key=lambda r: (r["environment"], r["id"]))[:MAX_REQUESTERS_IN_INPUT]
        self.evaluations, rejected = evaluation_inputs(attestations, now, metrics)
        self.attestations, rejected_named = named_inputs(attestations, named)
        self.attestations_rejected = rejected + rejected_named


def _signature_facts(report: SignatureReport) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    signatures = [
        {
            "signer": v.signer,
            "keyId": v.key_id,
            "form": v.form,
            "annotations": v.annotations,
            "dockerReference": v.docker_reference,
            "signedNames": list(v.signed_names),
            "identity": list(v.keyless.subjects) if v.keyless else None,
            "issuer": v.keyless.issuer if v.keyless else None,
        }
        for v in report.verified
    ]
    rejected = [{"location": r.location, "reason": r.reason} for r in report.rejected]
    return signatures, rejected


class EvidenceGatherer:
    def __init__(self, policy: LoadedPolicy, stores: Stores, cache: SingleFlightCache, scheduler: FairScheduler,
                 memory: StatementMemory | None = None) -> None:
        self.policy = policy
        self.memory = memory or StatementMemory()
        self.stores = stores
        self.cache = cache
        self.scheduler = scheduler
        self.limits = policy.spec.limits
        # (repository, digest) -> why its signature objects are padding: the same padding is
        # denied without another look (it does not depend on the keys or rules).
        self.padded: SingleFlightCache[tuple[str, str], str] = SingleFlightCache(max_entries=policy.spec.cache.max_entries)
        self._anchors = list(policy.anchors.values())
        self._positive_ttl = policy.spec.cache.ttl_seconds
        self._attestation_types = policy.attestation_types

    def gather(self, targets: list[Target], deadline: float) -> dict[str, Evidence]:
        """Evidence per `Target.key` for every OCI target; returns by `deadline` (monotonic),
        when the lookups still running stop too (their budget ends with it)."""
        evidence: dict[str, Evidence] = {}
        futures: dict[concurrent.futures.Future[Evidence], str] = {}
        budget = Budget("verifying this review's artifacts", deadline=deadline, max_bytes=self.limits.request_bytes, max_checks=self.limits.request_checks)
        lane = self.scheduler.lane()
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
            if reference.digest and (self._known_padded(item, reference.name, reference.digest) or self._from_cache(item, reference.name, reference.digest)):
                continue  # warm path: no thread hop, no network
            down = self.stores.unreachable(reference)
            if down is not None:
                item.error, item.registry_error = down, True
                continue
            futures[lane.submit(self._verify, target, item, budget)] = target.key
        if futures:
            done, pending = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            lane.close()  # not started yet: do not let them hold a thread after the answer went out
            for future in pending:
                key = futures[future]
                evidence[key].error = self._late(evidence[key])
                evidence[key].registry_error = True
            for future in done:
                exception = future.exception() if not future.cancelled() else None
                if exception is not None:  # _verify maps expected failures; anything else still fails closed
                    evidence[futures[future]].error = f"internal error while verifying: {type(exception).__name__}: {exception}"
        return evidence

    def _late(self, item: Evidence, detail: str | None = None) -> str:
        return f"verification of {item.reference} did not finish within the {self.policy.spec.deadline_seconds:g}s deadline" + (f" ({detail})" if detail else "")

    def _from_cache(self, item: Evidence, name: str, digest: str) -> bool:
        reports = self.cache.peek((name, digest, self.policy.policy_hash))
        if reports is None:
            return False
        item.digest, item.cached = digest, True
        # This process verified these reports within their TTL and asked the shared memory then:
        # no Redis round trip on the warm path.
        self._fill(item, digest, reports, recall=False)
        return True

    def _fill(self, item: Evidence, digest: str, reports: tuple[SignatureReport, AttestationReport], *, recall: bool = True) -> None:
        item.fill(reports, self.policy.evaluation_metrics, self.policy.named_attestation_types)
        if item.error is None and self._attestation_types:
            item.error = self.memory.check(digest, item.approvals, item.evaluations, recall=recall)  # a statement removed since: deny

    def _known_padded(self, item: Evidence, name: str, digest: str) -> bool:
        reason = self.padded.peek((name, digest))
        if reason is None:
            return False
        item.digest, item.cached, item.error = digest, True, reason
        return True

    def _remember_padded(self, name: str, digest: str, problems: list[str]) -> str:
        shown = "; ".join(problems[:3]) + (f"; +{len(problems) - 3} more" if len(problems) > 3 else "")
        ttl = self.limits.padded_ttl_seconds
        reason = (f"its signature objects are over modelsign's limits ({shown}); remove the excess signatures and referrers of "
                  f"{name}@{digest} from the registry (or, if they are all genuine, raise the policy's limits)"
                  + (f"; this result is kept for {ttl:g}s" if ttl else ""))
        self.padded.put((name, digest), reason, ttl)
        return reason

    def _collect(self, repository: Repository, reference: ImageReference, digest: str, artifact: Budget) -> tuple[SignatureReport, AttestationReport]:
        """Verify, and remember the digest as padded if its objects are over the limits or the
        failed verification cost what only padding costs."""
        reports = collect_statements(repository, digest, self._anchors, reference=str(reference.pinned(digest)), attestation_types=self._attestation_types)
        if reports[0].ok and self._attestation_types:
            reports = (reports[0], self._with_signed_name_attestations(reference, digest, reports))
        if not reports[0].ok:
            problems = list(reports[0].over_limits)
            if self._costly(artifact):
                problems.append(f"{artifact.bytes_used} bytes read and {artifact.checks_used} signature checks made without finding a valid signature")
            if problems:
                self._remember_padded(reference.name, digest, problems)
        return reports

    def _with_signed_name_attestations(self, reference: ImageReference, digest: str,
                                       reports: tuple[SignatureReport, AttestationReport]) -> AttestationReport:
        """The digest's attestations where it is pulled from, plus those in every repository its
        verified signatures name. The rules of a signed name follow a copy of the digest
        (signed_names.py), so its statements must too: copying `models/a@D` to `scratch/a`
        without the rejection or revocation beside it must not shed them. Names come only from
        signatures by trusted keys; a name's repository that cannot be read in full makes the
        set incomplete, which denies."""
        signatures, attestations = reports
        names: list[str] = []
        for signature in signatures.verified:
            for name in signature.signed_names:
                repository_name = normalised_name(name)
                # a mirror (imageMirrors) serves the same statements, and is often the only one reachable
                if not same_repository(reference.name, repository_name, self.policy.mirror_groups) and repository_name not in names:
                    names.append(repository_name)
        verified = {a.statement_digest: a for a in attestations.verified}
        rejected, incomplete = list(attestations.rejected), list(attestations.incomplete)
        for name in names[:MAX_SIGNED_NAME_REPOSITORIES]:
            try:
                other = parse_image_reference(name)
            except ModelsignError:
                continue  # a layout path or a name that is not a registry reference: nothing to read there
            if not self.policy.registry_allowed(other.registry):
                continue  # never contacted, like any disallowed registry
            try:
                found = verify_attestations(self.stores.repository(other), digest, self._anchors, predicate_types=set(self._attestation_types))
            except (BudgetExceeded, DeadlineExceeded):
                raise
            except ModelsignError as exc:
                incomplete.append(f"{name} (a name its signatures carry): {exc.message}")
                continue
            for attestation in found.verified:
                verified.setdefault(attestation.statement_digest, attestation)
            rejected += found.rejected
            incomplete += found.incomplete
        if len(names) > MAX_SIGNED_NAME_REPOSITORIES:
            incomplete.append(f"its signatures name {len(names)} other repositories; at most {MAX_SIGNED_NAME_REPOSITORIES} are read")
        return replace(attestations, verified=tuple(verified.values()), rejected=tuple(rejected), incomplete=tuple(incomplete))

    @staticmethod
    def _costly(artifact: Budget) -> bool:
        return artifact.bytes_used > PADDING_BYTES or artifact.checks_used > PADDING_CHECKS

    def _ttl(self, reports: tuple[SignatureReport, AttestationReport]) -> float:
        ttl = self._positive_ttl if reports[0].ok else min(self._positive_ttl, NEGATIVE_TTL_SECONDS)
        return min(ttl, ATTESTATION_TTL_SECONDS) if self._attestation_types else ttl

    def _verify(self, target: Target, item: Evidence, budget: Budget) -> Evidence:
        reference = target.reference
        assert reference is not None
        if budget.remaining() == 0:  # queued behind other work for too long: the answer has gone out
            item.error = f"verification of {item.reference} did not start before the {self.policy.spec.deadline_seconds:g}s deadline"
            item.registry_error = True
            return item
        artifact = budget.child(f"verifying {item.reference}", max_bytes=self.limits.artifact_bytes, max_checks=self.limits.artifact_checks)
        try:
            with using_budget(artifact):
                repository = self.stores.repository(reference)
                # A tag is resolved here, once per request; the digest is what gets verified.
                digest = reference.digest or repository.resolve(reference.reference).digest
                item.digest = digest
                if self._known_padded(item, reference.name, digest):
                    return item
                reports, item.cached = self.cache.get_or_compute(
                    (reference.name, digest, self.policy.policy_hash),
                    lambda: self._collect(repository, reference, digest, artifact),
                    ttl=self._ttl,
                    wait_seconds=budget.remaining(),
                )
            padded = self.padded.peek((reference.name, digest))  # found by this lookup, or by the one it shared
            if padded is not None:
                item.error = padded
            else:
                self._fill(item, digest, reports)
        except DeadlineExceeded as exc:  # a slow registry is not the artifact's fault: not remembered
            item.error, item.registry_error = self._late(item, exc.message), True
        except BudgetExceeded as exc:
            if exc.budget.parent is None:  # the review's limit: the artifacts it left unverified may be fine on their own
                item.error = f"{exc.message}; put fewer or less heavily signed images in one object, or raise limits.requestBytes/requestChecks"
            elif item.digest:  # an artifact's own limit (this one's, or in the lookup it shared): remember it
                item.error = self._remember_padded(reference.name, item.digest, [exc.message])
            else:
                item.error = exc.message
        except ModelsignError as exc:
            item.error = str(exc)
            item.registry_error = True
        except concurrent.futures.TimeoutError:  # another request's lookup of this digest outlived our deadline
            item.error, item.registry_error = self._late(item), True
        return item
