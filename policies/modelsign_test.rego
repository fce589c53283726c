# Unit tests of the default policy, for `opa test policies/` (run by tests/test_opa_peer.py
# against the real OPA built by .ci/peers). The webhook never loads *_test.rego files.
#
# The config below has the shape of `data.modelsign.config` (webhook/admission/config.py data_document).

package modelsign_test

import rego.v1

import data.modelsign

config := {
	"name": "test", "hash": "sha256:0", "mode": "enforce",
	"exemptNamespaces": ["kube-system"],
	"allowedRegistries": ["registry.example.com"],
	"requireDigest": false, "requireSignedReference": false, "namelessSignatures": "count",
	"storageUris": {"allow": ["pvc://approved/**"]},
	"requiresScans": false, "requiresApprovals": true,
	"rules": [
		{"name": "signed", "artifacts": ["**"], "namespaces": ["*"], "mode": null,
		 "require": {"signedBy": ["ml-team"], "annotations": {}, "scan": null, "approval": null}},
		{"name": "models-approved", "artifacts": ["registry.example.com/models/**"], "namespaces": ["prod-*"], "mode": null,
		 "require": {"signedBy": [], "annotations": {}, "scan": null,
		             "approval": {"signedBy": ["approver"], "environment": "prod", "minApprovers": 1}}},
	],
}

request(namespace) := {"uid": "u", "namespace": namespace, "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"}}

signature := {"signer": "ml-team", "keyId": "k", "form": "legacy", "annotations": {}, "names": ["registry.example.com/apps/app"],
	"nameMatches": true}

oci(name, signatures) := {
	"source": "spec.containers[0].image", "value": concat("", [name, ":1"]), "role": "image", "kind": "oci",
	"problem": null, "scheme": "", "name": name, "registry": "registry.example.com", "tag": "1", "pinnedByDigest": false,
	"signedNames": [],
	"evidence": {"registryAllowed": true, "digest": "sha256:1", "error": null, "signatures": signatures,
		"rejected": [], "rejectedCount": 0, "scans": [], "approvals": []},
}

codes(namespace, artifacts) := {v.code | some v in decision.violations} if {
	decision := modelsign.decision with input as {"request": request(namespace), "artifacts": artifacts}
		with data.modelsign.config as config
}

test_a_signed_image_passes if {
	codes("ml", [oci("registry.example.com/apps/app", [signature])]) == set()
}

test_an_unsigned_image_is_not_signed if {
	codes("ml", [oci("registry.example.com/apps/app", [])]) == {"not-signed"}
}

test_a_disallowed_registry_is_named if {
	artifact := object.union(oci("evil.example.com/apps/app", []), {"registry": "evil.example.com", "evidence": {"registryAllowed": false}})
	codes("ml", [artifact]) == {"registry-not-allowed"}
}

test_a_verification_error_is_named if {
	artifact := object.union(oci("registry.example.com/apps/app", []), {"evidence": {"error": "registry down"}})
	codes("ml", [artifact]) == {"verification-error"}
}

test_exempt_namespaces_decide_nothing if {
	decision := modelsign.decision with input as {"request": request("kube-system"), "artifacts": [oci("registry.example.com/apps/app", [])]}
		with data.modelsign.config as config
	decision.exempt
	decision.violations == []
}

test_unverifiable_uris_unless_allowed if {
	uri := {"source": "spec.predictor.model.storageUri", "value": "gs://bucket/model", "role": "model", "kind": "uri", "scheme": "gs",
		"problem": null, "name": null, "evidence": null}
	codes("ml", [uri]) == {"unverifiable-uri"}
	allowed := object.union(uri, {"value": "pvc://approved/model", "scheme": "pvc"})
	codes("ml", [allowed]) == set()
}

test_invalid_references_are_named if {
	invalid := {"source": "spec.containers[0].image", "value": "?", "role": "image", "kind": "invalid", "scheme": "",
		"problem": "bad", "name": null, "evidence": null}
	codes("ml", [invalid]) == {"invalid-reference"}
}

