"""Model signatures made with a certificate from a private PKI (model_signing's `certificate`
method), checked both ways against the real `model_signing` command line, with a PKI
(root CA, intermediate CA, code-signing leaf) generated for each test."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import run_cli

MODEL_SIGNING = Path(sys.executable).parent / "model_signing"
NOW = datetime.datetime.now(datetime.timezone.utc)
CODE_SIGNING = [ExtendedKeyUsageOID.CODE_SIGNING]


@dataclass
class Pki:
    directory: Path
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    def path(self, name: str) -> Path:
        return self.directory / name

    def leaf(self, name: str, *, eku: list | None = CODE_SIGNING, digital_signature: bool = True, key_cert_sign: bool = False,
             not_before: datetime.datetime | None = None, not_after: datetime.datetime | None = None) -> tuple[Path, Path]:
        """Writes NAME.key (PKCS#8, what model_signing reads) and NAME.pem, issued by the intermediate."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(name, key, self.intermediate.subject, not_before or NOW - datetime.timedelta(hours=1),
                           not_after or NOW + datetime.timedelta(days=1))
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.KeyUsage(digital_signature, False, False, False, False, key_cert_sign, False, False, False), critical=True)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()), critical=False)
        certificate = builder.sign(self.intermediate_key, hashes.SHA256())
        key_path, cert_path = self.path(f"{name}.key"), self.path(f"{name}.pem")
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return key_path, cert_path


def _builder(common_name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, not_before: datetime.datetime,
             not_after: datetime.datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))


