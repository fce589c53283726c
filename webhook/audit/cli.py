"""`modelsign audit verify | export | verify-export`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from signer import EXIT_OK, EXIT_VERIFICATION_FAILED, PublicKey, UsageError, load_public_key_file, load_signing_key_file
from webhook.audit.export import OUTCOMES, Selection, load_trail, parse_moment, write_csv, write_jsonl
from webhook.audit.manifest import check_manifest, write_manifest
from webhook.audit.verify import NOT_VERIFIED, VerifyReport, expand, verify
from webhook.audit.witness import WitnessSettings, read_witness
from webhook.audit.writer import utc_now

FORMATS = ("jsonl", "csv", "html", "pdf")


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify the audit trail and export reports for auditors")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    check = audit_commands.add_parser("verify", help="check every chain and the signed checkpoints; exit 0 only when intact and verified "
                                      "with --key, 1 on damage (saying where) or without a key")
    check.add_argument("paths", nargs="+", type=Path, help="chain files or directories (their *.jsonl); checkpoint files may be among them")
    _key_options(check)
    check.add_argument("--output", choices=("text", "json"), default="text")
    check.set_defaults(handler=cmd_verify)

    export = audit_commands.add_parser("export", help="a period of decisions as jsonl, csv, html or pdf, with a signed manifest.json")
    export.add_argument("paths", nargs="+", type=Path, help="chain files or directories")
    export.add_argument("--format", choices=FORMATS, action="append", required=True, help="jsonl, csv, html or pdf (repeatable)")
    export.add_argument("-o", "--output", type=Path, required=True, dest="output_path",
                        help="the report file (one format), or a directory for report.<format> files; manifest.json goes beside them")
    export.add_argument("--since", help="start, inclusive: 2026-10-01 or an RFC 3339 time (UTC if no zone)")
    export.add_argument("--until", help="end, exclusive")
    export.add_argument("--namespace", action="append", default=[], help="namespace glob (repeatable)")
    export.add_argument("--decision", action="append", default=[], choices=OUTCOMES, help="only these outcomes (repeatable)")
    export.add_argument("--artifact", action="append", default=[], help="reference or digest glob (repeatable)")
    export.add_argument("--sample", type=int, default=25, help="decisions in the random sample for auditors (default 25)")
    export.add_argument("--seed", type=int, help="sample seed (default: derived from the period and filters, so reproducible)")
    export.add_argument("--signing-key", type=Path, help="audit private key: signs manifest.json (password: MODELSIGN_AUDIT_PASSWORD or MODELSIGN_PASSWORD)")
    _key_options(export)
    export.set_defaults(handler=cmd_export)

    check_export = audit_commands.add_parser("verify-export", help="check an export's manifest.json: signature and every file's sha256")
    check_export.add_argument("manifest", type=Path)
    check_export.add_argument("--key", action="append", default=[], type=Path, required=True, help="audit public key")
    check_export.set_defaults(handler=cmd_verify_export)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", action="append", default=[], type=Path,
                        help="audit public key that signs checkpoints (repeatable); without it nothing is verified (exit 1)")
    parser.add_argument("--checkpoints", action="append", default=[], type=Path,
                        help="checkpoint file kept apart from the chains (the server's --audit-checkpoints; repeatable); without it or "
                             "--witness only the checkpoints inside the chains are used")
    parser.add_argument("--witness", metavar="REGISTRY/REPO", help="also check every checkpoint witnessed in this OCI repository (--audit-witness)")
    parser.add_argument("--witness-docker-config", type=Path, metavar="PATH", help="Docker config.json with a credential that may pull from the witness")
    parser.add_argument("--witness-insecure", action="store_true", help="plain HTTP (or unverified TLS) to a non-loopback witness registry")


def _public_keys(paths: list[Path]) -> list[PublicKey]:
    return [load_public_key_file(path, name="audit") for path in paths]


def _existing(paths: list[Path]) -> list[Path]:
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist", hint="pass the audit log directory or its chain files")
    return paths


def _verify(args: argparse.Namespace, extra_keys: list[PublicKey] | None = None) -> VerifyReport:
    keys = _public_keys(args.key) + (extra_keys or [])
    checkpoint_files = _existing(args.checkpoints)
    witnessed, others = [], []
    if args.witness:
        witnessed, others = read_witness(WitnessSettings(args.witness, docker_config=args.witness_docker_config, insecure=args.witness_insecure))
    report = verify(_existing(args.paths), keys, checkpoint_files=checkpoint_files, witness=witnessed)
    if args.witness:
        report.warnings.append(f"witness {args.witness}: {len(witnessed)} checkpoint tag(s) read"
                               + (f"; {len(others)} other tag(s) ignored ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''})" if others else ""))
    return report


def integrity_summary(report: VerifyReport) -> dict[str, Any]:
    """What an export's manifest.json says about the trail's integrity."""
    return {**report.status_fields(), "records": report.records, "problems": len(report.problems), "superseded": len(report.pairs),
            "writers": [c.summary() for c in report.chains.values()]}


def status_line(report: VerifyReport) -> str:
    counts = (f"{report.records} record(s) from {len(report.chains)} writer(s), {report.verified_checkpoints} verified checkpoint(s), "
              f"{len(report.problems)} problem(s)")
    if report.status == "UNVERIFIED":
        return f"UNVERIFIED: {NOT_VERIFIED} ({counts}; pass --key AUDIT_PUB)"
    return f"{report.status}: {counts}"


def _print_report(report: VerifyReport) -> None:
    for chain in sorted(report.chains.values(), key=lambda c: c.writer):
        checkpoint = f", signed checkpoint at seq {chain.last_checkpoint_seq}" if chain.last_checkpoint_seq else ""
        print(f"writer {chain.writer}: seq {chain.first_seq}-{chain.last_seq}, {chain.records} record(s) in {len(chain.files)} file(s), "
              f"{chain.missing} missing{checkpoint}")
    for pair in report.pairs:
        response = pair.get("response") or {}
        print(f"superseded: {pair['writer']}#{pair['seq']} (decision {pair.get('decisionId') or '-'}) was answered allowed={str(response.get('allowed')).lower()} "
              f"({response.get('reason')}), as {pair['supersededBy']} records")
    for problem in report.problems:
        print(f"{problem.kind.upper()}: {problem.message}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(status_line(report))


def cmd_verify(args: argparse.Namespace) -> int:
    report = _verify(args)
    if args.output == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED  # UNVERIFIED too: a script testing for 0 never passes without a key


def cmd_export(args: argparse.Namespace) -> int:
    from webhook.audit.report import build_report
    from webhook.audit.settings import audit_password

    selection = Selection(
        since=parse_moment(args.since, what="--since") if args.since else None, until=parse_moment(args.until, what="--until") if args.until else None,
        namespaces=tuple(args.namespace), outcomes=tuple(args.decision), artifacts=tuple(args.artifact),
    )
    signing = load_signing_key_file(args.signing_key, password=audit_password, name="audit") if args.signing_key else None
    integrity = _verify(args, [signing.public] if signing else None)
    trail = load_trail(expand(args.paths), selection, superseded=integrity.pairs)
    formats = list(dict.fromkeys(args.format))
    target: Path = args.output_path
    directory = target if len(formats) > 1 or target.is_dir() or not target.suffix else target.parent
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    report = None
    for fmt in formats:
        out = directory / f"report.{fmt}" if directory == target else target
        if fmt == "csv":
            write_csv(trail, out)
        elif fmt == "jsonl":
            write_jsonl(trail, out)
        else:
            report = report or build_report(trail, selection, integrity, sample_size=args.sample, seed=args.seed)
            if fmt == "html":
                from webhook.audit.report_html import render_html

                out.write_text(render_html(report), encoding="utf-8")
            else:
                from webhook.audit.report_pdf import render_pdf

                out.write_bytes(render_pdf(report))
        written.append(out)
    manifest = write_manifest(directory, written, generated=utc_now(), selection=selection.describe(), integrity=integrity_summary(integrity), key=signing)
    print(f"Wrote {', '.join(str(w) for w in written)} ({len(trail.decisions)} decision(s)) and {manifest}"
          + ("" if signing else " (unsigned: pass --signing-key to sign it)"))
    if integrity.status == "DAMAGED":
        print(f"warning: the trail is DAMAGED ({len(integrity.problems)} problem(s)); the report's integrity section lists them", file=sys.stderr)
    elif integrity.status == "UNVERIFIED":
        print(f"warning: {NOT_VERIFIED}; the report says so (pass --key AUDIT_PUB or --signing-key)", file=sys.stderr)
    return EXIT_OK if integrity.ok else EXIT_VERIFICATION_FAILED


def cmd_verify_export(args: argparse.Namespace) -> int:
    check = check_manifest(args.manifest, _public_keys(args.key))
    for name, state in check.files:
        print(f"{state.upper():8} {name}")
    print(f"signature: {'valid' if check.signature_ok else 'MISSING' if not check.signed else 'INVALID'}")
    print("export intact" if check.ok else "export NOT intact")
    return EXIT_OK if check.ok else EXIT_VERIFICATION_FAILED
