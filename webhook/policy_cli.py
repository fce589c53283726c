"""`modelsign policy convert | validate`: bring a policy as written, and lint one."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from signer import EXIT_OK, EXIT_VERIFICATION_FAILED, UsageError, emit_output, output_option, read_limited
# The policy model (pydantic) and the converters load in the handlers, not here: every
# `modelsign` command builds this parser, and `modelsign verify` should not pay for them.


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` options; a bare VALUE (no `=`) applies to every name (key "")."""
    pairs: dict[str, str] = {}
    for value in values:
        name, equals, given = value.partition("=") if "=" in value else ("", "", value)
        if not given or (equals and not name):
            raise UsageError(f"{option} {value!r} is not NAME=VALUE", hint=f"e.g. {option} ai-team@company.com=https://accounts.google.com")
        pairs[name] = given
    return pairs


def _read(path: Path) -> bytes:
    from webhook.admission.config import MAX_POLICY_BYTES

    return read_limited(path, what="policy file", max_bytes=MAX_POLICY_BYTES)


def cmd_policy_convert(args: argparse.Namespace) -> int:
    from webhook.admission.policy_yaml import POLICY_YAML_HINT, PolicyYamlError, read_policy_source
    from webhook.policy_convert import NEEDS, UNKNOWN, ConvertOptions, convert, render_report

    text = _read(args.file)
    try:
        read = read_policy_source(text, source=str(args.file))
    except PolicyYamlError as exc:
        raise UsageError(str(exc), hint=POLICY_YAML_HINT) from None
    options = ConvertOptions(name=args.name, issuers=_pairs(args.oidc_issuer, "--oidc-issuer"), key_files=_pairs(args.key, "--key"),
                             scanner_key=args.scanner_key, scan_max_age=args.scan_max_age)
    try:
        conversion = convert(read, options)
    except ValueError as exc:
        raise UsageError(str(exc), hint="`policy convert` reads the KitOps guide's security policy (a ConfigMap or its policy.yaml)") from None
    out: Path = args.out or args.file.with_name(f"{args.file.stem}.admission-policy.yaml")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists", hint="pass --force to replace it, or --out another file")
    pending = [f for f in conversion.findings if f.status in (NEEDS, UNKNOWN)]
    header = [f"# Converted from {args.file} by `modelsign policy convert`."]
    header += [f"# TODO line {f.line or '-'} {f.path}: {f.text}" for f in pending]
    out.write_text("\n".join(header) + "\n" + yaml.safe_dump(conversion.policy, sort_keys=False, width=120))
    emit_output(args.output, f"{render_report(conversion, str(args.file))}\nWrote {out}",
                {"written": str(out), "complete": conversion.complete, "policy": conversion.policy,
                 "findings": [asdict(f) for f in conversion.findings], "serverFlags": conversion.server_flags})
    return EXIT_OK


def cmd_policy_validate(args: argparse.Namespace) -> int:
    from webhook.policy_validate import validate_policy_file

    report = validate_policy_file(args.file, rego_dir=args.policy_dir, key_dir=args.key_dir)
    if args.output != "text":
        emit_output(args.output, "", {"source": report.source, "ok": report.ok, "errors": report.errors, "warnings": report.warnings,
                                      "policy": {"name": report.policy.name, "hash": report.policy.policy_hash} if report.policy else None})
    else:
        for error in report.errors:
            print(f"error: {error}")
        for warning in report.warnings:
            print(f"warning: {warning}")
        if report.ok:
            assert report.policy is not None
            print(f"{report.source}: valid (policy {report.policy.name}, {len(report.policy.spec.rules)} rule(s), "
                  f"{len(report.warnings)} warning(s))")
        else:
            print(f"{report.source}: {len(report.errors)} error(s); the webhook would refuse this policy and keep its last good one")
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED


def add_commands(commands: Any) -> None:
    policy = commands.add_parser("policy", help="convert a KitOps security policy; validate an AdmissionPolicy")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")

    conv = actions.add_parser("convert", help="the KitOps guide's security-policy.yaml (ConfigMap or policy.yaml) as an AdmissionPolicy, "
                                              "with a line-by-line report of what was mapped and what needs you")
    conv.add_argument("file", type=Path)
    conv.add_argument("--out", type=Path, help="where the AdmissionPolicy goes (default: FILE's name with .admission-policy.yaml)")
    conv.add_argument("--force", action="store_true", help="replace --out if it exists")
    conv.add_argument("--name", default="kitops-security-policy", help="metadata.name of the written policy")
    conv.add_argument("--oidc-issuer", action="append", default=[], metavar="IDENTITY=ISSUER",
                      help="the OIDC issuer that vouches for a keyless identity (repeatable; a bare ISSUER applies to all)")
    conv.add_argument("--key", action="append", default=[], metavar="ENTRY=FILE",
                      help="trust this public key file for a trusted_keys entry instead of a keyless identity (repeatable)")
    conv.add_argument("--scanner-key", metavar="FILE", help="the public key that signs scans (`modelsign scan --key`)")
    conv.add_argument("--scan-max-age", default="168h", help="how old a scan may be at admission (default 168h)")
    output_option(conv)
    conv.set_defaults(handler=cmd_policy_convert)

    check = actions.add_parser("validate", help="lint an AdmissionPolicy (or the ConfigMap holding one): every problem with its line, "
                                                "and \"did you mean\" for misspelt fields and key names")
    check.add_argument("file", type=Path)
    check.add_argument("--policy-dir", type=Path, help="directory of .rego files to compile with it (default: the built-in policies/)")
    check.add_argument("--key-dir", type=Path, metavar="DIR",
                       help="find key files the policy names here when their path does not exist (e.g. /etc/modelsign/keys of a cluster policy)")
    output_option(check)
    check.set_defaults(handler=cmd_policy_validate)
