"""A Kubernetes API client (kubeconfig or in-cluster) and JSON GET/PUT/POST through it.

Responses are read as JSON objects, never through the client's model classes: the scan
hands the pipeline the objects exactly as the API server stores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from signer import FormatError, ModelsignError, load_json, parse_json_object

REQUEST_TIMEOUT_SECONDS = 30


class KubeError(ModelsignError):
    """A request to the API server failed; `status` is its HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def api_client(kubeconfig: Path | None = None, *, context: str | None = None) -> Any:
    """The client for `kubeconfig` (its current context, or `context`), else the in-cluster
    service account (KUBECONFIG is honoured when no file is given and not in a cluster)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if kubeconfig is not None:
            config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(context=context, client_configuration=configuration)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster service account or $KUBECONFIG/~/.kube/config"
        raise ModelsignError(f"cannot use {where} to reach the Kubernetes API: {exc}",
                             hint="pass --kubeconfig FILE with a current context, or run inside the cluster") from None
    configuration.retries = 1
    return client.ApiClient(configuration)


def default_namespace(kubeconfig: Path | None, context: str | None = None) -> str:
    """kubectl's default: the context's namespace, else the pod's own, else `default`."""
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=str(kubeconfig) if kubeconfig else None)
        if context is None and isinstance(active, dict):
            namespace = (active.get("context") or {}).get("namespace")
            if isinstance(namespace, str) and namespace:
                return namespace
    except (config.ConfigException, OSError, ValueError, TypeError):
        pass
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip() or "default"
    except OSError:
        return "default"


def request_json(api: Any, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object the API server answers; a KubeError (with the status) otherwise."""
    from kubernetes.client.exceptions import ApiException

    try:
        serialized = api.param_serialize(method=method, resource_path=path, query_params=query or [], body=body, auth_settings=["BearerToken"],
                                         header_params={"Accept": "application/json", "Content-Type": "application/json"})
        response = api.call_api(serialized[0], serialized[1], header_params=serialized[2], body=serialized[3], _request_timeout=REQUEST_TIMEOUT_SECONDS)
        data = response.read()
    except ApiException as exc:
        raise KubeError(f"{method} {path}: {exc.reason}", hint="check the kubeconfig's server address and that the API server is up") from None
    except Exception as exc:  # urllib3 and socket errors: the API server did not answer
        raise KubeError(f"{method} {path}: the API server did not answer ({type(exc).__name__}: {exc})",
                        hint="check the kubeconfig's server address and that the API server is up") from None
    if not 200 <= response.status < 300:
        raise KubeError(f"{method} {path}: HTTP {response.status} {response.reason}{_status_message(data)}", status=response.status)
    try:
        return parse_json_object(data, what=f"{method} {path}: the API server's answer")
    except FormatError as exc:  # not JSON, not an object, or nested too deeply
        raise KubeError(exc.message) from None


def _status_message(body: Any) -> str:
    """The API server's own explanation from a Status body, if it sent one."""
    try:
        status = load_json(body, what="a Status") if isinstance(body, (str, bytes)) and body else None
    except FormatError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return f": {message}" if isinstance(message, str) and message else ""
