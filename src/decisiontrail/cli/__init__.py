"""The ``decisiontrail`` command, one module per subcommand.

Each command module has ``register(subparsers)``, which adds its parser and sets ``func`` (the
function that runs it and returns the exit code). Adding a command is a new module plus one entry in
``_COMMANDS``; every option needs a ``help`` text (tests/unit/test_cli_usage.py walks them all).

Exit codes (``_args.EXIT_CODES``, printed by every ``--help``): 0 something found or the check
passed, 1 nothing matched or the check failed, 2 usage error or a data directory that does not
exist. Bad input is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..version import __version__
from . import compact, demo, export, keygen, pseudonym, query, report, serve, show, sql, verify
from ._args import EXIT_NOTHING, EXIT_USAGE, Parser, UsageError

__all__ = ["main", "build_parser"]

_COMMANDS = (demo, keygen, query, show, verify, serve, pseudonym, compact, sql, export, report)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="decisiontrail", description="Audit trail of ML model decisions.")
    p.add_argument("--version", action="version", version=f"decisiontrail {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, FileNotFoundError) as exc:
        print(f"decisiontrail {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # unreadable files, a full disk: one line, not a traceback
        print(f"decisiontrail {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_NOTHING
