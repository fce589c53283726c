"""Words the audit records and reports use, in a module that imports nothing (the CLI offers
them as choices without loading the trail's readers)."""

from __future__ import annotations

OUTCOMES = ("allow", "deny", "warn", "error")  # a decision record's outcome
FAILURE_POLICIES = ("Fail", "Ignore")  # a webhook configuration's failurePolicy
