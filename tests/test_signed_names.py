"""Repository-scoped rules cannot be dodged by copying a digest to another repository.

Found by trying to break it: every artifact needs ml-team's signature and `models/**` also
needs a prod approval. Digest D, signed as `models/llm` but not approved, was copied with its
`.sig` to `scratch/llm` (where the attacker may push) and admitted as `scratch/llm@D`. Now the
rules of every name D's verified signatures carry apply too; `requireSignedReference` goes
further and counts a signature only under its signed name (or a mirror of it).

Second round: D signed with `--format both` and only its bundle (then name-less) copied to
`scratch/llm` was admitted. modelsign's bundles now name the repository; cosign v3's still
name none, and `namelessSignatures: ignore` refuses those.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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


def sign_nameless_bundle(repository: Repository, digest: str, key) -> None:
    """A signature bundle as cosign v3 writes it: the statement's subject is the digest alone."""
    from signer.formats.bundle_referrer import push_bundle_referrer
    from signer.formats.bundles import build_key_bundle
    from signer.formats.dsse import sign_envelope
    from signer.formats.intoto import encode_statement, subject_for_digest

    target = repository.resolve(digest)
    statement = encode_statement([subject_for_digest(digest)], mt.COSIGN_SIGN_PREDICATE, {})
    push_bundle_referrer(repository, target, build_key_bundle(sign_envelope(mt.INTOTO_PAYLOAD, statement, key), key.public.key_id),
                         mt.COSIGN_SIGN_PREDICATE)


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
        formats = {"llm": SignatureFormat.LEGACY, "bundled": SignatureFormat.BUNDLE, "both": SignatureFormat.BOTH,
                   "approved": SignatureFormat.LEGACY}
        for name, payload in (("llm", b"d"), ("bundled", b"e"), ("approved", b"f"), ("both", b"g"), ("nameless", b"h")):
            reference = parse_reference(f"{host}/models/{name}:1")
            found[name] = push_image(stores.repository(reference), {"w": payload}, tag="1").digest
            if name == "nameless":
                sign_nameless_bundle(stores.repository(reference), found[name], ml)
            else:
                sign_artifact(stores, reference, ml, signature_format=formats[name])
        now = datetime.now(timezone.utc)
        attest(stores, parse_reference(f"{host}/models/approved@{found['approved']}"), approve, mt.APPROVAL_PREDICATE,
               approval_predicate(decision="approved", environment="prod", namespaces=["*"], approver="alice", requester="bob",
                                  ticket="CHG-1", reason="ok", now=now, not_before=None, expires_in_seconds=3600))
        for name in ("llm", "approved"):
            copy_signed(stores, f"{host}/models/{name}", f"{host}/scratch/{name}", found[name])
            copy_signed(stores, f"{host}/models/{name}", f"{other}/scratch/{name}", found[name])
            copy_signed(stores, f"{host}/models/{name}", f"{other}/models/{name}", found[name])
        for name in ("bundled", "both", "nameless"):  # the digest and only its bundle (the referrers fallback index), no .sig
            src, dst = stores.repository(parse_reference(f"{host}/models/{name}")), stores.repository(parse_reference(f"{host}/scratch/{name}"))
            copy_manifest(src, dst, found[name])
            copy_manifest(src, dst, f"sha256-{found[name].split(':')[1]}", tag=f"sha256-{found[name].split(':')[1]}")
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


@pytest.mark.parametrize("name", ["bundled", "both"])
def test_a_copy_of_the_bundle_alone_keeps_the_rules_of_its_name(default, images, name):
    """modelsign's bundle statements name the repository, so copying only the bundle (and not
    the legacy .sig beside it) sheds nothing."""
    decision = decide(default, f"{images['host']}/scratch/{name}@{images[name]}")
    assert not decision.allowed and [v["code"] for v in decision.violations] == ["approval-missing"], decision.message
    assert decision.artifacts[0]["signedNames"] == [f"{images['host']}/models/{name}"]
    forms = {s["form"] for s in decision.artifacts[0]["evidence"]["signatures"]}
    assert forms == {"bundle"}


