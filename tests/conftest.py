"""Shared fixtures: real registries (plain, TLS, basic auth, token auth), keys, corpus paths."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest

from signer.oci.registry import RegistryOptions
from signer.oci.stores import Stores
from signer.trust.keys import SigningKey, generate_key_pair, load_signing_key_file
from support.faults import FaultProxy
from support.pki import make_ca_and_server_cert
from support.registry import RunningRegistry, start_registry
from support.tokens import TokenService

FIXTURES = Path(__file__).parent / "fixtures"
COSIGN = FIXTURES / "cosign"
PASSWORD = "test-password"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's Docker credentials or password variables."""
    monkeypatch.setenv("MODELSIGN_PASSWORD", PASSWORD)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    for name in ("ml-team", "other-team", "second-signer"):
        generate_key_pair(directory / name, PASSWORD.encode())
    return directory


@pytest.fixture(scope="session")
def ml_key(key_dir: Path) -> SigningKey:
    return load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())


@pytest.fixture(scope="session")
def other_key(key_dir: Path) -> SigningKey:
    return load_signing_key_file(key_dir / "other-team.key", password=lambda _: PASSWORD.encode())


@pytest.fixture(scope="session")
def second_key(key_dir: Path) -> SigningKey:
    return load_signing_key_file(key_dir / "second-signer.key", password=lambda _: PASSWORD.encode())


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    workdir = tmp_path_factory.mktemp("tls-registry")
    ca, cert, key, _, _ = make_ca_and_server_cert(workdir / "pki")
    running = start_registry(workdir, tls=(cert, key), ca_file=ca)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    import bcrypt

    workdir = tmp_path_factory.mktemp("basic-registry")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"wonderland", bcrypt.gensalt(rounds=4)).decode() + "\n")
    running = start_registry(workdir, htpasswd=htpasswd)
    running.extra.update(username="alice", password="wonderland")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    workdir = tmp_path_factory.mktemp("token-registry")
    service = TokenService(workdir / "token", "bob", "builder")
    running = start_registry(workdir, token=service.registry_config())
    running.extra.update(username="bob", password="builder", service=service)
    yield running
    running.stop()
    service.stop()


@pytest.fixture
def fault_proxy(registry: RunningRegistry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry.host)
    yield proxy
    proxy.stop()


@pytest.fixture
def stores() -> Iterator[Stores]:
    with Stores(RegistryOptions(retries=1, backoff_seconds=0.01, timeout_seconds=10)) as opened:
        yield opened


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """Run `modelsign ARGV` in-process; returns (exit code, stdout, stderr)."""
    from webhook.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sign_concurrently(stores: Stores, jobs: list, signature_format) -> None:
    """Run sign_artifact for each (reference, key) job in its own thread; re-raise any failure."""
    from signer.signatures.signing import sign_artifact

    errors: list[BaseException] = []

    def sign(reference, key) -> None:
        try:
            sign_artifact(stores, reference, key, signature_format=signature_format)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def write_docker_config(directory: Path, host: str, username: str, password: str) -> None:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def copy_fixture(name: str, destination: Path) -> Path:
    target = destination / name
    shutil.copy(COSIGN / name, target)
    return target
