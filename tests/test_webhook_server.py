"""A real HTTPS client against the real uvicorn webhook (2 workers, certificates from
`modelsign certs generate`) and a real registry."""

from __future__ import annotations

import concurrent.futures
import json
import re
import ssl
import time
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURES, PASSWORD
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import sign_artifact
from signer.trust.keys import load_signing_key_file
from support.admission import pod, policy_for, review
from support.faults import FaultProxy
from support.webhook_server import start_webhook
from test_webhook_extract import BAD_REVIEWS, _review_body
from webhook.certs import generate, rotate_serving_cert


def write_policy(path: Path, key_dir: Path, extra: str = "") -> Path:
    path.write_text(policy_for(key_dir, extra, name="server-test"))
    return path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    generate("modelsign-webhook", "modelsign-system", out, extra_sans=["127.0.0.1", "localhost"])
    return out


@pytest.fixture(scope="module")
def images(registry, key_dir):
    key = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    with Stores() as stores:
        signed = push_image(stores.repository(parse_reference(f"{registry.host}/srv/signed")), {"f": b"s"}, tag="1")
        sign_artifact(stores, parse_reference(f"{registry.host}/srv/signed:1"), key)
        unsigned = push_image(stores.repository(parse_reference(f"{registry.host}/srv/unsigned")), {"f": b"u"}, tag="1")
    return {"signed": signed, "unsigned": unsigned}


@pytest.fixture(scope="module")
def server(tmp_path_factory, certs, key_dir, images):
    workdir = tmp_path_factory.mktemp("webhook")
    running = start_webhook(write_policy(workdir / "policy.yaml", key_dir), certs, workdir)
    yield running
    running.stop()


def post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/validate", content=body, headers={"Content-Type": "application/json"})


def test_signed_admitted_unsigned_denied_over_tls(server, registry, images):
    with server.client() as client:
        allowed = post(client, review("Pod", pod(f"{registry.host}/srv/signed:1"))).json()["response"]
        denied = post(client, review("Pod", pod(f"{registry.host}/srv/unsigned:1"))).json()["response"]
    assert allowed["allowed"] is True and allowed["auditAnnotations"]["policy"].startswith("server-test@sha256:")
    assert denied["allowed"] is False and denied["status"]["code"] == 403
    assert f"{registry.host}/srv/unsigned@{images['unsigned'].digest}" in denied["status"]["message"]


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "admissionreview").iterdir()))
def test_every_corpus_review_gets_an_answer_never_a_500(server, name):
    body = _review_body(FIXTURES / "admissionreview" / name)
    with server.client() as client:
        response = post(client, body)
    if name in BAD_REVIEWS:
        assert response.status_code == 400 and "error" in response.json()
        return
    assert response.status_code == 200
    answer = response.json()
    request = json.loads(body)["request"]
    assert answer["kind"] == "AdmissionReview" and answer["apiVersion"] == json.loads(body)["apiVersion"]
    assert answer["response"]["uid"] == request["uid"]
    assert isinstance(answer["response"]["allowed"], bool)
    if not answer["response"]["allowed"]:
        assert answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"null", b"[]", b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
     b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}', b"[" * 100000, b"\xff\xfe\x00"],
)
def test_malformed_bodies_are_400(server, body):
    with server.client() as client:
        response = post(client, body)
    assert response.status_code == 400 and response.json()["error"]


def test_oversized_body_is_400(server):
    with server.client() as client:
        response = post(client, b'{"x":"' + b"a" * (5 * 1024 * 1024) + b'"}')
    assert response.status_code == 400 and "larger than" in response.json()["error"]


def test_hostile_shapes_inside_a_valid_review_are_denied_not_crashed(server):
    shapes = [
        {"kind": "Pod", "spec": {"containers": "not-a-list"}},
        {"kind": "Pod", "spec": {"containers": [{"image": 12}]}},
        {"kind": "Pod", "spec": {"containers": [{"image": ""}, None, 5]}},
        {"kind": "InferenceService", "spec": {"predictor": {"model": {"storageUri": ["x"]}}}},
        {"kind": "CronJob", "spec": {"jobTemplate": "x"}},
    ]
    with server.client() as client:
        for shape in shapes:
            response = post(client, review(shape["kind"], shape))
            assert response.status_code == 200, response.text
            assert isinstance(response.json()["response"]["allowed"], bool)


