"""Sign and verify against Debian's real docker-registry: images, an index, a ModelKit, and attacks."""

from __future__ import annotations

import base64
import json
import os

import pytest

from conftest import COSIGN, run_cli, sign_concurrently
from signer.formats import mediatypes as mt
from signer.formats.bundles import build_key_bundle
from signer.formats.digests import referrers_fallback_tag, signature_tag
from signer.formats.dsse import sign_envelope
from signer.formats.intoto import encode_statement, subject_for_digest
from signer.formats.legacy import signature_image_config
from signer.modelkit.pack import pack_modelkit
from signer.oci.manifest import Descriptor, encode_image_manifest
from signer.oci.referrers import attach_referrer, list_referrers
from signer.oci.samples import push_image, push_index
from signer.references import parse_reference
from signer.signatures.signing import SignatureFormat, sign_artifact
from signer.signatures.verification import verify_signatures



def _image(stores, registry, repo: str, tag: str | None, content: bytes = b"v1") -> tuple[str, Descriptor]:
    ref = parse_reference(f"{registry.host}/{repo}" + (f":{tag}" if tag else ""))
    descriptor = push_image(stores.repository(ref), {"app/file": content + os.urandom(8)}, tag=tag)
    return f"{registry.host}/{repo}", descriptor


def test_sign_and_verify_an_image_with_the_cli(capsys, stores, registry, key_dir):
    name, image = _image(stores, registry, "apps/web", "1.0")
    code, out, err = run_cli(capsys, "sign", f"{name}:1.0", "--key", key_dir / "ml-team.key")
    assert code == 0, err
    assert f"Signed {name}@{image.digest}" in out
    code, out, err = run_cli(capsys, "verify", f"{name}:1.0", "--key", key_dir / "ml-team.pub")
    assert code == 0, err
    assert f"Verified: {name}@{image.digest}" in out and "signed (legacy) by ml-team" in out
    # The legacy signature lives at the cosign tag, with the payload cosign would write.
    repository = stores.repository(parse_reference(name))
    assert signature_tag(image.digest) in repository.list_tags()
    sig_manifest = repository.fetch_manifest(signature_tag(image.digest))
    payload = json.loads(repository.fetch_blob(sig_manifest.layers[0].digest))
    assert payload["critical"]["identity"]["docker-reference"] == name
    assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
    assert repository.fetch_blob(sig_manifest.config.digest) == signature_image_config([sig_manifest.layers[0].digest])


def test_second_signer_appends_and_resigning_is_idempotent(stores, registry, ml_key, second_key):
    name, image = _image(stores, registry, "apps/multi", "1")
    ref = parse_reference(f"{name}:1")
    sign_artifact(stores, ref, ml_key)
    sign_artifact(stores, ref, second_key)
    again = sign_artifact(stores, ref, ml_key)
    assert again.written == () and len(again.unchanged) == 1
    repository = stores.repository(ref)
    assert len(repository.fetch_manifest(signature_tag(image.digest)).layers) == 2
    for key in (ml_key, second_key):
        report = verify_signatures(repository, image.digest, [key.public], reference=name)
        assert [v.signer for v in report.verified] == [key.name]
        assert len(report.rejected) == 1  # the other signer's layer, named with its reason


