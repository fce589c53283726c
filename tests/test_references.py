from pathlib import Path

import pytest

from signer.errors import ReferenceFormatError
from signer.references import ImageReference, LayoutReference, is_loopback_host, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("acme/app", "docker.io", "acme/app", None, None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/acme/app:v1", "docker.io", "acme/app", "v1", None),
        ("registry.example.com/models/llm:1.0", "registry.example.com", "models/llm", "1.0", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app:tag", "localhost:5000", "app", "tag", None),
        ("127.0.0.1:5000/models/llm@" + DIGEST, "127.0.0.1:5000", "models/llm", None, DIGEST),
        ("10.0.0.7/team/x:1@" + DIGEST, "10.0.0.7", "team/x", "1", DIGEST),
        ("[::1]:5000/app:v2", "[::1]:5000", "app", "v2", None),
        ("Registry.Example.com/app", "registry.example.com", "app", None, None),  # hosts are lowercased: one name per host
        ("127.0.0.1:05000/app", "127.0.0.1:5000", "app", None, None),
        ("[2001:DB8::0001]:5000/app", "[2001:db8::1]:5000", "app", None, None),
        ("kit://registry.example.com/models/llm:1.0", "registry.example.com", "models/llm", "1.0", None),
        ("kit://mymodel:v1", "localhost", "mymodel", "v1", None),
        ("kit://ns/mymodel@" + DIGEST, "localhost", "ns/mymodel", None, DIGEST),
        ("oci://registry.example.com/m:1", "registry.example.com", "m", "1", None),
        ("oci+fetch://nginx", "docker.io", "library/nginx", None, None),
        ("oci+native://ghcr.io/acme/model:2", "ghcr.io", "acme/model", "2", None),
    ],
)
def test_registry_references_normalise_like_docker(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert isinstance(ref, ImageReference)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


def test_reference_helpers():
    ref = parse_reference("nginx:1.25")
    assert str(ref) == "docker.io/library/nginx:1.25"
    assert ref.cosign_identity == "index.docker.io/library/nginx"
    assert ref.api_host == "registry-1.docker.io"
    assert parse_reference("nginx").reference == "latest"
    pinned = ref.pinned(DIGEST)
    assert str(pinned) == f"docker.io/library/nginx@{DIGEST}" and pinned.reference == DIGEST
    assert parse_reference("kit://m:1").scheme == "kit"


@pytest.mark.parametrize(
    ("text", "path", "tag", "digest"),
    [
        ("oci:./store:llm-1.0", "store", "llm-1.0", None),
        ("oci:/abs/store@" + DIGEST, "/abs/store", None, DIGEST),
        ("oci:store", "store", None, None),
        ("oci:some/dir/store:v1", "some/dir/store", "v1", None),
    ],
)
def test_layout_references(text, path, tag, digest):
    ref = parse_reference(text)
    assert isinstance(ref, LayoutReference)
    assert (ref.path, ref.tag, ref.digest) == (Path(path), tag, digest)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("upper/Case", "invalid repository path component"),
        ("registry.example.com/Models/llm", "invalid repository path component"),
        ("nginx@sha256:1234", "invalid digest"),
        ("nginx@md5:" + "a" * 32, "invalid digest"),
        ("nginx:bad tag", "invalid tag"),
        ("nginx:-x", "invalid tag"),
        ("registry.example.com/", "missing repository"),
        ("a..b/c", "invalid registry host"),
        ("s3://bucket/model", "unsupported reference scheme"),
        ("oci:@" + DIGEST, "missing layout directory"),
        ("x" * 300, "longer than"),
        ("repo//double", "invalid repository path component"),
    ],
)
def test_malformed_references_get_clear_errors(text, fragment):
    with pytest.raises(ReferenceFormatError) as info:
        parse_reference(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("localhost:5000", True), ("127.0.0.1:1234", True), ("127.5.6.7", True), ("[::1]:5000", True),
     ("10.0.0.1:5000", False), ("registry.example.com", False), ("127.evil.example", False), ("127.0.0.1.nip.io:5000", False)],
)
def test_loopback_detection(host, loopback):
    assert is_loopback_host(host) is loopback
