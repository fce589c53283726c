"""Option groups several commands share (registry access, who must have signed, output,
attestation form), for the parser and for command modules that register their own parsers."""

from __future__ import annotations

import argparse
from pathlib import Path


def registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry access")
    group.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                       help="allow plain HTTP / unverified TLS for this registry (glob; repeatable). Loopback registries may use HTTP anyway.")
    group.add_argument("--ca-file", type=Path, help="extra PEM CA bundle for registry TLS (system CAs are always used)")
    group.add_argument("--registry-timeout", type=float, default=30.0, metavar="SECONDS", help="time one registry request may take, retries and backoff included (default 30); "
                       "a registry that did not answer is not asked again for 5 s")


def trust_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("who must have signed")
    group.add_argument("--key", action="append", default=[], type=Path, metavar="PUB", help="trusted public key (PEM; repeatable: any one suffices)")
    group.add_argument("--certificate-identity", help="keyless: expected certificate identity (email or URI SAN)")
    group.add_argument("--certificate-identity-regexp", help="keyless: regexp the identity must match (search semantics, as cosign)")
    group.add_argument("--certificate-oidc-issuer", help="keyless: expected OIDC issuer")
    group.add_argument("--certificate-oidc-issuer-regexp", help="keyless: regexp the OIDC issuer must match")
    group.add_argument("--trusted-root", type=Path, help="keyless: trusted_root.json (default: the Sigstore production root embedded in the sigstore package; offline)")


OUTPUTS = ("text", "json", "yaml")


def output_option(parser: argparse.ArgumentParser, *, choices: tuple[str, ...] = OUTPUTS, default: str = "text") -> None:
    """`-o/--output`: the same spelling on every command that prints results (as kubectl)."""
    parser.add_argument("-o", "--output", choices=choices, default=default, help=f"{default} for people (default); json or yaml for machines")


def attestation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("legacy", "bundle"), default="legacy", help="legacy .att layer (default) or a sigstore bundle referrer")
    registry_options(parser)
    output_option(parser)
