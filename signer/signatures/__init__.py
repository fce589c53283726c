"""Signed statements about an artifact digest: resolve a reference once, sign it, attest
about it, verify the signatures and attestations on it; and sigstore bundles over a file
(verify-blob)."""
