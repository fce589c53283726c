"""One admission decision: AdmissionReview I/O, artifacts per kind, evidence gathering
through the signer, the policy file, the policy engine, messages, and digest pinning."""
