"""The checkpoint witness: every signed checkpoint pushed to an OCI repository, out of the
writer's reach, and read back by `audit verify --witness`.

Each checkpoint is its own OCI manifest (artifactType ARTIFACT_TYPE, the empty config, the
checkpoint line as its one layer, annotations writer/seq/time/final) under its own tag,
`<sha256(writer)[:32]>-<seq, 16 digits>`. Content is addressed by digest, so a pushed
checkpoint cannot be changed in place; a tag could be moved to other content, but the
content names its writer and seq, so verify sees a tag that does not match it. With deletes
disabled (or tag immutability) on the registry and a push-only credential for the webhook,
whoever owns the audit volume, or even the pod, can add tags but not take back what was
witnessed (README "The audit trail").

Pushing runs on its own thread behind a bounded queue, with retries: a slow or unreachable
registry never delays an admission or the writer thread. Failures are logged and counted.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import queue
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from signer import (Descriptor, ImageReference, ModelsignError, RegistryOptions, RegistryRepository, Stores, UsageError,
                    encode_image_manifest, mediatypes as mt, parse_image_reference)

ARTIFACT_TYPE = "application/vnd.modelsign.audit.checkpoint.v1+json"
ANNOTATION = "dev.modelsign.audit."
TAG = re.compile(r"^[0-9a-f]{32}-[0-9]{16}$")
QUEUE_SIZE = 1000  # checkpoints waiting to be pushed; beyond that they are dropped (and counted)
ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 1.0
MAX_LINE_BYTES = 64 * 1024  # a checkpoint line is about 500 bytes


@dataclass(frozen=True)
class WitnessSettings:
    reference: str  # REGISTRY/REPOSITORY
    docker_config: Path | None = None  # a push-only credential, apart from the webhook's own
    insecure: bool = False  # plain HTTP (or unverified TLS) to a non-loopback registry


def parse_witness(text: str) -> ImageReference:
    """REGISTRY/REPOSITORY, without tag or digest (each checkpoint gets its own tag)."""
    try:
        reference = parse_image_reference(text)
    except ModelsignError as exc:
        raise UsageError(f"audit witness {text!r}: {exc.message}", hint="give REGISTRY/REPOSITORY, e.g. registry.example.com/audit/checkpoints") from None
    if reference.tag or reference.digest or "/" not in text.split("@")[0]:
        raise UsageError(f"audit witness {text!r} must be REGISTRY/REPOSITORY, without a tag or digest",
                         hint="each checkpoint is pushed under its own tag, e.g. registry.example.com/audit/checkpoints")
    return reference


def witness_tag(writer: str, seq: int) -> str:
    """The tag of checkpoint `seq` of `writer` (tags are at most 128 of [A-Za-z0-9._-])."""
    return f"{hashlib.sha256(writer.encode()).hexdigest()[:32]}-{seq:016d}"


def _options(settings: WitnessSettings, reference: ImageReference, *, retries: int) -> RegistryOptions:
    return RegistryOptions(docker_config=settings.docker_config, insecure_registries=(reference.registry,) if settings.insecure else (),
                           timeout_seconds=10.0, connect_timeout_seconds=3.0, retries=retries,
                           unreachable_pause_seconds=0)  # the witness thread's own backoff decides when to try again


def push_checkpoint(repository: RegistryRepository, line: bytes) -> str:
    """Push one checkpoint line as its own manifest under its tag; returns the tag."""
    body = json.loads(line)["checkpoint"]
    tag = witness_tag(body["writer"], body["seq"])
    repository.push_blob(b"{}")
    repository.push_blob(line)
    annotations = {f"{ANNOTATION}writer": body["writer"], f"{ANNOTATION}seq": str(body["seq"]), f"{ANNOTATION}time": body["time"],
                   f"{ANNOTATION}final": "true" if body.get("final") else "false", mt.ANNOTATION_CREATED: body["time"]}
    manifest = encode_image_manifest(Descriptor(media_type=mt.OCI_EMPTY, digest=mt.OCI_EMPTY_DIGEST, size=2),
                                     [Descriptor.for_content(ARTIFACT_TYPE, line)], artifact_type=ARTIFACT_TYPE, annotations=annotations)
    repository.push_manifest(manifest, mt.OCI_MANIFEST, tag=tag)
    return tag


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, ModelsignError) else f"{type(exc).__name__}: {exc}"


class WitnessPusher:
    """Pushes checkpoint lines from a bounded queue on its own thread."""

    def __init__(self, settings: WitnessSettings, *, warn: Callable[[str], None], sleep: Callable[[float], bool] | None = None) -> None:
        self.reference = parse_witness(settings.reference)
        self.settings = settings
        self._warn = warn
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_SIZE)
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait  # backoff that ends early when closing
        self._lock = threading.Lock()
        self.pushed = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="modelsign-audit-witness", daemon=True)
        self._thread.start()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"witness": self.settings.reference, "pushed": self.pushed, "failed": self.failed, "dropped": self.dropped,
                    "queued": self._queue.qsize()}

    def submit(self, line: bytes) -> None:
        """Never blocks: a full queue drops the checkpoint (counted and logged)."""
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped == 1 or dropped % 100 == 0:
                self._warn(f"audit witness {self.settings.reference} is {QUEUE_SIZE} checkpoints behind; {dropped} checkpoint(s) not witnessed")

    def close(self, timeout: float = 5.0) -> None:
        """Push what is queued within `timeout` (the final checkpoint matters most), then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._stopping.set()  # cut short any backoff still running
        self._thread.join(1.0)

    def _run(self) -> None:
        try:
            stores = Stores(_options(self.settings, self.reference, retries=0))
            repository = stores.repository(self.reference)
        except Exception as exc:  # noqa: BLE001 - e.g. an unreadable CA bundle: every checkpoint then counts as failed
            self._warn(f"cannot reach the audit witness {self.settings.reference}: {_reason(exc)}")
            while self._queue.get() is not None:
                with self._lock:
                    self.failed += 1
            return
        with stores:
            assert isinstance(repository, RegistryRepository)
            while (line := self._queue.get()) is not None:
                self._push(repository, line)

    def _push(self, repository: RegistryRepository, line: bytes) -> None:
        delay, reason = FIRST_BACKOFF_SECONDS, ""
        for attempt in range(ATTEMPTS):
            try:
                push_checkpoint(repository, line)
                with self._lock:
                    self.pushed += 1
                return
            except Exception as exc:  # noqa: BLE001 - any failure: retry, then count it; never fatal to the thread
                reason = _reason(exc)
            if attempt + 1 < ATTEMPTS and self._sleep(delay):
                break  # closing: no more retries
            delay = min(delay * 2, 30.0)
        with self._lock:
            self.failed += 1
        self._warn(f"cannot push an audit checkpoint to the witness {self.settings.reference}: {reason}")


