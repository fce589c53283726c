"""Registry failures and access modes against real registries: each gives a clear message
and the right exit code (2 = environment problem, never a traceback)."""

from __future__ import annotations

import re
import time

import pytest

from conftest import run_cli, write_docker_config
from signer.errors import RegistryError
from signer.oci.registry import RegistryOptions
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from support.faults import BlackHole
from support.registry import free_port



def test_missing_tag_is_a_usage_error_naming_the_reference(capsys, registry, key_dir):
    code, _, err = run_cli(capsys, "verify", f"{registry.host}/nothing/here:1.0", "--key", key_dir / "ml-team.pub")
    assert code == 2
    assert f"{registry.host}/nothing/here:1.0 not found" in err and "hint:" in err


def test_connection_refused(capsys, key_dir):
    code, _, err = run_cli(capsys, "verify", f"127.0.0.1:{free_port()}/app:1", "--key", key_dir / "ml-team.pub", "--registry-timeout", "2")
    assert code == 2
    assert "cannot connect to registry 127.0.0.1:" in err and "check the registry address" in err


def test_server_errors_are_retried_then_reported(capsys, registry, fault_proxy, stores, key_dir):
    push_image(stores.repository(parse_reference(f"{registry.host}/faults/app")), {"f": b"x"}, tag="1")
    assert run_cli(capsys, "sign", f"{registry.host}/faults/app:1", "--key", key_dir / "ml-team.key")[0] == 0
    fault_proxy.fail_next(503, 500, 429)
    code, out, err = run_cli(capsys, "verify", f"{fault_proxy.host}/faults/app:1", "--key", key_dir / "ml-team.pub")
    assert code == 0, err
    # The first manifest request failed three times (503, 500, 429) and was retried each time.
    assert fault_proxy.seen[:4] == ["GET /v2/faults/app/manifests/1"] * 4
    fault_proxy.always = 500
    code, _, err = run_cli(capsys, "verify", f"{fault_proxy.host}/faults/app:1", "--key", key_dir / "ml-team.pub")
    assert code == 2
    assert f"registry {fault_proxy.host} answered HTTP 500" in err and "UNAVAILABLE injected failure" in err


def test_retry_count_is_bounded(registry, fault_proxy):
    fault_proxy.always = 503
    with Stores(RegistryOptions(retries=2, backoff_seconds=0.01)) as stores:
        repository = stores.repository(parse_reference(f"{fault_proxy.host}/faults/app:1"))
        with pytest.raises(Exception) as info:
            repository.fetch_manifest("1")
    assert "HTTP 503" in str(info.value)
    manifest_requests = [r for r in fault_proxy.seen if "/manifests/" in r]
    assert len(manifest_requests) == 3  # first try + 2 retries


def test_basic_auth_registry(capsys, basic_registry, key_dir, tmp_path, monkeypatch):
    name = f"{basic_registry.host}/private/app"
    code, _, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "no credentials found" in err and f"docker login {basic_registry.host}" in err
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    write_docker_config(config_dir, basic_registry.host, "alice", "not-her-password")
    code, _, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "credentials were rejected" in err
    write_docker_config(config_dir, f"https://{basic_registry.host}/v1/", "alice", "wonderland")
    with Stores() as stores:
        push_image(stores.repository(parse_reference(name)), {"f": b"private"}, tag="1")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key")[0] == 0
    code, out, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 0, err


def test_bearer_token_registry(capsys, token_registry, key_dir, tmp_path, monkeypatch):
    name = f"{token_registry.host}/tokened/app"
    code, _, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "refused the credentials" in err
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    write_docker_config(config_dir, token_registry.host, "bob", "builder")
    with Stores() as stores:
        push_image(stores.repository(parse_reference(name)), {"f": b"tokened"}, tag="1")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key", "--format", "both")[0] == 0
    code, out, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 0, err
    scopes = {request.get("scope") for request in token_registry.extra["service"].requests}
    assert "repository:tokened/app:pull" in scopes and "repository:tokened/app:pull,push" in scopes


