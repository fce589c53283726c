"""What `modelsign audit verify | export | verify-export` do (their options: webhook/audit/cli.py)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from signer import EXIT_OK, EXIT_VERIFICATION_FAILED, PublicKey, UsageError, emit_output, load_public_key_file, load_signing_key_file
from webhook.audit.canonical import canonical_json
from webhook.audit.cli import PACK
from webhook.audit.export import Selection, check_period, load_trail, parse_moment, write_csv, write_jsonl
from webhook.audit.identity import modelsign_version, operator_name
from webhook.audit.manifest import MANIFEST_SUFFIX, check_manifest, file_entry, manifests_in, write_manifest
from webhook.audit.verify import NOT_VERIFIED, VerifyReport, expand, verify
from webhook.audit.witness import WitnessSettings, read_witness


def _public_keys(paths: list[Path]) -> list[PublicKey]:
    return [load_public_key_file(path, name="audit") for path in paths]


def _existing(paths: list[Path]) -> list[Path]:
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist", hint="pass the audit log directory or its chain files")
    return paths


AUTO_PARALLEL_BYTES = 256 * 1024 * 1024  # below this, starting worker processes costs more than it saves


def _jobs(args: argparse.Namespace) -> int:
    jobs = getattr(args, "jobs", 0) or 0
    if jobs > 0:
        return jobs
    size = sum(path.stat().st_size for path in expand(args.paths) if path.is_file())
    return (os.cpu_count() or 1) if size > AUTO_PARALLEL_BYTES else 1


def _verify(args: argparse.Namespace, extra_keys: list[PublicKey] | None = None) -> VerifyReport:
    keys = _public_keys(args.key) + (extra_keys or [])
    checkpoint_files = _existing(args.checkpoints)
    witnessed, others = [], []
    if args.witness:
        witnessed, others = read_witness(WitnessSettings(args.witness, docker_config=args.witness_docker_config, insecure=args.witness_insecure))
    state, state_key = getattr(args, "state", None), None
    if state is not None:
        from webhook.audit.settings import audit_password

        if getattr(args, "state_key", None) is None:
            raise UsageError("--state needs --state-key AUDIT_KEY: the state is signed, so that nobody can make verify skip a file they changed",
                             hint="pass the audit private key (password in MODELSIGN_AUDIT_PASSWORD), or drop --state to read everything")
        state_key = load_signing_key_file(args.state_key, password=audit_password, name="audit")
    report = verify(_existing(args.paths), keys, checkpoint_files=checkpoint_files, witness=witnessed, jobs=_jobs(args),
                    state=state, state_key=state_key)
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
    if report.incremental:
        done = report.incremental
        print(f"incremental: {done['filesReused']} file(s) ({done['recordsSkipped']} record(s)) taken from the signed state"
              f"{' of ' + done['stateFrom'] if done['stateFrom'] else ''} without reading them; {done['filesRead']} file(s) "
              f"({done['recordsRead']} record(s)) read; links, checkpoints and schedules checked over all")
    print(status_line(report))


def cmd_verify(args: argparse.Namespace) -> int:
    report = _verify(args)
    if args.output == "text":
        _print_report(report)
    else:
        emit_output(args.output, "", report.to_json())
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED  # UNVERIFIED too: a script testing for 0 never passes without a key


def _export_paths(target: Path, formats: list[str], report_id: str) -> tuple[dict[str, Path], Path]:
    """Where each format and the manifest go; nothing an earlier export wrote is replaced."""
    if len(formats) == 1 and not target.is_dir() and target.suffix:
        outputs, manifest = {formats[0]: target}, target.with_name(target.name + MANIFEST_SUFFIX)
    else:
        base = target / f"audit-report-{report_id}"
        outputs, manifest = {fmt: base.with_name(f"{base.name}.{fmt}") for fmt in formats}, base.with_name(base.name + MANIFEST_SUFFIX)
    if manifest.exists():
        raise UsageError(f"{manifest} already exists: it is the signed proof of an earlier export of {target.name}",
                         hint="export to another --out path (a directory gets a new name per export)")
    return outputs, manifest


def cmd_export(args: argparse.Namespace) -> int:
    from webhook.audit.report import ReportIdentity, build_report
    from webhook.audit.settings import audit_password

    since = parse_moment(args.since, what="--since") if args.since else None
    until = parse_moment(args.until, what="--until") if args.until else None
    check_period(since, until)
    selection = Selection(since=since, until=until, namespaces=tuple(args.namespace), outcomes=tuple(args.decision), artifacts=tuple(args.artifact))
    signing = load_signing_key_file(args.signing_key, password=audit_password, name="audit") if args.signing_key else None
    generated = datetime.now(timezone.utc)
    report_id = f"{generated:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    if args.output_path is None:
        raise UsageError("audit export needs --out PATH: the report file, or a directory for the report's files",
                         hint="e.g. --out audit-report/ (a directory gets one name per export, so nothing is overwritten)")
    formats = list(dict.fromkeys(f for fmt in args.format for f in (PACK if fmt == "pack" else (fmt,))))
    outputs, manifest_path = _export_paths(args.output_path, formats, report_id)
    public_keys = _public_keys(args.key)
    integrity = _verify(args, [signing.public] if signing else None)
    checked = {key.key_id: path.name for key, path in zip(public_keys, args.key)}
    if signing:
        checked.setdefault(signing.public.key_id, f"public half of {args.signing_key.name}")
    audit_keys = [f"{key_id} ({name})" for key_id, name in checked.items()] if integrity.keyed else []
    identity = ReportIdentity(report_id=report_id, generated=f"{generated:%Y-%m-%dT%H:%M:%SZ}", generated_by=args.generated_by or operator_name(),
                              version=modelsign_version(), audit_keys=audit_keys)
    # CSV and JSONL hold only the period's records: the files outside it are not read (a report's scope also needs the rest)
    trail = load_trail(expand(args.paths), selection, superseded=integrity.pairs, period_files_only=set(formats) <= {"csv", "jsonl"})
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    report = None
    for fmt, out in outputs.items():
        if fmt == "csv":
            write_csv(trail, out)
        elif fmt == "jsonl":
            write_jsonl(trail, out)
        else:
            report = report or build_report(trail, selection, integrity, sample_size=args.sample, seed=args.seed, identity=identity,
                                            failure_policy=args.failure_policy, cluster=args.cluster)
            if fmt == "html":
                from webhook.audit.report_html import render_html

                out.write_text(render_html(report), encoding="utf-8")
            elif fmt == "pdf":
                from webhook.audit.report_pdf import render_pdf

                out.write_bytes(render_pdf(report))
            else:
                others = [file_entry(o) for f, o in outputs.items() if f != "json" and o.exists()]
                out.write_bytes(canonical_json({**report.resource, "files": others}) + b"\n")
    written = list(outputs.values())
    manifest = write_manifest(manifest_path, written, identity={"reportId": report_id, "generated": identity.generated, "generatedBy": identity.generated_by,
                                                                "modelsignVersion": identity.version, "auditKeys": audit_keys},
                              selection=selection.describe(), integrity=integrity_summary(integrity), key=signing)
    emit_output(args.output, f"Wrote {', '.join(str(w) for w in written)} ({len(trail.decisions)} decision(s)) and {manifest} (report {report_id})"
                + ("" if signing else " (unsigned: pass --signing-key to sign it)"),
                {"reportId": report_id, "files": [str(w) for w in written], "manifest": str(manifest), "decisions": len(trail.decisions),
                 "signed": signing is not None, "integrity": integrity.status})
    if integrity.status == "DAMAGED":
        print(f"warning: the trail is DAMAGED ({len(integrity.problems)} problem(s)); the report's integrity section lists them", file=sys.stderr)
    elif integrity.status == "UNVERIFIED":
        print(f"warning: {NOT_VERIFIED}; the report says so (pass --key AUDIT_PUB or --signing-key)", file=sys.stderr)
    return EXIT_OK if integrity.ok else EXIT_VERIFICATION_FAILED


def cmd_verify_export(args: argparse.Namespace) -> int:
    keys = _public_keys(args.key)
    lines: list[str] = []
    checked: list[dict[str, Any]] = []
    for path in manifests_in(args.manifest):
        check = check_manifest(path, keys)
        signature = "valid" if check.signature_ok else "MISSING" if not check.signed else "INVALID"
        lines += [f"{path}:", *(f"{state.upper():8} {name}" for name, state in check.files), f"signature: {signature}",
                  "export intact" if check.ok else "export NOT intact"]
        checked.append({"manifest": str(path), "intact": check.ok, "signature": signature.lower(),
                        "files": [{"name": name, "state": state} for name, state in check.files]})
    intact = all(item["intact"] for item in checked)
    emit_output(args.output, "\n".join(lines), {"intact": intact, "manifests": checked})
    return EXIT_OK if intact else EXIT_VERIFICATION_FAILED