@dataclass(frozen=True)
class Witnessed:
    """One tag of the witness repository: the checkpoint line it holds, or why it could not be read."""

    tag: str
    where: str
    line: bytes | None = None
    problem: str | None = None


def _read_tag(repository: RegistryRepository, tag: str) -> Witnessed:
    where = f"witness {repository.display_name}:{tag}"
    try:
        manifest = repository.fetch_manifest(tag)
        if manifest is None:
            return Witnessed(tag, where, problem=f"{where} is listed but has no manifest (removed?)")
        layers = [layer for layer in manifest.layers if layer.media_type == ARTIFACT_TYPE]
        if manifest.artifact_type != ARTIFACT_TYPE or len(layers) != 1:
            return Witnessed(tag, where, problem=f"{where} is not a modelsign checkpoint (artifactType {manifest.artifact_type!r}, {len(layers)} checkpoint layer(s))")
        return Witnessed(tag, where, line=repository.fetch_blob(layers[0].digest, max_bytes=MAX_LINE_BYTES))
    except ModelsignError as exc:
        return Witnessed(tag, where, problem=f"cannot read {where}: {exc.message}")


def read_witness(settings: WitnessSettings, *, parallel: int = 8) -> tuple[list[Witnessed], list[str]]:
    """Every checkpoint tag of the witness repository, fetched; and the other tags' names
    (not written by modelsign: reported, not read)."""
    reference = parse_witness(settings.reference)
    with Stores(_options(settings, reference, retries=2)) as stores:
        repository = stores.repository(reference)
        assert isinstance(repository, RegistryRepository)
        try:
            tags = repository.list_tags()
        except ModelsignError as exc:
            raise ModelsignError(f"cannot list the audit witness {settings.reference}: {exc.message}",
                                 hint=exc.hint or "check the address and pass --witness-docker-config with a credential that may pull from it") from None
        ours = sorted(t for t in tags if TAG.fullmatch(t))
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            found = list(pool.map(lambda tag: _read_tag(repository, tag), ours))
    return found, sorted(t for t in tags if not TAG.fullmatch(t))
