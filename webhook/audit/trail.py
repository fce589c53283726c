"""The audit trail's front door: structlog processors in front of the durable writer.

`AuditTrail.decision(review, decision)` and `AuditTrail.event(type, **fields)` run the
record through structlog: the event name becomes `type`, then `schema` and `time` (UTC) are
added, the record is encoded in canonical form with secrets redacted (redaction.py), and the writer seals it
into the chain; its receipt (writer, seq, hash) comes back once the line is durable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, MutableMapping

import structlog

from webhook.admission.pipeline import Decision
from webhook.admission.review import AdmissionRequest
from webhook.audit.canonical import CanonicalError, canonical_json
from webhook.audit.chain import SCHEMA
from webhook.audit.records import decision_fields
from webhook.audit.redaction import may_need_redaction, redact
from webhook.audit.writer import AuditWriteError, AuditWriter, Receipt, utc_now


def _as_record(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    record = dict(event_dict)
    record["type"] = record.pop("event")
    record["schema"] = SCHEMA
    record.setdefault("time", utc_now())
    return record


# Redaction is linear (redaction.py), but a record of megabytes still takes milliseconds of
# Python: such records are redacted on this pool, so the event loop keeps answering meanwhile.
INLINE_REDACTION_BYTES = 64 * 1024
_REDACTION_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="modelsign-audit-redact")


def _redacted(fields: dict[str, Any]) -> bytes:
    try:
        return canonical_json(redact(fields))
    except CanonicalError as exc:
        raise AuditWriteError(f"the audit record could not be encoded: {exc}") from None


def _encode_redacted(_: Any, __: str, event_dict: MutableMapping[str, Any], *, keys_from_code: bool = False) -> dict[str, Any]:
    """Canonical JSON of the record and the decision id it carries (the writer names it if the
    record is ever superseded). If the encoding may hold a secret, the fields instead, for
    the sink to redact (off the event loop when large). `keys_from_code`: see
    `may_need_redaction` (records.decision_fields)."""
    try:
        encoded = canonical_json(event_dict)
    except CanonicalError as exc:
        raise AuditWriteError(f"the audit record could not be encoded: {exc}") from None
    decision = event_dict.get("decision")
    decision_id = decision.get("id") if isinstance(decision, dict) else None
    if len(encoded) > INLINE_REDACTION_BYTES or may_need_redaction(encoded, keys_from_code=keys_from_code):  # large: the walk decides, off the loop
        return {"record": None, "fields": dict(event_dict), "size": len(encoded), "decision_id": decision_id}
    return {"record": encoded, "decision_id": decision_id}


class _Sink:
    """structlog's "logger": redacts if need be and appends to the chain. The blocking sink
    returns the receipt; the async one returns a coroutine that resolves to it."""

    def __init__(self, writer: AuditWriter, *, asynchronous: bool) -> None:
        self.writer = writer
        self.asynchronous = asynchronous

    def msg(self, record: bytes | None, decision_id: str | None = None, fields: dict[str, Any] | None = None, size: int = 0) -> Any:
        if fields is None:  # nothing to redact: the common case, straight to the writer
            assert record is not None
            return self.writer.append_async(record, decision_id=decision_id) if self.asynchronous else self.writer.append(record, decision_id=decision_id)
        if self.asynchronous:
            return self._redact_then_append(fields, size, decision_id)
        return self.writer.append(_redacted(fields), decision_id=decision_id)

    async def _redact_then_append(self, fields: dict[str, Any], size: int, decision_id: str | None) -> Receipt:
        if size <= INLINE_REDACTION_BYTES:
            record = _redacted(fields)
        else:
            record = await asyncio.get_running_loop().run_in_executor(_REDACTION_POOL, _redacted, fields)
        return await self.writer.append_async(record, decision_id=decision_id)

    info = msg


class AuditTrail:
    def __init__(self, writer: AuditWriter) -> None:
        self.writer = writer
        processors = [_as_record, _encode_redacted]
        self._log = structlog.wrap_logger(_Sink(writer, asynchronous=False), processors=processors, wrapper_class=structlog.BoundLogger)
        self._async_sink = _Sink(writer, asynchronous=True)

    async def decision(self, review: AdmissionRequest, decision: Decision) -> Receipt:
        return await self._decision_record(decision_fields(review, decision))

    async def _decision_record(self, fields: dict[str, Any]) -> Receipt:
        """A decision record of the fields `records.decision_fields` makes: every key in them
        is written in that module's code (tests/test_audit_redaction.py checks it) and every
        value is text, a number, a flag or a list of text, so no key can be secret-named and
        only values are checked for secrets. Private: that holds for those fields only."""
        return await self._append_async("decision", fields, keys_from_code=True)

    async def event_async(self, record_type: str, **fields: Any) -> Receipt:
        """From the event loop: durable when it returns."""
        return await self._append_async(record_type, fields, keys_from_code=False)

    async def _append_async(self, record_type: str, fields: dict[str, Any], *, keys_from_code: bool) -> Receipt:
        # The two processors, called as structlog would call them (bound context: none) without
        # its per-call machinery: this is the per-decision path.
        fields["event"] = record_type
        encoded = _encode_redacted(None, "info", _as_record(None, "info", fields), keys_from_code=keys_from_code)
        receipt: Receipt = await self._async_sink.msg(**encoded)
        return receipt

    def event(self, record_type: str, **fields: Any) -> Receipt:
        """From a thread (startup, the policy watcher): durable when it returns."""
        receipt: Receipt = self._log.info(record_type, **fields)
        return receipt

    def close(self) -> None:
        self.writer.close()
