"""`modelsign certs generate`: a private CA and a serving certificate for the webhook Service.

Writes ca.crt, ca.key, tls.crt and tls.key (keys mode 0600) for `<service>.<namespace>.svc`
(plus `--san` extras), and the base64 caBundle for the ValidatingWebhookConfiguration.
Rotation and the cert-manager alternative are described in certs/README.md.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signer import UsageError


@dataclass(frozen=True)
class GeneratedCerts:
    directory: Path
    ca_cert: Path
    tls_cert: Path
    tls_key: Path
    names: tuple[str, ...]
    ca_bundle: str  # base64 PEM, for the webhook configuration's caBundle

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"


def service_names(service: str, namespace: str, extra: list[str]) -> list[str]:
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
    return list(dict.fromkeys(names + list(extra)))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def generate(service: str, namespace: str, out: Path, *, extra_sans: list[str] | None = None, days: int = 365, ca_days: int = 3650, force: bool = False) -> GeneratedCerts:
    if not service or not namespace:
        raise UsageError("--service and --namespace are required")
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")]
    if any(path.exists() for path in targets) and not force:
        raise UsageError(f"certificates already exist in {out}", hint="pass --force to replace them, or rotate with --reuse-ca (see certs/README.md)")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelsign"), x509.NameAttribute(NameOID.COMMON_NAME, f"modelsign webhook CA ({namespace})")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _issue(out, ca_key, ca_cert, service, namespace, extra_sans or [], days)


def rotate_serving_cert(service: str, namespace: str, out: Path, *, extra_sans: list[str] | None = None, days: int = 365) -> GeneratedCerts:
    """New serving key and certificate from the existing CA: the caBundle stays valid."""
    try:
        ca_key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the CA in {out}: {exc}", hint="run `modelsign certs generate` first") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{out / 'ca.key'} is not an ECDSA key written by modelsign")
    return _issue(out, ca_key, ca_cert, service, namespace, extra_sans or [], days)


def _issue(out: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, service: str, namespace: str, extra: list[str], days: int) -> GeneratedCerts:
    now = datetime.datetime.now(datetime.timezone.utc)
    names = service_names(service, namespace, extra)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[2])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    (out / "ca.crt").write_bytes(ca_pem)
    _write_private(out / "ca.key", ca_key)
    # Write the key before the certificate: a watcher reloads when the certificate changes.
    _write_private(out / "tls.key.tmp", key)
    os.replace(out / "tls.key.tmp", out / "tls.key")
    (out / "tls.crt.tmp").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    os.replace(out / "tls.crt.tmp", out / "tls.crt")
    return GeneratedCerts(directory=out, ca_cert=out / "ca.crt", tls_cert=out / "tls.crt", tls_key=out / "tls.key", names=tuple(names), ca_bundle=base64.b64encode(ca_pem).decode())
