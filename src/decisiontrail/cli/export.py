"""``decisiontrail export``: the decisions a query selects, to Parquet, CSV or JSON lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._progress import run_with_progress
from ._store import add_store_arguments, store_of
from .query import add_filter_arguments, query_of

__all__ = ["register", "run"]

_EXAMPLE = """\
Writes the decisions matching the filters (the same as `decisiontrail query`: model, version,
label, time, trace, --where on input/output fields and any attribute, --effective-label,
--reviewed, --has-outcome) with the warehouse's columns (docs/warehouse.md), ordered by decision id
(time). The filters run in DuckDB.

examples:
  decisiontrail export --data decisiontrail-data --format parquet --out denials.parquet --label deny --since 30d
  decisiontrail export --data decisiontrail-data --format jsonl --out overridden.jsonl --reviewed --effective-label approve
  decisiontrail export --data decisiontrail-data --format csv --out applicant.csv \\
      --where input.applicant_id=hmac-sha256:0d53ff90b121f8b9e61aeae85352d2a4
"""

_FORMATS = {"parquet": "(FORMAT parquet, COMPRESSION zstd)", "csv": "(FORMAT csv, HEADER true)",
            "jsonl": "(FORMAT json)"}


def register(sub: Any) -> None:
    e = sub.add_parser("export", help="write selected decisions to Parquet, CSV or JSON lines",
                       description=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(e)
    add_filter_arguments(e)
    e.add_argument("--format", choices=tuple(_FORMATS), required=True,
                   help="parquet (zstd), csv (header row) or jsonl (one JSON object per decision)")
    e.add_argument("--out", required=True, type=Path, help="file to write (replaced if it exists)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..store.warehouse.engine import sql_str
    from ..store.warehouse.filters import where_sql
    from ..store.warehouse.lifecycle import lifecycle_where

    query = query_of(args)
    store = store_of(args, use_warehouse=True)
    con = store.connection()  # type: ignore[attr-defined]
    # --effective-label, --reviewed, --has-outcome, --where outcome=...: on decisions left-joined
    # with their lifecycle (only when asked: the join reads every outcome and review).
    query, conds, more = lifecycle_where(query)
    joined = bool(conds)
    where, params = where_sql(query)
    where, params = " AND ".join([where, *conds]), [*params, *more]
    limit = f" LIMIT {int(args.limit)}" if args.limit is not None else ""
    source = "decisions LEFT JOIN lifecycle USING (decision_id)" if joined else "decisions"
    select = (f"SELECT decisions.* EXCLUDE (date, model) FROM {source} WHERE {where} "
              f"ORDER BY decisions.decision_id{limit}")
    tmp = args.out.with_name(args.out.name + ".tmp")
    n = run_with_progress(con, f"COPY ({select}) TO {sql_str(str(tmp))} {_FORMATS[args.format]}", params, "export")
    tmp.replace(args.out)
    print(f"{n} decisions written to {args.out}")
    return 0 if n else 1
