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

rule_applies(rule, artifact) if {
	some pattern in rule.artifacts
	glob.match(pattern, ["/"], artifact.name)
	some namespace in rule.namespaces
	glob.match(namespace, [], input.request.namespace)
}

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
		"rejected": a.evidence.rejected,
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
}

annotation_mismatch(signature, wanted) if {
	value := wanted[key]
	object.get(signature.annotations, key, null) != value
}
