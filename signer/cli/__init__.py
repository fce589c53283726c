"""The signer's command line: its commands (`commands`), their options (`parser`), running one
(`main`) and the text and JSON output (`render`). The `modelsign` program adds the webhook's
commands to it (webhook/cli.py)."""
