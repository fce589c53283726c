"""Signing and verification keys.

Private keys: cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`, older
`ENCRYPTED COSIGN PRIVATE KEY`: scrypt + NaCl secretbox around PKCS#8 DER), and plain
PKCS#8 / SEC1 PEM, optionally password-protected. Public keys: PEM SubjectPublicKeyInfo
(or a certificate, whose key is used). Key ids are shown as cosign shows them:
base64(sha256(DER SPKI)).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import nacl.exceptions
import nacl.secret
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from signer.errors import FormatError, KeyFormatError, PasswordError, UsageError
from signer.files import read_limited
from signer.formats.jsonenc import go_json
from signer.jsonread import parse_json_object

PrivateKeyTypes = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]
PublicKeyTypes = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]

COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
PLAIN_PRIVATE_PEM_TYPES = ("PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY")
PASSWORD_ENV_VARS = ("MODELSIGN_PASSWORD", "COSIGN_PASSWORD")
_SCRYPT_N = 32768
_SCRYPT_R = 8
_SCRYPT_P = 1
_MAX_SCRYPT_N = 1 << 20  # refuse absurd parameters from a hostile key file
_MAX_SCRYPT_N_TIMES_R = 1 << 21  # at most 256 MiB of scrypt memory
_MAX_KEY_FILE_BYTES = 1024 * 1024

PasswordSource = Callable[[str], bytes]


@dataclass(frozen=True)
class PublicKey:
    key: PublicKeyTypes
    name: str

    @property
    def der(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def key_id(self) -> str:
        """cosign's key hint: base64(sha256(DER SubjectPublicKeyInfo))."""
        return base64.b64encode(hashlib.sha256(self.der).digest()).decode()

    @property
    def model_signing_hint(self) -> str:
        """model_signing's key hint: hex(sha256(PEM bytes))."""
        return hashlib.sha256(self.pem).hexdigest()

    @property
    def algorithm(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return f"ecdsa-{self.key.curve.name}"
        if isinstance(self.key, rsa.RSAPublicKey):
            return f"rsa-{self.key.key_size}"
        return "ed25519"

    def verify(self, signature: bytes, data: bytes, *, hash_algorithm: hashes.HashAlgorithm | None = None) -> bool:
        """True if `signature` is valid over `data`. cosign hashes with SHA-256 for every key type."""
        algorithm = hash_algorithm or hashes.SHA256()
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, data, ec.ECDSA(algorithm))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, data, padding.PKCS1v15(), algorithm)
            else:
                self.key.verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    key: PrivateKeyTypes
    name: str

    @property
    def public(self) -> PublicKey:
        return PublicKey(key=self.key.public_key(), name=self.name)

    def sign(self, data: bytes, *, hash_algorithm: hashes.HashAlgorithm | None = None) -> bytes:
        algorithm = hash_algorithm or hashes.SHA256()
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(algorithm))
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), algorithm)
        return self.key.sign(data)


def curve_hash(public_key: PublicKey) -> hashes.HashAlgorithm:
    """The hash model_signing and sigstore pair with each ECDSA curve."""
    if isinstance(public_key.key, ec.EllipticCurvePublicKey):
        size = public_key.key.curve.key_size
        if size == 384:
            return hashes.SHA384()
        if size == 521:
            return hashes.SHA512()
    return hashes.SHA256()


# -- passwords ---------------------------------------------------------------------------


def password_from_environment_or_prompt(prompt: str, *, confirm: bool = False) -> bytes:
    """MODELSIGN_PASSWORD, then COSIGN_PASSWORD (an empty value is a valid empty password), then a TTY prompt."""
    for variable in PASSWORD_ENV_VARS:
        if variable in os.environ:
            return os.environ[variable].encode()
    if not sys.stdin.isatty():
        raise PasswordError(
            f"{prompt}: no password given and no terminal to ask on",
            hint="set MODELSIGN_PASSWORD (or COSIGN_PASSWORD; an empty value means an empty password)",
        )
    first = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass("Enter password again: ") != first:
        raise PasswordError("the two passwords differ")
    return first.encode()


