"""Signed checkpoints: (writer, seq, head hash, time, schedule, final) signed with the audit key.

A checkpoint is written into the chain as a record (type "checkpoint") and, as its own line,
to a checkpoint file kept apart from the chains, to stdout when streaming, and to the OCI
witness when one is configured: truncating a chain's tail or rewriting a whole file with
fresh hashes cannot match a checkpoint the attacker cannot re-sign. Line/record shape:
    {"checkpoint": {"final", "head", "schedule": {"milliseconds", "records"}, "seq", "time", "writer"},
     "keyId", "signature"}
`schedule` is the writer's promise, signed from its first checkpoint on: at most `records`
records between two checkpoints, and no record stamped more than `milliseconds` after the
last checkpoint (schedule.py checks it). `final` is true only on the checkpoint a writer
signs when it shuts down cleanly: nothing follows it. Checkpoints of older writers have
neither (read with a warning). The signature is ECDSA (the audit key, cosign format) over
C(checkpoint), base64.

A seal is a checkpoint another writer signs for a writer that was killed (writer.py): body
{"final": false, "head", "sealedBy", "seq", "time", "writer"}, no schedule (it is no promise
of the sealed writer's), written into the sealer's chain as a "tail-seal" record and, as a
line, wherever checkpoints go. Nothing of the sealed writer may follow its `seq`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from signer import PublicKey, SigningKey
from webhook.audit.canonical import canonical_json


@dataclass(frozen=True)
class Schedule:
    records: int  # at most this many records between two checkpoints
    milliseconds: int  # and a checkpoint before any record stamped later than this after the last one

    def to_json(self) -> dict[str, int]:
        return {"milliseconds": self.milliseconds, "records": self.records}


def _signed(key: SigningKey, body: dict[str, Any]) -> dict[str, Any]:
    return {"checkpoint": body, "keyId": key.public.key_id, "signature": base64.b64encode(key.sign(canonical_json(body))).decode()}


def signed_checkpoint(key: SigningKey, *, writer: str, seq: int, head: str, time: str, schedule: Schedule, final: bool) -> dict[str, Any]:
    return _signed(key, {"final": final, "head": head, "schedule": schedule.to_json(), "seq": seq, "time": time, "writer": writer})


def signed_seal(key: SigningKey, *, writer: str, seq: int, head: str, time: str, sealed_by: str) -> dict[str, Any]:
    """The head of a killed writer's chain, signed by the writer `sealed_by` that found it."""
    return _signed(key, {"final": False, "head": head, "sealedBy": sealed_by, "seq": seq, "time": time, "writer": writer})


@dataclass(frozen=True)
class Checkpoint:
    writer: str
    seq: int
    head: str
    time: str
    key_id: str
    signature_ok: bool
    where: str
    schedule: Schedule | None = None  # None: written by a writer that did not sign its schedule
    final: bool = False
    sealed_by: str | None = None  # a seal: signed by this other writer after `writer` was killed


def _schedule(value: Any) -> Schedule | None:
    if not isinstance(value, dict):
        return None
    records, milliseconds = value.get("records"), value.get("milliseconds")
    if type(records) is int and type(milliseconds) is int and records > 0 and milliseconds > 0:
        return Schedule(records=records, milliseconds=milliseconds)
    return None


def read_checkpoint(document: Any, keys: list[PublicKey], where: str) -> Checkpoint | None:
    """A checkpoint from its JSON form (None if it is not shaped like one); `signature_ok`
    says whether one of `keys` signed it."""
    if not isinstance(document, dict) or not isinstance(document.get("checkpoint"), dict):
        return None
    body = document["checkpoint"]
    writer, seq, head, time = body.get("writer"), body.get("seq"), body.get("head"), body.get("time")
    if not (isinstance(writer, str) and isinstance(seq, int) and isinstance(head, str) and isinstance(time, str)):
        return None
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
        data = canonical_json(body)
    except (binascii.Error, ValueError):
        signature, data = b"", b""
    ok = bool(signature) and any(key.verify(signature, data) for key in keys)
    return Checkpoint(writer=writer, seq=seq, head=head, time=time, key_id=str(document.get("keyId", "")), signature_ok=ok, where=where,
                      schedule=_schedule(body.get("schedule")), final=body.get("final") is True,
                      sealed_by=body["sealedBy"] if isinstance(body.get("sealedBy"), str) else None)
