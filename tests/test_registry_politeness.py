"""Registry politeness: a 429 and its Retry-After are honoured by every client of the process,
by other processes through the shared cache's backoff notes, and by a whole webhook
deployment (two real webhook processes, one real Redis, a real registry behind a proxy that
answers 429)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from signer import ModelsignError, set_throttle_board, throttled_until
from signer.oci import registry as registry_module
from signer.oci.registry import RegistryOptions
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from support.admission import pod, policy_for, review
from support.faults import FaultProxy
from support.redis_server import shared_cache_flags, start_redis
from support.webhook_server import start_webhook
from test_webhook_server import post
from webhook.admission.cache import SingleFlightCache
from webhook.admission.shared_cache import SharedVerificationCache, connect
from webhook.certs import generate

SECRET = b"p" * 32


@pytest.fixture(autouse=True)
def _fresh_throttle_state():
    registry_module._throttled.clear()
    set_throttle_board(None)
    yield
    registry_module._throttled.clear()
    set_throttle_board(None)


@pytest.fixture
def image(registry):
    with Stores() as stores:
        return push_image(stores.repository(parse_reference(f"{registry.host}/polite/app")), {"f": b"polite"}, tag="1")


def resolve(host: str, timeout: float = 3.0):
    """The manifest of polite/app:1 (a GET: the proxy's injected 429s have bodies, which a HEAD must not)."""
    with Stores(RegistryOptions(timeout_seconds=timeout, backoff_seconds=0.01)) as stores:
        return stores.repository(parse_reference(f"{host}/polite/app:1")).fetch_manifest("1")


def test_a_429_with_a_long_retry_after_stops_every_client_of_the_process(fault_proxy, image):
    fault_proxy.always, fault_proxy.retry_after = 429, "120"
    with pytest.raises(ModelsignError, match="429"):
        resolve(fault_proxy.host)
    asked = len(fault_proxy.seen)
    assert asked == 1  # Retry-After does not fit in the request's time: no retry hammering it
    assert throttled_until(fault_proxy.host) == pytest.approx(time.time() + 120, abs=5)
    fault_proxy.always = None
    with pytest.raises(ModelsignError, match="answered 429 Too Many Requests and asked modelsign to wait") as caught:
        resolve(fault_proxy.host)  # another Stores, another client: the registry is still left alone
    assert len(fault_proxy.seen) == asked
    assert caught.value.hint and "rate-limiting" in caught.value.hint


def test_a_short_retry_after_is_waited_for_then_the_request_goes_through(fault_proxy, image):
    fault_proxy.retry_after = "1"
    fault_proxy.fail_next(429)
    assert resolve(fault_proxy.host).digest == image.digest
    assert len(fault_proxy.seen) == 2  # the 429, then one request after the wait


def test_retry_after_as_an_http_date(fault_proxy, image):
    fault_proxy.always, fault_proxy.retry_after = 429, formatdate(time.time() + 90, usegmt=True)
    with pytest.raises(ModelsignError, match="429"):
        resolve(fault_proxy.host)
    assert throttled_until(fault_proxy.host) == pytest.approx(time.time() + 90, abs=5)


def test_another_process_sees_the_backoff_through_the_shared_cache(tmp_path, fault_proxy, image):
    redis_server = start_redis(tmp_path)
    try:
        key_file = tmp_path / "key"
        key_file.write_bytes(SECRET)
        fault_proxy.always, fault_proxy.retry_after = 429, "60"
        script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from signer import set_throttle_board
from webhook.admission.cache import SingleFlightCache
from webhook.admission.shared_cache import SharedVerificationCache, connect
from test_registry_politeness import resolve
set_throttle_board(SharedVerificationCache(connect({redis_server.url!r}), open({str(key_file)!r}, 'rb').read(), SingleFlightCache()))
try:
    resolve({fault_proxy.host!r})
except Exception as exc:
    print(type(exc).__name__)
"""
        other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
        assert other.stdout.strip() == "RegistryError", other.stderr
        asked = len(fault_proxy.seen)
        assert asked == 1
        set_throttle_board(SharedVerificationCache(connect(redis_server.url), SECRET, SingleFlightCache()))
        fault_proxy.always = None
        with pytest.raises(ModelsignError, match="answered 429"):
            resolve(fault_proxy.host)  # this process never saw the 429 itself
        assert len(fault_proxy.seen) == asked
    finally:
        redis_server.stop()


def test_a_deployment_backs_off_together(tmp_path, registry, key_dir, image):
    """Two webhook processes with the shared cache: once the registry answers 429 with a long
    Retry-After to one of them, the other denies at once without asking it."""
    redis_server = start_redis(tmp_path)
    proxy = FaultProxy(registry.host)
    certs = tmp_path / "certs"
    generate("modelsign-webhook", "modelsign-system", certs, extra_sans=["127.0.0.1"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, name="polite"))
    flags = shared_cache_flags(redis_server, tmp_path, SECRET)
    servers = [start_webhook(policy, certs, tmp_path, workers=1, extra=flags) for _ in range(2)]
    try:
        proxy.always, proxy.retry_after = 429, "300"
        answers = []
        for server in servers:
            with server.client() as http:
                answers.append(post(http, review("Pod", pod(f"{proxy.host}/polite/app:1"))).json()["response"])
        assert [a["allowed"] for a in answers] == [False, False]
        assert "429" in answers[0]["status"]["message"]
        assert "asked modelsign to wait" in answers[1]["status"]["message"], json.dumps(answers[1])
        assert len(proxy.seen) == 1, proxy.seen  # one request from the whole deployment
    finally:
        for server in servers:
            server.stop()
        proxy.stop()
        redis_server.stop()