# -- PEM helpers ---------------------------------------------------------------------------


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, body) pairs; body base64-decoded. Headers (Proc-Type etc.) are skipped."""
    blocks: list[tuple[str, bytes]] = []
    lines = data.decode("ascii", errors="replace").splitlines()
    current: str | None = None
    body: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            current, body = line[11:-5], []
        elif line.startswith("-----END ") and current is not None:
            try:
                blocks.append((current, base64.b64decode("".join(body), validate=True)))
            except ValueError:
                raise KeyFormatError(f"the {current} PEM block is not valid base64") from None
            current = None
        elif current is not None and ":" not in line and line:
            body.append(line)
    return blocks


def encode_pem(pem_type: str, body: bytes) -> bytes:
    encoded = base64.b64encode(body).decode()
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    return (f"-----BEGIN {pem_type}-----\n" + "\n".join(lines) + f"\n-----END {pem_type}-----\n").encode()


def _read_key_file(path: Path, what: str) -> bytes:
    return read_limited(path, what=what, max_bytes=_MAX_KEY_FILE_BYTES, error=KeyFormatError,
                        missing_hint="check the path, or create a key pair with `modelsign keygen`")


# -- loading -----------------------------------------------------------------------------


def load_public_key_file(path: Path, *, name: str | None = None) -> PublicKey:
    return load_public_key_pem(_read_key_file(path, "public key"), name=name or path.stem, source=str(path))


def load_public_key_pem(data: bytes, *, name: str, source: str = "public key") -> PublicKey:
    blocks = _pem_blocks(data)
    if not blocks:
        raise KeyFormatError(f"{source} is not a PEM file", hint="expected -----BEGIN PUBLIC KEY----- as written by `modelsign keygen` or `cosign generate-key-pair`")
    pem_type, body = blocks[0]
    if pem_type in COSIGN_PEM_TYPES or pem_type in PLAIN_PRIVATE_PEM_TYPES:
        raise KeyFormatError(f"{source} is a private key; verification takes the public key", hint="pass the .pub file (`modelsign public-key --key KEY` prints it)")
    try:
        if pem_type == "PUBLIC KEY":
            key = serialization.load_der_public_key(body)
        elif pem_type == "CERTIFICATE":
            key = x509.load_der_x509_certificate(body).public_key()
        else:
            raise KeyFormatError(f"{source} holds a {pem_type} block, not a public key")
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"{source} is a corrupt public key: {exc}") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise KeyFormatError(f"{source} uses an unsupported key type {type(key).__name__}", hint="use ECDSA (P-256 default), RSA or Ed25519 keys")
    return PublicKey(key=key, name=name)


def load_signing_key_file(path: Path, *, password: PasswordSource | None = None, name: str | None = None) -> SigningKey:
    return load_signing_key_pem(_read_key_file(path, "private key"), name=name or path.stem, source=str(path), password=password)


def load_signing_key_pem(data: bytes, *, name: str, source: str = "private key", password: PasswordSource | None = None) -> SigningKey:
    ask = password or password_from_environment_or_prompt
    blocks = _pem_blocks(data)
    if not blocks:
        raise KeyFormatError(f"{source} is not a PEM file", hint="expected a key written by `modelsign keygen`, `cosign generate-key-pair` or openssl")
    pem_type, body = blocks[0]
    if pem_type in ("PUBLIC KEY", "CERTIFICATE"):
        raise KeyFormatError(f"{source} is a public key; signing needs the private key", hint="pass the .key file from `modelsign keygen`")
    if pem_type in COSIGN_PEM_TYPES:
        der = decrypt_cosign_key(body, ask(f"Enter password for private key {source}"), source=source)
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(f"{source} decrypted, but holds no valid PKCS#8 key: {exc}") from None
    elif pem_type in PLAIN_PRIVATE_PEM_TYPES:
        encrypted = pem_type == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data
        secret = ask(f"Enter password for private key {source}") if encrypted else None
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except TypeError as exc:
            raise PasswordError(f"{source}: {exc}") from None
        except ValueError as exc:
            if encrypted:
                raise PasswordError(f"wrong password for private key {source}", hint="check MODELSIGN_PASSWORD / COSIGN_PASSWORD") from None
            raise KeyFormatError(f"{source} is a corrupt private key: {exc}") from None
        except UnsupportedAlgorithm as exc:
            raise KeyFormatError(f"{source} uses an unsupported key algorithm: {exc}") from None
    else:
        raise KeyFormatError(f"{source} holds a {pem_type} block, not a private key")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise KeyFormatError(f"{source} uses an unsupported key type {type(key).__name__}")
    return SigningKey(key=key, name=name)


def decrypt_cosign_key(body: bytes, password: bytes, *, source: str) -> bytes:
    try:
        envelope = parse_json_object(body, what="cosign key body")
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        params = kdf["params"]
        n, r, p = params["N"], params["r"], params["p"]
        if not all(type(v) is int for v in (n, r, p)):
            raise TypeError("scrypt parameters must be integers")
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(envelope["ciphertext"], validate=True)
    except (FormatError, ValueError, KeyError, TypeError):
        raise KeyFormatError(f"{source} is a corrupt cosign key: its JSON body is malformed", hint="regenerate it with `modelsign keygen` or `cosign generate-key-pair`") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise KeyFormatError(f"{source} uses kdf {kdf.get('name')!r} / cipher {cipher.get('name')!r}; only scrypt + nacl/secretbox are supported")
    # Bound the memory a hostile key file can make scrypt use (128 * N * r bytes).
    if not (1 < n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16 and n * r <= _MAX_SCRYPT_N_TIMES_R) or len(nonce) != 24:
        raise KeyFormatError(f"{source} has invalid scrypt/secretbox parameters (N={n}, r={r}, p={p})")
    secret_key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r + 1024 * 1024, dklen=32)
    try:
        return nacl.secret.SecretBox(secret_key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise PasswordError(
            f"wrong password for private key {source} (decryption failed)",
            hint="check MODELSIGN_PASSWORD / COSIGN_PASSWORD; an empty value means the empty password",
        ) from None


def encrypt_cosign_key(private_key: PrivateKeyTypes, password: bytes) -> bytes:
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt = secrets.token_bytes(32)
    nonce = secrets.token_bytes(24)
    secret_key = hashlib.scrypt(password, salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=128 * 1024 * 1024, dklen=32)
    ciphertext = nacl.secret.SecretBox(secret_key).encrypt(der, nonce).ciphertext
    envelope = {
        "kdf": {"name": "scrypt", "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P}, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return encode_pem(COSIGN_PEM_TYPES[0], go_json(envelope))


def generate_key_pair(prefix: Path, password: bytes, *, force: bool = False) -> tuple[Path, Path, PublicKey]:
    """Write PREFIX.key (cosign encrypted, mode 0600) and PREFIX.pub (PEM); ECDSA P-256."""
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists() and not force:
            raise UsageError(f"{path} already exists", hint="choose another --output-prefix or pass --force to overwrite")
    private_key = ec.generate_private_key(ec.SECP256R1())
    public = PublicKey(key=private_key.public_key(), name=prefix.name)
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(encrypt_cosign_key(private_key, password))
        pub_path.write_bytes(public.pem)
    except OSError as exc:
        raise UsageError(f"cannot write key files at {prefix}: {exc.strerror}") from None
    return key_path, pub_path, public
