"""Run a `modelsign` command line: parse, dispatch, and turn user errors into a message and an exit code.

Exit codes: 0 ok, 1 verification failed, 2 usage or environment error, 130 interrupted (Ctrl-C). User errors print
what failed and how to fix it, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from signer.cli.parser import build_parser
from signer.cli.render import emit
from signer.errors import EXIT_USAGE, ModelsignError
from signer.references import printable_lines

EXIT_INTERRUPTED = 130


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, dispatch, and turn user errors into a message and an exit code."""
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ModelsignError as exc:
        if getattr(args, "output", "text") in ("json", "yaml"):
            emit(args.output, "", {"ok": False, "error": exc.message, "hint": exc.hint, "kind": type(exc).__name__})
        print(printable_lines(f"error: {exc.message}"), file=sys.stderr)  # messages may quote registry text
        if exc.hint:
            print(printable_lines(f"  hint: {exc.hint}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # 128 + SIGINT, as shells report it
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_USAGE
    except Exception as exc:  # a bug, not a user error: one line, the traceback on request
        if os.environ.get("MODELSIGN_DEBUG"):
            raise
        print(f"error: modelsign failed unexpectedly: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  hint: this is a bug in modelsign; rerun with MODELSIGN_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
