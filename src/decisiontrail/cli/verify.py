"""``decisiontrail verify``: check the hash chains of a store (tamper evidence)."""

from __future__ import annotations

import argparse
from typing import Any

from .. import chain
from ..store.reader import ReadStats, iter_decisions


__all__ = ["register", "run"]


def register(sub: Any) -> None:
    v = sub.add_parser("verify", help="check the hash chains (tamper evidence)")
    v.add_argument("--data", required=True, action="append",
                   help="audit directory or file; repeat it to verify several directories as one store "
                        "(a chain may span gateways)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stats = ReadStats()
    events: dict[int, dict[str, Any]] = {}  # rows of one packed batch event share its attributes
    rows = 0
    for d in iter_decisions(args.data, stats):
        rows += 1
        events.setdefault(id(d.attributes), d.chain_view())
    checked, problems = chain.verify(events.values())
    for p in problems:
        print(p)
    unchained = len(events) - checked
    print(f"{rows} decisions in {checked} chained events checked, {len(problems)} problems"
          + (f", {unchained} events without chain" if unchained else "")
          + (f", {stats.duplicates} replayed duplicates ignored" if stats.duplicates else ""))
    return 1 if problems else 0
