# modelsign default admission policy.
#
# data.modelsign.config is the AdmissionPolicy file (normalised; see README "Policy input").
# input is {request, artifacts[]}: the request facts and, per artifact, the evidence the
# webhook gathered (registry allowed?, digest, verified signatures, errors).
#
# The webhook asks for data.modelsign.decision = {"exempt": bool, "violations": [...]}.
# A violation names the artifact (`source`, `value`), a reason `code` and the facts behind
# it; the webhook renders the message and fix hint for the built-in codes. Rules of your
# own (other files in this package) add `violations contains v if {...}` with their own
# `code` and a `message`. `enforce: false` (warn mode) makes it a warning instead of a deny.
#
# Written for both OPA and rego-cpp (regopy, the embedded engine): no string formatting
# here (rego-cpp quotes concat() results inside sprintf), no `some k, v in` comprehensions.

package modelsign

import rego.v1

policy := data.modelsign.config

decision := {
	"exempt": exempt,
	"violations": [v | some v in violations],
}

default exempt := false

exempt if {
	some pattern in policy.exemptNamespaces
	glob.match(pattern, [], input.request.namespace)
}

violation(artifact, code, mode, details) := object.union(
	{
		"source": artifact.source,
		"value": artifact.value,
		"code": code,
		"enforce": mode == "enforce",
	},
	details,
)

rule_mode(rule) := rule.mode if rule.mode != null

rule_mode(rule) := policy.mode if rule.mode == null

# A rule applies to an artifact by the name it is pulled by, and by every name its verified
# signatures carry (signedNames): evidence binds to the digest, so a copy of a digest into
# another repository keeps the rules of the repository it was signed for.
rule_applies(rule, artifact) if {
	some pattern in rule.artifacts
	some name in artifact_names(artifact)
	glob.match(pattern, ["/"], name)
	some namespace in rule.namespaces
	glob.match(namespace, [], input.request.namespace)
}

artifact_names(artifact) := array.concat([artifact.name], object.get(artifact, "signedNames", []))

verifiable(artifact) if {
	artifact.kind == "oci"
	artifact.evidence.registryAllowed
	artifact.evidence.error == null
}

# -- every artifact ------------------------------------------------------------------------

violations contains v if {
	not exempt
	some a in input.artifacts
	a.kind == "invalid"
	v := violation(a, "invalid-reference", policy.mode, {"problem": a.problem})
}

violations contains v if {
	not exempt
	some a in input.artifacts
	a.kind == "oci"
	not a.evidence.registryAllowed
	v := violation(a, "registry-not-allowed", policy.mode, {"registry": a.registry})
}

violations contains v if {
	not exempt
	some a in input.artifacts
	a.kind == "oci"
	a.evidence.registryAllowed
	a.evidence.error != null
	v := violation(a, "verification-error", policy.mode, {"error": a.evidence.error})
}

violations contains v if {
	not exempt
	policy.requireDigest
	some a in input.artifacts
	verifiable(a)
	not a.pinnedByDigest
	v := violation(a, "tag-not-pinned", policy.mode, {"name": a.name, "digest": a.evidence.digest})
}

violations contains v if {
	not exempt
	some a in input.artifacts
	a.kind == "uri"
	not uri_allowed(a.value)
	v := violation(a, "unverifiable-uri", policy.mode, {"scheme": a.scheme})
}

uri_allowed(uri) if {
	some pattern in policy.storageUris.allow
	glob.match(pattern, ["/"], uri)
}

# -- rules -------------------------------------------------------------------------------

violations contains v if {
	not exempt
	some rule in policy.rules
	count(rule.require.signedBy) > 0
	some a in input.artifacts
	verifiable(a)
	rule_applies(rule, a)
	not signed_as_required(a, rule)
	v := violation(a, "not-signed", rule_mode(rule), {
		"rule": rule.name,
		"signedBy": rule.require.signedBy,
		"annotations": object.get(rule.require, "annotations", {}),
		"name": a.name,
		"digest": a.evidence.digest,
		"requireSignedReference": policy.requireSignedReference,
		"signedAs": [n | some s in unmatched_names(a, rule); some n in s.names],
		"unmatchedSignatures": count(unmatched_names(a, rule)),
		"namelessIgnored": count(nameless_by(a, rule)),
	})
}

# An artifact no signing rule covers is not trusted: rules are what say which keys may sign it.
violations contains v if {
	not exempt
	some a in input.artifacts
	verifiable(a)
	not covered_by_signing_rule(a)
	v := violation(a, "no-rule", policy.mode, {"name": a.name, "namespace": input.request.namespace})
}

covered_by_signing_rule(artifact) if {
	some rule in policy.rules
	count(rule.require.signedBy) > 0
	rule_applies(rule, artifact)
}

