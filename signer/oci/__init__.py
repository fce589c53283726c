"""OCI storage: one `Repository` interface over a distribution registry (httpx client, auth)
and a local OCI image layout; referrers, shared-tag updates, budgets, fetch-once reads, and
small sample artifacts."""
