"""Repository-scoped rules cannot be dodged by copying a digest to another repository.

Found by trying to break it: every artifact needs ml-team's signature and `models/**` also
needs a prod approval. Digest D, signed as `models/llm` but not approved, was copied with its
`.sig` to `scratch/llm` (where the attacker may push) and admitted as `scratch/llm@D`. Now the
rules of every name D's verified signatures carry apply too; `requireSignedReference` goes
further and counts a signature only under its signed name (or a mirror of it).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conftest import PASSWORD
from signer.evidence.approvals import approval_predicate
from signer.formats import mediatypes as mt
from signer.formats.digests import attestation_tag, signature_tag
from signer.oci.repository import Repository
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.attestations import attest
from signer.signatures.signing import SignatureFormat, sign_artifact
from signer.trust.keys import generate_key_pair, load_signing_key_file
from support.admission import pod, review
from webhook.admission.config import PolicyError, parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review
from webhook.admission.signed_names import normalised_name, same_repository


def copy_manifest(source: Repository, target: Repository, reference: str, *, tag: str | None = None) -> None:
    """What `crane copy` does: the blobs (or child manifests of an index), then the same bytes."""
    manifest = source.fetch_manifest(reference)
    assert manifest is not None
    for child in manifest.manifests:
        copy_manifest(source, target, child.digest)
    for blob in ([manifest.config] if manifest.config else []) + list(manifest.layers):
        target.push_blob(source.fetch_blob(blob.digest))
    target.push_manifest(manifest.raw, manifest.media_type, tag=tag)


def copy_signed(stores: Stores, source: str, target: str, digest: str, *, tags: tuple[str, ...] = ()) -> None:
    """Copy a digest and the cosign objects beside it (.sig, .att) to another repository."""
    src, dst = stores.repository(parse_reference(source)), stores.repository(parse_reference(target))
    copy_manifest(src, dst, digest)
    for tag in (signature_tag(digest), attestation_tag(digest), *tags):
        if src.fetch_manifest(tag) is not None:
            copy_manifest(src, dst, tag, tag=tag)


@pytest.fixture(scope="module")
def approver(tmp_path_factory):
    directory = tmp_path_factory.mktemp("approver")
    generate_key_pair(directory / "approver", PASSWORD.encode())
    return directory


@pytest.fixture(scope="module")
def images(registry, tls_registry, key_dir, approver):
    """D signed as models/llm (legacy), copied to scratch/llm and to another registry; E signed
    as a bundle (no name); F signed and approved for prod."""
    ml = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    approve = load_signing_key_file(approver / "approver.key", password=lambda _: PASSWORD.encode())
    host, other = registry.host, tls_registry.host
    found = {}
    from signer.oci.registry import RegistryOptions

    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        for name, payload in (("llm", b"d"), ("bundled", b"e"), ("approved", b"f")):
            reference = parse_reference(f"{host}/models/{name}:1")
            found[name] = push_image(stores.repository(reference), {"w": payload}, tag="1").digest
            fmt = SignatureFormat.BUNDLE if name == "bundled" else SignatureFormat.LEGACY
            sign_artifact(stores, reference, ml, signature_format=fmt)
        now = datetime.now(timezone.utc)
        attest(stores, parse_reference(f"{host}/models/approved@{found['approved']}"), approve, mt.APPROVAL_PREDICATE,
               approval_predicate(decision="approved", environment="prod", namespaces=["*"], approver="alice", requester="bob",
                                  ticket="CHG-1", reason="ok", now=now, not_before=None, expires_in_seconds=3600))
        for name in ("llm", "approved"):
            copy_signed(stores, f"{host}/models/{name}", f"{host}/scratch/{name}", found[name])
            copy_signed(stores, f"{host}/models/{name}", f"{other}/scratch/{name}", found[name])
            copy_signed(stores, f"{host}/models/{name}", f"{other}/models/{name}", found[name])
        for tag in (f"sha256-{found['bundled'].split(':')[1]}",):  # the bundle's referrers fallback index
            copy_signed(stores, f"{host}/models/bundled", f"{host}/scratch/bundled", found["bundled"], tags=(tag,))
    return {"host": host, "other": other, **found}


def pipeline_for(key_dir, approver, tls_registry, images, extra: str = "") -> AdmissionPipeline:
    text = f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
allowedRegistries: ["127.0.0.1:*"]
registry: {{caFile: {tls_registry.ca_file}}}
trustedKeys:
  ml-team: {{file: {key_dir / 'ml-team.pub'}}}
  approver: {{file: {approver / 'approver.pub'}}}
rules:
  - name: everything-signed
    require: {{signedBy: [ml-team]}}
  - name: models-approved
    artifacts: ["{images['host']}/models/**"]
    require: {{approval: {{signedBy: [approver], environment: prod}}}}
{extra}
"""
    return AdmissionPipeline(parse_policy(text, source="names"))


def decide(pipeline: AdmissionPipeline, image: str):
    return pipeline.decide(parse_review(review("Pod", pod(image))))


@pytest.fixture
def default(key_dir, approver, tls_registry, images):
    built = pipeline_for(key_dir, approver, tls_registry, images)
    yield built
    built.close()