test_rules_apply_by_every_signed_name if {
	# signed as models/llm, pulled from scratch: the models rule (an approval in prod) still applies
	copy := object.union(oci("registry.example.com/scratch/llm", [signature]), {"signedNames": ["registry.example.com/models/llm"]})
	codes("prod-1", [copy]) == {"approval-missing"}
	codes("prod-1", [oci("registry.example.com/scratch/llm", [signature])]) == set()
}

test_require_signed_reference_counts_only_matching_names if {
	unmatched := object.union(signature, {"nameMatches": false})
	strict := object.union(config, {"requireSignedReference": true})
	decision := modelsign.decision with input as {"request": request("ml"), "artifacts": [oci("registry.example.com/apps/app", [unmatched])]}
		with data.modelsign.config as strict
	{v.code | some v in decision.violations} == {"not-signed"}
}

test_nameless_signatures_count_unless_ignored if {
	nameless := object.union(signature, {"form": "bundle", "names": [], "nameMatches": false})
	codes("ml", [oci("registry.example.com/apps/app", [nameless])]) == set()
	ignoring := object.union(config, {"namelessSignatures": "ignore"})
	decision := modelsign.decision with input as {"request": request("ml"), "artifacts": [oci("registry.example.com/apps/app", [nameless])]}
		with data.modelsign.config as ignoring
	[v] := [v | some v in decision.violations]
	v.code == "not-signed"
	v.namelessIgnored == 1
	named := modelsign.decision with input as {"request": request("ml"), "artifacts": [oci("registry.example.com/apps/app", [signature])]}
		with data.modelsign.config as ignoring
	named.violations == []
}

test_warn_mode_rules_do_not_enforce if {
	warned := object.union(config, {"mode": "warn"})
	decision := modelsign.decision with input as {"request": request("ml"), "artifacts": [oci("registry.example.com/apps/app", [])]}
		with data.modelsign.config as warned
	[v.enforce | some v in decision.violations] == [false]
}

# -- evaluations, rejections and named attestation types ------------------------------------

governed := object.union(config, {
	"requiresEvaluations": true, "requiresAttestations": true,
	"rules": [
		{"name": "signed", "artifacts": ["**"], "namespaces": ["*"], "mode": null,
		 "require": {"signedBy": ["ml-team"], "annotations": {}, "scan": null, "approval": null, "evaluation": null, "attestations": []}},
		{"name": "evaluated", "artifacts": ["**"], "namespaces": ["*"], "mode": null,
		 "require": {"signedBy": [], "annotations": {}, "scan": null, "approval": null, "attestations": [],
		             "evaluation": {"signedBy": ["eval-ci"], "maxAge": "30d", "maxAgeSeconds": 2592000, "dataset": null, "metrics": {
		             	"accuracy": {"min": 0.9, "max": null}, "latency_p95_ms": {"min": null, "max": 150},
		             	"demographic_parity": {"min": 0.8, "max": null}}}}},
	],
})

evaluation(metrics) := {"id": "sha256:e", "signer": "eval-ci", "keyId": "e", "evaluator": "eval-ci", "evaluatedAt": "2026-11-01T00:00:00Z",
	"ageSeconds": 3600, "dataset": "holdout", "datasetDigest": null, "metrics": metrics, "metricCount": count(metrics)}

good_metrics := {"accuracy": 0.93, "latency_p95_ms": 120, "demographic_parity": 0.86}

evaluated(evaluations, rejected) := object.union(oci("registry.example.com/apps/app", [signature]),
	{"evidence": {"evaluations": evaluations, "attestations": [], "attestationsRejected": rejected}})

governed_violations(artifact) := decision.violations if {
	decision := modelsign.decision with input as {"request": request("ml"), "artifacts": [artifact]}
		with data.modelsign.config as governed
}

