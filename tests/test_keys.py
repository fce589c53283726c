import base64
import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from conftest import COSIGN
from signer.errors import KeyFormatError, PasswordError, UsageError
from signer.trust.keys import (generate_key_pair, load_public_key_file, load_public_key_pem, load_signing_key_file, load_signing_key_pem,
                               password_from_environment_or_prompt)


def _password(value: bytes):
    return lambda _prompt: value


def test_golden_cosign_key_with_password_matches_its_public_key():
    key = load_signing_key_file(COSIGN / "kwctl__cosign1.key", password=_password(b"kubewarden"))
    public = load_public_key_file(COSIGN / "kwctl__cosign1.pub")
    assert key.public.der == public.der
    # cosign's key hint: base64(sha256(DER SPKI))
    assert public.key_id == base64.b64encode(hashlib.sha256(public.der).digest()).decode()
    assert key.public.verify(key.sign(b"payload"), b"payload")


def test_golden_cosign_key_with_empty_password():
    key = load_signing_key_file(COSIGN / "policy-controller__examples-cosign.key", password=_password(b""))
    assert key.public.der == load_public_key_file(COSIGN / "policy-controller__examples-cosign.pub").der


def test_wrong_password_is_a_clear_error():
    with pytest.raises(PasswordError) as info:
        load_signing_key_file(COSIGN / "kwctl__cosign1.key", password=_password(b"wrong"))
    assert "wrong password" in str(info.value) and "MODELSIGN_PASSWORD" in str(info.value)


def test_password_comes_from_modelsign_then_cosign_variable(monkeypatch):
    monkeypatch.delenv("MODELSIGN_PASSWORD")
    monkeypatch.setenv("COSIGN_PASSWORD", "kubewarden")
    assert password_from_environment_or_prompt("x") == b"kubewarden"
    load_signing_key_file(COSIGN / "kwctl__cosign1.key")  # default source reads the variable
    monkeypatch.setenv("MODELSIGN_PASSWORD", "")
    assert password_from_environment_or_prompt("x") == b""  # set-but-empty is the empty password


def test_no_password_and_no_terminal(monkeypatch):
    monkeypatch.delenv("MODELSIGN_PASSWORD")
    with pytest.raises(PasswordError) as info:
        password_from_environment_or_prompt("Enter password")  # pytest's stdin is not a terminal
    assert "no terminal" in str(info.value)


def test_keygen_round_trip_and_permissions(tmp_path):
    key_path, pub_path, public = generate_key_pair(tmp_path / "ml-team", b"s3cret")
    assert key_path.name == "ml-team.key" and pub_path.name == "ml-team.pub"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert key_path.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert pub_path.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    key = load_signing_key_file(key_path, password=_password(b"s3cret"))
    assert key.public.der == public.der == load_public_key_file(pub_path).der
    assert isinstance(key.key, ec.EllipticCurvePrivateKey) and key.key.curve.name == "secp256r1"
    with pytest.raises(UsageError, match="already exists"):
        generate_key_pair(tmp_path / "ml-team", b"x")
    generate_key_pair(tmp_path / "ml-team", b"x", force=True)


def test_our_encrypted_key_decrypts_with_the_cosign_algorithm(tmp_path):
    """Decrypt our key file independently (scrypt + secretbox per FORMATS.md)."""
    import json

    import nacl.secret

    key_path, _, public = generate_key_pair(tmp_path / "k", b"pw")
    body = base64.b64decode("".join(key_path.read_text().splitlines()[1:-1]))
    envelope = json.loads(body)
    assert list(envelope) == ["kdf", "cipher", "ciphertext"]
    params = envelope["kdf"]["params"]
    assert params == {"N": 32768, "r": 8, "p": 1}
    secret = hashlib.scrypt(b"pw", salt=base64.b64decode(envelope["kdf"]["salt"]), n=32768, r=8, p=1, maxmem=2**27, dklen=32)
    der = nacl.secret.SecretBox(secret).decrypt(base64.b64decode(envelope["ciphertext"]), base64.b64decode(envelope["cipher"]["nonce"]))
    loaded = serialization.load_der_private_key(der, None)
    assert loaded.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == public.der


@pytest.mark.parametrize("kind", ["pkcs8", "pkcs8-encrypted", "sec1", "sec1-encrypted"])
def test_plain_pem_private_keys(tmp_path, kind):
    private = ec.generate_private_key(ec.SECP256R1())
    encrypted = kind.endswith("encrypted")
    encryption = serialization.BestAvailableEncryption(b"pw") if encrypted else serialization.NoEncryption()
    fmt = serialization.PrivateFormat.PKCS8 if kind.startswith("pkcs8") else serialization.PrivateFormat.TraditionalOpenSSL
    pem = private.private_bytes(serialization.Encoding.PEM, fmt, encryption)
    key = load_signing_key_pem(pem, name="k", password=_password(b"pw"))
    assert key.public.der == private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if encrypted:
        with pytest.raises(PasswordError):
            load_signing_key_pem(pem, name="k", password=_password(b"nope"))


def test_openssl_written_sec1_key(tmp_path):
    path = tmp_path / "openssl.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path)], check=True)
    assert path.read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    assert load_signing_key_file(path).public.algorithm == "ecdsa-secp256r1"


def test_rsa_and_ed25519_keys_sign_and_verify():
    for private in (rsa.generate_private_key(public_exponent=65537, key_size=2048), ed25519.Ed25519PrivateKey.generate()):
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        key = load_signing_key_pem(pem, name="k")
        assert key.public.verify(key.sign(b"data"), b"data")
        assert not key.public.verify(key.sign(b"data"), b"other")


@pytest.mark.parametrize(
    ("content", "loader", "fragment"),
    [
        (b"", "public", "not a PEM file"),
        (b"hello world", "private", "not a PEM file"),
        (b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "public", "not valid base64"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "public", "corrupt public key"),
        (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJ4Ijox\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "private", "corrupt cosign key"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "private", "not a private key"),
    ],
)
def test_corrupt_key_files(content, loader, fragment):
    with pytest.raises(KeyFormatError) as info:
        if loader == "public":
            load_public_key_pem(content, name="k")
        else:
            load_signing_key_pem(content, name="k", password=_password(b""))
    assert fragment in str(info.value)


def test_swapped_key_roles_get_hints():
    with pytest.raises(KeyFormatError, match="is a private key; verification takes the public key"):
        load_public_key_file(COSIGN / "kwctl__cosign1.key")
    with pytest.raises(KeyFormatError, match="is a public key; signing needs the private key"):
        load_signing_key_file(COSIGN / "kwctl__cosign1.pub")


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyFormatError, match="does not exist"):
        load_public_key_file(tmp_path / "absent.pub")


def test_hostile_scrypt_parameters_are_refused():
    import json

    envelope = {"kdf": {"name": "scrypt", "params": {"N": 2**30, "r": 8, "p": 1}, "salt": "AA=="}, "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(b"0" * 24).decode()}, "ciphertext": "AA=="}
    pem = b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n" + base64.b64encode(json.dumps(envelope).encode()) + b"\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n"
    with pytest.raises(KeyFormatError, match="invalid scrypt"):
        load_signing_key_pem(pem, name="k", password=_password(b""))


def test_golden_public_keys_load(tmp_path: Path):
    for name in ("connaisseur__alice.key", "connaisseur__bob.key", "connaisseur__charlie.key"):
        # connaisseur ships public keys under a .key name
        assert load_public_key_file(COSIGN / name).algorithm == "ecdsa-secp256r1"
