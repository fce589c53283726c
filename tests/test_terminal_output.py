"""Registry text never reaches a terminal raw (review 4, W1).

A `.sig` layer whose media type holds terminal escapes (set the title, clear the screen, a
coloured "ALLOWED" line), a carriage return, a line feed and a bidi override was printed as is
by `modelsign verify`, `modelsign check -o text` and the compliance table. The verification
report now makes registry text printable where it enters a rejection reason, and the text
renderers do it once more as a last line.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from conftest import run_cli
from signer import printable, printable_lines
from signer.formats import mediatypes as mt
from signer.formats.digests import signature_tag
from signer.oci.manifest import Descriptor, encode_image_manifest
from signer.oci.samples import push_image
from signer.references import parse_reference
from signer.signatures.verification import verify_signatures
from support.admission import pod, policy_for

HOSTILE = "x\x1b]0;owned-title\x07\x1b[2J\x1b[31mALLOWED: everything verified\x1b[0m\rfake line\nsecond line\u202e"
RAW = ("\x1b", "\x07", "\r", "\u202e")


def _no_raw_control(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text[:300])


@pytest.fixture(scope="module")
def hostile_image(registry, key_dir):
    """An image in the real registry whose `.sig` has one layer with a hostile media type."""
    from signer.oci.registry import RegistryOptions
    from signer.oci.stores import Stores

    with Stores(RegistryOptions(retries=1, timeout_seconds=10)) as stores:
        repository = stores.repository(parse_reference(f"{registry.host}/tty/img"))
        digest = push_image(repository, {"w": b"tty"}, tag="1").digest
        config, payload = b"{}", b"payload"
        repository.push_blob(config)
        repository.push_blob(payload)
        manifest = encode_image_manifest(Descriptor.for_content(mt.OCI_CONFIG, config), [Descriptor.for_content(HOSTILE, payload)])
        repository.push_manifest(manifest, mt.OCI_MANIFEST, tag=signature_tag(digest))
        report = verify_signatures(repository, digest, [], reference=f"{registry.host}/tty/img@{digest}")
    return f"{registry.host}/tty/img@{digest}", report


def test_rejection_reasons_from_the_registry_are_printable_where_they_are_born(hostile_image):
    _, report = hostile_image
    reasons = [r.reason for r in report.rejected]
    assert any(printable(HOSTILE) in reason for reason in reasons), reasons
    for rejection in report.rejected:
        _no_raw_control(rejection.reason + rejection.location)
        assert "\n" not in rejection.reason


def test_verify_text_and_json_show_the_escapes_not_the_controls(hostile_image, key_dir, capsys):
    reference, _ = hostile_image
    code, out, err = run_cli(capsys, "verify", reference, "--key", key_dir / "ml-team.pub")
    assert code == 1
    _no_raw_control(out + err)
    assert "\\u001b[2J" in out + err and "\\u202e" in out + err
    code, out, _ = run_cli(capsys, "verify", reference, "--key", key_dir / "ml-team.pub", "-o", "json")
    reasons = [r["reason"] for r in json.loads(out)["rejected"]]
    assert code == 1 and any(printable(HOSTILE) in reason for reason in reasons), reasons


def _policy(tmp_path, registry, key_dir):
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(key_dir, registries=f'["{registry.host}"]'))
    return policy


def test_check_text_output_is_printable(hostile_image, registry, key_dir, tmp_path, capsys):
    reference, _ = hostile_image
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod(reference)))
    code, out, err = run_cli(capsys, "check", "-f", manifest, "--config", _policy(tmp_path, registry, key_dir), "-o", "text")
    assert code == 1 and "DENY" in out
    _no_raw_control(out + err)
    assert "\\u001b]0;owned-title\\u0007" in out
    assert not any(line.startswith("fake line") or line.startswith("second line") for line in out.splitlines())


def test_compliance_table_is_printable(hostile_image, registry, key_dir, tmp_path):
    from webhook.admission.config import load_policy
    from webhook.compliance.kinds import BUILT_IN_KINDS
    from webhook.compliance.render import render_table
    from webhook.compliance.scan import ComplianceReport, decide_object, scan_pipeline

    reference, _ = hostile_image
    pipeline = scan_pipeline(load_policy(_policy(tmp_path, registry, key_dir)))
    try:
        report = ComplianceReport(scan_id="s", started=datetime.now(timezone.utc), policy_name="p", policy_hash="h" * 19, scope="team")
        report.findings = decide_object(pipeline, BUILT_IN_KINDS[0], {**pod(reference), "metadata": {"name": "p", "namespace": "team"}}, 0)
    finally:
        pipeline.close()
    table = render_table(report)
    assert "FAIL" in table and "\\u001b[31mALLOWED" in table
    _no_raw_control(table)


@pytest.mark.parametrize("text", ["plain\nlines", "a\x1b[2Jb\r\nc\u202e", "\t\x00\x7f\x85\u2028"])
def test_printable_lines_keeps_line_breaks_and_escapes_the_rest(text):
    shown = printable_lines(text)
    assert shown.count("\n") == text.count("\n")
    _no_raw_control(shown)
    assert all(printable(line) == line for line in shown.split("\n"))
