"""Model directories in the OpenSSF model signing format, checked both ways against the
`model-signing` library's own signer and verifier."""

from __future__ import annotations

import json
import os
from pathlib import Path

import model_signing
import pytest
from cryptography.hazmat.primitives import serialization

from signer.errors import FormatError, UsageError, VerificationError
from signer.modeldir.signing import HashingChoice, default_signature_path, sign_model_dir, verify_model_dir
from signer.trust.keys import load_public_key_file, load_signing_key_pem
from webhook.cli import main


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "my-model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(11 * 1024 * 1024 + 17))  # > 4 MiB: the mmap path
    (root / "config.json").write_text('{"layers": 2}')
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (root / "tokenizer" / "__init__.py").write_bytes(b"")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: main")
    return root


@pytest.fixture
def pem_keys(tmp_path: Path, ml_key) -> tuple[Path, Path]:
    """The same key as PKCS#8 PEM, the only private-key format model_signing reads."""
    private = tmp_path / "ml-team-pkcs8.pem"
    private.write_bytes(ml_key.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = tmp_path / "ml-team.pem.pub"
    public.write_bytes(ml_key.public.pem)
    return private, public


def test_sign_writes_beside_the_directory_and_verifies(model, ml_key):
    result = sign_model_dir(model, ml_key)
    assert result.signature_path == model.parent / "my-model.sig" == default_signature_path(model)
    assert result.method == "files"  # the form model_signing's CLI verifies
    report = verify_model_dir(model, [ml_key.public])
    assert (report.signer, report.key_id, report.root_digest) == (ml_key.name, ml_key.public.key_id, result.root_digest)
    assert report.warnings == ()


@pytest.mark.parametrize("method", ["shards", "files"])
def test_model_signing_verifier_accepts_our_signature(model, ml_key, pem_keys, method):
    signature = model.parent / f"ours-{method}.sig"
    sign_model_dir(model, ml_key, signature_path=signature, choice=HashingChoice(method=method, shard_size=1024 * 1024))
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pem_keys[1]).verify(model, signature)
    bundle = json.loads(signature.read_text())
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == ml_key.public.model_signing_hint


@pytest.mark.parametrize("method", ["files", "shards"])
def test_we_verify_model_signings_signature(model, ml_key, pem_keys, method):
    signature = model.parent / f"theirs-{method}.sig"
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=pem_keys[0])
    if method == "shards":
        config.set_hashing_config(model_signing.hashing.Config().use_shard_serialization(shard_size=1024 * 1024))
    config.sign(model, signature)
    report = verify_model_dir(model, [ml_key.public], signature_path=signature)
    assert report.method == method and report.signer == ml_key.name
    if method == "shards":
        # model_signing writes shard_size as a float and lists no empty files: we accept the
        # float and say what the format cannot see.
        assert "empty files" in report.warnings[0]


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: (m / "config.json").write_text('{"layers": 3}'), "modified config.json"),
        (lambda m: _flip_last_byte(m / "weights.bin"), "modified weights.bin"),
        (lambda m: (m / "extra.py").write_text("import os"), "added extra.py"),
        (lambda m: (m / "tokenizer" / "vocab.txt").unlink(), "removed tokenizer/vocab.txt"),
        (lambda m: (m / "tokenizer" / "new_empty.py").write_bytes(b""), "added {empty}tokenizer/new_empty.py"),
        (lambda m: (m / "tokenizer" / "__init__.py").unlink(), "removed {empty}tokenizer/__init__.py"),
    ],
)
@pytest.mark.parametrize("method", ["files", "shards"])
def test_tampering_is_detected_and_named(model, ml_key, change, message, method):
    # `files` lists empty files like any other; shards list none, so our own predicate field does.
    sign_model_dir(model, ml_key, choice=HashingChoice(method=method))
    change(model)
    with pytest.raises(VerificationError) as info:
        verify_model_dir(model, [ml_key.public])
    expected = message.format(empty="empty file " if method == "shards" else "")
    assert expected in str(info.value) and "re-sign" in str(info.value)


def test_git_metadata_and_ignored_paths_do_not_count(model, ml_key):
    sign_model_dir(model, ml_key, ignore_paths=["notes"])
    (model / ".git" / "HEAD").write_text("ref: other")
    (model / "notes").mkdir()
    (model / "notes" / "todo.txt").write_text("x")
    verify_model_dir(model, [ml_key.public])