test_an_evaluation_within_every_bound_passes if {
	governed_violations(evaluated([evaluation(good_metrics)], [])) == []
}

test_a_metric_below_its_minimum_names_metric_value_and_threshold if {
	[v] := governed_violations(evaluated([evaluation(object.union(good_metrics, {"demographic_parity": 0.72}))], []))
	v.code == "evaluation-below-min"
	[v.metric, v.actual, v.min] == ["demographic_parity", 0.72, 0.8]
	v.value == "registry.example.com/apps/app:1" # the artifact, as every violation names it
}

test_a_metric_above_its_maximum_names_metric_value_and_threshold if {
	[v] := governed_violations(evaluated([evaluation(object.union(good_metrics, {"latency_p95_ms": 180}))], []))
	[v.code, v.metric, v.actual, v.max] == ["evaluation-above-max", "latency_p95_ms", 180, 150]
}

test_a_bounded_metric_the_evaluation_lacks_is_named if {
	[v] := governed_violations(evaluated([evaluation({"accuracy": 0.95, "latency_p95_ms": 100})], []))
	[v.code, v.metric] == ["evaluation-metric-missing", "demographic_parity"]
}

test_an_old_evaluation_is_too_old if {
	old := object.union(evaluation(good_metrics), {"ageSeconds": 2592001})
	{v.code | some v in governed_violations(evaluated([old], []))} == {"evaluation-too-old"}
}

test_evaluations_by_other_keys_do_not_count_and_refused_ones_are_cited if {
	other := object.union(evaluation(good_metrics), {"signer": "ml-team"})
	refused := {"type": "https://modelsign.dev/attestation/evaluation/v1", "location": "x.att", "reason": "malformed"}
	[v] := governed_violations(evaluated([other], [refused]))
	[v.code, v.otherEvaluations, v.notCounted] == ["evaluation-missing", 1, [refused]]
}

approval_statement(decision, at, status) := {"id": at, "signer": "approver", "keyId": "a", "identity": "", "decision": decision,
	"environment": "prod", "namespaces": ["prod-*"], "approver": "alice", "requester": "bob", "ticket": "CHG-1", "status": status,
	"requestId": "", "reason": "parity too low", "approvedAt": at, "notBefore": at, "expiresAt": null, "expiresInSeconds": null,
	"approverId": "a"}

approved_model(statements) := object.union(oci("registry.example.com/models/llm", [signature]), {"evidence": {"approvals": statements}})

test_a_rejection_denies_until_a_later_approval if {
	rejection := approval_statement("rejected", "2026-11-02T00:00:00Z", "rejection")
	superseded := approval_statement("approved", "2026-11-01T00:00:00Z", "rejected")
	codes("prod-1", [approved_model([superseded, rejection])]) == {"approval-rejected"}
	later := approval_statement("approved", "2026-11-03T00:00:00Z", "active")
	codes("prod-1", [approved_model([superseded, rejection, later])]) == set()
}

test_a_named_attestation_type_must_be_there_and_reaches_the_input if {
	card := "https://example.com/model-card/v1"
	wants_card := object.union(governed, {"requiresEvaluations": false, "rules": [object.union(governed.rules[0], {"require": object.union(
		governed.rules[0].require, {"attestations": [{"type": card, "signedBy": ["ml-team"]}]})})]})
	without := object.union(oci("registry.example.com/apps/app", [signature]), {"evidence": {"attestations": [], "attestationsRejected": []}})
	decision := modelsign.decision with input as {"request": request("ml"), "artifacts": [without]} with data.modelsign.config as wants_card
	[v.code | some v in decision.violations] == ["attestation-missing"]
	with_card := object.union(without, {"evidence": {"attestations": [{"type": card, "id": "sha256:c", "signer": "ml-team", "keyId": "k",
		"predicate": {"license": "apache-2.0"}}]}})
	passed := modelsign.decision with input as {"request": request("ml"), "artifacts": [with_card]} with data.modelsign.config as wants_card
	passed.violations == []
}

