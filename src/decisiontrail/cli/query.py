"""``decisiontrail query``: find decisions by model, version, label, time, trace and field values, and
by what happened after (``--effective-label``, ``--reviewed``, ``--has-outcome``); every decision comes
with its ``effective_label``, latest ``outcome`` and ``reviews`` (store.lifecycle); ``--subject``
finds the decisions about one subject. Reads through the store protocol: the warehouse plus the
files' tail when one is compacted (filters run in DuckDB), else the files."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..store.query import TIME_FORMATS, Query
from ._args import EXIT_FOUND, EXIT_NOTHING, UsageError, positive_int, time_arg
from ._output import PRINTERS
from ._store import add_store_arguments, decisions_with_lifecycle, store_of
from .pseudonym import key_filter, subject_filter

__all__ = ["register", "run", "query_of", "add_filter_arguments"]


def register(sub: Any) -> None:
    q = sub.add_parser("query", help="find decisions", description="Find decisions and print them.")
    add_store_arguments(q)
    add_filter_arguments(q)
    q.add_argument("--format", choices=tuple(PRINTERS), default="table",
                   help="table (default; scores rounded for reading), jsonl or csv (full precision)")
    q.set_defaults(func=run)


def add_filter_arguments(q: Any, *, lifecycle: bool = True) -> None:
    """The filter options (query, export)."""
    q.add_argument("--model", help="model name (model.name), exactly")
    q.add_argument("--version", help="model version (model.version), exactly")
    q.add_argument("--label", help="decided label (decision.label), e.g. deny")
    q.add_argument("--since", type=time_arg, help=f"decisions at or after this time: {TIME_FORMATS}")
    q.add_argument("--until", type=time_arg, help="decisions at or before this time (same formats as --since)")
    q.add_argument("--trace-id", help="32 hex digits: the decisions of one request")
    q.add_argument("--subject", metavar="VALUE",
                   help="the decisions about one subject (enduser.id), given in clear: hashed with "
                        "DECISIONTRAIL_HASH_SECRET when set, as the recorder stored it (enduser.pseudo.id)")
    q.add_argument("--key", action="append", metavar="NAME=VALUE",
                   help="a business key (decision.key.NAME), e.g. loan_id=L-77, given in clear: hashed when NAME is "
                        "one of DECISIONTRAIL_HASH_KEYS, with DECISIONTRAIL_HASH_SECRET; repeatable")
    q.add_argument("--where", action="append", metavar="FIELD=VALUE",
                   help="e.g. decision.label=deny, input.income=52000; repeatable (all must match)")
    if lifecycle:
        q.add_argument("--effective-label", help="label after human review: the latest override's, else the model's")
        q.add_argument("--reviewed", action=argparse.BooleanOptionalAction, default=None,
                       help="only decisions with (--no-reviewed: without) a human review")
        q.add_argument("--has-outcome", action=argparse.BooleanOptionalAction, default=None,
                       help="only decisions with (--no-has-outcome: without) a recorded outcome")
    q.add_argument("--limit", type=positive_int, help="at most this many decisions (1 or more)")


def query_of(args: argparse.Namespace) -> Query:
    """The Query of the filter options. Raises UsageError on a malformed ``--where``."""
    where = []
    for item in args.where or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--where takes FIELD=VALUE, not {item!r}")
        where.append((key, value))
    if args.subject is not None:
        where.append(subject_filter(args.subject))
    where.extend(key_filter(item) for item in getattr(args, "key", None) or [])
    return Query(model=args.model, version=args.version, label=args.label,
                 since_ns=args.since, until_ns=args.until, trace_id=args.trace_id, where=where, limit=args.limit,
                 effective_label=getattr(args, "effective_label", None), reviewed=getattr(args, "reviewed", None),
                 has_outcome=getattr(args, "has_outcome", None))


def run(args: argparse.Namespace) -> int:
    store = store_of(args)
    n = PRINTERS[args.format](decisions_with_lifecycle(store, query_of(args)), sys.stdout)
    if store.stats.bad_lines:
        print(f"decisiontrail: skipped {store.stats.bad_lines} unreadable lines", file=sys.stderr)
    if not n and (args.subject is not None or args.key) and not os.environ.get("DECISIONTRAIL_HASH_SECRET"):
        print("decisiontrail query: nothing matched in clear; if the service hashes subjects or keys, set "
              "DECISIONTRAIL_HASH_SECRET (and DECISIONTRAIL_HASH_KEYS) as it does", file=sys.stderr)
    return EXIT_FOUND if n else EXIT_NOTHING
