"""Printing decisions: table, JSON lines, CSV (shared by query and the commands that list)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from ..store.reader import DecisionRecord

__all__ = ["PRINTERS", "cell"]

_TABLE_COLUMNS = ("timestamp", "decision_id", "model_name", "model_version", "label", "score", "trace_id")


def cell(v: Any, rounded: bool = True) -> str:
    """One value as text: floats with 4 decimals in the table (``rounded``), else in full (CSV)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if rounded else repr(v)
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def print_table(records: Iterable[DecisionRecord], out: TextIO) -> int:
    rows = [[cell(r.to_dict().get(c)) for c in _TABLE_COLUMNS] for r in records]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_TABLE_COLUMNS)]
    out.write("  ".join(c.ljust(w) for c, w in zip(_TABLE_COLUMNS, widths)).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
    return len(rows)


def print_jsonl(records: Iterable[DecisionRecord], out: TextIO) -> int:
    n = 0
    for r in records:
        out.write(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


def print_csv(records: Iterable[DecisionRecord], out: TextIO) -> int:
    rows = [r.to_dict() for r in records]
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    w = csv.writer(out)
    w.writerow(columns)
    for row in rows:
        w.writerow([cell(row.get(c), rounded=False) for c in columns])
    return len(rows)


PRINTERS: dict[str, Callable[[Iterable[DecisionRecord], TextIO], int]] = {
    "table": print_table, "jsonl": print_jsonl, "csv": print_csv,
}
