"""Incremental `audit verify`: what an earlier verify learnt from each whole, clean chain file
(its fast-path summary, scan.py), kept in a state file signed with the audit key.

The next verify takes the summary of every file that is still the same (same size and
modification time) from the state instead of reading it, and reads only new files and files
that grew (a writer's active file). Everything after reading (links between files, the
checkpoints and their signatures, retention, the schedule) is checked again over all of
them, so the verdict is the one a full verify gives, as long as the files the state vouches
for were not rewritten in place with their size and time kept: a full verify (no --state)
now and then checks that too. A state whose signature does not verify is ignored (and said).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from signer import SigningKey
from webhook.audit.canonical import canonical_json
from webhook.audit.scan import FileScan

VERSION = 1


@dataclass
class Remembered:
    """The state as read: summaries by file name, and what to say about it."""

    scans: dict[str, tuple[int, int, FileScan]] = field(default_factory=dict)  # name -> (size, mtime ns, scan)
    created: str | None = None
    problem: str | None = None  # why the state was not used


def _stat(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _scan_to_json(scan: FileScan) -> dict[str, Any]:
    events = [["control", e[1].decode("utf-8"), e[2], e[3], e[4]] for e in scan.events]
    first = scan.entries[0]
    return {"name": scan.name, "lines": scan.lines, "size": scan.size, "events": events, "writer": scan.writer, "count": scan.count,
            "decisions": scan.decisions, "lastSeq": scan.last_seq, "lastHash": scan.last_hash.decode(),
            "first": [first[0], first[1], first[2].decode(), first[3].decode(), first[5], first[6]],
            "hashes": {str(seq): digest.decode() for seq, digest in scan.hashes.items()}}


def _scan_from_json(data: dict[str, Any]) -> FileScan:
    first = data["first"]
    return FileScan(name=data["name"], lines=data["lines"], size=data["size"], clean=True, writer=data["writer"], count=data["count"],
                    decisions=data["decisions"], last_seq=data["lastSeq"], last_hash=data["lastHash"].encode(),
                    events=[("control", e[1].encode("utf-8"), e[2], e[3], e[4]) for e in data["events"]],
                    entries=[(first[0], first[1], first[2].encode(), first[3].encode(), True, first[4], first[5])],
                    hashes={int(seq): digest.encode() for seq, digest in data["hashes"].items()})


def remembered(path: Path, key: SigningKey) -> Remembered:
    """The state at `path` if its signature verifies with `key`'s public half; empty (with
    the reason) otherwise. A missing file is a first run, not a problem."""
    if not path.exists():
        return Remembered()
    try:
        document = json.loads(path.read_bytes())
        body, signature = document["state"], base64.b64decode(document["signature"], validate=True)
        if not key.public.verify(signature, canonical_json(body)):
            return Remembered(problem=f"the verify state {path} is not signed by the audit key: ignored, every file was read")
        if body.get("version") != VERSION:
            return Remembered(problem=f"the verify state {path} has version {body.get('version')!r}, not {VERSION}: ignored, every file was read")
        scans = {entry["scan"]["name"]: (entry["size"], int(entry["mtimeNs"]), _scan_from_json(entry["scan"])) for entry in body["files"]}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error) as exc:
        return Remembered(problem=f"the verify state {path} cannot be read ({type(exc).__name__}): ignored, every file was read")
    return Remembered(scans=scans, created=body.get("created"))


def reusable(state: Remembered, name: str) -> FileScan | None:
    """The remembered summary of `name` if the file is still the one summarised."""
    entry = state.scans.get(name)
    if entry is None:
        return None
    size, mtime, scan = entry
    return scan if _stat(name) == (size, mtime) else None


def save(path: Path, key: SigningKey, scans: list[FileScan]) -> int:
    """Sign and write the summaries of every whole, clean file in `scans`; how many."""
    files = []
    for scan in scans:
        stat = _stat(scan.name)
        whole = scan.clean and scan.error is None and not scan.torn and all(e[0] == "control" for e in scan.events)
        if whole and stat is not None and stat[0] == scan.size:
            files.append({"size": stat[0], "mtimeNs": str(stat[1]), "scan": _scan_to_json(scan)})  # as text: beyond 2**53
    body = {"version": VERSION, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "files": files}
    signature = base64.b64encode(key.sign(canonical_json(body))).decode()
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(canonical_json({"state": body, "keyId": key.public.key_id, "signature": signature}) + b"\n")
    os.replace(temporary, path)
    return len(files)
