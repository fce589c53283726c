"""The command line: key generation, layouts, exit codes, JSON output and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, sign_concurrently
from signer.oci.layout import LayoutRepository
from signer.oci.samples import push_image
from webhook.cli import main



def test_keygen_public_key_sign_verify_on_a_layout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "keygen", "--output-prefix", "ml-team")
    assert code == 0 and "Private key written to ml-team.key" in out
    code, out, err = run_cli(capsys, "public-key", "--key", "ml-team.key")
    assert code == 0 and out == Path("ml-team.pub").read_text() and "key id" in err
    assert run_cli(capsys, "keygen", "--output-prefix", "ml-team")[0] == 2  # refuses to overwrite

    image = push_image(LayoutRepository(tmp_path / "store", create=True), {"f": b"x"}, tag="llm-1.0")
    code, out, err = run_cli(capsys, "sign", "oci:./store:llm-1.0", "--key", "ml-team.key", "--output", "json")
    assert code == 0, err
    signed = json.loads(out)
    assert signed["digest"] == image.digest and signed["key_name"] == "ml-team"
    code, out, _ = run_cli(capsys, "verify", "oci:./store:llm-1.0", "--key", "ml-team.pub", "--output", "json")
    body = json.loads(out)
    assert code == 0 and body["verified"] and body["digest"] == image.digest
    assert body["signatures"][0]["key_id"] == signed["key_id"]
    # oci:PATH without a tag names the layout's only manifest... which is ambiguous now.
    code, _, err = run_cli(capsys, "verify", "oci:./store", "--key", "ml-team.pub")
    assert code == 2 and "say which one" in err


def test_verify_failure_in_json_mode(capsys, tmp_path, key_dir):
    push_image(LayoutRepository(tmp_path / "store", create=True), {"f": b"x"}, tag="v1")
    code, out, err = run_cli(capsys, "verify", f"oci:{tmp_path}/store:v1", "--key", key_dir / "ml-team.pub", "--output", "json")
    assert code == 1
    body = json.loads(out)
    assert body["verified"] is False and body["signatures"] == []
    assert "no signatures found" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["verify", "oci:/nonexistent/store:v1", "--key", "{pub}"], "is not an OCI image layout"),
        (["verify", "Bad Reference", "--key", "{pub}"], "invalid"),
        (["verify", "registry.example.com/app:1"], "nothing to verify against"),
        (["sign", "registry.example.com/app:1", "--key", "/nonexistent.key"], "does not exist"),
        (["verify", "s3://bucket/model", "--key", "{pub}"], "unsupported reference scheme"),
        (["verify", "/definitely/not/a/dir", "--key", "{pub}"], "is not a directory"),
    ],
)
def test_usage_errors_exit_2_with_a_message(capsys, key_dir, argv, fragment):
    argv = [a.replace("{pub}", str(key_dir / "ml-team.pub")) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and fragment in err and "Traceback" not in err


def test_json_errors_are_machine_readable(capsys, key_dir):
    code, out, _ = run_cli(capsys, "verify", "oci:/nonexistent/store:v1", "--key", key_dir / "ml-team.pub", "--output", "json")
    body = json.loads(out)
    assert code == 2 and body["ok"] is False and body["kind"] == "NotFoundError" and body["hint"]


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sign"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["verify", "x", "--key", "k", "-a", "novalue"])
    assert info.value.code == 2 and "must be KEY=VALUE" in capsys.readouterr().err


def test_wrong_password_exit_code(capsys, key_dir, monkeypatch, tmp_path):
    push_image(LayoutRepository(tmp_path / "store", create=True), {"f": b"x"}, tag="v1")
    monkeypatch.setenv("MODELSIGN_PASSWORD", "wrong")
    code, _, err = run_cli(capsys, "sign", f"oci:{tmp_path}/store:v1", "--key", key_dir / "ml-team.key")
    assert code == 2 and "wrong password" in err


def test_concurrent_signers_on_one_layout_keep_every_tag(tmp_path, stores, ml_key, second_key):
    from signer.references import parse_reference
    from signer.signatures.signing import SignatureFormat
    from signer.signatures.verification import verify_signatures

    repository = LayoutRepository(tmp_path / "store", create=True)
    for index in range(4):
        push_image(repository, {"f": str(index).encode()}, tag=f"v{index}")
    jobs = [(parse_reference(f"oci:{tmp_path}/store:v{i}"), key) for i in range(4) for key in (ml_key, second_key)]
    sign_concurrently(stores, jobs, SignatureFormat.BOTH)
    tags = repository.list_tags()
    assert {f"v{i}" for i in range(4)} <= set(tags)
    assert sum(t.endswith(".sig") for t in tags) == 4
    for index in range(4):
        digest = repository.resolve(f"v{index}").digest
        report = verify_signatures(repository, digest, [ml_key.public, second_key.public], reference="x")
        assert {v.signer for v in report.verified} == {ml_key.name, second_key.name}
