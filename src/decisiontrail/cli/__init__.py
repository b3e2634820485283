"""The ``decisiontrail`` command, one module per subcommand.

Each command module has ``register(subparsers)``, which adds its parser and sets ``func`` (the
function that runs it and returns the exit code). Adding a command is a new module plus one entry in
``_COMMANDS``.

Exit codes: 0 success, 1 nothing found or verification failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo, query, serve, show, verify

__all__ = ["main", "build_parser"]

_COMMANDS = (demo, query, show, verify, serve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="decisiontrail", description="Audit trail of ML model decisions.")
    sub = p.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except FileNotFoundError as exc:
        print(f"decisiontrail: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
