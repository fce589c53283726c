"""Every artifact an admitted object will run, per kind.

Images come from pod specs (containers, initContainers, ephemeralContainers, image
volumes); model artifacts from KServe storage URIs. Each is returned with the JSON path it
was found at, so a deny message can point at the exact field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

POD_TEMPLATE_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
# Legacy framework fields of a KServe component (each may carry storageUri and an image override).
KSERVE_FRAMEWORKS = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml", "lightgbm", "paddle",
    "huggingface", "model", "alibi", "art", "aix", "custom",
)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# KServe's pod mutator downloads whatever these annotations name (set by its controllers,
# but anyone creating a Pod, template or KServe object can set them).
KSERVE_STORAGE_ANNOTATION_PREFIX = "internal.serving.kserve.io/storage"
STORAGE_URI_ENV = "STORAGE_URI"  # KServe custom containers: the storage initializer fetches it
KSERVE_KINDS = {
    "InferenceService", "ServingRuntime", "ClusterServingRuntime", "TrainedModel", "LLMInferenceService", "LLMInferenceServiceConfig",
}
KNOWN_KINDS = POD_TEMPLATE_KINDS | KSERVE_KINDS | {"Pod", "CronJob"}


Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Found:
    path: Path  # where the field is, e.g. ("spec", "containers", 0, "image")
    value: Any  # the raw field value (a string when well-formed)
    role: str  # "image" (runs as a container/volume) or "model" (a storage URI)

    @property
    def source(self) -> str:
        """The path as people write it: spec.containers[0].image, metadata.annotations[key]."""
        text = ""
        for index, part in enumerate(self.path):
            if isinstance(part, int) or (index and self.path[index - 1] == "annotations"):
                text += f"[{part}]"
            else:
                text += ("." if text else "") + part
        return text

    @property
    def pointer(self) -> str:
        """The path as an RFC 6901 JSON Pointer (for JSONPatch)."""
        return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in self.path)


def extract(kind: str, obj: dict[str, Any] | None) -> list[Found]:
    """Artifacts of a known kind (see KNOWN_KINDS; callers deny the others)."""
    if not isinstance(obj, dict):
        return []
    spec = obj.get("spec")
    found = list(_storage_annotations(_get(obj, "metadata"), ("metadata",)))
    if kind == "Pod":
        found += _pod_spec(spec, ("spec",))
    elif kind in POD_TEMPLATE_KINDS:
        found += _pod_template(_get(spec, "template"), ("spec", "template"))
    elif kind == "CronJob":
        found += _pod_template(_get(spec, "jobTemplate", "spec", "template"), ("spec", "jobTemplate", "spec", "template"))
    elif kind == "InferenceService":
        found += _inference_service(spec)
    elif kind in ("ServingRuntime", "ClusterServingRuntime"):
        found += _serving_runtime(spec)
    elif kind == "TrainedModel":
        found += _uri(_get(spec, "model", "storageUri"), ("spec", "model", "storageUri"))
    elif kind in ("LLMInferenceService", "LLMInferenceServiceConfig"):
        found += _llm_inference_service(spec)
    return found


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _items(value: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(value) if isinstance(value, list) else iter(())


def _uri(value: Any, path: Path) -> Iterator[Found]:
    if value is not None:
        yield Found(path=path, value=value, role="model")


def _storage_annotations(metadata: Any, path: Path) -> Iterator[Found]:
    annotations = _get(metadata, "annotations")
    for key, value in sorted(annotations.items()) if isinstance(annotations, dict) else []:
        if isinstance(key, str) and key.startswith(KSERVE_STORAGE_ANNOTATION_PREFIX):
            yield Found(path=(*path, "annotations", key), value=value, role="model")


def _pod_template(template: Any, path: Path) -> Iterator[Found]:
    yield from _storage_annotations(_get(template, "metadata"), (*path, "metadata"))
    yield from _pod_spec(_get(template, "spec"), (*path, "spec"))


def _pod_spec(spec: Any, path: Path, *, storage_env: bool = False) -> Iterator[Found]:
    """Images of a pod spec; with `storage_env`, KServe's STORAGE_URI container variables too."""
    if not isinstance(spec, dict):
        return
    for field_name in _CONTAINER_LISTS:
        for index, container in _items(spec.get(field_name)):
            image = container.get("image") if isinstance(container, dict) else None
            # No image here means it is defined elsewhere (KServe merges runtime/config
            # templates; the resulting Pod is admitted, and checked, on its own).
            if image is not None:
                yield Found(path=(*path, field_name, index, "image"), value=image, role="image")
            if storage_env:
                for position, variable in _items(_get(container, "env")):
                    if isinstance(variable, dict) and variable.get("name") == STORAGE_URI_ENV:
                        yield Found(path=(*path, field_name, index, "env", position, "value"), value=variable.get("value"), role="model")
    for index, volume in _items(spec.get("volumes")):
        reference = _get(volume, "image", "reference")
        if reference is not None:  # Kubernetes image volumes (OCI artifacts mounted read-only)
            yield Found(path=(*path, "volumes", index, "image", "reference"), value=reference, role="image")


