"""``decisiontrail sql``: any SQL over the views ``decisions`` and ``spans`` (DuckDB)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from ._output import cell
from ._store import add_store_arguments, store_of

__all__ = ["register", "run"]

_EXAMPLE = """\
Runs one DuckDB SQL statement over two views: decisions (one row per decision: decision_id, time,
model_name, model_version, label, score, input/output/explanation JSON, reason_codes, trace_id,
chain_*, attributes JSON, date, model, ...) and spans (the spans of traces that hold decisions).
They hold the compacted warehouse plus the files not yet compacted (without a warehouse: the files).
Columns are listed in docs/warehouse.md.

examples:
  decisiontrail sql --data decisiontrail-data \\
    "SELECT model_version, date_trunc('week', time) AS week, avg((label = 'approve')::INT) AS approval
     FROM decisions GROUP BY ALL ORDER BY ALL"
  decisiontrail sql --data decisiontrail-data --format csv \\
    "SELECT decision_id, input->>'$.applicant_id' AS applicant FROM decisions WHERE label = 'deny'"
"""


def register(sub: Any) -> None:
    s = sub.add_parser("sql", help="SQL (DuckDB) over the views decisions and spans",
                       description=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("statement", help="one SQL statement, e.g. \"SELECT count(*) FROM decisions\"")
    add_store_arguments(s)
    s.add_argument("--format", choices=("table", "csv", "jsonl"), default="table",
                   help="table (default), csv or jsonl (one JSON object per row)")
    s.set_defaults(func=run)


def _print(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    out = sys.stdout
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(dict(zip(columns, r)), default=str, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(columns)
        w.writerows([[cell(v) if not isinstance(v, str) else v for v in r] for r in rows])
    else:
        text = [[cell(v) if not isinstance(v, (str,)) else v for v in r] for r in rows]
        widths = [max([len(c)] + [len(t[i]) for t in text]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        for t in text:
            out.write("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() + "\n")


def run(args: argparse.Namespace) -> int:
    store = store_of(args, use_warehouse=True)
    con = store.connection()  # type: ignore[attr-defined]
    duckdb = sys.modules["duckdb"]
    try:
        cur = con.execute(args.statement)
    except duckdb.Error as exc:
        print(f"decisiontrail sql: {exc}", file=sys.stderr)
        return 2
    if cur.description is None:
        return 0
    columns = [d[0] for d in cur.description]
    _print(columns, cur.fetchall(), args.format)
    return 0
