"""Bind a running Pod's check to the digests it runs.

A kubelet reports each container's image digest in `status.*ContainerStatuses[].imageID`
(`registry/repo@sha256:…`, or `docker-pullable://…@sha256:…`). That digest, not the tag in
the spec, is what runs: the scan checks the spec's name pinned at it (`name:tag@digest`), so
evidence is looked up for the content that runs even if the tag has moved since. Where no
digest is reported (a Pending Pod, an image volume, a runtime that reports only the local
image id) the spec's reference is checked, and the finding says so.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from signer import mapping, text

_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})\Z")
_STATUS_LISTS = {"containers": "containerStatuses", "initContainers": "initContainerStatuses", "ephemeralContainers": "ephemeralContainerStatuses"}


@dataclass(frozen=True)
class Binding:
    source: str  # the spec field, as findings name it: spec.containers[0].image
    digest: str | None  # the running digest, when the status reports one
    note: str


def running_digest(image_id: str) -> str | None:
    """The manifest digest in a container status's imageID, if it names one."""
    match = _DIGEST.search(image_id.strip())
    return match.group(1) if match else None


def pinned_text(reference: str, digest: str) -> str:
    """`name[:tag]` of the spec's reference at `digest` (a digest already there is replaced)."""
    return reference.strip().partition("@")[0] + "@" + digest


def bind_running_digests(pod: dict[str, Any]) -> tuple[dict[str, Any], list[Binding]]:
    """A copy of `pod` whose container images are pinned at the digests that run, and a
    binding (or a note why not) for every container image."""
    bound = copy.deepcopy(pod)
    spec, status = mapping(bound.get("spec")), mapping(bound.get("status"))
    bindings: list[Binding] = []
    for list_name, status_name in _STATUS_LISTS.items():
        reported = {text(mapping(s).get("name")): text(mapping(s).get("imageID")) for s in status.get(status_name) or []}
        for index, container in enumerate(spec.get(list_name) or []):
            if not isinstance(container, dict) or not isinstance(container.get("image"), str):
                continue
            source = f"spec.{list_name}[{index}].image"
            name = text(container.get("name"))
            image_id = reported.get(name, "")
            digest = running_digest(image_id) if image_id else None
            if digest is None:
                why = (f"{status_name}[{name}].imageID {image_id!r} names no manifest digest" if image_id
                       else f"no {status_name} entry reports what runs for container {name!r}")
                bindings.append(Binding(source, None, f"{why}; the spec's reference was checked"))
                continue
            written = container["image"].strip()
            _, _, spec_digest = written.partition("@")
            moved = f" (the spec pins {spec_digest})" if spec_digest and spec_digest != digest else ""
            container["image"] = pinned_text(written, digest)
            bindings.append(Binding(source, digest, f"checked at the running digest {digest} from {status_name}[{name}].imageID{moved}"))
    return bound, bindings