signed_as_required(artifact, rule) if {
	some signature in artifact.evidence.signatures
	signature.signer in rule.require.signedBy
	not annotation_mismatch(signature, object.get(rule.require, "annotations", {}))
	signed_name_accepted(signature)
}

unmatched_names(a, rule) := [s | some s in a.evidence.signatures; s.signer in rule.require.signedBy; object.get(s, "nameMatches", false) != true]

# requireSignedReference: the signed name must be the pulled one, or a mirror of it.
# namelessSignatures "ignore": a signature must name a repository at all.
signed_name_accepted(signature) if {
	not policy.requireSignedReference
	not nameless_ignored(signature)
}

signed_name_accepted(signature) if object.get(signature, "nameMatches", false) == true

nameless_ignored(signature) if {
	policy.namelessSignatures == "ignore"
	count(object.get(signature, "names", [])) == 0
}

nameless_by(a, rule) := [s | some s in a.evidence.signatures; s.signer in rule.require.signedBy; nameless_ignored(s)]

annotation_mismatch(signature, wanted) if {
	value := wanted[key]
	object.get(signature.annotations, key, null) != value
}

# -- scan requirements (verified scan attestations; newest first) --------------------------

scan_checks contains [rule, a] if {
	policy.requiresScans
	not exempt
	some rule in policy.rules
	rule.require.scan != null
	some a in input.artifacts
	verifiable(a)
	rule_applies(rule, a)
}

trusted_scans(a, req) := [s | s := a.evidence.scans[_]; s.signer in req.signedBy]

scan_violation(pair, code, details) := violation(pair[1], code, rule_mode(pair[0]), object.union(
	{"rule": pair[0].name, "name": pair[1].name, "digest": pair[1].evidence.digest, "signedBy": pair[0].require.scan.signedBy},
	details,
))

violations contains v if {
	policy.requiresScans
	pair := scan_checks[_]
	count(trusted_scans(pair[1], pair[0].require.scan)) == 0
	v := scan_violation(pair, "scan-missing", {"otherScans": count(pair[1].evidence.scans)})
}

violations contains v if {
	policy.requiresScans
	pair := scan_checks[_]
	req := pair[0].require.scan
	latest := trusted_scans(pair[1], req)[0]
	latest.ageSeconds > req.maxAgeSeconds
	v := scan_violation(pair, "scan-too-old", {"ageSeconds": latest.ageSeconds, "maxAgeSeconds": req.maxAgeSeconds})
}

violations contains v if {
	policy.requiresScans
	pair := scan_checks[_]
	req := pair[0].require.scan
	latest := trusted_scans(pair[1], req)[0]
	counts := scan_counts(latest, req)
	limit := req.maxSeverity[severity]
	counts[severity] > limit
	v := scan_violation(pair, "scan-over-threshold", {
		"severity": severity, "count": counts[severity], "max": limit,
		"ids": finding_ids(latest, req, severity), "unfixedIgnored": req.ignoreUnfixed,
	})
}

finding_ids(scan, req, severity) := object.get(scan.fixableFindings, severity, []) if req.ignoreUnfixed

finding_ids(scan, req, severity) := object.get(scan.findings, severity, []) if not req.ignoreUnfixed

scan_counts(scan, req) := scan.fixableSeverityCounts if req.ignoreUnfixed

scan_counts(scan, req) := scan.severityCounts if not req.ignoreUnfixed

violations contains v if {
	policy.requiresScans
	pair := scan_checks[_]
	req := pair[0].require.scan
	req.unsafeModelFiles == "deny"
	pair[1].role == "model" # a container image's scan need not cover model files
	latest := trusted_scans(pair[1], req)[0]
	latest.unsafeModelFiles == null
	v := scan_violation(pair, "scan-no-model-files", {})
}

violations contains v if {
	policy.requiresScans
	pair := scan_checks[_]
	req := pair[0].require.scan
	req.unsafeModelFiles == "deny"
	latest := trusted_scans(pair[1], req)[0]
	latest.unsafeModelFiles != null
	latest.unsafeModelFiles > 0
	v := scan_violation(pair, "unsafe-model-files", {"count": latest.unsafeModelFiles, "files": latest.unsafeFiles})
}

violations contains v if {
	policy.requiresScans
	pair := scan_checks[_]
	req := pair[0].require.scan
	req.maxSecrets != null
	latest := trusted_scans(pair[1], req)[0]
	latest.secretCount > req.maxSecrets
	v := scan_violation(pair, "scan-secrets", {"count": latest.secretCount, "max": req.maxSecrets})
}

# -- approval requirements (verified approval attestations, status computed as of now) -----

