"""``decisiontrail report``: a self-contained HTML report (charts as inline SVG) of a store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..store.query import TIME_FORMATS, Query
from ._args import time_arg
from ._progress import progress
from ._store import add_store_arguments, store_of

__all__ = ["register", "run"]

_EXAMPLE = """\
Writes one HTML file (no network, no scripts: the charts are inline SVG) with decisions per hour by
model and version, the label mix and score distribution per version, predict latency p50/p95/p99
from the spans, the top reason codes, counts of redacted, truncated and failed records, and the
verification summary (chain continuity from the stored chain fields; with --verify, the hash chains
re-verified over the audit files, a full scan).

examples:
  decisiontrail report --data decisiontrail-data --out report.html
  decisiontrail report --data /var/lib/audit --model loan-approval --since 7d --out loan-week.html --verify
"""


def register(sub: Any) -> None:
    r = sub.add_parser("report", help="a self-contained HTML report with charts",
                       description=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(r)
    r.add_argument("--out", required=True, type=Path, help="HTML file to write")
    r.add_argument("--since", type=time_arg, help=f"decisions at or after this time: {TIME_FORMATS}")
    r.add_argument("--until", type=time_arg, help="decisions at or before this time (same formats as --since)")
    r.add_argument("--model", help="only this model's decisions")
    r.add_argument("--verify", action="store_true", help="also re-verify the hash chains over the audit files")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..report import SECTIONS, collect, render
        from ..store.warehouse.filters import where_sql
    except ImportError as exc:  # pragma: no cover - only without the extras
        print(f"decisiontrail report needs: pip install 'decisiontrail[report]' ({exc})", file=sys.stderr)
        return 2
    q = Query(model=args.model, since_ns=args.since, until_ns=args.until)
    store = store_of(args, use_warehouse=True)
    with progress(len(SECTIONS) + 2 + bool(args.verify), "report") as advance:
        con = store.connection()  # type: ignore[attr-defined]
        advance(1)
        where, params = where_sql(q)
        data = collect(con, where, params)
        advance(1)
        verified = None
        if args.verify:
            from ..verification import audit_events, verify_records

            v = verify_records(list(audit_events(store.audit_spans())))
            verified = (v.decisions, len(v.chains), [str(p) for p in v.problems])
            advance(1)
        scope = ", ".join(f"{k} {v}" for k, v in (("model", args.model), ("since", args.since),
                                                   ("until", args.until)) if v) or "all decisions"
        page = render(data, title="Decision report", scope=f"{', '.join(map(str, args.data))} · {scope}",
                      verify=verified, advance=advance)
    args.out.write_text(page, encoding="utf-8")
    print(f"report of {data.total} decisions written to {args.out}")
    return 0
