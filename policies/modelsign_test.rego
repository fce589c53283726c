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
	"requireDigest": false, "requireSignedReference": false,
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

test_warn_mode_rules_do_not_enforce if {
	warned := object.union(config, {"mode": "warn"})
	decision := modelsign.decision with input as {"request": request("ml"), "artifacts": [oci("registry.example.com/apps/app", [])]}
		with data.modelsign.config as warned
	[v.enforce | some v in decision.violations] == [false]
}
