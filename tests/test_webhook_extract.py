"""Extraction over every KServe and AdmissionReview file in the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES
from webhook.admission.extract import extract
from webhook.admission.review import ReviewError, parse_review
from webhook.admission.targets import classify

KSERVE = FIXTURES / "kserve"
REVIEWS = FIXTURES / "admissionreview"
BROKEN_YAML = {"bentoml__bentoml.yaml", "v1beta1__custom__torchserve__canary.yaml", "test__e2e__graph__test-resources__ig_test_switch_scenario_10.yaml"}

# file -> [(source, value, kind)] for every document, in order
EXPECTED_KSERVE = {
    "v1beta1__sklearn__v1__sklearn.yaml": [("spec.predictor.sklearn.storageUri", "gs://kfserving-examples/models/sklearn/1.0/model", "uri")],
    "v1beta1__tensorflow__versioning.yaml": [
        ("spec.predictor.tensorflow.storageUri", "gs://kfserving-examples/models/tensorflow/flowers", "uri"),
        ("spec.predictor.tensorflow.image", "tensorflow/serving:v1.14", "oci"),
    ],
    "v1beta1__triton__bert__bert_v1beta1.yaml": [
        ("spec.predictor.triton.storageUri", "gs://kfserving-examples/models/triton/bert", "uri"),
        ("spec.transformer.containers[0].image", "kserve/bert-tokenizer:latest", "oci"),
        # KServe's STORAGE_URI convention: the storage initializer downloads this too
        ("spec.transformer.containers[0].env[0].value", "gs://kfserving-examples/models/triton/bert-transformer", "uri"),
    ],
    "v1beta1__transformer__collocation__collocation.yaml": [
        ("spec.predictor.containers[0].image", "pytorch/torchserve:0.9.0-cpu", "oci"),
        ("spec.predictor.containers[0].env[1].value", "gs://kfserving-examples/models/torchserve/image_classifier/v1", "uri"),
        ("spec.predictor.containers[1].image", "kserve/image-transformer:latest", "oci"),
    ],
    "v1beta1__custom__custom_model__custom.yaml": [
        ("spec.predictor.containers[0].image", "kserve/custom-model:latest", "oci"),
        ("spec.predictor.containers[0].image", "kserve/custom-model-grpc:latest", "oci"),
    ],
    "storage__oci-fetch__inference_service.yaml": [("spec.predictor.model.storageUri", "oci+fetch://ghcr.io/kliukovkin/kserve-oci-test-fixture:v1", "oci")],
    "storage__oci-image-volume__inference_service.yaml": [("spec.predictor.model.storageUri", "oci+native://ghcr.io/my-org/my-sklearn-model:v1", "oci")],
    "storage__hf__hf_isvc.yaml": [("spec.predictor.model.storageUri", "hf://meta-llama/Llama-2-7b-chat-hf", "uri")],
    "storage__storageSpec__sklearn_storagespec.yaml": [("spec.predictor.sklearn.storage", "storage://localMinIO/sklearn?bucket=example-models", "uri")],
    "storage__pvc__mnist-pvc.yaml": [("spec.default.predictor.tensorflow.storageUri", "pvc://${PVC_NAME}/export", "uri")],
    "hist__v1alpha2__tensorflow__tensorflow-canary.yaml": [
        ("spec.default.predictor.tensorflow.storageUri", "gs://kfserving-samples/models/tensorflow/flowers", "uri"),
        ("spec.canary.predictor.tensorflow.storageUri", "gs://kfserving-samples/models/tensorflow/flowers-2", "uri"),
    ],
    "explanation__aif__germancredit__bias-v1alpha1.yaml": [
        ("spec.default.predictor.custom.container.image", "aipipeline/aifserver:predictor", "oci"),
        ("spec.default.explainer.custom.container.image", "aipipeline/aifserver:latest", "oci"),
    ],
    "explanation__alibi__income__income.yaml": [
        ("spec.predictor.sklearn.storageUri", "gs://seldon-models/sklearn/income/model", "uri"),
        ("spec.explainer.alibi.storageUri", "gs://kfserving-examples/models/sklearn/1.3/income/explainer", "uri"),
    ],
    "multimodelserving__sklearn__trainedmodels.yaml": [
        ("spec.model.storageUri", "gs://kfserving-examples/models/sklearn/1.0/model", "uri"),
        ("spec.model.storageUri", "gs://kfserving-examples/models/sklearn/1.0/model", "uri"),
    ],
    "multimodelserving__triton__multi_model_triton.yaml": [],
    "config__runtimes__kserve-huggingfaceserver-multinode.yaml": [
        ("spec.containers[0].image", "huggingfaceserver-gpu:replace", "oci"),
        ("spec.workerSpec.containers[0].image", "huggingfaceserver-gpu:replace", "oci"),
    ],
    "kernelcache__vllm-servingruntime.yaml": [("spec.containers[0].image", "vllm/vllm-openai:v0.28.0", "oci")],
    "llmisvc__lora-adapters__test-examples__02-lora-multi-hf-cpu.yaml": [
        ("spec.model.uri", "hf://facebook/opt-125m", "uri"),
        ("spec.model.lora.adapters[0].uri", "hf://edbeeching/opt-125m-lora", "uri"),
        ("spec.model.lora.adapters[1].uri", "hf://edbeeching/opt-125m-lora", "uri"),
        ("spec.template.containers[0].image", "vllm/vllm-openai-cpu:v0.19.0", "oci"),
    ],
    "llmisvc__agentic-tool-calling__nemotron-3-ultra-pd.yaml": [
        ("spec.model.uri", "hf://RedHatAI/NVIDIA-Nemotron-3-Ultra-550B-A55B-FP8-block", "uri"),
        ("spec.template.containers[0].image", "ghcr.io/llm-d/llm-d-cuda:v0.9.0", "oci"),
        ("spec.prefill.template.containers[0].image", "ghcr.io/llm-d/llm-d-cuda:v0.9.0", "oci"),
    ],
    "config__llmisvcconfig__config-llm-template.yaml": [("spec.template.containers[0].image", "ghcr.io/llm-d/llm-d-cuda:v0.9.0", "oci")],
    "rollout-strategy__rollout-strategy-example.yaml": [
        ("spec.predictor.model.storageUri", "s3://my-bucket/model", "uri"),
        ("spec.transformer.custom.container.image", "my-transformer:latest", "oci"),
        ("spec.predictor.model.storageUri", "s3://my-bucket/model", "uri"),
        ("spec.predictor.containers[0].image", "my-ray-model-server:latest", "oci"),
        ("spec.predictor.model.storageUri", "s3://my-bucket/llm-model", "uri"),
    ],
    "graph__ensemble.yaml": [
        ("spec.predictor.sklearn.storageUri", "gs://kfserving-examples/models/sklearn/1.0/model", "uri"),
        ("spec.predictor.xgboost.storageUri", "gs://kfserving-examples/models/xgboost/iris", "uri"),
    ],
}


def _extract_file(path: Path) -> list[tuple[str, object, str]]:
    found = []
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            found += [(f.source, f.value, classify(f).kind) for f in extract(document.get("kind", ""), document)]
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in KSERVE.glob("*.yaml")))
def test_every_kserve_file_is_handled(name):
    path = KSERVE / name
    if name in BROKEN_YAML:
        with pytest.raises(yaml.YAMLError):
            list(yaml.safe_load_all(path.read_text()))
        return
    found = _extract_file(path)
    assert all(kind in ("oci", "uri") for _, _, kind in found), found  # every well-formed file yields well-formed artifacts
    if name in EXPECTED_KSERVE:
        assert sorted(found, key=repr) == sorted(EXPECTED_KSERVE[name], key=repr)


def test_kserve_storage_annotations_on_pods_and_templates_are_model_sources():
    annotations = {"internal.serving.kserve.io/storage-initializer-sourceuri": "s3://attacker/model", "other": "x"}
    pod = {"metadata": {"annotations": annotations}, "spec": {"containers": [{"name": "c", "image": "app:1"}]}}
    assert [(f.source, f.value, f.role) for f in extract("Pod", pod)] == [
        ("metadata.annotations[internal.serving.kserve.io/storage-initializer-sourceuri]", "s3://attacker/model", "model"),
        ("spec.containers[0].image", "app:1", "image"),
    ]
    deployment = {"spec": {"template": pod}}
    assert ("spec.template.metadata.annotations[internal.serving.kserve.io/storage-initializer-sourceuri]", "s3://attacker/model") in [
        (f.source, f.value) for f in extract("Deployment", deployment)
    ]


def test_llm_templates_without_images_defer_to_their_config():
    found = _extract_file(KSERVE / "llmisvc__dp-ep__deepseek-r1-gpu-rdma-roce__llm-inference-service-dp-ep-deepseek-r1-pd-gpu-p-deepep-ht-d-pplx.yaml")
    assert found == [("spec.model.uri", "pvc://llm-test-pvc-deepseek", "uri")]


def _review_body(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".yaml":
        raw = json.dumps(yaml.safe_load(raw)).encode()
    document = json.loads(raw)
    if isinstance(document, dict) and "request" not in document and "uid" in document and "operation" in document:
        # kubewarden's fixtures are bare AdmissionRequests: wrap them as the API server would.
        raw = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": document}).encode()
    return raw


EXPECTED_REVIEWS = {
    "connaisseur__01_deployment.json": ("CREATE", "Deployment", ["securesystemsengineering/alice-image:test"]),
    "connaisseur__04_cronjob.json": ("CREATE", "CronJob", ["busybox"]),
    "connaisseur__09_dply_multi_image.json": ("CREATE", "Deployment", ["busybox:1.32", "redis:alpine", "mysql:8"]),
    "connaisseur__10_update.json": ("UPDATE", "ReplicaSet", ["docker.io/library/redis:latest@sha256:" + "1" * 64]),
    "connaisseur__11_role.json": ("CREATE", "Role", []),
    "connaisseur__19_pod_initcontainer.json": ("CREATE", "Pod", ["nginx", "securesystemsengineering/charlie-image@sha256:91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff"]),
    "connaisseur__20_pod_ephemeralcontainer.json": ("CREATE", "Pod", ["securesystemsengineering/charlie-image@sha256:91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff", "nginx"]),
    "kubewarden__echo__delete_accept.json": ("DELETE", "Deployment", []),
    "kubewarden__echo__update_accept.json": ("UPDATE", "Deployment", ["nginx:latest"]),
    "kubewarden__ns-policyserver-mapper__admission_policy_create.json": ("CREATE", "AdmissionPolicy", []),
    "kubewarden__trusted-repos__pod_creation_implicit_latest.json": ("CREATE", "Pod", ["nginx"]),
    "kubewarden__verify-image-signatures__pod_creation_with_init_container.json": ("CREATE", "Pod", ["init", "nginx"]),
    "kwctl__privileged-pod-admission-review.json": ("CREATE", "Pod", ["alpine", "nginx"]),
    "linkerd2__inject-enabled-request.json": ("CREATE", "Deployment", ["nginx"]),
}
BAD_REVIEWS = {
    "connaisseur__21_broken_admission_request.json": "no uid",
    "connaisseur__25_null_request.json": "not an AdmissionReview object",
    "gatekeeper-library__psp-privileged-container__update.yaml": "no uid",
    "linkerd2__inject-enabled-response.yaml": "apiVersion None",
    "k8s-api__admission.k8s.io.v1.AdmissionReview.json": "operation 'operationValue'",
    "k8s-api__admission.k8s.io.v1beta1.AdmissionReview.yaml": "operation 'operationValue'",
}


@pytest.mark.parametrize("name", sorted(p.name for p in REVIEWS.iterdir()))
def test_every_admission_review_is_parsed_or_refused(name):
    body = _review_body(REVIEWS / name)
    if name in BAD_REVIEWS:
        with pytest.raises(ReviewError, match=BAD_REVIEWS[name]):
            parse_review(body)
        return
    request = parse_review(body)
    images = [f.value for f in extract(request.kind, request.object)]
    assert all(isinstance(i, str) for i in images)
    if name in EXPECTED_REVIEWS:
        operation, kind, expected = EXPECTED_REVIEWS[name]
        assert (request.operation, request.kind) == (operation, kind)
        assert images == expected
