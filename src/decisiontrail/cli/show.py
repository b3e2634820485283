"""``decisiontrail show``: one decision by decision id, or every decision of a trace id, with the
request's span tree (from the store, or from Jaeger)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ..store.reader import DecisionRecord, SpanRecord, iter_decisions, iter_spans


__all__ = ["register", "run", "span_tree"]


def register(sub: Any) -> None:
    s = sub.add_parser("show", help="one decision by decision id, or all decisions of a trace id")
    s.add_argument("id")
    s.add_argument("--data", action="append", help="audit directory or file; repeatable (one store)")
    s.add_argument("--jaeger", help="Jaeger query base URL, e.g. http://127.0.0.1:16686")
    s.set_defaults(func=run)


def span_tree(spans: Sequence[SpanRecord], out: TextIO) -> None:
    by_parent: dict[str, list[SpanRecord]] = {}
    ids = {s.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_time_unix_nano):
        by_parent.setdefault(s.parent_span_id if s.parent_span_id in ids else "", []).append(s)

    def walk(parent: str, depth: int) -> None:
        for s in by_parent.get(parent, []):
            ms = (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6
            decisions = sum(1 for e in s.events if e.get("name") == "model.decision")
            note = f"  [{decisions} decision{'s' * (decisions != 1)}]" if decisions else ""
            out.write(f"{'  ' * depth}- {s.name}  ({s.service_name or '?'}, {ms:.2f} ms, span {s.span_id}){note}\n")
            walk(s.span_id, depth + 1)

    walk("", 0)


def run(args: argparse.Namespace) -> int:
    if not (args.data or args.jaeger):
        print("decisiontrail show: give --data DIR and/or --jaeger URL", file=sys.stderr)
        return 2
    ident = args.id.strip().lower()
    is_trace = len(ident) == 32 and all(c in "0123456789abcdef" for c in ident)
    decisions: list[DecisionRecord] = []
    spans: list[SpanRecord] = []
    trace_id = ident if is_trace else None
    if args.data:
        decisions = [d for d in iter_decisions(args.data)
                     if (d.trace_id == ident if is_trace else d.decision_id == args.id.strip())]
        if decisions:
            trace_id = decisions[0].trace_id
        if trace_id:
            spans = [s for s in iter_spans(args.data) if s.trace_id == trace_id]
    if args.jaeger:
        from ..store import jaeger

        if trace_id is None:
            trace_data = jaeger.find_decision_trace(args.jaeger, args.id.strip())
        else:
            trace_data = jaeger.fetch_trace(args.jaeger, trace_id)
        if trace_data:
            spans, jaeger_decisions = jaeger.to_records(trace_data)
            if not decisions:
                decisions = [d for d in jaeger_decisions if is_trace or d.decision_id == args.id.strip()]
            trace_id = trace_id or (spans[0].trace_id if spans else None)
    if not decisions and not spans:
        print(f"decisiontrail: no decision or trace {args.id}", file=sys.stderr)
        return 1
    for d in decisions:
        print(json.dumps(d.to_dict(), ensure_ascii=False, indent=2, sort_keys=True))
    if spans:
        print(f"\ntrace {trace_id}: {len(spans)} spans")
        span_tree(spans, sys.stdout)
    return 0
