"""``decisiontrail query``: find decisions by model, version, label, time, trace and field values."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..store.query import Query, parse_time
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
              trace_id=args.trace_id, where=where, limit=args.limit)
    stats = ReadStats()
    n = PRINTERS[args.format](q.run(iter_decisions(args.data, stats)), sys.stdout)
    if stats.bad_lines:
        print(f"decisiontrail: skipped {stats.bad_lines} unreadable lines", file=sys.stderr)
    return 0 if n else 1
