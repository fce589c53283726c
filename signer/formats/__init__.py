"""The signed bytes and how they are stored: digests and tag names, Go-compatible JSON, media
types, cosign simple-signing payloads, DSSE envelopes, in-toto statements, sigstore bundles,
cosign legacy `.sig`/`.att` manifests and bundle referrers. See FORMATS.md."""
