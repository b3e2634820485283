"""``decisiontrail show``: one decision by decision id, or every decision of a trace id, with the
request's span tree (from the store, or from Jaeger) and each decision's timeline: the decision, then
each review (who, when, what, why), then each outcome. Records about a decision id the store does
not hold are shown with "refers to a decision not found here"."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ..conventions import DECISION_EVENT, OUTCOME_EVENT, REVIEW_EVENT
from ..conventions import DecisionAttributes as D
from ..exporters.otlpjson import decode_attributes
from ..store.lifecycle import NOT_FOUND_HERE, Lifecycle, LifecycleIndex
from ..store import payloads
from ..store.query import Query
from ..store.reader import DecisionRecord, SpanRecord
from ._args import EXIT_FOUND, EXIT_NOTHING, EXIT_USAGE, jaeger_problem
from ._store import add_store_arguments, store_of


__all__ = ["register", "run", "span_tree", "timeline"]
_NOTES = ((DECISION_EVENT, "decision"), (REVIEW_EVENT, "review"), (OUTCOME_EVENT, "outcome"))


def register(sub: Any) -> None:
    s = sub.add_parser("show", help="one decision by decision id, or all decisions of a trace id",
                       description="Print one decision (or every decision of a trace), its timeline and the "
                                   "request's span tree.")
    s.add_argument("id", help="a decision id (any row of a batch) or a trace id (32 hex digits)")
    add_store_arguments(s, required=False)
    s.add_argument("--jaeger", help="Jaeger query base URL, e.g. http://127.0.0.1:16686: the whole request "
                                    "trace; if Jaeger cannot be reached, a warning and the local result")
    s.add_argument("--payload", choices=tuple(payloads.FIELDS),
                   help="write the exact full canonical JSON of this field (an offloaded payload is "
                        "fetched and checked against its hash) to stdout, nothing else")
    s.add_argument("--payload-store", help="read payloads from this store instead of their recorded URLs")
    s.set_defaults(func=run)


def span_tree(spans: Sequence[SpanRecord], out: TextIO) -> None:
    by_parent: dict[str, list[SpanRecord]] = {}
    ids = {s.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_time_unix_nano):
        by_parent.setdefault(s.parent_span_id if s.parent_span_id in ids else "", []).append(s)

    def walk(parent: str, depth: int) -> None:
        for s in by_parent.get(parent, []):
            ms = (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6
            counts = [(sum(_rows(e) if name == DECISION_EVENT else 1 for e in s.events if e.get("name") == name),
                       what) for name, what in _NOTES]
            note = ", ".join(f"{n} {what}{'s' * (n != 1)}" for n, what in counts if n)
            note = f"  [{note}]" if note else ""
            out.write(f"{'  ' * depth}- {s.name}  ({s.service_name or '?'}, {ms:.2f} ms, span {s.span_id}){note}\n")
            walk(s.span_id, depth + 1)

    walk("", 0)


def _rows(event: dict[str, Any]) -> int:
    """Decisions held by one event: a packed batch event holds ``decision.batch.count`` rows."""
    count = decode_attributes(event.get("attributes")).get(D.BATCH_COUNT)
    try:
        return max(1, int(count)) if count is not None else 1
    except (TypeError, ValueError):
        return 1


def _from_jaeger(url: str, ident: str, trace_id: str | None) -> dict[str, Any] | None:
    """The trace from Jaeger, or None with a warning when it cannot be asked."""
    from ..store import jaeger

    problem = jaeger_problem(url)
    if problem:
        print(f"decisiontrail show: warning: {problem}; showing the local result only", file=sys.stderr)
        return None
    try:
        if trace_id is None:
            return jaeger.find_decision_trace(url, ident)
        return jaeger.fetch_trace(url, trace_id) or None
    except (jaeger.JaegerError, ValueError, OSError) as exc:
        print(f"decisiontrail show: warning: {exc}; showing the local result only", file=sys.stderr)
        return None


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def timeline(decision: DecisionRecord | None, life: Lifecycle, out: TextIO) -> None:
    """The decision, then each review (who, when, what, why), then each outcome, oldest first."""
    out.write(f"\ntimeline of decision {life.decision_id}\n")
    if decision is None:
        out.write(f"  {NOT_FOUND_HERE}\n")
    else:
        score = f" (score {decision.score:.4f})" if isinstance(decision.score, (int, float)) else ""
        model = " ".join(str(v) for v in (decision.model_name, decision.model_version) if v is not None)
        out.write(f"  {decision.timestamp}  decision  {model} -> {_short(decision.label)}{score}\n")
    for r in life.reviews:
        d = r.to_dict()
        what = d["action"] + "".join(f"; {k} {_short(d[k])}" for k in ("label", "output") if d[k] is not None)
        why = f"; why: {d['rationale']}" if d["rationale"] else ""
        out.write(f"  {r.timestamp}  review    by {d['reviewer']}: {what}{why}  [record {r.record_id}]\n")
    for r in life.outcomes:
        d = r.to_dict()
        when = f", observed {d['observed_at']}" if d["observed_at"] else ""
        source = f", from {d['source']}" if d["source"] else ""
        out.write(f"  {r.timestamp}  outcome   {_short(d['outcome'])}{when}{source}  [record {r.record_id}]\n")
    if decision is not None:
        out.write(f"  effective label: {_short(life.effective_label(decision.label))}\n")


def _raw_payload(decisions: Sequence[DecisionRecord], name: str, store: payloads.PayloadStore | None) -> int:
    if len(decisions) != 1:
        print(f"decisiontrail show --payload: give one decision id ({len(decisions)} decisions found)",
              file=sys.stderr)
        return 2
    try:
        data = payloads.full_text(decisions[0], name, store)
    except payloads.PayloadError as exc:
        print(f"decisiontrail: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def run(args: argparse.Namespace) -> int:
    if not (args.data or args.jaeger):
        print("decisiontrail show: error: give --data DIR and/or --jaeger URL", file=sys.stderr)
        return EXIT_USAGE
    ident = args.id.strip().lower()
    is_trace = len(ident) == 32 and all(c in "0123456789abcdef" for c in ident)
    decisions: list[DecisionRecord] = []
    spans: list[SpanRecord] = []
    trace_id = ident if is_trace else None
    index = LifecycleIndex()
    if args.data:
        source = store_of(args)
        index = LifecycleIndex(source.records())
        if is_trace:
            decisions = list(source.decisions(Query(trace_id=ident)))
        else:
            found = source.decision(args.id.strip())
            decisions = [found] if found is not None else []
        if decisions:
            trace_id = decisions[0].trace_id
        if trace_id:
            spans = source.trace(trace_id)
    if args.jaeger:
        from ..store import jaeger

        trace_data = _from_jaeger(args.jaeger, args.id.strip(), trace_id)
        if trace_data:
            spans, jaeger_decisions = jaeger.to_records(trace_data)
            if not decisions:
                decisions = [d for d in jaeger_decisions if is_trace or d.decision_id == args.id.strip()]
            trace_id = trace_id or (spans[0].trace_id if spans else None)
    orphan = None if decisions or is_trace else index.by_decision.get(args.id.strip())
    if not decisions and not spans and orphan is None:
        print(f"decisiontrail: no decision or trace {args.id}", file=sys.stderr)
        return EXIT_NOTHING
    store = payloads.PayloadStore(args.payload_store) if args.payload_store else None
    if args.payload:
        return _raw_payload(decisions, args.payload, store)
    if orphan is not None:
        print(f"decision {orphan.decision_id}: {NOT_FOUND_HERE}")
        timeline(None, orphan, sys.stdout)
    for d in index.attach(decisions):
        out = d.to_dict()
        payloads.expand(d, out, store)  # full payloads in place of bounded summaries, hash-checked
        print(json.dumps(out, ensure_ascii=False, indent=2, sort_keys=True))
    for d in decisions:
        if not is_trace or d.lifecycle.reviews or d.lifecycle.outcomes:
            timeline(d, d.lifecycle, sys.stdout)
    if spans:
        print(f"\ntrace {trace_id}: {len(spans)} spans")
        span_tree(spans, sys.stdout)
    return EXIT_FOUND
