"""Render policy violations as messages that say what failed and how to fix it.

The Rego policy returns structured violations (a code and its facts); the wording lives
here, in one place. A violation that carries its own `message` (a user's rule) is shown
as written.
"""

from __future__ import annotations

from typing import Any


def _pinned(v: dict[str, Any]) -> str:
    return f"{v.get('name')}@{v.get('digest')}" if v.get("digest") else str(v.get("value"))


def _keys(v: dict[str, Any]) -> str:
    keys = [str(k) for k in v.get("signedBy") or []]
    return (f"key {keys[0]}" if len(keys) == 1 else "any of keys " + ", ".join(keys)) if keys else "a trusted key"


def _key_file(v: dict[str, Any]) -> str:
    keys = [str(k) for k in v.get("signedBy") or []]
    return f"{keys[0]}.key" if keys else "KEY"


def _not_signed(v: dict[str, Any]) -> str:
    annotations = v.get("annotations") or {}
    wanted = _keys(v)
    if annotations:
        wanted += " with " + ", ".join(f"{k}={val}" for k, val in sorted(annotations.items()))
    rejected = v.get("rejected") or []
    total = v.get("rejectedCount") if isinstance(v.get("rejectedCount"), int) else len(rejected)
    signed_as = sorted({str(n) for n in v.get("signedAs") or []})
    why = ""
    if v.get("requireSignedReference") and v.get("unmatchedSignatures"):
        named = f"name {', '.join(signed_as)}" if signed_as else "name no repository (a cosign v3 bundle binds the digest only)"
        return (
            f"the signature(s) by {wanted} on {_pinned(v)} ({v.get('source')}, rule {v.get('rule')}) {named}, "
            f"not {v.get('name')}, and requireSignedReference is on; deploy it by its signed name, list {v.get('name')} as a mirror "
            f"under imageMirrors, or sign it for this name with `modelsign sign {_pinned(v)} --key {_key_file(v)}` (legacy format)"
        )
    if v.get("namelessIgnored") and not v.get("requireSignedReference"):
        return (
            f"the signature(s) by {wanted} on {_pinned(v)} ({v.get('source')}, rule {v.get('rule')}) name no repository "
            f"(a cosign v3 bundle binds the digest only), and namelessSignatures is ignore: a name-less signature copied "
            f"to another repository would shed the rules of the one it was signed for; sign it with "
            f"`modelsign sign {_pinned(v)} --key {_key_file(v)}` (its signatures name the repository) or set namelessSignatures: count"
        )
    if rejected:
        shown = "; ".join(f"{r.get('location')}: {r.get('reason')}" for r in rejected[:3] if isinstance(r, dict))
        more = f" (+{total - 3} more)" if total > 3 else ""
        why = f" [{total} signature(s) rejected: {shown}{more}]"
    else:
        why = " [no signatures found]"
    flags = "".join(f" -a {k}={val}" for k, val in sorted(annotations.items()))
    return (
        f"no signature by {wanted} for {_pinned(v)} ({v.get('source')}, rule {v.get('rule')}){why}; "
        f"sign it with `modelsign sign {_pinned(v)} --key {_key_file(v)}{flags}`"
    )


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{int(seconds)}s"


def _rescan(v: dict[str, Any]) -> str:
    return f"`modelsign scan {_pinned(v)} --key {_key_file(v)}`"


def _scan_over_threshold(v: dict[str, Any]) -> str:
    ids = [str(i) for i in v.get("ids") or []]
    shown = f" ({', '.join(ids)})" if ids else ""
    fixable = "fixable " if v.get("unfixedIgnored") else ""
    return (
        f"{_pinned(v)} ({v.get('source')}) has {v.get('count')} {fixable}{v.get('severity')} vulnerability findings{shown}, "
        f"rule {v.get('rule')} allows {v.get('max')}; fix them and rebuild, then rescan with {_rescan(v)}"
    )


def _approve(v: dict[str, Any], environment: Any = None) -> str:
    return (
        f"`modelsign approve {_pinned(v)} --key {_key_file(v)} --environment {environment or v.get('environment') or 'ENV'}"
        f" --namespace '{v.get('namespace') or '*'}' --ticket CHG-... --expires 30d`"
    )


def _approval_status(v: dict[str, Any]) -> str:
    code = str(v.get("code"))
    subject = f"the approval of {_pinned(v)} ({v.get('source')}) for environment {v.get('environment')} by {_keys(v)}"
    if code == "approval-not-yet-valid":
        starts = sorted(str(t) for t in v.get("validFrom") or [])
        return f"{subject} is not valid yet (from {starts[0] if starts else '?'}); deploy after that, or ask for one valid now: {_approve(v)}"
    what = "revoked" if code == "approval-revoked" else "expired"
    return f"{subject} is {what}; ask an approver for a new one: {_approve(v)}"


