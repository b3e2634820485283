"""Argument types and the parser class of the ``decisiontrail`` command: bad input is one clear
line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import NoReturn

from ..store.query import TIME_FORMATS, parse_time

__all__ = ["Parser", "UsageError", "EXIT_FOUND", "EXIT_NOTHING", "EXIT_USAGE", "EXIT_CODES",
           "time_arg", "positive_int", "jaeger_problem"]

EXIT_FOUND = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_CODES = ("exit status: 0 something found (or the check passed), 1 nothing matched (or the check "
              "failed), 2 usage error or a data directory that does not exist")
"""What every command's ``--help`` ends with."""


class UsageError(Exception):
    """A bad argument found after parsing (a missing directory, a missing secret): exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``decisiontrail query: error: ...``), not the
    usage block, and whose help ends with the exit statuses."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("epilog", EXIT_CODES)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def time_arg(text: str) -> int:
    """``--since`` / ``--until``: Unix nanoseconds."""
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; accepted: {TIME_FORMATS}") from None


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return n


def jaeger_problem(url: str) -> str | None:
    """What is wrong with a ``--jaeger`` URL (no scheme, no host), or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"--jaeger {url!r} is not an http(s) URL (e.g. http://127.0.0.1:16686)"
    return None
