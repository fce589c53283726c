"""in-toto v1 statements: the signed content of DSSE signatures and attestations."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from signer.errors import FormatError
from signer.formats import mediatypes as mt
from signer.formats.jsonenc import check_fields, load_signed_json


@dataclass(frozen=True)
class Subject:
    name: str
    digest: dict[str, str]
    annotations: dict[str, Any] = field(default_factory=dict)

    def matches(self, digest: str) -> bool:
        algorithm, hexpart = digest.split(":", 1)
        return self.digest.get(algorithm) == hexpart


@dataclass(frozen=True)
class Statement:
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Any

    def subject_for(self, digest: str) -> Subject | None:
        return next((s for s in self.subjects if s.matches(digest)), None)


def encode_statement(subjects: list[dict[str, Any]], predicate_type: str, predicate: Any) -> bytes:
    body = {"_type": mt.INTOTO_STATEMENT_V1, "subject": subjects, "predicateType": predicate_type, "predicate": predicate}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def subject_for_digest(digest: str, *, name: str | None = None, annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    algorithm, hexpart = digest.split(":", 1)
    subject: dict[str, Any] = {}
    if name:
        subject["name"] = name
    subject["digest"] = {algorithm: hexpart}
    if annotations is not None:
        subject["annotations"] = annotations
    return subject


# The in-toto Statement and ResourceDescriptor fields (predicate and digest are maps).
_STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})
_SUBJECT_FIELDS = frozenset({"name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations"})


def parse_statement(payload: bytes) -> Statement:
    body = load_signed_json(payload, what="in-toto statement")
    if not isinstance(body, dict):
        raise FormatError("in-toto statement must be a JSON object")
    check_fields(body, _STATEMENT_FIELDS, "in-toto statement")
    kind = body.get("_type")
    if kind not in (mt.INTOTO_STATEMENT_V1, "https://in-toto.io/Statement/v0.1"):
        raise FormatError(f"in-toto statement has _type {kind!r}, expected {mt.INTOTO_STATEMENT_V1}")
    predicate_type = body.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise FormatError("in-toto statement has no predicateType")
    raw_subjects = body.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise FormatError("in-toto statement has no subject")
    subjects = []
    for index, entry in enumerate(raw_subjects):
        check_fields(entry, _SUBJECT_FIELDS, f"in-toto statement subject {index}")
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digest, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items()):
            raise FormatError(f"in-toto statement subject {index} has no digest map")
        annotations = entry.get("annotations")
        subjects.append(
            Subject(
                name=entry.get("name") if isinstance(entry.get("name"), str) else "",
                digest={k: v.lower() for k, v in digest.items()},
                annotations=annotations if isinstance(annotations, dict) else {},
            )
        )
    return Statement(subjects=tuple(subjects), predicate_type=predicate_type, predicate=body.get("predicate"))
