"""Continuous compliance: re-decide what runs now against today's evidence (`modelsign report
cluster`, and `webhook serve --compliance-interval`). Admission checks once; approvals expire,
get revoked, scans age and keys are removed, and only a fresh look says so."""