def test_health_ready_and_metrics(server, registry):
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["ready"] is True and ready["policy"] == "server-test" and ready["engine"] == "rego" and ready["keys"] == ["ml-team"]
        post(client, review("Pod", pod(f"{registry.host}/srv/signed:1")))
        text = client.get("/metrics").text
    for name in ("modelsign_admission_decisions_total", "modelsign_admission_duration_seconds_bucket", "modelsign_verification_cache_lookups_total", "modelsign_registry_errors_total"):
        assert name in text


def _scrape_all_workers(server, attempts: int = 40) -> dict[str, str]:
    """/metrics is per worker process; fresh connections reach the others."""
    seen: dict[str, str] = {}
    for _ in range(attempts):
        with server.client() as client:
            text = client.get("/metrics").text
        worker = re.search(r'worker="(\d+)"', text).group(1)
        seen[worker] = text
        if len(seen) == 2:
            break
    return seen


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_burst_no_errors_and_single_flight_is_visible(tmp_path, certs, key_dir, registry, images):
    """A slow registry (proxy adds 300 ms per request) makes the first verification slow, so
    a burst of identical requests must share it instead of verifying 64 times."""
    proxy = FaultProxy(registry.host)
    proxy.delay_seconds = 0.3
    running = start_webhook(write_policy(tmp_path / "policy.yaml", key_dir), certs, tmp_path)
    try:
        body = review("Pod", pod(f"{proxy.host}/srv/signed@{images['signed'].digest}"))

        def one(_: int) -> tuple[int, bool]:
            with running.client() as client:
                response = post(client, body)
                return response.status_code, response.json()["response"]["allowed"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(one, range(64)))
        assert results == [(200, True)] * 64
        workers = _scrape_all_workers(running)
        misses = sum(_counter(t, "modelsign_verification_cache_lookups_total", result="miss") for t in workers.values())
        shared = sum(_counter(t, "modelsign_verification_cache_lookups_total", result="shared") for t in workers.values())
        hits = sum(_counter(t, "modelsign_verification_cache_lookups_total", result="hit") for t in workers.values())
        assert misses <= len(workers) and shared > 0, (misses, shared, hits)
        signature_fetches = [r for r in proxy.seen if r.endswith(".sig")]
        assert len(signature_fetches) <= 2  # one verification per worker process, not per request
    finally:
        running.stop()
        proxy.stop()


