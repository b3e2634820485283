"""The ``decisiontrail`` command: demo, query, show, verify.

Exit codes: 0 success, 1 nothing found or verification failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from . import chain
from .store.query import Query, parse_time
from .store.reader import DecisionRecord, ReadStats, SpanRecord, iter_decisions, iter_spans

__all__ = ["main"]

_TABLE_COLUMNS = ("timestamp", "decision_id", "model_name", "model_version", "label", "score", "trace_id")


def _print_table(records: Iterable[DecisionRecord], out: TextIO) -> int:
    rows = [[_cell(r.to_dict().get(c)) for c in _TABLE_COLUMNS] for r in records]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_TABLE_COLUMNS)]
    out.write("  ".join(c.ljust(w) for c, w in zip(_TABLE_COLUMNS, widths)).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
    return len(rows)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _print_jsonl(records: Iterable[DecisionRecord], out: TextIO) -> int:
    n = 0
    for r in records:
        out.write(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def _print_csv(records: Iterable[DecisionRecord], out: TextIO) -> int:
    rows = [r.to_dict() for r in records]
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    w = csv.writer(out)
    w.writerow(columns)
    for row in rows:
        w.writerow([_cell(row.get(c)) for c in columns])
    return len(rows)


def _query(args: argparse.Namespace) -> int:
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
    printer = {"table": _print_table, "jsonl": _print_jsonl, "csv": _print_csv}[args.format]
    n = printer(q.run(iter_decisions(args.data, stats)), sys.stdout)
    if stats.bad_lines:
        print(f"decisiontrail: skipped {stats.bad_lines} unreadable lines", file=sys.stderr)
    return 0 if n else 1


def _span_tree(spans: Sequence[SpanRecord], out: TextIO) -> None:
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


def _show(args: argparse.Namespace) -> int:
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
        from .store import jaeger

        if trace_id is None:
            found = jaeger.find_decision_trace(args.jaeger, args.id.strip())
            trace_data = found
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
        _span_tree(spans, sys.stdout)
    return 0


def _verify(args: argparse.Namespace) -> int:
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


def _demo(args: argparse.Namespace) -> int:
    try:
        from .demo import run_demo
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="decisiontrail", description="Audit trail of ML model decisions.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="record decisions of a demo loan model into local files")
    d.add_argument("--out", default="decisiontrail-data", help="directory to write (default ./decisiontrail-data)")
    d.add_argument("--n", type=int, default=200, help="number of requests (default 200)")
    d.set_defaults(func=_demo)

    q = sub.add_parser("query", help="find decisions")
    q.add_argument("--data", required=True, help="audit directory or file (embedded store or collector output)")
    q.add_argument("--model")
    q.add_argument("--version")
    q.add_argument("--label")
    q.add_argument("--since", help="ISO 8601 time or relative (15m, 2h, 7d)")
    q.add_argument("--until", help="ISO 8601 time or relative (15m, 2h, 7d)")
    q.add_argument("--trace-id")
    q.add_argument("--where", action="append", metavar="FIELD=VALUE",
                   help="e.g. decision.label=deny, input.income=52000; repeatable (all must match)")
    q.add_argument("--limit", type=int)
    q.add_argument("--format", choices=("table", "jsonl", "csv"), default="table")
    q.set_defaults(func=_query)

    s = sub.add_parser("show", help="one decision by decision id, or all decisions of a trace id")
    s.add_argument("id")
    s.add_argument("--data", help="audit directory or file")
    s.add_argument("--jaeger", help="Jaeger query base URL, e.g. http://127.0.0.1:16686")
    s.set_defaults(func=_show)

    v = sub.add_parser("verify", help="check the hash chains (tamper evidence)")
    v.add_argument("--data", required=True)
    v.set_defaults(func=_verify)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "show" and not (args.data or args.jaeger):
        print("decisiontrail show: give --data DIR and/or --jaeger URL", file=sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except FileNotFoundError as exc:
        print(f"decisiontrail: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