def test_signature_inside_the_directory_is_ignored(model, ml_key):
    inside = model / "model.sig"
    sign_model_dir(model, ml_key, signature_path=inside)
    verify_model_dir(model, [ml_key.public], signature_path=inside)


def test_wrong_key_and_missing_signature(model, ml_key, other_key):
    sign_model_dir(model, ml_key)
    with pytest.raises(VerificationError, match="was not made by key other-team"):
        verify_model_dir(model, [other_key.public])
    with pytest.raises(VerificationError, match="does not exist"):
        verify_model_dir(model, [ml_key.public], signature_path=model.parent / "absent.sig")


def test_symlinks_are_refused(model, ml_key):
    (model / "link").symlink_to(model / "config.json")
    with pytest.raises(UsageError, match="symlink"):
        sign_model_dir(model, ml_key)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"dsseEnvelope":{"payloadType":"x","payload":"e30=","signatures":[{"sig":"AA=="}]}}', "no in-toto DSSE envelope"),
    ],
)
def test_malformed_signature_files(model, ml_key, content, fragment):
    signature = model.parent / "bad.sig"
    signature.write_bytes(content)
    with pytest.raises(FormatError, match=fragment):
        verify_model_dir(model, [ml_key.public], signature_path=signature)


def test_signed_statement_with_a_bad_manifest(model, ml_key):
    """A correctly signed envelope whose resources do not add up to the subject digest."""
    from signer.formats import mediatypes as mt
    from signer.formats.bundles import build_key_bundle
    from signer.formats.dsse import sign_envelope

    statement = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "m", "digest": {"sha256": "00" * 32}}],
                 "predicateType": "https://model_signing/signature/v1.0",
                 "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False}, "resources": []}}
    envelope = sign_envelope(mt.INTOTO_PAYLOAD, json.dumps(statement).encode(), ml_key)
    signature = model.parent / "inconsistent.sig"
    signature.write_bytes(build_key_bundle(envelope, ml_key.public.model_signing_hint))
    with pytest.raises(FormatError, match="malformed model_signing payload: Manifest is inconsistent"):
        verify_model_dir(model, [ml_key.public], signature_path=signature)


def test_cli_exit_codes_for_directories(model, key_dir, capsys):
    assert main(["sign", str(model), "--key", str(key_dir / "ml-team.key"), "--output", "json"]) == 0
    signed = json.loads(capsys.readouterr().out)
    assert signed["signature_path"].endswith("my-model.sig")
    assert main(["verify", str(model), "--key", str(key_dir / "ml-team.pub")]) == 0
    assert "Verified model directory" in capsys.readouterr().out
    (model / "config.json").write_text("{}")
    assert main(["verify", str(model), "--key", str(key_dir / "ml-team.pub")]) == 1
    assert "modified config.json" in capsys.readouterr().err
    assert main(["verify", "./no-such-dir", "--key", str(key_dir / "ml-team.pub")]) == 2
    assert main(["sign", str(model), "--key", str(key_dir / "ml-team.key"), "-a", "x=y"]) == 2


def test_non_ecdsa_keys_are_refused_for_directories(model):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(UsageError, match="need an ECDSA key"):
        sign_model_dir(model, load_signing_key_pem(pem, name="ed"))


def test_p384_keys_use_sha384_like_model_signing(model, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key = load_signing_key_pem(pem, name="p384")
    sign_model_dir(model, key)
    public_path = tmp_path / "p384.pub"
    public_path.write_bytes(key.public.pem)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_path).verify(model, default_signature_path(model))
    assert verify_model_dir(model, [load_public_key_file(public_path)]).signer == "p384"


@pytest.mark.parametrize("shard_size", [None, 1024 * 1024, 1000, 5 * 1024 * 1024 + 3])
def test_fast_engine_matches_model_signings_hashing(model, shard_size):
    """Our parallel sha256 engine yields exactly model_signing's manifest."""
    from signer.modeldir.hashing import model_manifest

    (model / "nested" / "deeper").mkdir(parents=True)
    (model / "nested" / "deeper" / "x.bin").write_bytes(os.urandom(5000))
    ours, _ = model_manifest(model, shard_size=shard_size, ignore=["config.json"])
    config = model_signing.hashing.Config()
    if shard_size is None:
        config.use_file_serialization()
    else:
        config.use_shard_serialization(shard_size=shard_size)
    theirs = config.set_ignored_paths(paths=["config.json"]).hash(model)
    assert list(ours.resource_descriptors()) == list(theirs.resource_descriptors())
    assert ours.serialization_type["method"] == theirs.serialization_type["method"]


