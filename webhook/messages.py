"""Render policy violations as messages that say what failed and how to fix it.

The Rego policy returns structured violations (a code and its facts); the wording lives
here, in one place. A violation that carries its own `message` (a user's rule) is shown
as written.
"""

from __future__ import annotations

from typing import Any


def _pinned(v: dict[str, Any]) -> str:
    return f"{v.get('name')}@{v.get('digest')}" if v.get("digest") else str(v.get("value"))


def _not_signed(v: dict[str, Any]) -> str:
    keys = [str(k) for k in v.get("signedBy") or []]
    annotations = v.get("annotations") or {}
    wanted = (f"key {keys[0]}" if len(keys) == 1 else "any of keys " + ", ".join(keys)) if keys else "a trusted key"
    if annotations:
        wanted += " with " + ", ".join(f"{k}={val}" for k, val in sorted(annotations.items()))
    rejected = v.get("rejected") or []
    why = ""
    if rejected:
        shown = "; ".join(f"{r.get('location')}: {r.get('reason')}" for r in rejected[:3] if isinstance(r, dict))
        more = f" (+{len(rejected) - 3} more)" if len(rejected) > 3 else ""
        why = f" [{len(rejected)} signature(s) rejected: {shown}{more}]"
    else:
        why = " [no signatures found]"
    flags = "".join(f" -a {k}={val}" for k, val in sorted(annotations.items()))
    key_file = f"{keys[0]}.key" if keys else "KEY"
    return (
        f"no signature by {wanted} for {_pinned(v)} ({v.get('source')}, rule {v.get('rule')}){why}; "
        f"sign it with `modelsign sign {_pinned(v)} --key {key_file}{flags}`"
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
}


def render(violation: dict[str, Any]) -> str:
    if isinstance(violation.get("message"), str) and violation["message"]:
        return violation["message"]
    renderer = _RENDERERS.get(str(violation.get("code")))
    if renderer is None:
        return f"{violation.get('value', '?')} ({violation.get('source', '?')}): policy violation {violation.get('code')!r}"
    return renderer(violation)