test_a_key_that_approved_as_the_requester_never_counts if {
	two := object.union(config, {"rules": [
		{"name": "signed", "artifacts": ["**"], "namespaces": ["*"], "mode": null,
		 "require": {"signedBy": ["ml-team"], "annotations": {}, "scan": null, "approval": null}},
		{"name": "models-approved", "artifacts": ["registry.example.com/models/**"], "namespaces": ["prod-*"], "mode": null,
		 "require": {"signedBy": [], "annotations": {}, "scan": null,
		             "approval": {"signedBy": ["approver", "bob"], "environment": "prod", "minApprovers": 2}}},
	]})
	base := {"decision": "approved", "environment": "prod", "namespaces": ["*"], "status": "active", "identity": "", "ticket": "T"}
	carol := object.union(base, {"id": "1", "signer": "approver", "approverId": "k-carol", "approver": "carol", "requester": "bob.smith"})
	bob_as_himself := object.union(base, {"id": "2", "signer": "bob", "approverId": "k-bob", "approver": "bob.smith", "requester": "bob.smith"})
	bob_renamed := object.union(base, {"id": "3", "signer": "bob", "approverId": "k-bob", "approver": "b.s", "requester": ""})
	model := object.union(oci("registry.example.com/models/llm", [object.union(signature, {"names": ["registry.example.com/models/llm"]})]),
		{"evidence": {"approvals": [carol, bob_as_himself, bob_renamed]}})
	decision := modelsign.decision with input as {"request": object.union(request("prod-1"), {"environment": "prod"}), "artifacts": [model]}
		with data.modelsign.config as two
	{v.code | some v in decision.violations} == {"approval-insufficient"}
	honest := object.union(model, {"evidence": {"approvals": [carol, object.union(bob_renamed, {"approver": "dave", "approverId": "k-dave", "signer": "bob"})]}})
	fine := modelsign.decision with input as {"request": object.union(request("prod-1"), {"environment": "prod"}), "artifacts": [honest]}
		with data.modelsign.config as two
	fine.violations == []
}

test_a_key_that_signed_the_request_never_counts_as_an_approver if {
	two := object.union(config, {"rules": [
		{"name": "signed", "artifacts": ["**"], "namespaces": ["*"], "mode": null,
		 "require": {"signedBy": ["ml-team"], "annotations": {}, "scan": null, "approval": null}},
		{"name": "models-approved", "artifacts": ["registry.example.com/models/**"], "namespaces": ["prod-*"], "mode": null,
		 "require": {"signedBy": [], "annotations": {}, "scan": null,
		             "approval": {"signedBy": ["approver", "bob"], "environment": "prod", "minApprovers": 2}}},
	]})
	base := {"decision": "approved", "environment": "prod", "namespaces": ["*"], "status": "active", "identity": "", "ticket": "T", "requester": ""}
	carol := object.union(base, {"id": "1", "signer": "approver", "approverId": "k-carol", "approver": "carol"})
	bob := object.union(base, {"id": "2", "signer": "bob", "approverId": "k-bob", "approver": "b.s"})
	evidence := {"approvals": [carol, bob], "approvalRequesters": [{"id": "k-bob", "environment": "prod"}]}
	model := object.union(oci("registry.example.com/models/llm", [object.union(signature, {"names": ["registry.example.com/models/llm"]})]),
		{"evidence": evidence})
	decision := modelsign.decision with input as {"request": object.union(request("prod-1"), {"environment": "prod"}), "artifacts": [model]}
		with data.modelsign.config as two
	{v.code | some v in decision.violations} == {"approval-insufficient"}
	elsewhere := object.union(model, {"evidence": {"approvalRequesters": [{"id": "k-bob", "environment": "staging"}]}})
	fine := modelsign.decision with input as {"request": object.union(request("prod-1"), {"environment": "prod"}), "artifacts": [elsewhere]}
		with data.modelsign.config as two
	fine.violations == []
}
