"""OpenSSF model_signing 1.1.1 (the `model-signing` package) against modelsign, both ways,
through its command line (`model_signing sign key` / `verify key`, as its users run it) and
its Python API, for the default `files` serialization and the opt-in `shards`.

Caveat, stated by the shards tests: model_signing's command line verifies only `files`
signatures (it has no serialization option, so it re-hashes as `files` and reports every
file as extra and every shard as missing); shard signatures verify with its library and with
modelsign. A golden signature made by model_signing (tests/fixtures/model_signing, see its
README) checks that what it wrote once still verifies here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import model_signing
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import FIXTURES, run_cli
from signer.errors import VerificationError
from signer.modeldir.signing import HashingChoice, sign_model_dir, verify_model_dir
from signer.trust.keys import load_public_key_file

pytestmark = pytest.mark.peers
MODEL_SIGNING = Path(sys.executable).parent / "model_signing"  # the console script of the same venv
GOLDEN = FIXTURES / "model_signing"


def _model_signing(*args: object) -> subprocess.CompletedProcess:
    assert MODEL_SIGNING.is_file(), f"{MODEL_SIGNING} is missing: install the test extras (pip install -e '.[test]')"
    return subprocess.run([str(MODEL_SIGNING), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A Hugging Face-like layout: a weights file over 4 MiB (our mmap path), JSON, a
    tokenizer folder, an empty file and git metadata (ignored by both tools)."""
    root = tmp_path / "hf-model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(os.urandom(6 * 1024 * 1024 + 5))
    (root / "config.json").write_text('{"hidden_size": 8}')
    (root / "tokenizer" / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}}}')
    (root / "tokenizer" / "__init__.py").write_bytes(b"")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: main")
    return root


@pytest.fixture
def pem_private(tmp_path: Path, ml_key) -> Path:
    """ml-team's key as PKCS#8 PEM, the private-key form model_signing reads."""
    path = tmp_path / "ml-team-pkcs8.pem"
    path.write_bytes(ml_key.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def test_model_signing_cli_verifies_modelsigns_default_signature(capsys, model, key_dir):
    code, out, err = run_cli(capsys, "sign", model, "--key", key_dir / "ml-team.key")
    assert code == 0, err
    signature = model.parent / "hf-model.sig"
    assert _predicate(signature)["serialization"]["method"] == "files"  # the default
    verified = _model_signing("verify", "key", model, "--signature", signature, "--public_key", key_dir / "ml-team.pub")
    assert verified.returncode == 0 and "Verification succeeded" in verified.stdout, verified.stdout + verified.stderr
    (model / "config.json").write_text('{"hidden_size": 9}')
    refused = _model_signing("verify", "key", model, "--signature", signature, "--public_key", key_dir / "ml-team.pub")
    assert refused.returncode != 0 and "config.json" in refused.stdout + refused.stderr


def test_modelsign_verifies_the_model_signing_cli_signature(capsys, model, key_dir, pem_private):
    signature = model.parent / "theirs.sig"
    signed = _model_signing("sign", "key", model, "--signature", signature, "--private_key", pem_private)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    code, out, err = run_cli(capsys, "verify", model, "--key", key_dir / "ml-team.pub", "--signature", signature)
    assert code == 0 and "ml-team" in out, out + err
    (model / "tokenizer" / "extra.py").write_text("import os")
    code, _, err = run_cli(capsys, "verify", model, "--key", key_dir / "ml-team.pub", "--signature", signature)
    assert code == 1 and "added tokenizer/extra.py" in err


def test_opt_in_shards_verify_with_model_signings_library_not_its_cli(capsys, model, key_dir, ml_key):
    code, _, err = run_cli(capsys, "sign", model, "--key", key_dir / "ml-team.key", "--serialization", "shards", "--shard-size", 1024 * 1024)
    assert code == 0, err
    signature = model.parent / "hf-model.sig"
    assert _predicate(signature)["serialization"]["method"] == "shards"
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key_dir / "ml-team.pub").set_hashing_config(
        model_signing.hashing.Config().use_shard_serialization(shard_size=1024 * 1024)).verify(model, signature)
    # The caveat: model_signing's command line (1.1.1) re-hashes as `files`, so it refuses shards.
    refused = _model_signing("verify", "key", model, "--signature", signature, "--public_key", key_dir / "ml-team.pub")
    assert refused.returncode != 0 and "Signature mismatch" in refused.stdout + refused.stderr


@pytest.mark.parametrize("method", ["files", "shards"])
def test_model_signings_api_and_ours_agree_both_ways(model, ml_key, key_dir, pem_private, method):
    hashing = model_signing.hashing.Config()
    if method == "shards":
        hashing.use_shard_serialization(shard_size=1024 * 1024)
    theirs, ours = model.parent / "theirs.sig", model.parent / "ours.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=pem_private).set_hashing_config(hashing).sign(model, theirs)
    assert verify_model_dir(model, [ml_key.public], signature_path=theirs).method == method
    sign_model_dir(model, ml_key, signature_path=ours, choice=HashingChoice(method=method, shard_size=1024 * 1024))
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key_dir / "ml-team.pub").set_hashing_config(hashing).verify(model, ours)


@pytest.mark.parametrize(("signature", "method"), [("tiny-model.files.sig", "files"), ("tiny-model.shards.sig", "shards")])
def test_golden_model_signing_signatures_verify(tmp_path, signature, method):
    public = load_public_key_file(GOLDEN / "signer.pub")
    model = shutil.copytree(GOLDEN / "tiny-model", tmp_path / "tiny-model")
    report = verify_model_dir(model, [public], signature_path=GOLDEN / signature)
    assert report.method == method and report.key_id == public.key_id
    (model / "weights.bin").write_text("tampered")
    with pytest.raises(VerificationError, match="modified weights.bin"):
        verify_model_dir(model, [public], signature_path=GOLDEN / signature)


def _predicate(signature: Path) -> dict:
    envelope = json.loads(signature.read_text())["dsseEnvelope"]
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]