def test_bundle_format_writes_a_cosign_v3_referrer(stores, registry, ml_key):
    name, image = _image(stores, registry, "apps/bundled", "2.0")
    ref = parse_reference(f"{name}:2.0")
    result = sign_artifact(stores, ref, ml_key, signature_format=SignatureFormat.BUNDLE, annotations={"team": "ml"})
    repository = stores.repository(ref)
    assert signature_tag(image.digest) not in repository.list_tags()  # bundle only
    (entry,) = list_referrers(repository, image.digest, mt.SIGSTORE_BUNDLE_V03)
    assert referrers_fallback_tag(image.digest) in repository.list_tags()  # Debian's registry has no referrers API
    referrer = repository.fetch_manifest(entry.digest)
    assert result.written == (f"{registry.host}/apps/bundled@{entry.digest}",)
    assert referrer.artifact_type == mt.SIGSTORE_BUNDLE_V03
    assert (referrer.config.media_type, referrer.config.digest, referrer.config.size) == (mt.OCI_EMPTY, mt.OCI_EMPTY_DIGEST, 2)
    assert referrer.subject == Descriptor(media_type=image.media_type, digest=image.digest, size=image.size)
    assert referrer.annotations[mt.ANNOTATION_BUNDLE_CONTENT] == "dsse-envelope"
    assert referrer.annotations[mt.ANNOTATION_BUNDLE_PREDICATE] == mt.COSIGN_SIGN_PREDICATE
    assert mt.ANNOTATION_CREATED in referrer.annotations
    report = verify_signatures(repository, image.digest, [ml_key.public], reference=name, required_annotations={"team": "ml"})
    assert [(v.form, v.annotations) for v in report.verified] == [("bundle", {"team": "ml"})]


def test_both_formats_and_required_annotations(capsys, stores, registry, key_dir):
    name, _ = _image(stores, registry, "apps/both", "3")
    assert run_cli(capsys, "sign", f"{name}:3", "--key", key_dir / "ml-team.key", "--format", "both", "-a", "env=prod")[0] == 0
    code, out, _ = run_cli(capsys, "verify", f"{name}:3", "--key", key_dir / "ml-team.pub", "-a", "env=prod", "--output", "json")
    body = json.loads(out)
    assert code == 0 and sorted(s["form"] for s in body["signatures"]) == ["bundle", "legacy"]
    code, _, err = run_cli(capsys, "verify", f"{name}:3", "--key", key_dir / "ml-team.pub", "-a", "env=dev")
    assert code == 1 and "lacks required annotation(s) env=dev" in err


def test_image_index_is_signed_by_its_own_digest(stores, registry, ml_key):
    repo_ref = parse_reference(f"{registry.host}/apps/multiarch")
    repository = stores.repository(repo_ref)
    amd = push_image(repository, {"f": b"amd"}, tag=None)
    arm = push_image(repository, {"f": b"arm"}, tag=None, architecture="arm64")
    index = push_index(repository, {"amd64": amd, "arm64": arm}, tag="latest")
    sign_artifact(stores, parse_reference(f"{registry.host}/apps/multiarch:latest"), ml_key, signature_format=SignatureFormat.BOTH)
    assert verify_signatures(repository, index.digest, [ml_key.public], reference="x").ok
    # A child manifest is not covered by the index signature.
    assert not verify_signatures(repository, amd.digest, [ml_key.public], reference="x").ok


