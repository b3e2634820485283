"""``decisiontrail compact``: build or extend the columnar decision warehouse from the audit files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._progress import progress

__all__ = ["register", "run"]

_EXAMPLE = """\
Reads every OTLP-JSON audit file under DIR (embedded store or the collector's: plain, rotated,
zstd) and writes hive-partitioned Parquet (decisions/date=YYYY-MM-DD/model=NAME/part-*.parquet and
spans/date=YYYY-MM-DD/part-*.parquet) with DuckDB. Incremental (a rerun reads only new files and the
new complete lines of growing ones), deduplicated by decision id (replays too), crash-safe (a killed
run leaves the last committed warehouse; the next run finishes the work). Source files are never
modified. query, show, verify, sql, export and report then read the warehouse plus the files' tail.

example:
  decisiontrail compact --data decisiontrail-data          # -> decisiontrail-data/warehouse
  decisiontrail compact --data /var/lib/audit --warehouse /srv/warehouse   # e.g. from cron
"""


def register(sub: Any) -> None:
    c = sub.add_parser("compact", help="build or extend the columnar decision warehouse (DuckDB, Parquet)",
                       description=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--data", required=True, action="append",
                   help="audit directory or file; repeat it to compact several directories into one warehouse")
    c.add_argument("--warehouse", metavar="PATH", help="warehouse directory (default: DATA/warehouse)")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..store.warehouse.compact import compact, default_warehouse
        from ..store.warehouse.sources import pending_bytes
    except ImportError as exc:  # pragma: no cover - only without the extra
        print(f"decisiontrail compact needs DuckDB: pip install 'decisiontrail[warehouse]' ({exc})", file=sys.stderr)
        return 2
    warehouse = Path(args.warehouse) if args.warehouse else default_warehouse(args.data)
    with progress(pending_bytes(args.data, warehouse), "compact", unit="B") as advance:
        stats = compact(args.data, warehouse, on_bytes=advance)
    rate = stats.decisions / stats.seconds if stats.seconds else 0.0
    print(f"{stats.decisions} decisions and {stats.spans} spans added to {warehouse} in {stats.commits} commits "
          f"({stats.bytes_read / 1e6:.1f} MB read, {stats.seconds:.1f} s, {rate:,.0f} decisions/s)"
          + (f"; {stats.duplicates} duplicates skipped" if stats.duplicates else "")
          + (f"; {stats.bad_lines} unreadable lines skipped" if stats.bad_lines else ""))
    return 0
