"""The `modelsign` command: the signer's commands plus `webhook serve`, `check`, `certs`,
`audit` and `demo`.

It is the composition root: the one module that knows every command. It lives in `webhook`
because these commands need the webhook, which imports the signer (never the other way
round); it hands its own `main` to the demo, which runs commands with it and so never imports
this module.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from signer import EXIT_OK, EXIT_VERIFICATION_FAILED, command_parser, run_command


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    from webhook.server.serve import serve

    from webhook.audit.settings import export_to_environment

    export_to_environment(path=args.audit_log, key=args.audit_key, checkpoints=args.audit_checkpoints, stdout=args.audit_stdout,
                          retention_days=args.audit_retention_days, rotate_bytes=int(args.audit_rotate_mb * 1024 * 1024),
                          rotate_seconds=args.audit_rotate_hours * 3600, checkpoint_records=args.audit_checkpoint_records,
                          checkpoint_seconds=args.audit_checkpoint_seconds, witness=args.audit_witness,
                          witness_docker_config=args.audit_witness_docker_config, witness_insecure=args.audit_witness_insecure)
    serve(policy=args.config, tls_cert=args.tls_cert, tls_key=args.tls_key, host=args.host, port=args.port,
          workers=args.workers, rego_dir=args.policy_dir, reload_seconds=args.reload_interval)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from webhook.admission.config import default_rego_dir, load_policy
    from webhook.admission.pipeline import AdmissionPipeline
    from webhook.check import check_files, render_table, results_json

    policy = load_policy(args.config, rego_dir=args.policy_dir or default_rego_dir())
    pipeline = AdmissionPipeline(policy)
    try:
        results = check_files(pipeline, args.filename, default_namespace=args.namespace)
    finally:
        pipeline.close()
    print(results_json(results) if args.output == "json" else render_table(results))
    return EXIT_OK if all(r.decision.allowed for r in results) else EXIT_VERIFICATION_FAILED


def cmd_certs_generate(args: argparse.Namespace) -> int:
    from webhook.certs import generate, rotate_serving_cert

    if args.reuse_ca:
        generated = rotate_serving_cert(args.service, args.namespace, args.out, extra_sans=args.san, days=args.days)
    else:
        generated = generate(args.service, args.namespace, args.out, extra_sans=args.san, days=args.days, force=args.force)
    if args.output == "json":
        print(json.dumps({"directory": str(generated.directory), "caBundle": generated.ca_bundle, "names": list(generated.names)}, indent=2))
    else:
        print(f"Wrote {generated.ca_cert}, {generated.tls_cert} and {generated.tls_key} for {', '.join(generated.names)}")
        print("caBundle for the ValidatingWebhookConfiguration (see certs/README.md):")
        print(generated.ca_bundle)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from webhook.demo import run_demo

    return run_demo(args.workdir, main)


def build_parser() -> argparse.ArgumentParser:
    parser, commands = command_parser()

    demo = commands.add_parser("demo", help="run the self-contained demo (local OCI layout, generated keys, a local TLS webhook)")
    demo.add_argument("--workdir", type=Path, help="keep the demo's files here (default: a temporary directory)")
    demo.set_defaults(handler=cmd_demo)

    webhook = commands.add_parser("webhook", help="run the admission webhook")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", required=True, metavar="COMMAND")
    serve = webhook_commands.add_parser("serve", help="serve POST /validate over TLS")
    serve.add_argument("--config", required=True, type=Path, help="AdmissionPolicy YAML file (watched and reloaded)")
    serve.add_argument("--tls-cert", required=True, type=Path)
    serve.add_argument("--tls-key", required=True, type=Path)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    serve.add_argument("--policy-dir", type=Path, help="directory of .rego files (default: the built-in policies/)")
    serve.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS", help="how often to look for policy changes")
    audit = serve.add_argument_group("audit trail (hash-chained, durable before each response)")
    audit.add_argument("--audit-log", type=Path, metavar="DIR/NAME.jsonl", help="chain files NAME-<writer>-<n>.jsonl go in DIR, one chain per worker process")
    audit.add_argument("--audit-key", type=Path, help="private key that signs checkpoints (password: MODELSIGN_AUDIT_PASSWORD or MODELSIGN_PASSWORD)")
    audit.add_argument("--audit-checkpoints", type=Path, metavar="FILE",
                       help="where signed checkpoints go, on a volume the chain directory cannot reach (default "
                            "${MODELSIGN_STATE_DIR:-/var/lib/modelsign}/audit-checkpoints/NAME.checkpoints.jsonl; the server does not start if it cannot create it)")
    audit.add_argument("--audit-witness", metavar="REGISTRY/REPO",
                       help="also push every signed checkpoint to this OCI repository (one tag each), out of the writer's reach")
    audit.add_argument("--audit-witness-docker-config", type=Path, metavar="PATH",
                       help="Docker config.json with a push-only credential for the witness (keep it apart from the webhook's own)")
    audit.add_argument("--audit-witness-insecure", action="store_true", help="plain HTTP (or unverified TLS) to a non-loopback witness registry")
    audit.add_argument("--audit-stdout", action="store_true", default=bool(os.environ.get("MODELSIGN_AUDIT_STDOUT")),
                       help="also stream every record to stdout (Fluent Bit, Loki); env MODELSIGN_AUDIT_STDOUT=1")
    audit.add_argument("--audit-retention-days", type=float, default=90.0, help="remove chain files older than this (default 90)")
    audit.add_argument("--audit-rotate-mb", type=float, default=64.0, help="start a new chain file after this many MiB (default 64)")
    audit.add_argument("--audit-rotate-hours", type=float, default=24.0, help="... or after this many hours (default 24)")
    audit.add_argument("--audit-checkpoint-records", type=int, default=1000, help="sign a checkpoint every N records (default 1000)")
    audit.add_argument("--audit-checkpoint-seconds", type=float, default=60.0, help="... or every N seconds (default 60)")
    serve.set_defaults(handler=cmd_webhook_serve)

    check = commands.add_parser("check", help="the webhook's decision for manifests, offline from the cluster")
    check.add_argument("-f", "--filename", action="append", required=True, help="YAML/JSON manifests (multi-document; - for stdin; repeatable)")
    check.add_argument("--config", required=True, type=Path, help="AdmissionPolicy YAML file")
    check.add_argument("--policy-dir", type=Path, help="directory of .rego files (default: the built-in policies/)")
    check.add_argument("-n", "--namespace", default="default", help="namespace for objects that name none (default: default)")
    check.add_argument("--output", choices=("text", "json"), default="text")
    check.set_defaults(handler=cmd_check)

    certs = commands.add_parser("certs", help="TLS material for the webhook")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    generate = certs_commands.add_parser("generate", help="a CA and a serving certificate for <service>.<namespace>.svc")
    generate.add_argument("--service", default="modelsign-webhook")
    generate.add_argument("--namespace", default="modelsign-system")
    generate.add_argument("--out", type=Path, default=Path("certs/out"))
    generate.add_argument("--san", action="append", default=[], help="extra DNS name or IP (repeatable)")
    generate.add_argument("--days", type=int, default=365, help="serving certificate lifetime (default 365)")
    generate.add_argument("--reuse-ca", action="store_true", help="rotate only the serving certificate, keeping the CA (and caBundle)")
    generate.add_argument("--force", action="store_true", help="replace an existing CA")
    generate.add_argument("--output", choices=("text", "json"), default="text")
    generate.set_defaults(handler=cmd_certs_generate)

    from webhook.audit.cli import add_commands as add_audit_commands

    add_audit_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
