"""Signed checkpoints: (writer, seq, head hash, time) signed with the audit key.

A checkpoint is written into the chain as a record (type "checkpoint") and, as its own line,
to a checkpoint file kept apart from the chains (and to stdout when streaming): truncating
a chain's tail or rewriting a whole file with fresh hashes cannot match a checkpoint the
attacker cannot re-sign. Line/record shape:
    {"checkpoint": {"head", "seq", "time", "writer"}, "keyId", "signature"}
The signature is ECDSA (the audit key, cosign format) over C(checkpoint), base64.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from signer.keys import PublicKey, SigningKey
from webhook.audit.canonical import canonical_json


def signed_checkpoint(key: SigningKey, *, writer: str, seq: int, head: str, time: str) -> dict[str, Any]:
    body = {"head": head, "seq": seq, "time": time, "writer": writer}
    return {"checkpoint": body, "keyId": key.public.key_id, "signature": base64.b64encode(key.sign(canonical_json(body))).decode()}


@dataclass(frozen=True)
class Checkpoint:
    writer: str
    seq: int
    head: str
    time: str
    key_id: str
    signature_ok: bool
    where: str


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
    return Checkpoint(writer=writer, seq=seq, head=head, time=time, key_id=str(document.get("keyId", "")), signature_ok=ok, where=where)
