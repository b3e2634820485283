"""``decisiontrail query``: find decisions by model, version, label, time, trace and field values, and
by what happened after (``--effective-label``, ``--reviewed``, ``--has-outcome``); every decision comes
with its ``effective_label``, latest ``outcome`` and ``reviews`` (store.lifecycle)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..store.query import Query, parse_time
from ..store.lifecycle import LifecycleIndex
from ..store.reader import ReadStats, iter_decisions
from ._output import PRINTERS


__all__ = ["register", "run"]


def register(sub: Any) -> None:
    q = sub.add_parser("query", help="find decisions")
    q.add_argument("--data", required=True, action="append",
                   help="audit directory or file (embedded store or collector output); repeat it to read "
                        "several (e.g. every gateway's audit directory) as one store")
    q.add_argument("--model")
    q.add_argument("--version")
    q.add_argument("--label")
    q.add_argument("--since", help="ISO 8601 time or relative (15m, 2h, 7d)")
    q.add_argument("--until", help="ISO 8601 time or relative (15m, 2h, 7d)")
    q.add_argument("--trace-id")
    q.add_argument("--where", action="append", metavar="FIELD=VALUE",
                   help="e.g. decision.label=deny, input.income=52000; repeatable (all must match)")
    q.add_argument("--effective-label", help="label after human review: the latest override's, else the model's")
    q.add_argument("--reviewed", action=argparse.BooleanOptionalAction, default=None,
                   help="only decisions with (--no-reviewed: without) a human review")
    q.add_argument("--has-outcome", action=argparse.BooleanOptionalAction, default=None,
                   help="only decisions with (--no-has-outcome: without) a recorded outcome")
    q.add_argument("--limit", type=int)
    q.add_argument("--format", choices=tuple(PRINTERS), default="table")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    where = []
    for item in args.where or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"decisiontrail: --where takes field=value, not {item!r}")
        where.append((key, value))
    q = Query(model=args.model, version=args.version, label=args.label,
              since_ns=parse_time(args.since) if args.since else None,
              until_ns=parse_time(args.until) if args.until else None,
              trace_id=args.trace_id, where=where, limit=args.limit, effective_label=args.effective_label,
              reviewed=args.reviewed, has_outcome=args.has_outcome)
    stats = ReadStats()
    decisions = LifecycleIndex.read(args.data).attach(iter_decisions(args.data, stats))
    n = PRINTERS[args.format](q.run(decisions), sys.stdout)
    if stats.bad_lines:
        print(f"decisiontrail: skipped {stats.bad_lines} unreadable lines", file=sys.stderr)
    return 0 if n else 1