def test_a_nameless_bundle_signature_binds_the_digest_only(default, images):
    """cosign v3 bundle statements name no repository: by default the copy is judged by where
    it is pulled from (README: turn on namelessSignatures: ignore or requireSignedReference)."""
    decision = decide(default, f"{images['host']}/scratch/nameless@{images['nameless']}")
    assert decision.allowed and decision.artifacts[0]["signedNames"] == []


@pytest.fixture
def no_nameless(key_dir, approver, tls_registry, images):
    built = pipeline_for(key_dir, approver, tls_registry, images, "namelessSignatures: ignore")
    yield built
    built.close()


def test_nameless_signatures_ignore_refuses_them_and_keeps_named_ones(no_nameless, images):
    for where in ("scratch", "models"):
        decision = decide(no_nameless, f"{images['host']}/{where}/nameless@{images['nameless']}")
        assert not decision.allowed and "not-signed" in [v["code"] for v in decision.violations], decision.message
        assert "name no repository" in decision.message and "namelessSignatures is ignore" in decision.message
    # named signatures still count wherever the digest is pulled, with the rules of their name
    assert decide(no_nameless, f"{images['host']}/scratch/approved@{images['approved']}").allowed
    copied = decide(no_nameless, f"{images['host']}/scratch/bundled@{images['bundled']}")
    assert [v["code"] for v in copied.violations] == ["approval-missing"]


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
    decision = decide(strict, f"{images['host']}/models/nameless@{images['nameless']}")
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


@pytest.mark.parametrize("decision", ["revoked", "rejected"])
def test_statements_in_the_signed_repository_follow_a_copy(registry, tls_registry, key_dir, approver, decision):
    """Second round: D approved in models/, copied with its .sig and .att to scratch/, then
    revoked (or rejected) in models/ only: the copy lost the revocation and was admitted. The
    attestations of every repository the signatures name are read too."""
    from signer.oci.registry import RegistryOptions

    ml = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    approve = load_signing_key_file(approver / "approver.key", password=lambda _: PASSWORD.encode())
    host = registry.host
    with Stores(RegistryOptions(ca_file=tls_registry.ca_file)) as stores:
        reference = parse_reference(f"{host}/models/later-{decision}:1")
        digest = push_image(stores.repository(reference), {"w": decision.encode()}, tag="1").digest
        sign_artifact(stores, reference, ml)
        now = datetime.now(timezone.utc)
        attest(stores, parse_reference(f"{host}/models/later-{decision}@{digest}"), approve, mt.APPROVAL_PREDICATE,
               approval_predicate(decision="approved", environment="prod", namespaces=["*"], approver="alice", requester="bob",
                                  ticket="CHG-1", reason="ok", now=now, not_before=None, expires_in_seconds=3600))
        copy_signed(stores, f"{host}/models/later-{decision}", f"{host}/scratch/later-{decision}", digest)
        images = {"host": host}
        before = pipeline_for(key_dir, approver, tls_registry, images)
        try:
            assert decide(before, f"{host}/scratch/later-{decision}@{digest}").allowed
        finally:
            before.close()
        later = now.replace(microsecond=0) + timedelta(seconds=2)  # stamped after the approval
        attest(stores, parse_reference(f"{host}/models/later-{decision}@{digest}"), approve, mt.APPROVAL_PREDICATE,
               approval_predicate(decision=decision, environment="prod", namespaces=["*"], approver="alice", requester="bob",
                                  ticket="CHG-2", reason="withdrawn", now=later, not_before=None, expires_in_seconds=None))
    after = pipeline_for(key_dir, approver, tls_registry, images)
    try:
        for where in ("models", "scratch"):
            decision_now = decide(after, f"{host}/{where}/later-{decision}@{digest}")
            assert not decision_now.allowed, (where, decision_now.message)
            assert [v["code"] for v in decision_now.violations] in (["approval-revoked"], ["approval-rejected"]), decision_now.violations
    finally:
        after.close()
