"""The argparse parser every `modelsign` command is built with: no abbreviations, and an
error in a subcommand shows that subcommand's usage.

argparse accepts any unambiguous prefix of a long option by default, so `keygen --output json`
used to mean `--output-prefix json`; `allow_abbrev=False` on every parser refuses that. The
root parser hands its class on to its subcommands (argparse's `parser_class`), so commands
registered elsewhere (webhook/cli.py, webhook/audit/cli.py...) get the same behaviour.
"""

from __future__ import annotations

import argparse
import importlib
import platform
from typing import Any, Callable, Sequence


def modelsign_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("modelsign")
    except importlib.metadata.PackageNotFoundError:  # a source checkout that was never installed
        return "unknown (not installed)"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser without abbreviations whose subcommands are `SubcommandParser`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        # --quiet everywhere, before or after the subcommand (absent unless given: a subcommand's
        # default would otherwise overwrite the root's -q)
        self.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                          help="no progress on stderr (it is only ever shown on a terminal)")

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", SubcommandParser)
        return super().add_subparsers(**kwargs)


class SubcommandParser(CommandParser):
    """A subcommand: unknown arguments are its own error, shown with its own usage (argparse
    otherwise hands them up to the root parser, whose usage says nothing about them)."""

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


class _VersionAction(argparse.Action):
    """`--version`, read from the installed package's metadata only when asked (importlib.metadata
    costs every other command's start-up otherwise)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print modelsign's version and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"modelsign {modelsign_version()} (Python {platform.python_version()})")  # on stdout, as argparse's own version action
        parser.exit()


def root_parser(description: str) -> CommandParser:
    """The `modelsign` parser with `--version`."""
    parser = CommandParser(prog="modelsign", description=description)
    parser.add_argument("--version", action=_VersionAction)
    return parser


def lazy_handler(module: str, name: str) -> Callable[..., int]:
    """A command's handler, imported when that command runs: building the parser (and so
    `--version`, `--help`, completion) then costs no registry, crypto or policy-engine imports."""

    def handler(*args: Any) -> int:
        function: Callable[..., int] = getattr(importlib.import_module(module), name)
        return function(*args)

    handler.__qualname__ = handler.__name__ = name
    return handler