def _request_again(v: dict[str, Any]) -> str:
    return (f"`modelsign approval request {_pinned(v)} --key REQUESTER.key --environment {v.get('environment') or 'ENV'} "
            f"--approver APPROVER --ticket CHG-...`")


def _approval_rejected(v: dict[str, Any]) -> str:
    rejections = sorted((r for r in v.get("rejections") or [] if isinstance(r, dict)), key=lambda r: str(r.get("at")), reverse=True)
    latest = rejections[0] if rejections else {}
    request = f" (request {str(latest.get('requestId'))[:19]})" if latest.get("requestId") else ""
    more = f" [{len(rejections) - 1} earlier rejection(s)]" if len(rejections) > 1 else ""
    return (
        f"{_pinned(v)} ({v.get('source')}) was rejected for environment {v.get('environment')} by {latest.get('by') or '?'} "
        f"(key {latest.get('signer')}) at {latest.get('at')}{request}: {latest.get('reason') or 'no reason given'}{more}; "
        f"a rejection stands until a later approval: address it, then ask again with {_request_again(v)}"
    )


def _not_counted(v: dict[str, Any]) -> str:
    """` [N statement(s) not counted: where: why; ...]` for a denial whose evidence was refused."""
    items = [r for r in v.get("notCounted") or [] if isinstance(r, dict)]
    if not items:
        return ""
    shown = "; ".join(f"{r.get('location')}: {r.get('reason')}" for r in items[:3])
    return f" [{len(items)} statement(s) not counted: {shown}{'; ...' if len(items) > 3 else ''}]"


def _evaluate(v: dict[str, Any]) -> str:
    return f"`modelsign evaluate {_pinned(v)} --key {_key_file(v)} --metrics metrics.json --dataset DATASET`"


def _evaluated(v: dict[str, Any]) -> str:
    return f"the newest evaluation of {_pinned(v)} ({v.get('source')}) by {_keys(v)} (on {v.get('dataset')}, {v.get('evaluatedAt')})"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _metric_bound(v: dict[str, Any]) -> str:
    below = v.get("code") == "evaluation-below-min"
    limit = f"at least {_number(v.get('min'))}" if below else f"at most {_number(v.get('max'))}"
    return (
        f"{_evaluated(v)} has {v.get('metric')} {_number(v.get('actual'))}; rule {v.get('rule')} requires {limit}; "
        f"improve the model (or the evaluation) and attach a new evaluation with {_evaluate(v)}"
    )


