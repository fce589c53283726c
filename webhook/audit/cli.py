"""`modelsign audit verify | export | verify-export`: the options (what they do: commands.py,
imported when one runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from signer import lazy_handler, output_option
from webhook.audit.terms import FAILURE_POLICIES, OUTCOMES

_COMMANDS = "webhook.audit.commands"
FORMATS = ("jsonl", "csv", "html", "pdf", "json", "pack")
OUTPUTS = ("text", "json", "yaml")  # what -o/--output prints (the export's own formats are --format)
PACK = ("csv", "pdf", "json")  # the evidence pack for compliance tools


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify the audit trail and export reports for auditors")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    check = audit_commands.add_parser("verify", help="check every chain and the signed checkpoints; exit 0 only when intact and verified "
                                      "with --key, 1 on damage (saying where) or without a key")
    check.add_argument("paths", nargs="+", type=Path, help="chain files or directories (their *.jsonl); checkpoint files may be among them")
    _key_options(check)
    check.add_argument("--jobs", type=int, default=0, metavar="N", help="read and hash files on N processes (default: every core when the "
                       "files hold more than 256 MiB, else one)")
    check.add_argument("--state", type=Path, metavar="FILE", help="incremental: take the files an earlier verify summarised from FILE (signed "
                       "with --state-key), read only new and grown files, and update FILE")
    check.add_argument("--state-key", type=Path, metavar="AUDIT_KEY", help="audit private key that signs the --state file "
                       "(password: MODELSIGN_AUDIT_PASSWORD or MODELSIGN_PASSWORD)")
    output_option(check)
    check.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_verify"))

    export = audit_commands.add_parser("export", help="a period of decisions as jsonl, csv, html, pdf or json (the report as data), or the "
                                       "evidence pack (csv, pdf, json), with a signed manifest per export")
    export.add_argument("paths", nargs="+", type=Path, help="chain files or directories")
    export.add_argument("--format", choices=FORMATS, action="append", required=True,
                        help="jsonl, csv, html, pdf, json, or pack = csv + pdf + json for compliance tools (repeatable)")
    export.add_argument("--out", type=Path, dest="output_path", metavar="PATH",
                        help="the report file (one format: its manifest is FILE.manifest.json), or a directory for "
                             "audit-report-<report id>.<format> files and audit-report-<report id>.manifest.json (required)")
    export.add_argument("-o", "--output", action=_OutputOrLegacyPath, default="text", metavar="text|json|yaml",
                        help="what this command prints: text (default), json or yaml. Deprecated: any other value is taken as --out PATH")
    export.add_argument("--since", help="start, inclusive: 2026-10-01 or an RFC 3339 time (UTC if no zone)")
    export.add_argument("--until", help="end, exclusive; must be after --since")
    export.add_argument("--namespace", action="append", default=[], help="namespace glob (repeatable)")
    export.add_argument("--decision", action="append", default=[], choices=OUTCOMES, help="only these outcomes (repeatable)")
    export.add_argument("--artifact", action="append", default=[], help="reference or digest glob (repeatable)")
    export.add_argument("--sample", type=int, default=25, help="decisions in the random sample for auditors (default 25)")
    export.add_argument("--seed", type=int, help="sample seed (default: derived from the period and filters, so reproducible)")
    export.add_argument("--failure-policy", choices=FAILURE_POLICIES,
                        help="the failurePolicy of the ValidatingWebhookConfiguration over the period: says what the gaps with no webhook running mean")
    export.add_argument("--cluster", help="the cluster's name, where the webhook did not record it (MODELSIGN_CLUSTER)")
    export.add_argument("--generated-by", help="who generates the report (default: USER@HOST)")
    export.add_argument("--signing-key", type=Path, help="audit private key: signs the manifest (password: MODELSIGN_AUDIT_PASSWORD or MODELSIGN_PASSWORD)")
    _key_options(export)
    export.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_export"))

    check_export = audit_commands.add_parser("verify-export", help="check an export's manifest: signature and every file's sha256")
    check_export.add_argument("manifest", type=Path, help="an export's *.manifest.json, or the export directory (every manifest in it)")
    check_export.add_argument("--key", action="append", default=[], type=Path, required=True, help="audit public key")
    output_option(check_export)
    check_export.set_defaults(handler=lazy_handler(_COMMANDS, "cmd_verify_export"))


class _OutputOrLegacyPath(argparse.Action):
    """`-o/--output text|json|yaml`, as on every command; until 0.2 `-o PATH` was the export's
    location, so any other value still is, with a note to say `--out PATH`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        if values in OUTPUTS:
            namespace.output = values
            return
        print(f"warning: `{option_string} PATH` is deprecated for the export's location: say `--out {values}` "
              "(-o/--output is the output format: text, json or yaml)", file=sys.stderr)
        namespace.output_path = Path(values)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", action="append", default=[], type=Path,
                        help="audit public key that signs checkpoints (repeatable); without it nothing is verified (exit 1)")
    parser.add_argument("--checkpoints", action="append", default=[], type=Path,
                        help="checkpoint file kept apart from the chains (the server's --audit-checkpoints; repeatable); without it or "
                             "--witness only the checkpoints inside the chains are used")
    parser.add_argument("--witness", metavar="REGISTRY/REPO", help="also check every checkpoint witnessed in this OCI repository (--audit-witness)")
    parser.add_argument("--witness-docker-config", type=Path, metavar="PATH", help="Docker config.json with a credential that may pull from the witness")
    parser.add_argument("--witness-insecure", action="store_true", help="plain HTTP (or unverified TLS) to a non-loopback witness registry")
