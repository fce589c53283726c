"""What attestations about a digest say: vulnerability and model-file scans (`scan/`) and
approvals for an environment. Signing and reading them back is `signer.signatures`."""