def _ca(common_name: str, key: ec.EllipticCurvePrivateKey, issuer_name: x509.Name | None, issuer_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = _builder(common_name, key, issuer_name or subject, NOW - datetime.timedelta(days=30), NOW + datetime.timedelta(days=365))
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, name: str = "Model Root CA") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    root_key, intermediate_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP256R1())
    root = _ca(name, root_key, None, root_key)
    intermediate = _ca(f"{name} Intermediate", intermediate_key, root.subject, root_key)
    pki = Pki(directory, root_key, root, intermediate_key, intermediate)
    pki.path("root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    pki.path("intermediate.pem").write_bytes(intermediate.public_bytes(serialization.Encoding.PEM))
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture(params=["directory", "file"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "file":
        path = tmp_path / "model.safetensors"
        path.write_bytes(os.urandom(300_000))
        return path
    root = tmp_path / "my-model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(300_000))
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return root


def model_signing(*args: object) -> subprocess.CompletedProcess[str]:
    """The real model_signing CLI, as a whole process."""
    return subprocess.run([str(MODEL_SIGNING), *map(str, args)], capture_output=True, text=True, timeout=120)


def _tamper(model: Path) -> None:
    target = model if model.is_file() else model / "weights.bin"
    data = bytearray(target.read_bytes())
    data[0] ^= 0xFF
    target.write_bytes(bytes(data))


def test_our_certificate_signature_verifies_with_model_signing(capsys, pki, model):
    key, cert = pki.leaf("release-signer")
    signature = model.parent / "ours.sig"
    # model_signing's CLI verifies `files` serialization only; a single file defaults to it.
    form = ["--serialization", "files"] if model.is_dir() else []
    code, out, err = run_cli(capsys, "sign", model, "--key", key, "--certificate", cert, "--certificate-chain", pki.path("intermediate.pem"),
                             "--signature", signature, *form)
    assert code == 0, err
    assert "certificate: CN=release-signer" in out
    done = model_signing("verify", "certificate", model, "--signature", signature, "--certificate_chain", pki.path("root.pem"))
    assert done.returncode == 0, done.stderr
    # The exact bundle shape model_signing writes: leaf then chain, DER, in x509CertificateChain.
    material = json.loads(signature.read_text())["verificationMaterial"]
    chain = [base64.b64decode(c["rawBytes"]) for c in material["x509CertificateChain"]["certificates"]]
    assert chain == [x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(serialization.Encoding.DER),
                     pki.intermediate.public_bytes(serialization.Encoding.DER)]
    assert material["tlogEntries"] == [] and "publicKey" not in material
    code, out, err = run_cli(capsys, "verify", model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 0, err
    assert "signed by certificate CN=release-signer (issued via CN=Model Root CA Intermediate -> CN=Model Root CA)" in out


def test_model_signings_certificate_signature_verifies_with_us(capsys, pki, model):
    key, cert = pki.leaf("their-signer")
    signature = model.parent / "theirs.sig"
    done = model_signing("sign", "certificate", model, "--private_key", key, "--signing_certificate", cert,
                         "--certificate_chain", pki.path("intermediate.pem"), "--signature", signature)
    assert done.returncode == 0, done.stderr
    code, out, err = run_cli(capsys, "verify", model, "--signature", signature, "--certificate-chain", pki.path("root.pem"), "--output", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["verified"] and report["signer"].startswith("certificate CN=their-signer") and report["method"] == "files"
    _tamper(model)
    code, _, err = run_cli(capsys, "verify", model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and "modified" in err and "Traceback" not in err


def test_intermediates_may_come_from_the_verifier(capsys, pki, tmp_path):
    """A bundle holding only the leaf verifies when the verifier supplies the intermediate,
    in the same file as the root or in another one."""
    model = tmp_path / "m.bin"
    model.write_bytes(b"weights")
    key, cert = pki.leaf("leaf-only")
    signature = tmp_path / "leaf-only.sig"
    # model_signing's CLI cannot sign without a chain file; ours embeds just the leaf then.
    assert run_cli(capsys, "sign", model, "--key", key, "--certificate", cert, "--signature", signature)[0] == 0
    code, _, err = run_cli(capsys, "verify", model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and "does not chain to a trusted root (CN=Model Root CA)" in err
    code, _, err = run_cli(capsys, "verify", model, "--signature", signature, "--certificate-chain", pki.path("root.pem"),
                           "--certificate-chain", pki.path("intermediate.pem"))
    assert code == 0, err
    both = tmp_path / "both.pem"
    both.write_bytes(pki.path("intermediate.pem").read_bytes() + pki.path("root.pem").read_bytes())
    assert run_cli(capsys, "verify", model, "--signature", signature, "--certificate-chain", both)[0] == 0


@pytest.fixture
def file_model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(os.urandom(5000))
    return path


def _sign_with_model_signing(pki: Pki, model: Path, key: Path, cert: Path, name: str) -> Path:
    signature = model.parent / f"{name}.sig"
    done = model_signing("sign", "certificate", model, "--private_key", key, "--signing_certificate", cert,
                         "--certificate_chain", pki.path("intermediate.pem"), "--signature", signature)
    assert done.returncode == 0, done.stderr
    return signature


def test_a_root_we_do_not_trust_is_refused(capsys, pki, file_model, tmp_path):
    key, cert = pki.leaf("signer")
    signature = _sign_with_model_signing(pki, file_model, key, cert, "ok")
    other = make_pki(tmp_path / "other", name="Someone Else's Root")
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", other.path("root.pem"))
    assert code == 1 and "does not chain to a trusted root (CN=Someone Else's Root)" in err and "hint:" in err
    assert model_signing("verify", "certificate", file_model, "--signature", signature, "--certificate_chain", other.path("root.pem")).returncode == 1


def test_an_intermediate_alone_is_not_a_root(capsys, pki, file_model):
    key, cert = pki.leaf("signer")
    signature = _sign_with_model_signing(pki, file_model, key, cert, "ok")
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", pki.path("intermediate.pem"))
    assert code == 2 and "holds no root (self-signed) certificate" in err
    # model_signing (OpenSSL without partial chains) refuses it as well.
    assert model_signing("verify", "certificate", file_model, "--signature", signature, "--certificate_chain", pki.path("intermediate.pem")).returncode == 1


def test_an_expired_certificate_is_refused_although_model_signing_accepts_it(capsys, pki, file_model):
    """model_signing validates the chain at the certificate's notBefore, so expiry never
    matters to it; with no trusted timestamp in the bundle we require validity now."""
    key, cert = pki.leaf("expired", not_before=NOW - datetime.timedelta(days=10), not_after=NOW - datetime.timedelta(days=1))
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate", cert)
    assert code == 2 and "expired at" in err
    signature = _sign_with_model_signing(pki, file_model, key, cert, "expired")
    assert model_signing("verify", "certificate", file_model, "--signature", signature, "--certificate_chain", pki.path("root.pem")).returncode == 0
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and "certificate CN=expired expired at" in err and "no trusted timestamp" in err


def test_a_certificate_not_yet_valid_is_refused(capsys, pki, file_model):
    key, cert = pki.leaf("future", not_before=NOW + datetime.timedelta(days=1), not_after=NOW + datetime.timedelta(days=2))
    signature = _sign_with_model_signing(pki, file_model, key, cert, "future")
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and "is not valid before" in err


@pytest.mark.parametrize(
    ("options", "fragment", "model_signing_accepts"),
    [
        ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "extendedKeyUsage serverAuth, without codeSigning", True),
        ({"eku": None, "digital_signature": False, "key_cert_sign": True}, "keyUsage without digitalSignature", False),
    ],
)
def test_certificates_not_meant_for_code_signing_are_refused(capsys, pki, file_model, options, fragment, model_signing_accepts):
    key, cert = pki.leaf("wrong-usage", **options)
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate", cert)
    assert code == 2 and fragment in err and "codeSigning" in err  # the hint says what is needed
    signature = _sign_with_model_signing(pki, file_model, key, cert, "wrong-usage")
    theirs = model_signing("verify", "certificate", file_model, "--signature", signature, "--certificate_chain", pki.path("root.pem"))
    assert (theirs.returncode == 0) is model_signing_accepts  # model_signing takes digitalSignature alone as enough
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and fragment in err


def test_signing_refuses_mismatched_and_malformed_inputs(capsys, pki, file_model, tmp_path):
    key, cert = pki.leaf("signer")
    other_key, _ = pki.leaf("someone-else")
    code, _, err = run_cli(capsys, "sign", file_model, "--key", other_key, "--certificate", cert)
    assert code == 2 and "does not certify private key someone-else" in err
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate", cert, "--certificate-chain", cert)
    assert code == 2 and "CN=signer, which is not a CA certificate" in err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate", garbage)
    assert code == 2 and "is not a valid certificate" in err
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate", tmp_path / "absent.pem")
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate-chain", pki.path("intermediate.pem"))
    assert code == 2 and "--certificate-chain needs --certificate" in err
    code, _, err = run_cli(capsys, "sign", "registry.example.com/app:1", "--key", key, "--certificate", cert)
    assert code == 2 and "apply to model directories and files" in err
    # A chain that names a root the leaf does not chain to is caught before signing.
    stranger = make_pki(tmp_path / "stranger", name="Stranger Root")
    code, _, err = run_cli(capsys, "sign", file_model, "--key", key, "--certificate", cert, "--certificate-chain", pki.path("intermediate.pem"),
                           "--certificate-chain", stranger.path("root.pem"))
    assert code == 2 and "does not chain to the root in the given chain" in err
    code, _, err = run_cli(capsys, "verify", file_model, "--certificate-chain", garbage)
    assert code == 2 and "is not a valid certificate" in err


def test_a_certificate_signature_needs_certificate_trust(capsys, pki, file_model, tmp_path):
    key, cert = pki.leaf("signer")
    signature = _sign_with_model_signing(pki, file_model, key, cert, "ok")
    public = tmp_path / "signer.pub"
    public.write_bytes(x509.load_pem_x509_certificate(cert.read_bytes()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--key", public)
    assert code == 1 and "a public key alone does not verify a certificate signature" in err
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature)
    assert code == 2 and "--certificate-chain ROOT.pem" in err
    code, _, err = run_cli(capsys, "verify", "registry.example.com/app:1", "--certificate-chain", pki.path("root.pem"))
    assert code == 2 and "--certificate-chain applies to model directories and files" in err


def test_damaged_certificate_material_is_a_clear_error(capsys, pki, file_model):
    key, cert = pki.leaf("signer")
    signature = _sign_with_model_signing(pki, file_model, key, cert, "damaged")
    bundle = json.loads(signature.read_text())
    bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] = base64.b64encode(b"not DER").decode()
    signature.write_text(json.dumps(bundle))
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and "certificate 0 is not a DER certificate" in err and "Traceback" not in err
    # A valid chain whose leaf did not make the signature.
    other_key, other_cert = pki.leaf("impostor")
    bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] = base64.b64encode(
        x509.load_pem_x509_certificate(other_cert.read_bytes()).public_bytes(serialization.Encoding.DER)).decode()
    signature.write_text(json.dumps(bundle))
    code, _, err = run_cli(capsys, "verify", file_model, "--signature", signature, "--certificate-chain", pki.path("root.pem"))
    assert code == 1 and "does not verify with the key of CN=impostor" in err