approval_checks contains [rule, a] if {
	policy.requiresApprovals
	not exempt
	some rule in policy.rules
	rule.require.approval != null
	some a in input.artifacts
	verifiable(a)
	rule_applies(rule, a)
}

approval_environment(req) := req.environment if req.environment != null

approval_environment(req) := object.get(input.request, "environment", "") if req.environment == null

by_approvers(a, req) := [x | x := a.evidence.approvals[_]; x.decision == "approved"; x.signer in req.signedBy]

for_environment(a, req) := [x | x := by_approvers(a, req)[_]; x.environment == approval_environment(req)]

active_approvals(a, req) := [x | x := for_environment(a, req)[_]; x.status == "active"]

namespace_approvals(a, req) := [x | x := active_approvals(a, req)[_]; namespace_covered(x.namespaces)]

namespace_covered(patterns) if {
	some pattern in patterns
	glob.match(pattern, [], input.request.namespace)
}

# Distinct approvers (by key, or keyless identity). Whoever any of these approvals names as
# the requester never counts as an approver, whether named by key name, identity or approver.
approvers(a, req) := {x.approverId |
	x := namespace_approvals(a, req)[_]
	not requested_by(x, requesters(a, req))
	not x.approverId in self_approving(a, req)
}

# Names are free text: a requester holding an approver key could approve once as himself
# (excluded) and again under another name. So a key that ever approved as a requester for
# this environment is the requester's, and none of its approvals count.
self_approving(a, req) := {x.approverId |
	x := for_environment(a, req)[_]
	requested_by(x, requesters_of_environment(a, req))
} | {r.id |
	# a key that signed an approval request for this environment is the requester's
	some r in object.get(a.evidence, "approvalRequesters", [])
	r.environment == approval_environment(req)
}

requesters_of_environment(a, req) := {x.requester | x := for_environment(a, req)[_]; x.requester != ""}

requesters(a, req) := {x.requester | x := namespace_approvals(a, req)[_]; x.requester != ""}

requested_by(x, names) if x.signer in names

requested_by(x, names) if x.identity in names

requested_by(x, names) if {
	x.approver != ""
	x.approver in names
}

# A rejection (by any trusted key, like a revocation) stands until an approval stamped after
# it: the webhook marks the approvals it supersedes "rejected".
rejections(a, req) := [x | x := a.evidence.approvals[_]; x.decision == "rejected"; x.environment == approval_environment(req)]

unanswered_rejection(a, req) if {
	count(rejections(a, req)) > 0
	count([x | x := for_environment(a, req)[_]; x.status != "rejected"]) == 0
}

approval_problem(a, req) := {"code": "approval-no-environment"} if {
	approval_environment(req) == ""
} else := {"code": "approval-rejected", "rejections": {r |
	x := rejections(a, req)[_]
	r := {"by": x.approver, "signer": x.signer, "reason": x.reason, "at": x.approvedAt, "requestId": x.requestId}
}} if {
	unanswered_rejection(a, req)
} else := {"code": "approval-missing", "byOtherKeys": count([x | x := a.evidence.approvals[_]; x.decision == "approved"])} if {
	count(by_approvers(a, req)) == 0
} else := {"code": "approval-wrong-environment", "environments": {x.environment | x := by_approvers(a, req)[_]}} if {
	count(for_environment(a, req)) == 0
} else := {"code": status_code(a, req), "statuses": {x.status | x := for_environment(a, req)[_]}, "validFrom": {x.notBefore | x := for_environment(a, req)[_]; x.status == "not-yet-valid"}} if {
	count(active_approvals(a, req)) == 0
} else := {"code": "approval-namespace", "namespaces": {n | x := active_approvals(a, req)[_]; n := x.namespaces[_]}} if {
	count(namespace_approvals(a, req)) == 0
} else := {"code": "approval-insufficient", "approvers": count(approvers(a, req))} if {
	count(approvers(a, req)) < req.minApprovers
}

status_code(a, req) := "approval-revoked" if {
	some x in for_environment(a, req)
	x.status == "revoked"
} else := "approval-expired" if {
	some x in for_environment(a, req)
	x.status == "expired"
} else := "approval-not-yet-valid"

violations contains v if {
	policy.requiresApprovals
	pair := approval_checks[_]
	req := pair[0].require.approval
	problem := approval_problem(pair[1], req)
	v := violation(pair[1], problem.code, rule_mode(pair[0]), object.union(problem, {
		"rule": pair[0].name, "name": pair[1].name, "digest": pair[1].evidence.digest, "signedBy": req.signedBy,
		"environment": approval_environment(req), "minApprovers": req.minApprovers, "namespace": input.request.namespace,
	}))
}

