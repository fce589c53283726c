"""The audit trail: hash-chained, durable decision records, signed checkpoints, verification
and auditor reports. See README "Audit trail"."""
