"""Registries that serve the OCI referrers API (see tests/support/referrers_registry.py: a
stand-in in front of the real docker-registry, since none with the API can be built here).

Found by trying to break it: one 404 NAME_UNKNOWN from the referrers endpoint (a Pod naming
a repository that does not exist, no push rights needed) turned the API off for the whole
registry host, for the life of the pipeline; bundle signatures, and scans, approvals and
revocations kept only as referrers, were no longer seen.
"""

from __future__ import annotations

import pytest

from conftest import PASSWORD
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.signing import SignatureFormat, sign_artifact
from signer.trust.keys import load_signing_key_file
from support.admission import pod, policy_for, review
from support.referrers_registry import ReferrersRegistry
from webhook.admission.config import parse_policy
from webhook.admission.pipeline import AdmissionPipeline
from webhook.admission.review import parse_review


@pytest.fixture(scope="module")
def api_registry(registry):
    front = ReferrersRegistry(registry.host)
    yield front
    front.stop()


@pytest.fixture(scope="module")
def bundled(api_registry, key_dir) -> list[str]:
    key = load_signing_key_file(key_dir / "ml-team.key", password=lambda _: PASSWORD.encode())
    images = []
    with Stores() as stores:
        for name in ("llm", "other", "third"):
            reference = parse_reference(f"{api_registry.host}/models/{name}:1")
            digest = push_image(stores.repository(reference), {"w": name.encode()}, tag="1").digest
            sign_artifact(stores, reference, key, signature_format=SignatureFormat.BUNDLE)
            images.append(f"{api_registry.host}/models/{name}@{digest}")
    assert all(api_registry.referrers.values())  # indexed by the API, no fallback tags
    return images


def decide(pipeline: AdmissionPipeline, image: str):
    return pipeline.decide(parse_review(review("Pod", pod(image))))


@pytest.mark.parametrize("probe", ["no/such-repo@sha256:" + "0" * 64, "models/llm@sha256:" + "1" * 64])
def test_an_unknown_repository_or_subject_does_not_turn_the_api_off(api_registry, bundled, key_dir, probe):
    pipeline = AdmissionPipeline(parse_policy(policy_for(key_dir), source="referrers"))
    try:
        assert decide(pipeline, bundled[0]).allowed
        assert not decide(pipeline, f"{api_registry.host}/{probe}").allowed
        after = decide(pipeline, bundled[1])
        assert after.allowed, after.message
    finally:
        pipeline.close()


def test_a_registry_that_served_the_api_and_then_denies_it_fails_closed(api_registry, bundled, key_dir):
    pipeline = AdmissionPipeline(parse_policy(policy_for(key_dir), source="referrers"))
    try:
        assert decide(pipeline, bundled[0]).allowed
        api_registry.broken_api = True  # now it answers like a registry without the API
        decision = decide(pipeline, bundled[2])
    finally:
        api_registry.broken_api = False
        pipeline.close()
    assert not decision.allowed and "served the referrers API before but answered HTTP 404" in decision.message