@pytest.mark.parametrize("where", ["host/scratch", "other/scratch", "other/models"])
def test_a_copy_keeps_the_rules_of_the_name_it_was_signed_for(default, images, where):
    registry, repository = where.split("/")
    image = f"{images[registry]}/{repository}/llm@{images['llm']}"
    decision = decide(default, image)
    assert not decision.allowed, decision.message
    (violation,) = decision.violations
    assert violation["code"] == "approval-missing" and violation["rule"] == "models-approved"
    assert decision.artifacts[0]["signedNames"] == [f"{images['host']}/models/llm"]


def test_the_original_is_denied_the_same_way_and_an_approval_admits_every_copy(default, images):
    assert [v["code"] for v in decide(default, f"{images['host']}/models/llm@{images['llm']}").violations] == ["approval-missing"]
    for name in (f"{images['host']}/models", f"{images['host']}/scratch", f"{images['other']}/scratch"):
        decision = decide(default, f"{name}/approved@{images['approved']}")
        assert decision.allowed, decision.message


def test_a_nameless_bundle_signature_binds_the_digest_only(default, images):
    """cosign v3 bundle statements name no repository: the copy is judged by where it is
    pulled from (README: sign legacy or both, or require the signed reference)."""
    decision = decide(default, f"{images['host']}/scratch/bundled@{images['bundled']}")
    assert decision.allowed and decision.artifacts[0]["signedNames"] == []


@pytest.fixture
def strict(key_dir, approver, tls_registry, images):
    built = pipeline_for(key_dir, approver, tls_registry, images, f"""
requireSignedReference: true
imageMirrors:
  - source: {images['host']}/models
    mirrors: ["{images['other']}/models"]
""")
    yield built
    built.close()


def test_require_signed_reference_counts_signatures_only_under_their_name(strict, images):
    copy = decide(strict, f"{images['host']}/scratch/approved@{images['approved']}")
    assert not copy.allowed and [v["code"] for v in copy.violations] == ["not-signed"]
    assert f"name {images['host']}/models/approved, not {images['host']}/scratch/approved, and requireSignedReference is on" in copy.message
    assert decide(strict, f"{images['host']}/models/approved@{images['approved']}").allowed
    mirrored = decide(strict, f"{images['other']}/models/approved@{images['approved']}")
    assert mirrored.allowed, mirrored.message
    assert not decide(strict, f"{images['other']}/scratch/approved@{images['approved']}").allowed


def test_require_signed_reference_refuses_nameless_signatures(strict, images):
    decision = decide(strict, f"{images['host']}/models/bundled@{images['bundled']}")
    assert not decision.allowed and "not-signed" in [v["code"] for v in decision.violations]
    assert "name no repository (a cosign v3 bundle binds the digest only)" in decision.message


@pytest.mark.parametrize("pulled, signed, groups, same", [
    ("r.io/models/llm", "r.io/models/llm", [], True),
    ("r.io/scratch/llm", "r.io/models/llm", [], False),
    ("m.io/models/llm", "r.io/models/llm", [["r.io/models", "m.io/models"]], True),
    ("r.io/models/llm", "m.io/models/llm", [["r.io/models", "m.io/models"]], True),  # a group is symmetric
    ("m.io/models/llm", "r.io/models/llm", [["r.io", "m.io"]], True),
    ("m.io/modelsx/llm", "r.io/models/llm", [["r.io/models", "m.io/models"]], False),  # prefixes end at a path boundary
    ("m.io/models/llm2", "r.io/models/llm", [["r.io/models", "m.io/models"]], False),
    ("m.io/models", "r.io/models", [["r.io/models", "m.io/models"]], True),
])
def test_same_repository_with_mirror_groups(pulled, signed, groups, same):
    assert same_repository(pulled, signed, groups) is same


@pytest.mark.parametrize("signed, name", [
    ("index.docker.io/library/nginx", "docker.io/library/nginx"),
    ("nginx", "docker.io/library/nginx"),
    ("r.io/models/llm:1.0", "r.io/models/llm"),
    ("not a reference", "not a reference"),
])
def test_signed_names_are_normalised_like_pulled_names(signed, name):
    assert normalised_name(signed) == name


@pytest.mark.parametrize("mirrors", ['[{source: "r.io/*", mirrors: [m.io]}]', '[{source: "oci://r.io", mirrors: [m.io]}]',
                                     '[{source: r.io/m@sha256:00, mirrors: [m.io]}]', '[{source: r.io, mirrors: []}]'])
def test_bad_mirror_entries_are_named(key_dir, mirrors):
    with pytest.raises(PolicyError, match="imageMirrors"):
        parse_policy(f"""
apiVersion: modelsign.dev/v1alpha1
kind: AdmissionPolicy
trustedKeys: {{ml-team: {{file: {key_dir / 'ml-team.pub'}}}}}
rules: [{{name: r, require: {{signedBy: [ml-team]}}}}]
imageMirrors: {mirrors}
""", source="p")


@pytest.mark.parametrize("spelling", ["{host}", "{ip}:0{port}", "{ip}:00{port}"])
def test_one_registry_host_spelled_differently_keeps_its_rules(default, images, spelling):
    """Found by trying to break it: `127.0.0.1:0PORT/models/x@D` was admitted while the same
    digest under its normal name was denied by a `models/**` rule: hosts are canonical now."""
    ip, port = images["host"].rsplit(":", 1)
    host = spelling.format(host=images["host"], ip=ip, port=port)
    decision = decide(default, f"{host}/models/bundled@{images['bundled']}")
    assert not decision.allowed and [v["code"] for v in decision.violations] == ["approval-missing"], decision.message
    assert decision.artifacts[0]["registry"] == images["host"]
