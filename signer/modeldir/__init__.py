"""Model directories and single-file models: parallel hashing into a model_signing manifest,
and signing and verifying in the OpenSSF model signing format."""