# -- evaluation requirements (verified evaluation attestations: the newest of each signer, newest first) --

evaluation_checks contains [rule, a] if {
	policy.requiresEvaluations
	not exempt
	some rule in policy.rules
	rule.require.evaluation != null
	some a in input.artifacts
	verifiable(a)
	rule_applies(rule, a)
}

trusted_evaluations(a, req) := [e | e := a.evidence.evaluations[_]; e.signer in req.signedBy]

evaluation_violation(pair, code, details) := violation(pair[1], code, rule_mode(pair[0]), object.union(
	{"rule": pair[0].name, "name": pair[1].name, "digest": pair[1].evidence.digest, "signedBy": pair[0].require.evaluation.signedBy},
	details,
))

# Statements of a type that did not reach the policy (malformed, dated in the future, too big),
# with the reason: a denial for a missing one cites them.
not_counted(a, type) := [r | some r in object.get(a.evidence, "attestationsRejected", []); r.type == type]

latest_facts(e) := {"evaluator": e.evaluator, "dataset": e.dataset, "evaluatedAt": e.evaluatedAt, "evaluationId": e.id}

violations contains v if {
	policy.requiresEvaluations
	pair := evaluation_checks[_]
	count(trusted_evaluations(pair[1], pair[0].require.evaluation)) == 0
	v := evaluation_violation(pair, "evaluation-missing", {
		"otherEvaluations": count(pair[1].evidence.evaluations),
		"notCounted": not_counted(pair[1], "https://modelsign.dev/attestation/evaluation/v1"),
	})
}

violations contains v if {
	policy.requiresEvaluations
	pair := evaluation_checks[_]
	req := pair[0].require.evaluation
	latest := trusted_evaluations(pair[1], req)[0]
	latest.ageSeconds > req.maxAgeSeconds
	v := evaluation_violation(pair, "evaluation-too-old", object.union(latest_facts(latest), {"ageSeconds": latest.ageSeconds, "maxAgeSeconds": req.maxAgeSeconds}))
}

violations contains v if {
	policy.requiresEvaluations
	pair := evaluation_checks[_]
	req := pair[0].require.evaluation
	req.dataset != null
	latest := trusted_evaluations(pair[1], req)[0]
	latest.dataset != req.dataset
	v := evaluation_violation(pair, "evaluation-wrong-dataset", object.union(latest_facts(latest), {"wantedDataset": req.dataset}))
}

violations contains v if {
	policy.requiresEvaluations
	pair := evaluation_checks[_]
	req := pair[0].require.evaluation
	latest := trusted_evaluations(pair[1], req)[0]
	req.metrics[metric]
	object.get(latest.metrics, metric, null) == null
	v := evaluation_violation(pair, "evaluation-metric-missing", object.union(latest_facts(latest), {"metric": metric}))
}

violations contains v if {
	policy.requiresEvaluations
	pair := evaluation_checks[_]
	req := pair[0].require.evaluation
	latest := trusted_evaluations(pair[1], req)[0]
	bound := req.metrics[metric]
	bound.min != null
	value := latest.metrics[metric]
	value < bound.min
	v := evaluation_violation(pair, "evaluation-below-min", object.union(latest_facts(latest), {"metric": metric, "actual": value, "min": bound.min}))
}

violations contains v if {
	policy.requiresEvaluations
	pair := evaluation_checks[_]
	req := pair[0].require.evaluation
	latest := trusted_evaluations(pair[1], req)[0]
	bound := req.metrics[metric]
	bound.max != null
	value := latest.metrics[metric]
	value > bound.max
	v := evaluation_violation(pair, "evaluation-above-max", object.union(latest_facts(latest), {"metric": metric, "actual": value, "max": bound.max}))
}

# -- attestation types rules name (their predicates are in evidence.attestations for rules of your own) --

attestation_checks contains [rule, a, wanted] if {
	policy.requiresAttestations
	not exempt
	some rule in policy.rules
	some wanted in rule.require.attestations
	some a in input.artifacts
	verifiable(a)
	rule_applies(rule, a)
}

violations contains v if {
	policy.requiresAttestations
	check := attestation_checks[_]
	wanted := check[2]
	count([x | x := check[1].evidence.attestations[_]; x.type == wanted.type; x.signer in wanted.signedBy]) == 0
	v := violation(check[1], "attestation-missing", rule_mode(check[0]), {
		"rule": check[0].name, "name": check[1].name, "digest": check[1].evidence.digest, "type": wanted.type, "signedBy": wanted.signedBy,
		"byOtherKeys": count([x | x := check[1].evidence.attestations[_]; x.type == wanted.type]),
		"notCounted": not_counted(check[1], wanted.type),
	})
}
