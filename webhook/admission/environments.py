"""Which environment (prod, staging...) a namespace belongs to, for approval rules.

By the namespace's label `environments.namespaceLabel` when configured (read with the
`kubernetes` client, cached), else by the first mapping whose namespace globs match.
A label that cannot be read is an error: the request is denied, never guessed.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from pathlib import Path
from typing import Any

from signer import ModelsignError
from webhook.admission.config import Environments


class EnvironmentLookupError(ModelsignError):
    """The namespace's labels could not be read from the API server."""


class EnvironmentResolver:
    def __init__(self, settings: Environments, base_dir: Path | None = None) -> None:
        self.settings = settings
        # relative paths in the policy are relative to the policy file
        self._kubeconfig = str((base_dir or Path.cwd()) / settings.kubeconfig) if settings.kubeconfig else None
        self._labels: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self._api: Any = None

    def environment(self, namespace: str) -> str:
        if self.settings.namespace_label:
            label = self._label(namespace)
            if label:
                return label
        for mapping in self.settings.mappings:
            if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in mapping.namespaces):
                return mapping.name
        return ""

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            if self._kubeconfig:
                configuration = client.Configuration()
                try:
                    config.load_kube_config(config_file=self._kubeconfig, client_configuration=configuration)
                except (config.ConfigException, OSError, ValueError) as exc:
                    raise EnvironmentLookupError(f"cannot use kubeconfig {self._kubeconfig} for namespace labels: {exc}",
                                                 hint="point environments.kubeconfig at a readable kubeconfig with a current context") from None
                configuration.retries = 0  # the admission deadline is short: one attempt, then deny
                api_client = client.ApiClient(configuration)
            elif self.settings.api_server:
                configuration = client.Configuration()
                configuration.host = self.settings.api_server
                configuration.retries = 0
                api_client = client.ApiClient(configuration)
            else:
                try:
                    config.load_incluster_config()
                except config.ConfigException as exc:
                    raise EnvironmentLookupError(f"cannot reach the Kubernetes API for namespace labels: {exc}",
                                                 hint="run in-cluster, set environments.apiServer, or map namespaces with environments.mappings") from None
                client.Configuration.get_default_copy().retries = 0
                api_client = client.ApiClient()
            self._api = client.CoreV1Api(api_client)
        return self._api

    def _label(self, namespace: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            cached = self._labels.get(namespace)
        if cached and cached[0] > now:
            return cached[1]
        from kubernetes.client.exceptions import ApiException

        try:
            labels = self._client().read_namespace(namespace, _request_timeout=2).metadata.labels or {}
        except ApiException as exc:
            raise EnvironmentLookupError(f"cannot read labels of namespace {namespace}: HTTP {exc.status} {exc.reason}",
                                         hint="give the webhook's ServiceAccount get on namespaces (manifests/base/rbac.yaml)") from None
        except Exception as exc:  # urllib3 and socket errors: the API server is unreachable
            raise EnvironmentLookupError(f"cannot read labels of namespace {namespace}: {type(exc).__name__}: {exc}") from None
        value = labels.get(self.settings.namespace_label)
        with self._lock:
            self._labels[namespace] = (now + self.settings.label_cache_seconds, value if isinstance(value, str) else None)
        return value if isinstance(value, str) else None