_RENDERERS = {
    "invalid-reference": lambda v: f"{v.get('problem')}; fix the image or storage URI",
    "registry-not-allowed": lambda v: (
        f"{v.get('value')} ({v.get('source')}) is from registry {v.get('registry')}, which is not in allowedRegistries; "
        f"push it to an allowed registry or add {v.get('registry')} to allowedRegistries"
    ),
    "verification-error": lambda v: f"cannot verify {v.get('value')} ({v.get('source')}): {v.get('error')}",
    "tag-not-pinned": lambda v: f"{v.get('value')} ({v.get('source')}) is referenced by tag; pin it by digest: {_pinned(v)}",
    "unverifiable-uri": lambda v: (
        f"{v.get('value')} ({v.get('source')}) cannot be verified by modelsign (scheme {v.get('scheme')!r}); "
        "store the model as a signed OCI artifact (kit:// or oci://) or allow the URI under storageUris.allow"
    ),
    "not-signed": _not_signed,
    "no-rule": lambda v: (
        f"{v.get('value')} ({v.get('source')}) is not covered by any rule that requires a signature "
        f"(artifact {v.get('name')}, namespace {v.get('namespace') or '(cluster-scoped)'}); add a rule whose artifacts and namespaces globs match it"
    ),
    "scan-missing": lambda v: (
        f"no scan attestation by {_keys(v)} for {_pinned(v)} ({v.get('source')}, rule {v.get('rule')})"
        + (f" [{v.get('otherScans')} scan(s) by other keys ignored]" if v.get("otherScans") else "")
        + f"; scan it with {_rescan(v)}"
    ),
    "scan-too-old": lambda v: (
        f"the newest scan of {_pinned(v)} ({v.get('source')}) by {_keys(v)} is {_duration(v.get('ageSeconds'))} old, "
        f"rule {v.get('rule')} accepts at most {_duration(v.get('maxAgeSeconds'))}; rescan it with {_rescan(v)}"
    ),
    "scan-over-threshold": _scan_over_threshold,
    "scan-no-model-files": lambda v: (
        f"the scan of {_pinned(v)} ({v.get('source')}) did not examine its model files (an image scan or --from-report), "
        f"and rule {v.get('rule')} requires unsafe model files to be ruled out; rescan with {_rescan(v)} "
        "(ModelKits get the model-file check; add --model-files for a modelcar image)"
    ),
    "unsafe-model-files": lambda v: (
        f"{_pinned(v)} ({v.get('source')}) contains {v.get('count')} unsafe model file(s) "
        f"[{'; '.join(str(f) for f in v.get('files') or []) or 'see the scan'}]: files that can run code when loaded, or are not what they claim to be; "
        "convert the weights to safetensors (or another data-only format) and repackage"
    ),
    "scan-secrets": lambda v: (
        f"the scan of {_pinned(v)} ({v.get('source')}) found {v.get('count')} secret(s), rule {v.get('rule')} allows {v.get('max')}; "
        f"remove them from the package, rotate them, and rescan with {_rescan(v)} (`modelsign verify-attestation {_pinned(v)} --type vuln --key KEY.pub --output json` shows where)"
    ),
    "approval-no-environment": lambda v: (
        f"rule {v.get('rule')} requires an approval for {_pinned(v)} ({v.get('source')}) but namespace "
        f"{v.get('namespace')} maps to no environment; set approval.environment in the rule or map the namespace under environments"
    ),
    "approval-missing": lambda v: (
        f"no approval by {_keys(v)} for {_pinned(v)} ({v.get('source')}) in environment {v.get('environment')}"
        + (f" [{v.get('byOtherKeys')} approval(s) by other keys ignored]" if v.get("byOtherKeys") else "")
        + f"; ask an approver: {_approve(v)}"
    ),
    "approval-wrong-environment": lambda v: (
        f"{_pinned(v)} ({v.get('source')}) is approved by {_keys(v)} for {', '.join(sorted(str(e) for e in v.get('environments') or []))} "
        f"but not for environment {v.get('environment')}; ask an approver: {_approve(v)}"
    ),
    "approval-revoked": _approval_status,
    "approval-expired": _approval_status,
    "approval-not-yet-valid": _approval_status,
    "approval-namespace": lambda v: (
        f"the approvals of {_pinned(v)} ({v.get('source')}) for environment {v.get('environment')} cover namespaces "
        f"{', '.join(sorted(str(n) for n in v.get('namespaces') or []))}, not {v.get('namespace')}; ask for an approval with "
        f"--namespace {v.get('namespace')}: {_approve(v)}"
    ),
    "approval-rejected": _approval_rejected,
    "evaluation-missing": lambda v: (
        f"no evaluation attestation by {_keys(v)} for {_pinned(v)} ({v.get('source')}, rule {v.get('rule')})"
        + (f" [{v.get('otherEvaluations')} evaluation(s) by other keys ignored]" if v.get("otherEvaluations") else "")
        + _not_counted(v) + f"; evaluate it with {_evaluate(v)}"
    ),
    "evaluation-too-old": lambda v: (
        f"{_evaluated(v)} is {_duration(v.get('ageSeconds'))} old, rule {v.get('rule')} accepts at most "
        f"{_duration(v.get('maxAgeSeconds'))}; evaluate it again with {_evaluate(v)}"
    ),
    "evaluation-wrong-dataset": lambda v: (
        f"{_evaluated(v)} is not on dataset {v.get('wantedDataset')}, which rule {v.get('rule')} requires; "
        f"evaluate it on {v.get('wantedDataset')} with {_evaluate(v)}"
    ),
    "evaluation-metric-missing": lambda v: (
        f"{_evaluated(v)} has no metric {v.get('metric')}, which rule {v.get('rule')} bounds; add it to the metrics file and "
        f"evaluate again with {_evaluate(v)}"
    ),
    "evaluation-below-min": _metric_bound,
    "evaluation-above-max": _metric_bound,
    "attestation-missing": lambda v: (
        f"no {v.get('type')} attestation by {_keys(v)} for {_pinned(v)} ({v.get('source')}, rule {v.get('rule')})"
        + (f" [{v.get('byOtherKeys')} by other keys ignored]" if v.get("byOtherKeys") else "")
        + _not_counted(v) + f"; attach one with `modelsign attest {_pinned(v)} --key {_key_file(v)} --predicate-type {v.get('type')} --predicate PREDICATE.json`"
    ),
    "approval-insufficient": lambda v: (
        f"{_pinned(v)} ({v.get('source')}) has {v.get('approvers')} distinct approver(s) for environment {v.get('environment')} "
        f"(the requester never counts), rule {v.get('rule')} needs {v.get('minApprovers')}; ask another approver: {_approve(v)}"
    ),
}


def render(violation: dict[str, Any]) -> str:
    if isinstance(violation.get("message"), str) and violation["message"]:
        return violation["message"]
    renderer = _RENDERERS.get(str(violation.get("code")))
    if renderer is None:
        return f"{violation.get('value', '?')} ({violation.get('source', '?')}): policy violation {violation.get('code')!r}"
    return renderer(violation)
