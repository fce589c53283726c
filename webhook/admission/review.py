"""AdmissionReview I/O: strict parsing of what the API server sends, and the response.

admission.k8s.io/v1 and v1beta1 are accepted and answered in kind. A body that is not a
usable review (no JSON, no request, no uid) is a `ReviewError`, which the app answers with
HTTP 400; everything else gets an AdmissionReview response.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from signer import FormatError, load_json, mapping, printable, strings, text

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
MAX_BODY_BYTES = 4 * 1024 * 1024  # the API server's own request limit is 3 MiB
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class ReviewError(Exception):
    """The request body is not an AdmissionReview we can answer (HTTP 400)."""


@dataclass(frozen=True)
class UserInfo:
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdmissionRequest:
    api_version: str
    uid: str
    group: str
    version: str
    kind: str
    resource: str
    sub_resource: str
    name: str
    namespace: str
    operation: str
    user: UserInfo
    dry_run: bool
    object: dict[str, Any] | None = field(repr=False, default=None)
    old_object: dict[str, Any] | None = field(repr=False, default=None)

    def facts(self) -> dict[str, Any]:
        """The request part of the policy input (documented in README)."""
        return {
            "uid": self.uid,
            "kind": {"group": self.group, "version": self.version, "kind": self.kind},
            "resource": self.resource,
            "subResource": self.sub_resource,
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "dryRun": self.dry_run,
            "userInfo": {"username": self.user.username, "uid": self.user.uid, "groups": list(self.user.groups)},
        }




QUOTED_CHARACTERS = 200  # of an offending request value, in an error message (logged and audited)


def _quoted(value: Any) -> str:
    """repr() of a request value for a message, at most QUOTED_CHARACTERS of it: the message
    goes to the log and the audit trail, and the value may be megabytes of hostile text."""
    shown = repr(value[:QUOTED_CHARACTERS + 1] if isinstance(value, str) else value)
    if len(shown) <= QUOTED_CHARACTERS:
        return shown
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    return f"{shown[:QUOTED_CHARACTERS]}... ({size})"


def parse_review(body: bytes) -> AdmissionRequest:
    if len(body) > MAX_BODY_BYTES:
        raise ReviewError(f"request body is {len(body)} bytes, more than the {MAX_BODY_BYTES} accepted")
    try:
        review = load_json(body, what="request body")
    except FormatError as exc:
        raise ReviewError(exc.message) from None
    if not isinstance(review, dict):
        raise ReviewError("request body is not an AdmissionReview object")
    api_version = review.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ReviewError(f"apiVersion {_quoted(api_version)} is not one of {', '.join(API_VERSIONS)}")
    if review.get("kind") != "AdmissionReview":
        raise ReviewError(f"kind {_quoted(review.get('kind'))} is not AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("AdmissionReview request has no uid")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise ReviewError(f"AdmissionReview request operation {_quoted(operation)} is not one of {', '.join(OPERATIONS)}")
    return _request(api_version, uid, request)


def _request(api_version: str, uid: str, request: dict[str, Any]) -> AdmissionRequest:
    kind, resource, user = mapping(request.get("kind")), mapping(request.get("resource")), mapping(request.get("userInfo"))
    obj = request.get("object")
    old = request.get("oldObject")
    groups = strings(user.get("groups"))
    return AdmissionRequest(
        api_version=api_version,
        uid=uid,
        group=text(kind.get("group")),
        version=text(kind.get("version")),
        kind=text(kind.get("kind")) or text(mapping(obj).get("kind")),
        resource=text(resource.get("resource")),
        sub_resource=text(request.get("subResource")),
        name=text(request.get("name")) or _object_name(obj),
        # Only the API server's namespace counts: an object cannot claim an exempt namespace.
        namespace=text(request.get("namespace")),
        operation=text(request.get("operation")),
        user=UserInfo(username=text(user.get("username")), uid=text(user.get("uid")), groups=tuple(groups)),
        dry_run=request.get("dryRun") is True,
        object=obj if isinstance(obj, dict) else None,
        old_object=old if isinstance(old, dict) else None,
    )


def _object_name(obj: Any) -> str:
    metadata = mapping(mapping(obj).get("metadata"))
    return text(metadata.get("name")) or text(metadata.get("generateName"))



def review_response(
    request_api_version: str,
    uid: str,
    *,
    allowed: bool,
    message: str | None = None,
    warnings: list[str] | None = None,
    audit_annotations: dict[str, str] | None = None,
    patch: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    # Messages quote registry and request text: shown printable, so that no string can break
    # the response's encoding (a lone surrogate) or hide what it says (controls, bidi marks).
    message = printable(message) if message else message
    warnings = [printable(w) for w in warnings] if warnings else warnings
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if patch:  # a mutating webhook's answer: a base64 JSONPatch
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    if not allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": message or "denied by modelsign"}
    elif message:
        response["status"] = {"code": 200, "message": message}
    if warnings:
        # The API server limits each warning to 256 characters (longer ones are truncated).
        response["warnings"] = [w if len(w) <= 256 else w[:253] + "..." for w in warnings[:20]]
    if audit_annotations:
        response["auditAnnotations"] = audit_annotations
    return {"apiVersion": request_api_version, "kind": "AdmissionReview", "response": response}