def _storage_uris(value: Any, path: Path) -> Iterator[Found]:
    for index, entry in _items(value):
        uri = entry.get("uri") if isinstance(entry, dict) else entry
        yield Found(path=(*path, index, "uri") if isinstance(entry, dict) else (*path, index), value=uri, role="model")


def _component(component: Any, path: Path) -> Iterator[Found]:
    if not isinstance(component, dict):
        return
    yield from _pod_spec(component, path, storage_env=True)  # a component embeds a PodSpec
    yield from _storage_uris(component.get("storageUris"), (*path, "storageUris"))
    for framework in KSERVE_FRAMEWORKS:
        section = component.get(framework)
        if not isinstance(section, dict):
            continue
        base = (*path, framework)
        yield from _uri(section.get("storageUri"), (*base, "storageUri"))
        yield from _storage_uris(section.get("storageUris"), (*base, "storageUris"))
        storage = section.get("storage")
        if isinstance(storage, dict):  # KServe storage spec: a named storage key, not a URI
            yield Found(path=(*base, "storage"), value=_storage_spec_uri(storage), role="model")
        if section.get("image") is not None:
            yield Found(path=(*base, "image"), value=section.get("image"), role="image")
        container = section.get("container")  # v1alpha2 custom predictor
        if isinstance(container, dict):
            yield Found(path=(*base, "container", "image"), value=container.get("image"), role="image")
    worker = component.get("workerSpec")
    yield from _pod_spec(worker, (*path, "workerSpec"), storage_env=True)


def _storage_spec_uri(storage: dict[str, Any]) -> str:
    """`storage://key/path?param=value`: parameters (bucket, endpoint...) are part of what is
    loaded, so they are part of the value policies match and updates compare."""
    parameters = storage.get("parameters")
    query = "&".join(f"{k}={parameters[k]}" for k in sorted(parameters)) if isinstance(parameters, dict) and parameters else ""
    return f"storage://{storage.get('key', '')}/{storage.get('path', '')}" + (f"?{query}" if query else "")


def _inference_service(spec: Any) -> Iterator[Found]:
    if not isinstance(spec, dict):
        return
    for name in KSERVE_COMPONENTS:
        yield from _component(spec.get(name), ("spec", name))
    for version_key in ("default", "canary"):  # serving.kserve.io/v1alpha2 layout
        section = spec.get(version_key)
        for name in KSERVE_COMPONENTS:
            yield from _component(_get(section, name), ("spec", version_key, name))


def _serving_runtime(spec: Any) -> Iterator[Found]:
    yield from _pod_spec(spec, ("spec",), storage_env=True)
    yield from _pod_spec(_get(spec, "workerSpec"), ("spec", "workerSpec"), storage_env=True)


def _llm_inference_service(spec: Any) -> Iterator[Found]:
    if not isinstance(spec, dict):
        return
    yield from _uri(_get(spec, "model", "uri"), ("spec", "model", "uri"))
    for index, adapter in _items(_get(spec, "model", "lora", "adapters")):
        yield from _uri(_get(adapter, "uri"), ("spec", "model", "lora", "adapters", index, "uri"))
    for path in (("template",), ("worker",), ("prefill", "template"), ("prefill", "worker"), ("router", "scheduler", "template")):
        yield from _pod_spec(_get(spec, *path), ("spec", *path), storage_env=True)
