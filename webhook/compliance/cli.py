"""`modelsign report cluster`: what runs now, re-decided against today's evidence."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from signer import EXIT_OK, EXIT_VERIFICATION_FAILED, UsageError

OUTPUTS = ("table", "text", "json", "yaml", "policyreport")  # text: the table, the word every other command uses


def add_commands(commands: Any) -> None:
    report = commands.add_parser("report", help="compliance reports of what runs in a cluster")
    report_commands = report.add_subparsers(dest="report_command", required=True, metavar="COMMAND")
    cluster = report_commands.add_parser(
        "cluster", help="re-decide every running Pod, workload and KServe object with the admission policy and today's evidence; "
                        "exit 0 only when nothing fails")
    cluster.add_argument("--config", required=True, type=Path, help="the AdmissionPolicy the webhook enforces (or a ConfigMap holding it)")
    cluster.add_argument("--policy-dir", type=Path, help="directory of .rego files (default: the built-in policies/)")
    cluster.add_argument("--key-dir", type=Path, metavar="DIR", help="find key files the policy names here when their path does not exist (as `check`)")
    cluster.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)")
    cluster.add_argument("--context", help="kubeconfig context (default: its current context)")
    scope = cluster.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="namespace to scan (repeatable; default: the context's namespace)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace, and cluster-scoped objects")
    cluster.add_argument("-o", "--output", choices=OUTPUTS, default="table",
                         help="table (default; also text), json, yaml, or policyreport (wgpolicyk8s.io/v1alpha2 PolicyReport/ClusterPolicyReport YAML)")
    cluster.add_argument("--apply", action="store_true", help="also create or replace the PolicyReports in the cluster (needs the wg-policy CRDs)")
    audit = cluster.add_argument_group("audit trail (one \"compliance\" record per finding)")
    audit.add_argument("--audit-log", type=Path, metavar="DIR/NAME.jsonl", help="write the findings to this hash-chained trail (`modelsign audit verify` reads it)")
    audit.add_argument("--audit-key", type=Path, help="private key that signs its checkpoints (password: MODELSIGN_AUDIT_PASSWORD or MODELSIGN_PASSWORD)")
    audit.add_argument("--audit-checkpoints", type=Path, metavar="FILE", help="where the signed checkpoints go (default as for `webhook serve`)")
    cluster.set_defaults(handler=cmd_report_cluster)


def _write_audit(args: argparse.Namespace, report: Any) -> None:
    from signer import load_signing_key_file
    from webhook.audit.settings import audit_password, default_checkpoint_path, prepare_checkpoint_file
    from webhook.audit.trail import AuditTrail
    from webhook.audit.writer import AuditSettings, AuditWriter
    from webhook.compliance.records import record_findings

    if args.audit_key is None:
        raise UsageError("--audit-log needs --audit-key: a trail without signed checkpoints can never be verified", hint="add --audit-key AUDIT_KEY")
    checkpoints = args.audit_checkpoints or default_checkpoint_path(args.audit_log.name.removesuffix(".jsonl"))
    prepare_checkpoint_file(checkpoints)
    key = load_signing_key_file(args.audit_key, password=audit_password, name="audit")
    trail = AuditTrail(AuditWriter(AuditSettings(path=args.audit_log, key=key, checkpoint_path=checkpoints)))
    try:
        record_findings(report, trail.event, trigger="report-cluster")
    finally:
        trail.close()


def cmd_report_cluster(args: argparse.Namespace) -> int:
    from webhook.admission.config import default_rego_dir, load_policy
    from webhook.compliance.kube import api_client, default_namespace
    from webhook.compliance.inventory import list_running
    from webhook.compliance.policyreport import policy_reports
    from webhook.compliance.publish import apply_reports
    from signer import emit_output
    from webhook.compliance.render import render_table, report_data
    from webhook.compliance.scan import scan, scan_pipeline

    if args.audit_log is None and (args.audit_key or args.audit_checkpoints):
        raise UsageError("--audit-key and --audit-checkpoints need --audit-log", hint="add --audit-log DIR/NAME.jsonl")
    policy = load_policy(args.config, rego_dir=args.policy_dir or default_rego_dir(), key_dir=args.key_dir)
    api = api_client(args.kubeconfig, context=args.context)
    namespaces = None if args.all_namespaces else (args.namespace or [default_namespace(args.kubeconfig, args.context)])
    scope = "all namespaces" if namespaces is None else "namespace(s) " + ", ".join(namespaces)
    pipeline = scan_pipeline(policy)
    try:
        report = scan(pipeline, list_running(api, namespaces), scope=scope)
    finally:
        pipeline.close()
    if args.audit_log is not None:
        _write_audit(args, report)
    reports = policy_reports(report, namespaces=namespaces)
    if args.output == "policyreport":
        print(yaml.safe_dump_all(reports, sort_keys=False), end="")
    else:
        emit_output("text" if args.output == "table" else args.output, render_table(report), report_data(report))
    if args.apply:
        for line in apply_reports(api, reports, prune=namespaces is None):
            print(line, file=sys.stderr)
    return EXIT_OK if report.compliant else EXIT_VERIFICATION_FAILED
