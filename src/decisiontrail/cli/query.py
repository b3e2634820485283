"""``decisiontrail query``: find decisions by model, version, label, time, trace and field values, and
by what happened after (``--effective-label``, ``--reviewed``, ``--has-outcome``); every decision comes
with its ``effective_label``, latest ``outcome`` and ``reviews`` (store.lifecycle); ``--subject``
finds the decisions about one subject."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..store.query import TIME_FORMATS, Query
from ..store.lifecycle import LifecycleIndex
from ..store.reader import ReadStats, iter_decisions
from ._args import EXIT_FOUND, EXIT_NOTHING, positive_int, time_arg
from ._output import PRINTERS
from .pseudonym import subject_filter


__all__ = ["register", "run"]


def register(sub: Any) -> None:
    q = sub.add_parser("query", help="find decisions")
    q.add_argument("--data", required=True, action="append",
                   help="audit directory or file (embedded store or collector output); repeat it to read "
                        "several (e.g. every gateway's audit directory) as one store")
    q.add_argument("--model", help="model name (model.name), exactly")
    q.add_argument("--version", help="model version (model.version), exactly")
    q.add_argument("--label", help="decided label (decision.label), e.g. deny")
    q.add_argument("--since", type=time_arg, help=f"decisions at or after this time: {TIME_FORMATS}")
    q.add_argument("--until", type=time_arg, help="decisions at or before this time (same formats as --since)")
    q.add_argument("--trace-id", help="32 hex digits: the decisions of one request")
    q.add_argument("--subject", metavar="VALUE",
                   help="the decisions about one subject (enduser.id), given in clear: hashed with "
                        "DECISIONTRAIL_HASH_SECRET when set, as the recorder stored it (enduser.pseudo.id)")
    q.add_argument("--where", action="append", metavar="FIELD=VALUE",
                   help="e.g. decision.label=deny, input.income=52000; repeatable (all must match)")
    q.add_argument("--effective-label", help="label after human review: the latest override's, else the model's")
    q.add_argument("--reviewed", action=argparse.BooleanOptionalAction, default=None,
                   help="only decisions with (--no-reviewed: without) a human review")
    q.add_argument("--has-outcome", action=argparse.BooleanOptionalAction, default=None,
                   help="only decisions with (--no-has-outcome: without) a recorded outcome")
    q.add_argument("--limit", type=positive_int, help="print at most this many decisions (1 or more)")
    q.add_argument("--format", choices=tuple(PRINTERS), default="table",
                   help="table (default; scores rounded for reading), jsonl or csv (full precision)")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    where = []
    for item in args.where or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"decisiontrail query: error: --where takes FIELD=VALUE, not {item!r}", file=sys.stderr)
            return 2
        where.append((key, value))
    if args.subject is not None:
        where.append(subject_filter(args.subject))
    q = Query(model=args.model, version=args.version, label=args.label,
              since_ns=args.since, until_ns=args.until,
              trace_id=args.trace_id, where=where, limit=args.limit, effective_label=args.effective_label,
              reviewed=args.reviewed, has_outcome=args.has_outcome)
    stats = ReadStats()
    decisions = LifecycleIndex.read(args.data).attach(iter_decisions(args.data, stats))
    n = PRINTERS[args.format](q.run(decisions), sys.stdout)
    if stats.bad_lines:
        print(f"decisiontrail: skipped {stats.bad_lines} unreadable lines", file=sys.stderr)
    return EXIT_FOUND if n else EXIT_NOTHING