def test_tls_registry_needs_its_ca(capsys, tls_registry, key_dir):
    name = f"{tls_registry.host}/secure/app"
    code, _, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "TLS certificate of registry" in err and "--ca-file" in err
    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        push_image(stores.repository(parse_reference(name)), {"f": b"tls"}, tag="1")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key", "--ca-file", tls_registry.ca_file)[0] == 0
    code, out, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub", "--ca-file", tls_registry.ca_file)
    assert code == 0, err
    # Explicitly insecure: TLS without verification, only because the user named the host.
    assert run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub", "--insecure-registry", "127.0.0.1:*")[0] == 0


def test_bad_ca_file(capsys, tls_registry, key_dir, tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    code, _, err = run_cli(capsys, "verify", f"{tls_registry.host}/secure/app:1", "--key", key_dir / "ml-team.pub", "--ca-file", bogus)
    assert code == 2 and "cannot load CA bundle" in err


def test_plain_http_is_refused_for_non_loopback_hosts():
    client = Stores().client(parse_reference("registry.example.com/app:1"))
    assert client._base() == "https://registry.example.com"


def test_identity_token_from_docker_config(capsys, token_registry, key_dir, tmp_path, monkeypatch):
    """`docker login` against a token service stores an OAuth2 refresh token (identitytoken)."""
    import json

    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    (config_dir / "config.json").write_text(json.dumps({"auths": {token_registry.host: {"identitytoken": "refresh-me"}}}))
    name = f"{token_registry.host}/oauth/app"
    with Stores() as stores:
        push_image(stores.repository(parse_reference(name)), {"f": b"oauth"}, tag="1")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key")[0] == 0
    assert run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")[0] == 0
    grants = [r for r in token_registry.extra["service"].requests if r.get("grant_type") == "refresh_token"]
    assert grants and grants[0]["refresh_token"] == "refresh-me"


def test_credential_helper_from_docker_config(capsys, basic_registry, key_dir, tmp_path, monkeypatch):
    """credHelpers: `docker-credential-<name> get` is run with the server on stdin."""
    import json

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-modelsigntest"
    helper.write_text('#!/bin/sh\nread server\necho "$server" > "$(dirname "$0")/asked"\nprintf \'{"ServerURL":"%s","Username":"alice","Secret":"wonderland"}\' "$server"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    (config_dir / "config.json").write_text(json.dumps({"credHelpers": {basic_registry.host: "modelsigntest"}}))
    name = f"{basic_registry.host}/helped/app"
    with Stores() as stores:
        push_image(stores.repository(parse_reference(name)), {"f": b"helper"}, tag="1")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key")[0] == 0
    assert (bin_dir / "asked").read_text().strip() == basic_registry.host
    (config_dir / "config.json").write_text(json.dumps({"credHelpers": {basic_registry.host: "absent-helper"}}))
    code, _, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "docker-credential-absent-helper is configured but not on PATH" in err


def test_malformed_docker_config(capsys, basic_registry, key_dir, tmp_path, monkeypatch):
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    (config_dir / "config.json").write_text("{not json")
    code, _, err = run_cli(capsys, "verify", f"{basic_registry.host}/x/app:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "cannot read Docker credentials" in err


def test_blob_redirects_are_followed_but_never_to_plain_http_elsewhere(capsys, registry, fault_proxy, stores, key_dir):
    push_image(stores.repository(parse_reference(f"{registry.host}/redirects/app")), {"f": b"r"}, tag="1")
    assert run_cli(capsys, "sign", f"{registry.host}/redirects/app:1", "--key", key_dir / "ml-team.key")[0] == 0
    fault_proxy.redirect_blobs_to = f"http://{registry.host}"  # storage redirect to another (loopback) origin
    code, out, err = run_cli(capsys, "verify", f"{fault_proxy.host}/redirects/app:1", "--key", key_dir / "ml-team.pub")
    assert code == 0, err
    fault_proxy.redirect_blobs_to = "http://storage.example.net"
    code, _, err = run_cli(capsys, "verify", f"{fault_proxy.host}/redirects/app:1", "--key", key_dir / "ml-team.pub")
    assert code == 2 and "refusing it" in err


def test_registry_timeout_bounds_the_whole_request_and_says_what_it_spent(capsys, key_dir):
    """A host that accepts and never answers: `--registry-timeout 3` is the whole budget of the
    command's registry request (scheme probe, attempts, backoff), not 3 s per attempt."""
    hole = BlackHole()
    try:
        started = time.monotonic()
        code, _, err = run_cli(capsys, "verify", f"{hole.host}/app:1", "--key", key_dir / "ml-team.pub", "--registry-timeout", "3")
        elapsed = time.monotonic() - started
    finally:
        hole.stop()
    assert code == 2 and elapsed < 3 + 2, (elapsed, err)
    spent = re.search(rf"registry {re.escape(hole.host)} did not answer within 3s \((\d+) attempts? over ([\d.]+)s\)", err)
    assert spent is not None, err
    assert 2.5 <= float(spent.group(2)) <= elapsed and "--registry-timeout" in err


def test_an_unreachable_registry_fails_fast_with_its_first_error():
    hole = BlackHole()
    try:
        with Stores(RegistryOptions(timeout_seconds=1)) as stores:
            repository = stores.repository(parse_reference(f"{hole.host}/app:1"))
            with pytest.raises(RegistryError) as first:
                repository.fetch_manifest("1")
            started = time.monotonic()
            with pytest.raises(RegistryError) as again:
                repository.fetch_manifest("2")
            assert time.monotonic() - started < 0.2
    finally:
        hole.stop()
    assert "did not answer within 1s" in first.value.message
    assert again.value.message.startswith(first.value.message) and "not contacted again for 5s" in again.value.message


def test_retries_and_backoff_stay_within_the_timeout(registry, fault_proxy):
    fault_proxy.always = 503
    with Stores(RegistryOptions(retries=5, backoff_seconds=1.0, timeout_seconds=2)) as stores:
        repository = stores.repository(parse_reference(f"{fault_proxy.host}/faults/app:1"))
        started = time.monotonic()
        with pytest.raises(RegistryError, match="answered HTTP 503"):
            repository.fetch_manifest("1")
        elapsed = time.monotonic() - started
    manifest_requests = [r for r in fault_proxy.seen if "/manifests/" in r]
    assert elapsed < 2.5 and 1 < len(manifest_requests) < 6, (elapsed, manifest_requests)  # retried, but no backoff past the timeout


class _Recorder:
    """A tiny HTTP server that answers every request with (status, headers) and remembers
    each request's path and Authorization header."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.seen: list[tuple[str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                recorder.seen.append((self.path, self.headers.get("Authorization")))
                body = b'{"token": "t"}' if status == 200 else b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value.replace("{self}", recorder.url))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("challenge", ['Bearer realm="{token}/token",service="evil"', 'Basic realm="storage"',
                                       'Bearer realm="{token}/token",service="evil",scope="repository:x:pull"'])
def test_a_redirect_target_that_asks_for_credentials_never_gets_the_registrys(capsys, basic_registry, key_dir, tmp_path, monkeypatch, challenge):
    """Registry A (basic auth) 307-redirects a blob to origin B; B answers 401 naming token
    service C. A's docker-login credentials must reach neither B nor C."""
    from support.faults import FaultProxy

    token_service = _Recorder(200, {"Content-Type": "application/json"})
    storage = _Recorder(401, {"WWW-Authenticate": challenge.replace("{token}", token_service.url)})
    front = FaultProxy(basic_registry.host)  # origin A: forwards to the registry, redirects blobs
    try:
        write_docker_config(tmp_path, front.host, "alice", "wonderland")
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        with Stores() as stores:
            push_image(stores.repository(parse_reference(f"{front.host}/leak/app")), {"f": b"x"}, tag="1")
        assert run_cli(capsys, "sign", f"{front.host}/leak/app:1", "--key", key_dir / "ml-team.key")[0] == 0
        front.redirect_blobs_to = storage.url
        code, _, err = run_cli(capsys, "verify", f"{front.host}/leak/app:1", "--key", key_dir / "ml-team.pub")
    finally:
        front.stop()
        storage.stop()
        token_service.stop()
    assert code != 0 and "sends a registry's credentials only to the registry itself" in err
    assert token_service.seen == []
    assert storage.seen and all(authorization is None for _, authorization in storage.seen)