def test_modelkit_round_trip_reports_the_kitfile(capsys, stores, registry, key_dir, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.safetensors").write_bytes(os.urandom(4096))
    (tmp_path / "code.py").write_text("print(1)\n")
    kitfile = {"manifestVersion": "1.0.0", "package": {"name": "llm", "version": "1.0"}, "model": {"name": "llm", "path": "./model"}, "code": [{"path": "./code.py"}]}
    kit = pack_modelkit(stores.repository(parse_reference(f"{registry.host}/models/llm")), tmp_path, kitfile, tag="1.0")
    assert run_cli(capsys, "sign", f"kit://{registry.host}/models/llm:1.0", "--key", key_dir / "ml-team.key", "--format", "both")[0] == 0
    code, out, err = run_cli(capsys, "verify", f"kit://{registry.host}/models/llm:1.0", "--key", key_dir / "ml-team.pub", "--output", "json")
    body = json.loads(out)
    assert code == 0, err
    assert body["digest"] == kit.digest
    assert body["modelKit"] == {"package_name": "llm", "package_version": "1.0", "model_name": "llm", "layer_count": 2, "format": "kitops"}
    code, out, _ = run_cli(capsys, "verify", f"kit://{registry.host}/models/llm@{kit.digest}", "--key", key_dir / "ml-team.pub", "--describe")
    assert code == 0 and "ModelKit: package llm version 1.0" in out


def test_digest_verification_fetches_only_signature_objects(capsys, stores, registry, key_dir):
    name, image = _image(stores, registry, "apps/quiet", "1")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key", "--format", "both")[0] == 0
    offset = registry.log_offset()
    code, _, err = run_cli(capsys, "verify", f"{name}@{image.digest}", "--key", key_dir / "ml-team.pub")
    assert code == 0, err
    requests = registry.requests_since(offset)
    assert any(signature_tag(image.digest) in r for r in requests), requests
    assert not any(r.endswith(f"/manifests/{image.digest}") for r in requests), requests
    config_and_layers = [d.digest for d in stores.repository(parse_reference(name)).fetch_manifest(image.digest).layers]
    assert not any(digest in r for r in requests for digest in config_and_layers)


# -- attacks ----------------------------------------------------------------------------


def test_another_key_fails_naming_the_key_that_signed(capsys, stores, registry, key_dir, ml_key):
    name, image = _image(stores, registry, "attacks/otherkey", "1")
    run_cli(capsys, "sign", f"{name}:1", "--key", key_dir / "ml-team.key")
    code, out, err = run_cli(capsys, "verify", f"{name}:1", "--key", key_dir / "other-team.pub")
    assert code == 1
    assert f"{name}@{image.digest} is signed (1 signature(s)), but not by other-team" in err
    assert "signature not made by any trusted key" in out  # the rejection, listed with the result
    assert f"it was signed by ml-team (key id {ml_key.public.key_id}" in err and "sign it with" not in err


def test_signature_moved_to_another_image_is_rejected(stores, registry, ml_key):
    name, image_a = _image(stores, registry, "attacks/moved", "a", b"A")
    _, image_b = _image(stores, registry, "attacks/moved", "b", b"B")
    sign_artifact(stores, parse_reference(f"{name}:a"), ml_key)
    repository = stores.repository(parse_reference(name))
    stolen = repository.fetch_manifest(signature_tag(image_a.digest))
    repository.push_manifest(stolen.raw, stolen.media_type, tag=signature_tag(image_b.digest))
    report = verify_signatures(repository, image_b.digest, [ml_key.public], reference=name)
    assert not report.ok
    assert f"signature is for {image_a.digest}, not {image_b.digest}" in report.rejected[0].reason


def test_tag_repointed_after_signing(capsys, stores, registry, key_dir):
    name, signed = _image(stores, registry, "attacks/repoint", "prod", b"good")
    run_cli(capsys, "sign", f"{name}:prod", "--key", key_dir / "ml-team.key")
    _, evil = _image(stores, registry, "attacks/repoint", "prod", b"evil")
    code, _, err = run_cli(capsys, "verify", f"{name}:prod", "--key", key_dir / "ml-team.pub")
    assert code == 1 and evil.digest in err and "no signatures found" in err
    assert run_cli(capsys, "verify", f"{name}@{signed.digest}", "--key", key_dir / "ml-team.pub")[0] == 0


def _rewrite_signature_layer(repository, digest: str, *, signature: str | None = None, payload: bytes | None = None) -> None:
    manifest = repository.fetch_manifest(signature_tag(digest))
    layer = manifest.layers[0]
    content = payload if payload is not None else repository.fetch_blob(layer.digest)
    annotations = dict(layer.annotations)
    if signature is not None:
        annotations[mt.ANNOTATION_SIGNATURE] = signature
    repository.push_blob(content)
    new_layer = Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, content, annotations=annotations)
    config = signature_image_config([new_layer.digest])
    repository.push_blob(config)
    repository.push_manifest(encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), [new_layer]), mt.OCI_MANIFEST, tag=signature_tag(digest))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncated-signature", "signature not made by any trusted key"),
        ("garbled-signature", "not valid base64 (garbled signature)"),
        ("truncated-payload", "not valid JSON"),
        ("flipped-payload-byte", "signature not made by any trusted key"),
    ],
)
def test_damaged_signature_layers_fail_cleanly(stores, registry, ml_key, damage, reason):
    name, image = _image(stores, registry, f"attacks/damaged-{damage}", "1")
    sign_artifact(stores, parse_reference(f"{name}:1"), ml_key)
    repository = stores.repository(parse_reference(name))
    layer = repository.fetch_manifest(signature_tag(image.digest)).layers[0]
    original_sig = layer.annotations[mt.ANNOTATION_SIGNATURE]
    payload = repository.fetch_blob(layer.digest)
    if damage == "truncated-signature":
        _rewrite_signature_layer(repository, image.digest, signature=base64.b64encode(base64.b64decode(original_sig)[:20]).decode())
    elif damage == "garbled-signature":
        _rewrite_signature_layer(repository, image.digest, signature="%%not-base64%%")
    elif damage == "truncated-payload":
        _rewrite_signature_layer(repository, image.digest, payload=payload[: len(payload) // 2])
    else:
        _rewrite_signature_layer(repository, image.digest, payload=payload.replace(b'"optional":null', b'"optional":{}'))
    report = verify_signatures(repository, image.digest, [ml_key.public], reference=name)
    assert not report.ok and reason in report.rejected[0].reason


def test_an_attestation_by_the_trusted_key_is_not_a_signature(stores, registry, ml_key):
    name, image = _image(stores, registry, "attacks/attestation", "1")
    repository = stores.repository(parse_reference(name))
    statement = encode_statement([subject_for_digest(image.digest)], "https://slsa.dev/provenance/v1", {"builder": "x"})
    bundle = build_key_bundle(sign_envelope(mt.INTOTO_PAYLOAD, statement, ml_key), ml_key.public.key_id)
    repository.push_blob(bundle)
    repository.push_blob(b"{}")
    annotations = {mt.ANNOTATION_BUNDLE_PREDICATE: "https://slsa.dev/provenance/v1"}
    manifest = encode_image_manifest(
        Descriptor(media_type=mt.OCI_EMPTY, digest=mt.OCI_EMPTY_DIGEST, size=2),
        [Descriptor.for_content(mt.SIGSTORE_BUNDLE_V03, bundle)],
        artifact_type=mt.SIGSTORE_BUNDLE_V03,
        subject=image,
        annotations=annotations,
    )
    attach_referrer(repository, manifest, artifact_type=mt.SIGSTORE_BUNDLE_V03, annotations=annotations, subject_digest=image.digest)
    report = verify_signatures(repository, image.digest, [ml_key.public], reference=name)
    assert not report.ok
    assert "attestation of type https://slsa.dev/provenance/v1 (not a signature)" in report.ignored[0]


def test_concurrent_referrer_writers_do_not_lose_entries(stores, registry, ml_key, second_key, other_key):
    name, image = _image(stores, registry, "race/referrers", "1")
    ref = parse_reference(f"{name}:1")
    sign_concurrently(stores, [(ref, k) for k in (ml_key, second_key, other_key)], SignatureFormat.BUNDLE)
    assert len(list_referrers(stores.repository(ref), image.digest, mt.SIGSTORE_BUNDLE_V03)) == 3


def test_golden_cosign_signatures_verify_from_a_real_registry(capsys, stores, registry):
    """Push connaisseur's real cosign .sig manifests (and their payload blobs) under the
    cosign tags; verify by digest without the images themselves being present."""
    repository = stores.repository(parse_reference(f"{registry.host}/securesystemsengineering/testimage"))
    cases = {
        "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81": ("d8ee807d96efe7441b132967ad94eaffbc0172a763e69f2cd8df8f583f0ba0d4", ["alice"]),
        "sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533": ("7248e52a7da336ff63192f2c0a8f12562b0d5368e9cde6ab292cbb4604074f28", ["alice", "bob", "charlie"]),
    }
    for digest, (payload_hex, signers) in cases.items():
        raw = (COSIGN / f"connaisseur__sig-manifest__{digest.replace(':', '-')}.sig.json").read_bytes()
        manifest = json.loads(raw)
        payload = (COSIGN / f"connaisseur__payload__sha256-{payload_hex}.json").read_bytes()
        repository.push_blob(payload)
        repository.push_blob(signature_image_config([layer["digest"] for layer in manifest["layers"]]))
        repository.push_manifest(raw, mt.OCI_MANIFEST, tag=signature_tag(digest))
        for signer in signers:
            code, out, err = run_cli(capsys, "verify", f"{registry.host}/securesystemsengineering/testimage@{digest}", "--key", COSIGN / f"connaisseur__{signer}.key")
            assert code == 0, err
            assert f"signed (legacy) by connaisseur__{signer}" in out
            assert "docker-reference index.docker.io/securesystemsengineering/testimage" in out
        code, _, _ = run_cli(capsys, "verify", f"{registry.host}/securesystemsengineering/testimage@{digest}", "--key", COSIGN / "kwctl__cosign1.pub")
        assert code == 1
    # All three keys at once: three verified signatures on the multi-signer manifest.
    report = verify_signatures(
        repository,
        "sha256:bfec161fecb0a887df7cb85e4da327c65986ccda7060cf3cd92171c6c90d7533",
        [__import__("signer.trust.keys", fromlist=["x"]).load_public_key_file(COSIGN / f"connaisseur__{n}.key") for n in ("alice", "bob", "charlie")],
        reference="testimage",
    )
    assert sorted(v.signer for v in report.verified) == ["connaisseur__alice", "connaisseur__bob", "connaisseur__charlie"]


def test_golden_keys_sign_through_the_registry(capsys, stores, registry, monkeypatch):
    name, image = _image(stores, registry, "golden/keys", "1")
    monkeypatch.setenv("MODELSIGN_PASSWORD", "kubewarden")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", COSIGN / "kwctl__cosign1.key")[0] == 0
    monkeypatch.delenv("MODELSIGN_PASSWORD")
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    assert run_cli(capsys, "sign", f"{name}:1", "--key", COSIGN / "policy-controller__examples-cosign.key")[0] == 0
    for pub in ("kwctl__cosign1.pub", "policy-controller__examples-cosign.pub"):
        assert run_cli(capsys, "verify", f"{name}@{image.digest}", "--key", COSIGN / pub)[0] == 0


def test_chunked_blob_upload_and_tag_pagination(stores, registry, tmp_path):
    repository = stores.repository(parse_reference(f"{registry.host}/big/blob"))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024 + 123))  # three 8 MiB chunks
    digest = repository.push_blob_file(big)
    assert repository.has_blob(digest)
    assert repository.fetch_blob(digest, max_bytes=32 * 1024 * 1024) == big.read_bytes()
    for index in range(5):
        push_image(repository, {"f": str(index).encode()}, tag=f"t{index}")
    assert sorted(repository.list_tags(page_size=2)) == [f"t{i}" for i in range(5)]


def test_concurrent_legacy_signers_keep_every_layer(stores, registry, ml_key, second_key, other_key):
    name, image = _image(stores, registry, "race/legacy", "1")
    ref = parse_reference(f"{name}:1")
    sign_concurrently(stores, [(ref, k) for k in (ml_key, second_key, other_key)], SignatureFormat.LEGACY)
    report = verify_signatures(stores.repository(ref), image.digest, [ml_key.public, second_key.public, other_key.public], reference=name)
    assert sorted(v.signer for v in report.verified) == sorted([ml_key.name, second_key.name, other_key.name])
