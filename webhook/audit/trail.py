"""The audit trail's front door: structlog processors in front of the durable writer.

`AuditTrail.decision(review, decision)` and `AuditTrail.event(type, **fields)` run the
record through structlog: the event name becomes `type`, then `schema` and `time` (UTC) are
added, the record is encoded in canonical form with secrets redacted, and the writer seals it
into the chain; its receipt (writer, seq, hash) comes back once the line is durable.
"""

from __future__ import annotations

import re
from typing import Any, MutableMapping

import structlog

from webhook.audit.canonical import CanonicalError, canonical_json
from webhook.audit.chain import SCHEMA
from webhook.audit.records import decision_fields
from webhook.audit.writer import AuditWriteError, AuditWriter, Receipt, utc_now
from webhook.pipeline import Decision
from webhook.review import AdmissionRequest

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|authorization|credential|private[-_]?key|api[-_]?key", re.IGNORECASE)
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s:\"]+:[^/@\s\"]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"), REDACTED),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
]
_URL_PASSWORD = re.compile(r"://[^/@\s:\"]+:[^/@\s\"]+@")


def _may_hold_secrets(text: str) -> bool:
    """Cheap test over the encoded record: could any key or text need redacting? (A false
    alarm only costs the full pass.) Plain substring tests: each is one C scan."""
    lower = text.lower()
    return ("pass" in lower or "secret" in lower or "token" in lower or "authoriz" in lower or "credential" in lower
            or "private" in lower or "api_key" in lower or "api-key" in lower or "apikey" in lower or "bearer" in lower
            or "basic" in lower or "AKIA" in text or "ASIA" in text or "-----BEGIN" in text
            or ("@" in text and _URL_PASSWORD.search(text) is not None))


def redact(value: Any) -> Any:
    """Drop values under secret-looking keys; scrub tokens, URL passwords, private keys and
    AWS key ids out of text. Records never need them."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "", [], {}) else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        for pattern, replacement in _SECRET_TEXT:
            value = pattern.sub(replacement, value)
    return value


def _as_record(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    record = dict(event_dict)
    record["type"] = record.pop("event")
    record["schema"] = SCHEMA
    record.setdefault("time", utc_now())
    return record


def _encode_redacted(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Canonical JSON of the record, with secrets redacted (looked for in the encoding first)."""
    try:
        encoded = canonical_json(event_dict)
        if _may_hold_secrets(encoded.decode("utf-8")):
            encoded = canonical_json(redact(event_dict))
    except CanonicalError as exc:
        raise AuditWriteError(f"the audit record could not be encoded: {exc}") from None
    return {"record": encoded}


class _Sink:
    """structlog's "logger": appends to the chain. The blocking sink returns the receipt; the
    async one returns a coroutine that resolves to it."""

    def __init__(self, writer: AuditWriter, *, asynchronous: bool) -> None:
        self.writer = writer
        self.asynchronous = asynchronous

    def msg(self, record: bytes) -> Any:
        return self.writer.append_async(record) if self.asynchronous else self.writer.append(record)

    info = msg


class AuditTrail:
    def __init__(self, writer: AuditWriter) -> None:
        self.writer = writer
        processors = [_as_record, _encode_redacted]
        self._log = structlog.wrap_logger(_Sink(writer, asynchronous=False), processors=processors, wrapper_class=structlog.BoundLogger)
        self._async_log = structlog.wrap_logger(_Sink(writer, asynchronous=True), processors=processors, wrapper_class=structlog.BoundLogger)

    async def decision(self, review: AdmissionRequest, decision: Decision) -> Receipt:
        return await self.event_async("decision", **decision_fields(review, decision))

    async def event_async(self, record_type: str, **fields: Any) -> Receipt:
        """From the event loop: durable when it returns."""
        receipt: Receipt = await self._async_log.info(record_type, **fields)
        return receipt

    def event(self, record_type: str, **fields: Any) -> Receipt:
        """From a thread (startup, the policy watcher): durable when it returns."""
        receipt: Receipt = self._log.info(record_type, **fields)
        return receipt

    def close(self) -> None:
        self.writer.close()
