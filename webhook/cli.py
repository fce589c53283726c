"""The `modelsign` command: the signer's commands plus `webhook serve`, `check`, `certs`,
`audit` and `demo`.

It is the composition root: the one module that knows every command. It lives in `webhook`
because these commands need the webhook, which imports the signer (never the other way
round); it hands its own `main` to the demo, which runs commands with it and so never imports
this module.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from signer import EXIT_OK, EXIT_VERIFICATION_FAILED, UsageError, command_parser, emit_output, output_option, run_command


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    from webhook.server.serve import serve

    from webhook.audit.settings import export_to_environment

    export_to_environment(path=args.audit_log, key=args.audit_key, checkpoints=args.audit_checkpoints, stdout=args.audit_stdout,
                          retention_days=args.audit_retention_days, rotate_bytes=int(args.audit_rotate_mb * 1024 * 1024),
                          rotate_seconds=args.audit_rotate_hours * 3600, checkpoint_records=args.audit_checkpoint_records,
                          checkpoint_seconds=args.audit_checkpoint_seconds, witness=args.audit_witness,
                          witness_docker_config=args.audit_witness_docker_config, witness_insecure=args.audit_witness_insecure)
    from webhook.compliance.background import export_to_environment as export_compliance

    export_compliance(interval=args.compliance_interval, kubeconfig=args.compliance_kubeconfig, apply=args.compliance_apply)
    serve(policy=args.config, tls_cert=args.tls_cert, tls_key=args.tls_key, host=args.host, port=args.port,
          workers=args.workers, rego_dir=args.policy_dir, reload_seconds=args.reload_interval, key_dir=args.key_dir,
          shared_cache=args.shared_cache, shared_cache_key_file=args.shared_cache_key_file)
    return EXIT_OK


def cmd_forget_statements(args: argparse.Namespace) -> int:
    from signer import is_digest
    from webhook.admission.cache import SingleFlightCache
    from webhook.admission.shared_cache import SharedStatements, SharedVerificationCache, connect, read_key_file

    if not is_digest(args.digest):
        raise UsageError(f"{args.digest!r} is not a digest", hint="name it as the deny message does: sha256:<64 hex digits>")
    cache = SharedVerificationCache(connect(args.shared_cache), read_key_file(args.shared_cache_key_file), SingleFlightCache())
    count = SharedStatements(cache).forget(args.digest)
    emit_output(args.output, f"Forgot {count} remembered statement(s) on {args.digest} in the shared cache; each replica drops its own "
                             "memory of them when it next checks the digest", {"digest": args.digest, "forgotten": count})
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from webhook.admission.config import default_rego_dir, load_policy
    from webhook.admission.pipeline import AdmissionPipeline
    from webhook.check import check_files, check_review, render_table, results_data

    if not (args.filename or args.review):
        raise UsageError("nothing to check", hint="pass -f FILE|DIR (manifests) or --review FILE (a captured AdmissionReview)")
    if args.recursive and not args.filename:
        raise UsageError("-R applies to -f DIR", hint="pass -f DIR with -R")
    policy = load_policy(args.config, rego_dir=args.policy_dir or default_rego_dir(), key_dir=args.key_dir)
    pipeline = AdmissionPipeline(policy)
    try:
        results = check_files(pipeline, args.filename, default_namespace=args.namespace, recursive=args.recursive)
        results += [check_review(pipeline, path) for path in args.review]
    finally:
        pipeline.close()
    emit_output(args.output, render_table(results), results_data(results))
    return EXIT_OK if all(r.decision.allowed for r in results) else EXIT_VERIFICATION_FAILED


def cmd_certs_generate(args: argparse.Namespace) -> int:
    from webhook.certs import generate, rotate_serving_cert

    if args.reuse_ca:
        generated = rotate_serving_cert(args.service, args.namespace, args.out, extra_sans=args.san, days=args.days)
    else:
        generated = generate(args.service, args.namespace, args.out, extra_sans=args.san, days=args.days, force=args.force)
    emit_output(args.output, f"Wrote {generated.ca_cert}, {generated.tls_cert} and {generated.tls_key} for {', '.join(generated.names)}\n"
                      f"caBundle for the ValidatingWebhookConfiguration (see certs/README.md):\n{generated.ca_bundle}",
         {"directory": str(generated.directory), "caBundle": generated.ca_bundle, "names": list(generated.names)})
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
    serve.add_argument("--config", required=True, type=Path, help="AdmissionPolicy YAML file, or a ConfigMap holding it in data.policy.yaml (watched and reloaded)")
    serve.add_argument("--key-dir", type=Path, metavar="DIR", help="find key files the policy names here when their path does not exist")
    serve.add_argument("--tls-cert", required=True, type=Path)
    serve.add_argument("--tls-key", required=True, type=Path)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    serve.add_argument("--policy-dir", type=Path, help="directory of .rego files (default: the built-in policies/)")
    serve.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS", help="how often to look for policy changes")
    shared = serve.add_argument_group("shared verification cache (opt-in; README: Scaling past one process)")
    shared.add_argument("--shared-cache", metavar="redis://HOST:PORT/DB", help="share verification results, single-flight and registry 429 "
                        "backoff between all replicas through Redis (default: each process on its own)")
    shared.add_argument("--shared-cache-key-file", type=Path, metavar="FILE", help="HMAC key (32+ random bytes, from the webhook Secret) that "
                        "authenticates shared entries: an entry without it is a miss, never an allow")
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
    compliance = serve.add_argument_group("continuous compliance (README: Continuous compliance)")
    compliance.add_argument("--compliance-interval", metavar="DURATION",
                            help="also re-decide everything that runs, every DURATION (10m, 1h): findings go to the audit trail and /metrics")
    compliance.add_argument("--compliance-kubeconfig", type=Path, help="kubeconfig for the scans (default: the in-cluster service account)")
    compliance.add_argument("--compliance-apply", action="store_true", help="also write each scan's PolicyReports (wgpolicyk8s.io/v1alpha2) to the cluster")
    serve.set_defaults(handler=cmd_webhook_serve)

    forget = webhook_commands.add_parser("forget-statements", help="lift what the replicas remember against a digest (a rejection, "
                                         "revocation or newest evaluation removed from the registry on purpose)")
    forget.add_argument("digest", help="sha256:<hex>, as the deny message names it")
    forget.add_argument("--shared-cache", required=True, metavar="redis://HOST:PORT/DB", help="the webhook's --shared-cache")
    forget.add_argument("--shared-cache-key-file", required=True, type=Path, metavar="FILE", help="the webhook's --shared-cache-key-file")
    output_option(forget)
    forget.set_defaults(handler=cmd_forget_statements)

    check = commands.add_parser("check", help="the webhook's decision for manifests, offline from the cluster")
    check.add_argument("-f", "--filename", action="append", default=[], metavar="FILE|DIR",
                       help="YAML/JSON manifests (multi-document; - for stdin; a directory's .yaml/.yml/.json files; repeatable)")
    check.add_argument("-R", "--recursive", action="store_true", help="with -f DIR: also the manifests in its subdirectories (as kubectl)")
    check.add_argument("--review", action="append", default=[], type=Path, metavar="FILE",
                       help="replay a captured AdmissionReview (the API server's request body), as `kwctl run --request-path` (repeatable)")
    check.add_argument("--config", required=True, type=Path, help="AdmissionPolicy YAML file, or a ConfigMap holding it (e.g. manifests/base/policy-configmap.yaml)")
    check.add_argument("--key-dir", type=Path, metavar="DIR",
                       help="find key files the policy names here when their path does not exist (a cluster policy names /etc/modelsign/keys/...)")
    check.add_argument("--policy-dir", type=Path, help="directory of .rego files (default: the built-in policies/)")
    check.add_argument("-n", "--namespace", default="default", help="namespace for objects that name none (default: default)")
    output_option(check)
    check.set_defaults(handler=cmd_check)

    certs = commands.add_parser("certs", help="TLS material for the webhook")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    generate = certs_commands.add_parser("generate", help="a CA and a serving certificate for <service>.<namespace>.svc")
    generate.add_argument("--service", default="modelsign-webhook")
    generate.add_argument("--namespace", default="modelsign-system")
    generate.add_argument("--out", type=Path, default=Path("certs/out"), metavar="DIR", help="where the files go (default certs/out); -o/--output is the output format")
    generate.add_argument("--san", action="append", default=[], help="extra DNS name or IP (repeatable)")
    generate.add_argument("--days", type=int, default=365, help="serving certificate lifetime (default 365)")
    generate.add_argument("--reuse-ca", action="store_true", help="rotate only the serving certificate, keeping the CA (and caBundle)")
    generate.add_argument("--force", action="store_true", help="replace an existing CA")
    output_option(generate)
    generate.set_defaults(handler=cmd_certs_generate)

    from webhook.audit.cli import add_commands as add_audit_commands
    from webhook.compliance.cli import add_commands as add_report_commands

    add_audit_commands(commands)
    add_report_commands(commands)

    from webhook.policy_cli import add_commands as add_policy_commands

    add_policy_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
