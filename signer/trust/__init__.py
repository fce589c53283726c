"""Who may sign: keys (cosign formats, key ids), trust anchors, keyless identities (Fulcio
certificates, Rekor entries), private-PKI certificates, and who signed a DSSE envelope."""
