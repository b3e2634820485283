"""``decisiontrail demo``: record decisions of a demo loan model into local files."""

from __future__ import annotations

import argparse
import sys
from typing import Any


__all__ = ["register", "run"]


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="record decisions of a demo loan model into local files")
    d.add_argument("--out", default="decisiontrail-data", help="directory to write (default ./decisiontrail-data)")
    d.add_argument("--n", type=int, default=200, help="number of requests (default 200)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..demo import run_demo
        result = run_demo(args.out, args.n)
    except ImportError as exc:
        print(f"decisiontrail demo needs scikit-learn: pip install 'decisiontrail[demo]' ({exc})", file=sys.stderr)
        return 2
    print(f"Recorded {len(result.decision_ids)} decisions from {result.decisions} requests into {result.out.resolve()}")
    print("Look at them:")
    print(f"  decisiontrail query --data {args.out} --label deny --format table")
    if result.decision_ids:
        print(f"  decisiontrail show {result.decision_ids[0]} --data {args.out}")
    print(f"  decisiontrail verify --data {args.out}")
    return 0
