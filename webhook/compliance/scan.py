"""Re-decide every listed object with the admission pipeline, as a CREATE would be decided now.

The pipeline is the webhook's own (webhook/admission/pipeline.py): the same extraction,
evidence, Rego policy and messages. The scan gives it an evidence cache of its own, empty at
the start of each scan, so every result rests on what the registry holds now: an approval
revoked a minute ago, a scan that aged past maxAge, a key taken out of the policy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from signer import mapping, text
from webhook.admission.cache import SingleFlightCache
from webhook.admission.config import LoadedPolicy
from webhook.admission.engine.engines import PolicyEngine
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import UserInfo
from webhook.check import admission_request
from webhook.compliance.binding import Binding, bind_running_digests
from webhook.compliance.findings import SKIP_RULE, Finding, Resource, findings_from_decision, listing_error
from webhook.compliance.inventory import Inventory
from webhook.compliance.kinds import ListedKind

SCANNER_USER = "system:modelsign:compliance"
TEMPLATE_NOTE = "the template's references were checked (a workload reports no digests; its Pods are checked at the digests they run)"
SPEC_NOTE = "the spec's references were checked (only Pods report the digests that run; this object's Pods are checked at theirs)"


@dataclass
class ComplianceReport:
    scan_id: str
    started: datetime
    policy_name: str
    policy_hash: str
    scope: str  # "all namespaces" or the namespaces scanned
    findings: list[Finding] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)
    left_out: int = 0
    objects: int = 0

    def counts(self) -> dict[str, int]:
        counts = {result: 0 for result in ("pass", "fail", "warn", "error", "skip")}
        for finding in self.findings:
            counts[finding.result] += 1
        return counts

    @property
    def compliant(self) -> bool:
        return not any(f.result in ("fail", "error") for f in self.findings)


def resource_of(obj: dict[str, Any]) -> Resource:
    metadata = mapping(obj.get("metadata"))
    return Resource(api_version=text(obj.get("apiVersion")), kind=text(obj.get("kind")), namespace=text(metadata.get("namespace")),
                    name=text(metadata.get("name")), uid=text(metadata.get("uid")))


def scan_pipeline(policy: LoadedPolicy, engine: PolicyEngine | None = None) -> AdmissionPipeline:
    """A pipeline for one scan: the policy (and the live engine, when the webhook runs the scan)
    with an empty evidence cache, closed when the scan ends."""
    return AdmissionPipeline(policy, cache=SingleFlightCache(max_entries=policy.spec.cache.max_entries), engine=engine)


def decide_object(pipeline: AdmissionPipeline, kind: ListedKind, obj: dict[str, Any], number: int) -> list[Finding]:
    resource = resource_of(obj)
    bindings: list[Binding] = []
    checked, notes = obj, ()
    if kind.kind == "Pod":
        checked, bindings = bind_running_digests(obj)
    else:
        notes = (TEMPLATE_NOTE if kind.group in ("apps", "batch") else SPEC_NOTE,)
    request = admission_request(checked, uid=f"compliance-{number}", default_namespace="")
    request = replace(request, namespace=resource.namespace, dry_run=True, user=UserInfo(username=SCANNER_USER))
    return findings_from_decision(resource, pipeline.decide(request), bindings, notes)


def scan(pipeline: AdmissionPipeline, inventory: Inventory, *, scope: str) -> ComplianceReport:
    """Findings for every object of `inventory`, and an error finding for every list that
    could not be read. Never raises for one object: the pipeline fails closed to a finding."""
    report = ComplianceReport(scan_id=str(uuid.uuid4()), started=datetime.now(timezone.utc), policy_name=pipeline.policy.name,
                              policy_hash=pipeline.policy.policy_hash, scope=scope, unserved=list(inventory.unserved),
                              left_out=inventory.left_out, objects=len(inventory.objects))
    for problem in inventory.problems:
        where = Resource(api_version=problem.kind.api_version, kind=problem.kind.kind, namespace=problem.namespace or "", name="*")
        report.findings.append(listing_error(where, problem.message))
    exempt: dict[str, int] = {}
    for number, (kind, obj) in enumerate(inventory.objects):
        namespace = text(mapping(obj.get("metadata")).get("namespace"))
        if namespace and pipeline.exempt(namespace):  # one skip per namespace, not one per object in kube-system
            exempt[namespace] = exempt.get(namespace, 0) + 1
            continue
        report.findings += decide_object(pipeline, kind, obj, number)
    for namespace, count in sorted(exempt.items()):
        report.findings.append(Finding(resource=Resource(api_version="v1", kind="Namespace", namespace="", name=namespace), result="skip",
                                       rule=SKIP_RULE, code=SKIP_RULE, message=f"namespace {namespace} is exempt: its {count} object(s) were not checked"))
    return report
