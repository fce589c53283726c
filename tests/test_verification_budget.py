"""What verifying a padded digest may cost, against the real registry: per-object caps (not
fetched), one fetch per digest and one check per (key, payload, signature), and a budget whose
deadline stops registry work in flight and whose byte and check limits stop the rest."""

from __future__ import annotations

import os
import time

import pytest

from signer.formats import mediatypes as mt
from signer.oci.budget import Budget, BudgetExceeded, DeadlineExceeded, using
from signer.oci.manifest import Descriptor
from signer.oci.registry import RegistryOptions
from signer.oci.samples import push_image
from signer.oci.stores import Stores
from signer.references import parse_reference
from signer.signatures.verification import collect_statements, verify_signatures
from support.padding import padded_payload, prepare_padding, push_padded_image, push_sig_layers


def _image(stores: Stores, registry, name: str):
    repository = stores.repository(parse_reference(f"{registry.host}/budget/{name}"))
    return repository, push_image(repository, {"f": f"{name} {os.urandom(4).hex()}".encode()}, tag="1")


def _payloads(repository, digest: str, count: int, size: int = 60_000) -> list[Descriptor]:
    found = []
    for index in range(count):
        payload = padded_payload(digest, size, salt=str(index))
        repository.push_blob(payload)
        found.append(Descriptor.for_content(mt.COSIGN_SIMPLESIGNING, payload))
    return found


def test_entries_pointing_at_one_payload_fetch_it_once_and_check_each_signature_once(stores, registry, ml_key):
    repository, image = _image(stores, registry, "shared-payload")
    payload = _payloads(repository, image.digest, 1)[0]
    push_sig_layers(repository, image.digest, [payload] * 100, signature=b"the same bogus signature")
    offset = registry.log_offset()
    budget = Budget("test")
    with using(budget):
        report = verify_signatures(repository, image.digest, [ml_key.public], reference="x")
    assert not report.ok and len(report.rejected) == 100 and not report.over_limits
    blob_gets = [r for r in registry.requests_since(offset) if r == f"GET /v2/budget/shared-payload/blobs/{payload.digest}"]
    assert len(blob_gets) == 1 and budget.checks_used == 1
    push_sig_layers(repository, image.digest, [payload] * 100)  # now 100 different signatures over it: 100 checks, still one fetch
    with using(budget := Budget("test")):
        verify_signatures(repository, image.digest, [ml_key.public], reference="x")
    assert budget.checks_used == 100 and budget.bytes_used < 2 * payload.size + 64 * 1024


def test_objects_over_their_caps_are_not_fetched(stores, registry, ml_key):
    repository = stores.repository(parse_reference(f"{registry.host}/budget/capped"))
    padding = prepare_padding(repository)
    image = push_padded_image(repository, padding, "1")
    offset = registry.log_offset()
    report = verify_signatures(repository, image.digest, [ml_key.public], reference="x")
    requests = registry.requests_since(offset)
    assert not report.ok and len(report.over_limits) == 2, report.over_limits
    assert "signature payload" in report.over_limits[0] and "more than the 65536 allowed" in report.over_limits[0] and "and 99 more" in report.over_limits[0]
    assert "referrer manifest" in report.over_limits[1] and "and 99 more" in report.over_limits[1]
    assert not [r for r in requests if padding.payloads[0].digest in r or padding.referrer.digest in r], requests
    assert len(requests) <= 4  # the .sig manifest, the referrers API probe, the fallback index (and nothing per entry)


def test_the_artifact_budget_stops_distinct_padding_within_the_caps(stores, registry, ml_key):
    repository, image = _image(stores, registry, "distinct")
    push_sig_layers(repository, image.digest, _payloads(repository, image.digest, 100))
    review = Budget("review", max_bytes=64 * 1024 * 1024)
    artifact = review.child("verifying it", max_bytes=1024 * 1024)
    offset = registry.log_offset()
    with using(artifact), pytest.raises(BudgetExceeded) as stopped:
        collect_statements(repository, image.digest, [ml_key.public], reference="x")
    assert stopped.value.budget is artifact and "verifying it needs more than the 1048576 bytes" in stopped.value.message
    assert len([r for r in registry.requests_since(offset) if "/blobs/" in r]) <= 1024 * 1024 // 60_000 + 2
    assert review.bytes_used == artifact.bytes_used  # charged to the review as well


def test_the_deadline_stops_a_request_in_flight(registry, fault_proxy, stores):
    push_image(stores.repository(parse_reference(f"{registry.host}/budget/slow")), {"f": b"slow"}, tag="1")
    fault_proxy.delay_seconds = 1.5
    with Stores(RegistryOptions(timeout_seconds=10, retries=3)) as slow:
        repository = slow.repository(parse_reference(f"{fault_proxy.host}/budget/slow:1"))
        started = time.monotonic()
        with using(Budget("review", deadline=started + 0.5)), pytest.raises(DeadlineExceeded, match="the deadline passed while waiting for registry"):
            repository.fetch_manifest("1")
        assert time.monotonic() - started < 1.0


def test_the_deadline_stops_a_trickling_body(registry, fault_proxy, stores):
    repository = stores.repository(parse_reference(f"{registry.host}/budget/trickle"))
    blob = os.urandom(1_500_000)
    digest = repository.push_blob(blob)
    fault_proxy.chunk_delay_seconds = 0.1  # 23 chunks: 2.3 s for the whole blob
    with Stores(RegistryOptions(timeout_seconds=10)) as slow:
        trickling = slow.repository(parse_reference(f"{fault_proxy.host}/budget/trickle"))
        started = time.monotonic()
        with using(Budget("review", deadline=started + 0.5)), pytest.raises(DeadlineExceeded, match="reading blob"):
            trickling.fetch_blob(digest)
        assert time.monotonic() - started < 1.0