def test_bad_config_reload_keeps_the_last_good_policy(tmp_path, certs, key_dir, registry, images):
    policy = write_policy(tmp_path / "policy.yaml", key_dir)
    running = start_webhook(policy, certs, tmp_path, workers=1)
    try:
        with running.client() as client:
            good_hash = client.get("/readyz").json()["policyHash"]
            policy.write_text(policy.read_text().replace("signedBy: [ml-team]", "signedBy: [nobody]"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not client.get("/readyz").json()["lastReloadError"]:
                time.sleep(0.2)
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["policyHash"] == good_hash
            assert "unknown key 'nobody'" in ready.json()["lastReloadError"]
            assert post(client, review("Pod", pod(f"{registry.host}/srv/signed:1"))).json()["response"]["allowed"] is True
            write_policy(policy, key_dir, extra="mode: warn")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and client.get("/readyz").json()["policyHash"] == good_hash:
                time.sleep(0.2)
            ready = client.get("/readyz").json()
            assert ready["policyHash"] != good_hash and ready["lastReloadError"] is None
            warned = post(client, review("Pod", pod(f"{registry.host}/srv/unsigned:1"))).json()["response"]
            assert warned["allowed"] is True and warned["warnings"]
        assert "policy_load_failed" in running.log()
    finally:
        running.stop()


def test_without_a_valid_policy_everything_is_denied(tmp_path, certs, registry):
    broken = tmp_path / "policy.yaml"
    broken.write_text("apiVersion: modelsign.dev/v1alpha1\nkind: AdmissionPolicy\nmode: maybe\n")
    running = start_webhook(broken, certs, tmp_path, workers=1, expect_ready=False)
    try:
        with running.client() as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "mode" in ready.json()["lastReloadError"]
            answer = post(client, review("Pod", pod(f"{registry.host}/srv/signed:1"))).json()["response"]
        assert answer["allowed"] is False and "no valid policy loaded" in answer["status"]["message"]
    finally:
        running.stop()


def _serving_serial(server) -> int:
    import socket

    host, port = server.url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with socket.create_connection((host, int(port))) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
        from cryptography import x509

        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_rotated_certificates_are_served_without_a_restart(tmp_path, certs, key_dir):
    import shutil

    own = tmp_path / "certs"
    shutil.copytree(certs, own)
    running = start_webhook(write_policy(tmp_path / "policy.yaml", key_dir), own, tmp_path, workers=1, env={"MODELSIGN_CERT_RELOAD_SECONDS": "0.3"})
    try:
        before = _serving_serial(running)
        rotate_serving_cert("modelsign-webhook", "modelsign-system", own, extra_sans=["127.0.0.1"])
        deadline = time.monotonic() + 10
        after = before
        while time.monotonic() < deadline and after == before:
            time.sleep(0.2)
            after = _serving_serial(running)
        assert after != before
        assert running.process.poll() is None
        with running.client() as client:
            assert client.get("/healthz").status_code == 200
    finally:
        running.stop()


# Registry text reaches messages (rejection reasons quote media types and annotations). A lone
# surrogate there once made the response unencodable: HTTP 400 and no AdmissionReview answer,
# which `failurePolicy: Ignore` would turn into an admission.
REGISTRY_TEXT = ["\ud800", "a\udfffb", "\u2028\u2029", "\x00\x1b[31m", "\u202eevil", 'X"}], "allowed": true, "zz": [{"q": "Y']


def test_hostile_registry_text_is_answered_as_a_printable_deny(server, registry):
    from signer.formats import mediatypes as mt
    from signer.formats.digests import signature_tag
    from signer.oci.manifest import Descriptor

    def descriptor(d: Descriptor) -> dict:
        return {"mediaType": d.media_type, "digest": d.digest, "size": d.size, **({"annotations": d.annotations} if d.annotations else {})}

    images = []
    with Stores() as stores:
        for index, hostile in enumerate(REGISTRY_TEXT):
            repository = stores.repository(parse_reference(f"{registry.host}/scratch/hostile{index}"))
            digest = push_image(repository, {"f": f"h{index}".encode()}, tag="1").digest
            config, payload = b"{}", f"payload-{index}".encode()
            repository.push_blob(config)
            repository.push_blob(payload)
            layers = [Descriptor.for_content(hostile, payload),
                      Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, payload, annotations={mt.ANNOTATION_SIGNATURE: "!!" + hostile})]
            manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                        "config": descriptor(Descriptor.for_content("application/vnd.oci.image.config.v1+json", config)),
                        "layers": [descriptor(layer) for layer in layers]}
            repository.push_manifest(json.dumps(manifest).encode(), mt.OCI_MANIFEST, tag=signature_tag(digest))  # ensure_ascii: \ud800 escapes
            images.append(f"{registry.host}/scratch/hostile{index}@{digest}")
    with server.client() as client:
        for image, hostile in zip(images, REGISTRY_TEXT):
            answer = post(client, review("Pod", pod(image)))
            assert answer.status_code == 200, (hostile, answer.text)
            response = answer.json()["response"]
            assert response["allowed"] is False, hostile
            message = response["status"]["message"]
            assert "no signature by key" in message
            assert not any(ch in message for ch in "\ud800\udfff\u2028\u2029\x00\x1b\u202e"), (hostile, message)
            if hostile.isprintable():
                assert hostile in message  # printable text is quoted as it is


def test_printable_shows_controls_and_lone_surrogates_as_escapes():
    from signer import printable

    assert printable("plain text/type é😀") == "plain text/type é😀"
    assert printable("a\ud800b") == "a\\ud800b"
    assert printable("x\x00y\u202ez\n") == "x\\u0000y\\u202ez\\u000a"
    printable("\udfff" * 3).encode("utf-8")  # always encodable
