"""The starvation attack of the hardening issue, built with the registry API (no trusted key).

An attacker who may push to a repository of an allowed registry pads each image's signature
objects within the documented bounds: 100 `.sig` layers all pointing at one 1 MiB payload,
and a referrers fallback index (tag `sha256-<hex>`, docker-registry 2.8 has no referrers
API) of 100 entries all pointing at one ~4 MiB manifest. Pods of 32 such images, sent a few
at a time, used to keep every verification thread busy past the deadline.

`attack_round` sends those Pods together with correctly signed, digest-pinned Pods and times
every answer; the test and bench/bench_starvation.py share it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from signer.formats import mediatypes as mt
from signer.formats.digests import referrers_fallback_tag, signature_tag
from signer.formats.legacy import signature_image_config
from signer.formats.simplesigning import build_payload
from signer.oci.manifest import Descriptor, encode_image_manifest, encode_index
from signer.oci.repository import Repository
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from signer.trust.keys import SigningKey
from support.admission import pod, review

PADDED_ENTRIES = 100  # the documented per-source bound
PAYLOAD_BYTES = 1024 * 1024
REFERRER_MANIFEST_BYTES = 4 * 1024 * 1024 - 64 * 1024  # just under the 4 MiB manifest bound (docker-registry's too)


@dataclass(frozen=True)
class Padding:
    payloads: tuple[Descriptor, ...]  # what the 100 `.sig` layers point at: one 1 MiB payload 100 times, or 100 small ones
    referrer: Descriptor  # one large manifest every referrers-index entry points at


def padded_payload(digest: str, size: int, salt: str = "") -> bytes:
    """A well-formed simple-signing payload naming `digest`, padded to `size` bytes."""
    body = json.loads(build_payload("padding.example/attack", digest))
    body["optional"] = {"salt": salt, "pad": ""}
    body["optional"]["pad"] = "x" * (size - len(json.dumps(body, separators=(",", ":"))))
    return json.dumps(body, separators=(",", ":")).encode()


def push_sig_layers(repository: Repository, digest: str, payloads: list[Descriptor], *, signature: bytes | None = None) -> None:
    """The `.sig` manifest of `digest` with one layer per payload descriptor (blobs pushed
    already), each with a random signature unless `signature` is given."""
    layers = [Descriptor(media_type=mt.COSIGN_SIMPLESIGNING, digest=p.digest, size=p.size,
                         annotations={mt.ANNOTATION_SIGNATURE: base64.b64encode(signature or os.urandom(70)).decode()}) for p in payloads]
    config = signature_image_config([layer.digest for layer in layers])
    repository.push_blob(config)
    repository.push_manifest(encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), layers), mt.OCI_MANIFEST, tag=signature_tag(digest))


def prepare_padding(repository: Repository, *, distinct_payloads: bool = False) -> Padding:
    """Push the shared payload blob(s) and the shared large referrer manifest once.
    `distinct_payloads`: 100 different 60 KB payloads, each under the payload cap, instead."""
    if distinct_payloads:
        blobs = [padded_payload("sha256:" + "0" * 64, 60_000, salt=str(index)) for index in range(PADDED_ENTRIES)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(repository.push_blob, blobs))
    else:
        blobs = [padded_payload("sha256:" + "0" * 64, PAYLOAD_BYTES)]
        repository.push_blob(blobs[0])
    payloads = tuple(Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, blob) for blob in blobs)
    config = b"{}"
    repository.push_blob(config)
    bundle = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
    repository.push_blob(bundle)
    layer = Descriptor.for_content(mt.SIGSTORE_BUNDLE_V03, bundle)
    stub = encode_image_manifest(Descriptor.for_content(mt.OCI_EMPTY, config), [layer], artifact_type=mt.SIGSTORE_BUNDLE_V03, annotations={"pad": ""})
    manifest = encode_image_manifest(Descriptor.for_content(mt.OCI_EMPTY, config), [layer], artifact_type=mt.SIGSTORE_BUNDLE_V03,
                                     annotations={"pad": "x" * (REFERRER_MANIFEST_BYTES - len(stub))})
    pushed = repository.push_manifest(manifest, mt.OCI_MANIFEST)
    return Padding(payloads=payloads if distinct_payloads else payloads * PADDED_ENTRIES,
                   referrer=Descriptor(media_type=mt.OCI_MANIFEST, digest=pushed.digest, size=len(manifest), artifact_type=mt.SIGSTORE_BUNDLE_V03))


def push_padded_image(repository: Repository, padding: Padding, tag: str) -> Descriptor:
    """A tiny image whose `.sig` and referrers index are padded to the bound."""
    image = push_image(repository, {"f": f"{repository.display_name}:{tag}".encode()}, tag=tag)
    push_sig_layers(repository, image.digest, list(padding.payloads))
    repository.push_manifest(encode_index([padding.referrer] * PADDED_ENTRIES), mt.OCI_INDEX, tag=referrers_fallback_tag(image.digest))
    return image


def push_rejected_image(repository: Repository, tag: str) -> str:
    """An image with as many rejected entries as the bounds allow, at almost no size: 100 `.sig`
    layers of a media type that is no signature and 100 referrers-index entries pointing at one
    manifest without a subject (found by trying to break it: the policy engine's work grew with
    artifacts x rejected entries). Returns the tag reference."""
    image = push_image(repository, {"f": f"{repository.display_name}:{tag}".encode()}, tag=tag)
    junk, config = b"x", b"{}"
    repository.push_blob(junk)
    repository.push_blob(config)
    layers = [Descriptor(media_type=f"application/vnd.example.not-a-signature.{index}", digest=Descriptor.for_content("x", junk).digest, size=1)
              for index in range(PADDED_ENTRIES)]
    repository.push_manifest(encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), layers), mt.OCI_MANIFEST, tag=signature_tag(image.digest))
    stub = encode_image_manifest(Descriptor.for_content(mt.OCI_EMPTY, config), [Descriptor.for_content(mt.SIGSTORE_BUNDLE_V03, junk)],
                                 artifact_type=mt.SIGSTORE_BUNDLE_V03)
    entry = Descriptor(media_type=mt.OCI_MANIFEST, digest=repository.push_manifest(stub, mt.OCI_MANIFEST).digest, size=len(stub),
                       artifact_type=mt.SIGSTORE_BUNDLE_V03)
    repository.push_manifest(encode_index([entry] * PADDED_ENTRIES), mt.OCI_INDEX, tag=referrers_fallback_tag(image.digest))
    return f"{repository.display_name}:{tag}"


def push_attack(repository: Repository, pods: int = 3, images_per_pod: int = 32, *, distinct_payloads: bool = False) -> list[list[str]]:
    """The attack's images in `repository` (in parallel: the registry is the slow part); one
    list of tag references per Pod."""
    padding = prepare_padding(repository, distinct_payloads=distinct_payloads)
    name = repository.display_name
    attack = [[f"{name}:p{p}-{i}" for i in range(images_per_pod)] for p in range(pods)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda tag: push_padded_image(repository, padding, tag), [image.rsplit(":", 1)[1] for images in attack for image in images]))
    return attack


def push_signed_pinned(stores: Stores, name: str, key: SigningKey) -> str:
    """A small image signed with `key`, as a digest-pinned reference."""
    reference = parse_reference(f"{name}:1")
    pushed = push_image(stores.repository(reference), {"f": name.encode()}, tag="1")
    sign_artifact(stores, reference, key)
    return f"{name}@{pushed.digest}"


@dataclass
class Answer:
    seconds: float
    allowed: bool
    message: str


@dataclass
class RoundResult:
    attack: list[Answer] = field(default_factory=list)
    signed: list[Answer] = field(default_factory=list)

    @property
    def worst_seconds(self) -> float:
        return max(a.seconds for a in self.attack + self.signed)


def post_timed(url: str, ca_file: Path, body: bytes) -> Answer:
    """One review on its own connection (so the server's workers share them); never raises on a slow answer."""
    started = time.monotonic()
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca_file)), timeout=120) as client:
        response = client.post("/validate", content=body, headers={"Content-Type": "application/json"})
    answer = response.json()["response"]
    return Answer(seconds=time.monotonic() - started, allowed=answer["allowed"], message=(answer.get("status") or {}).get("message", ""))


def attack_round(url: str, ca_file: Path, attack_images: list[list[str]], signed_images: list[str], *, signed_every: float = 0.3,
                 prefix: str = "round") -> RoundResult:
    """Send one dry-run Pod per list in `attack_images` at once; while they run, one signed Pod
    per `signed_images` entry every `signed_every` seconds. Returns every answer with its time."""
    attack_bodies = [review("Pod", pod(*images, name=f"attack-{i}"), dry_run=True, uid=f"{prefix}-attack-{i}") for i, images in enumerate(attack_images)]
    signed_bodies = [review("Pod", pod(image, name=f"signed-{i}"), uid=f"{prefix}-signed-{i}") for i, image in enumerate(signed_images)]
    with concurrent.futures.ThreadPoolExecutor(len(attack_bodies) + len(signed_bodies)) as pool:
        attacks = [pool.submit(post_timed, url, ca_file, body) for body in attack_bodies]
        signed = []
        for body in signed_bodies:
            time.sleep(signed_every)
            signed.append(pool.submit(post_timed, url, ca_file, body))
        return RoundResult(attack=[f.result() for f in attacks], signed=[f.result() for f in signed])