def test_blake3_signatures_from_model_signing_verify(model, ml_key, pem_keys):
    signature = model.parent / "blake3.sig"
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=pem_keys[0])
    config.set_hashing_config(model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake3"))
    config.sign(model, signature)
    assert verify_model_dir(model, [ml_key.public], signature_path=signature).method == "files"
    (model / "config.json").write_text("{}")
    with pytest.raises(VerificationError, match="modified config.json"):
        verify_model_dir(model, [ml_key.public], signature_path=signature)


# -- single-file models, both ways against the real model_signing command line ----------------


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    return path


def _payload(signature: Path) -> dict:
    import base64

    return json.loads(base64.b64decode(json.loads(signature.read_text())["dsseEnvelope"]["payload"]))


def test_a_single_file_signed_by_us_verifies_with_model_signing(model_file, key_dir, pem_keys, capsys):
    from test_modeldir_certificate import model_signing as model_signing_cli

    assert main(["sign", str(model_file), "--key", str(key_dir / "ml-team.key")]) == 0
    assert "Signed model file" in capsys.readouterr().out
    signature = model_file.parent / "model.gguf.sig"
    statement = _payload(signature)
    # model_signing's shape for one file: subject named after the file, one resource ".".
    assert statement["subject"][0]["name"] == "model.gguf"
    assert [r["name"] for r in statement["predicate"]["resources"]] == ["."]
    assert statement["predicate"]["serialization"]["method"] == "files"
    done = model_signing_cli("verify", "key", model_file, "--signature", signature, "--public_key", pem_keys[1])
    assert done.returncode == 0, done.stderr


def test_a_single_file_signed_by_model_signing_verifies_with_us(model_file, key_dir, pem_keys, capsys):
    from test_modeldir_certificate import model_signing as model_signing_cli

    signature = model_file.parent / "theirs.sig"
    done = model_signing_cli("sign", "key", model_file, "--private_key", pem_keys[0], "--signature", signature)
    assert done.returncode == 0, done.stderr
    assert main(["verify", str(model_file), "--signature", str(signature), "--key", str(key_dir / "ml-team.pub")]) == 0
    assert "Verified model file" in capsys.readouterr().out
    _flip_last_byte(model_file)
    assert main(["verify", str(model_file), "--signature", str(signature), "--key", str(key_dir / "ml-team.pub")]) == 1
    assert "modified model.gguf" in capsys.readouterr().err


def test_a_single_file_in_shards_verifies_with_the_model_signing_library(model_file, ml_key, pem_keys):
    result = sign_model_dir(model_file, ml_key, choice=HashingChoice(method="shards", shard_size=1024 * 1024))
    assert result.method == "shards" and result.resources == 3
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pem_keys[1]).verify(model_file, result.signature_path)
    assert verify_model_dir(model_file, [ml_key.public]).warnings == ()


def test_file_and_directory_signatures_are_not_interchangeable(model, model_file, ml_key):
    file_signature = sign_model_dir(model_file, ml_key).signature_path
    directory_signature = sign_model_dir(model, ml_key, choice=HashingChoice(method="files")).signature_path
    with pytest.raises(VerificationError, match=r"is for a single file \(model.gguf\), but .* is a directory"):
        verify_model_dir(model, [ml_key.public], signature_path=file_signature)
    with pytest.raises(VerificationError, match=r"is for a model directory \(my-model\), but .* is a single file"):
        verify_model_dir(model_file, [ml_key.public], signature_path=directory_signature)


def test_single_file_usage_errors(model_file, ml_key, key_dir, capsys):
    with pytest.raises(UsageError, match="nothing in it to ignore"):
        sign_model_dir(model_file, ml_key, ignore_paths=["x"])
    link = model_file.parent / "link.gguf"
    link.symlink_to(model_file)
    with pytest.raises(UsageError, match="is a symlink"):
        sign_model_dir(link, ml_key)
    assert main(["verify", str(model_file.parent / "absent.gguf"), "--key", str(key_dir / "ml-team.pub")]) == 2
    assert "absent.gguf is not a directory or a file" in capsys.readouterr().err
