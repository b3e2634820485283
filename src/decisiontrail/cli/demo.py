"""``decisiontrail demo``: record decisions of a demo loan model into local files."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..store.reader import iter_files
from ._args import EXIT_FOUND, EXIT_USAGE, positive_int

__all__ = ["register", "run", "cli_command"]


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="record decisions of a demo loan model into local files",
                       description="Train a small loan model and record its decisions into a new local store.")
    d.add_argument("--out", default="decisiontrail-data", help="directory to write (default ./decisiontrail-data)")
    d.add_argument("--n", type=positive_int, default=200, help="number of requests (default 200)")
    d.add_argument("--append", action="store_true",
                   help="add to a directory that already holds audit data (refused without it, so the demo "
                        "never mixes into another store)")
    d.add_argument("--signing-key", metavar="PATH", help="sign the chain's checkpoints with this key "
                   "(decisiontrail keygen writes one)")
    d.add_argument("--anchors", metavar="DIR", help="also append every checkpoint to this anchor store")
    d.set_defaults(func=run)


def cli_command() -> str:
    """How to run this command again as the user can type it: ``decisiontrail`` when that is the
    one on PATH, else its full path (a virtualenv's bin), else ``python -m decisiontrail.cli``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "decisiontrail":
        here = os.path.realpath(argv0)
        on_path = shutil.which("decisiontrail")
        if on_path and os.path.realpath(on_path) == here:
            return "decisiontrail"
        return shlex.quote(os.path.abspath(argv0))
    return f"{shlex.quote(sys.executable)} -m decisiontrail.cli"


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.append and iter_files(out):
        print(f"decisiontrail demo: error: {out} already holds audit data; choose another --out, or add "
              "--append to add the demo's decisions to it", file=sys.stderr)
        return EXIT_USAGE
    try:
        from ..demo import run_demo
        result = run_demo(out, args.n, signing_key=args.signing_key, anchors=args.anchors)
    except ImportError as exc:
        print(f"decisiontrail demo needs scikit-learn: pip install 'decisiontrail[demo]' ({exc})", file=sys.stderr)
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"decisiontrail demo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    cli, data = cli_command(), shlex.quote(str(out))
    print(f"Recorded {len(result.decision_ids)} decisions from {result.decisions} requests into {out.resolve()}")
    print("Look at them:")
    print(f"  {cli} query --data {data} --label deny --format table")
    if result.decision_ids:
        print(f"  {cli} show {result.decision_ids[0]} --data {data}")
    print(f"  {cli} verify --data {data}{_verify_options(args)}")
    return EXIT_FOUND


def _verify_options(args: argparse.Namespace) -> str:
    out = ""
    if args.signing_key:
        pub = Path(args.signing_key).with_suffix(".pub")
        out += f" --public-key {shlex.quote(str(pub if pub.is_file() else args.signing_key))}"
    if args.anchors:
        out += f" --anchors {shlex.quote(str(args.anchors))}"
    return out
