"""Who wrote a trail and who exported it: the facts a `startup` record and a report carry.

A webhook does not know its cluster's name, so the deployment says it (MODELSIGN_CLUSTER)
along with the pod the downward API names (POD_NAME, POD_NAMESPACE, NODE_NAME); absent values
are recorded as null, never guessed.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import socket
from typing import Any

ENV_CLUSTER = "MODELSIGN_CLUSTER"
ENV_WEBHOOK = "MODELSIGN_WEBHOOK_NAME"
DEFAULT_WEBHOOK = "artifacts.modelsign.dev"  # manifests/base/validatingwebhookconfiguration.yaml


def modelsign_version() -> str:
    try:
        return importlib.metadata.version("modelsign")
    except importlib.metadata.PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


def webhook_identity() -> dict[str, Any]:
    """What a startup record says about the process that writes this chain."""
    return {
        "cluster": os.environ.get(ENV_CLUSTER) or None,
        "webhook": os.environ.get(ENV_WEBHOOK) or DEFAULT_WEBHOOK,
        "pod": os.environ.get("POD_NAME") or None,
        "podNamespace": os.environ.get("POD_NAMESPACE") or None,
        "node": os.environ.get("NODE_NAME") or None,
        "host": socket.gethostname(),
        "modelsignVersion": modelsign_version(),
    }


def operator_name() -> str:
    """Who ran an export: the login name at this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container's random uid)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"
