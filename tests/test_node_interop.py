"""sigstore-js (@sigstore/verify, an independent implementation) accepts our bundles.

The README test command runs `npm ci`-style install in tests/interop/node; if node or the
package is missing, this test fails rather than skips, so CI cannot pass without it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from signer.formats import mediatypes as mt
from signer.formats.digests import hex_part
from signer.oci.layout import LayoutRepository
from signer.oci.referrers import list_referrers
from signer.oci.samples import push_image
from signer.references import parse_reference
from signer.signatures.signing import SignatureFormat, sign_artifact

NODE_DIR = Path(__file__).parent / "interop" / "node"


def _node_verify(bundle: Path, public_key: Path, digest: str) -> subprocess.CompletedProcess:
    assert (NODE_DIR / "node_modules" / "@sigstore" / "verify").is_dir(), "run `npm install` in tests/interop/node (the README test command does)"
    return subprocess.run(["node", str(NODE_DIR / "verify-bundle.mjs"), str(bundle), str(public_key), hex_part(digest)], capture_output=True, text=True, timeout=60)


def test_sigstore_js_verifies_our_image_signature_bundle(tmp_path, stores, ml_key, other_key, key_dir):
    repository = LayoutRepository(tmp_path / "store", create=True)
    image = push_image(repository, {"f": b"node interop"}, tag="v1")
    sign_artifact(stores, parse_reference(f"oci:{tmp_path / 'store'}:v1"), ml_key, signature_format=SignatureFormat.BUNDLE)
    (referrer,) = list_referrers(repository, image.digest, mt.SIGSTORE_BUNDLE_V03)
    layer = repository.fetch_manifest(referrer.digest).layers[0]
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(repository.fetch_blob(layer.digest))

    accepted = _node_verify(bundle, key_dir / "ml-team.pub", image.digest)
    assert accepted.returncode == 0, accepted.stderr
    assert "predicateType=https://sigstore.dev/cosign/sign/v1" in accepted.stdout

    rejected = _node_verify(bundle, key_dir / "other-team.pub", image.digest)
    assert rejected.returncode == 1 and "rejected" in rejected.stderr

    wrong_subject = _node_verify(bundle, key_dir / "ml-team.pub", "sha256:" + "0" * 64)
    assert wrong_subject.returncode == 1 and "do not include" in wrong_subject.stderr
