"""Parsing chunks of OTLP-JSON lines into the warehouse's row tables (``new_d``, ``new_s``), shared
by compaction and by the readers' view of the not-yet-compacted tail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import lines as py
from .engine import sql_list, sql_str
from .layout import Manifest, Part, part_date
from .schema import DECISION_ROW, SPAN_ROW, decisions_sql, span_rows_sql, spans_sql
from .sources import Chunk, _longest_line

__all__ = ["new_tables", "ingest", "settle"]


def _table(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    return f"CREATE TABLE {name} (ord BIGINT, " + ", ".join(f"{c} {t}" for c, t in columns) + ")"


def new_tables(con: Any) -> None:
    """The empty row tables ``new_d`` / ``new_s`` (declared, not planned from the row SQL: that
    planning was most of a reader's fixed cost)."""
    con.execute("CREATE SEQUENCE _ord")
    con.execute(_table("new_d", DECISION_ROW))
    con.execute(_table("new_s", SPAN_ROW))


def ingest(con: Any, chunk: Chunk) -> int:
    """Parse one chunk into new_d / new_s, in the order of its lines; returns the number of
    unreadable lines. Each line is parsed in Python (:mod:`.lines`) unless it is one that module
    leaves to DuckDB's SQL path (runs of such lines are parsed by DuckDB in one go), or its
    libraries are missing (then the whole chunk is)."""
    if not py.AVAILABLE:
        return _ingest_file(con, chunk.write(), chunk.longest)
    rows, left, bad = py.Rows(), [], 0
    out = chunk.path.with_suffix(".rows")
    for blob in chunk.blobs:
        for line in blob.split(b"\n"):
            if not line.strip():
                continue  # a blank line: DuckDB's reader skips it too
            try:
                rows.add(line)
            except py.Unhandled:
                rows = _insert(con, rows, out)
                left.append(line)
                continue
            if left:  # the lines before this one first (ids are deduplicated in read order)
                bad += _ingest_lines(con, chunk.path, left)
                left = []
    _insert(con, rows, out)
    return bad + (_ingest_lines(con, chunk.path, left) if left else 0)


def _insert(con: Any, rows: py.Rows, out: Path) -> py.Rows:
    """Insert the rows built so far (through a flat NDJSON file at ``out``) and start new ones."""
    if not rows.nonempty():
        return rows
    try:
        if rows.d:
            con.execute(py.DECISIONS_INSERT.format(rows=rows.write(out, "d")))
        con.execute(py.SPANS_INSERT.format(rows=rows.write(out, "s")))
    finally:
        out.unlink(missing_ok=True)
    return py.Rows()


def _ingest_lines(con: Any, path: Path, lines: list[bytes]) -> int:
    with open(path, "wb") as f:
        for line in lines:
            f.write(line + b"\n")
    return _ingest_file(con, path, max(_longest_line(line) for line in lines))


def _ingest_file(con: Any, chunk: Path, longest: int) -> int:
    """Parse an NDJSON file with DuckDB's SQL path (:mod:`.schema`) and delete it."""
    try:
        return _sql(con, chunk, longest)
    finally:
        chunk.unlink(missing_ok=True)


def _sql(con: Any, chunk: Path, longest: int) -> int:
    lines = (f"read_ndjson_objects({sql_str(str(chunk))}, ignore_errors = true, "
             f"maximum_object_size = {max(longest + 1, 1 << 20)})")
    # The file is read once: its lines into a table, where the unreadable ones (NULL) are counted.
    con.execute(f"CREATE OR REPLACE TEMP TABLE _lines AS SELECT json FROM {lines}")
    bad = int(con.execute("SELECT count(*) FROM _lines WHERE json IS NULL").fetchone()[0])
    con.execute(f"CREATE OR REPLACE TABLE _spans AS {spans_sql('(SELECT json FROM _lines WHERE json IS NOT NULL)')}")
    con.execute("DROP TABLE _lines")
    con.execute(f"INSERT INTO new_d SELECT nextval('_ord'), * FROM ({decisions_sql('_spans')})")
    con.execute(f"INSERT INTO new_s SELECT nextval('_ord'), * FROM ({span_rows_sql('_spans')})")
    con.execute("DROP TABLE _spans")
    return bad


def _files(warehouse: Path, parts: list[Part], dates: set[str]) -> list[str]:
    return [str(warehouse / p.path) for p in parts if part_date(p.path) in dates]


def _dates(con: Any, sql: str) -> set[str]:
    return {r[0] for r in con.execute(sql).fetchall() if r[0] is not None}


def _next_day(d: str) -> str:
    import datetime as _dt

    return (_dt.date.fromisoformat(d) + _dt.timedelta(days=1)).isoformat()


def _delete(con: Any, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def settle(con: Any, warehouse: Path, manifest: Manifest) -> tuple[int, int, int]:
    """Reduce new_d / new_s to the rows to add: each decision id once (the first read) and not
    already in the warehouse (looked up in the partitions of the ids' dates, so a replay days later
    is caught), the spans of traces that hold decisions, each span once. The deletes read narrow
    columns only. Returns (decisions left, duplicate decision rows dropped, spans left)."""
    d_dates = _dates(con, "SELECT DISTINCT dt_id_date(decision_id, time_unix_nano) FROM new_d")
    drop = ("SELECT ord FROM (SELECT ord, row_number() OVER (PARTITION BY decision_id ORDER BY ord) AS k "
            "FROM new_d) WHERE k > 1")
    existing = _files(warehouse, manifest.decisions, d_dates)
    if existing:
        drop += (f" UNION ALL SELECT ord FROM new_d WHERE decision_id IN "
                 f"(SELECT decision_id FROM read_parquet({sql_list(existing)}))")
    duplicates = _delete(con, f"DELETE FROM new_d WHERE ord IN ({drop})")

    _delete(con, "DELETE FROM new_s WHERE ord IN (SELECT ord FROM (SELECT ord, row_number() OVER "
                 "(PARTITION BY trace_id, span_id ORDER BY ord) AS k FROM new_s) WHERE k > 1)")
    # Spans of traces that hold decisions: the decision spans themselves, audit-record spans, and the
    # other spans of their traces (the request span), also when the decision was compacted before.
    other = "decision_count = 0 AND audit_records = 0 AND trace_id NOT IN (SELECT trace_id FROM new_d)"
    days = _dates(con, f"SELECT DISTINCT date FROM new_s WHERE {other}")
    earlier = _files(warehouse, manifest.decisions, days | {_next_day(d) for d in days})
    keep = f" AND trace_id NOT IN (SELECT trace_id FROM read_parquet({sql_list(earlier)}))" if earlier else ""
    if days:
        _delete(con, f"DELETE FROM new_s WHERE {other}{keep}")
    existing = _files(warehouse, manifest.spans, _dates(con, "SELECT DISTINCT date FROM new_s"))
    if existing:
        _delete(con, f"DELETE FROM new_s WHERE (trace_id, span_id) IN "
                     f"(SELECT (trace_id, span_id) FROM read_parquet({sql_list(existing)}))")
    counts = con.execute("SELECT (SELECT count(*) FROM new_d), (SELECT count(*) FROM new_s)").fetchone()
    return int(counts[0]), duplicates, int(counts[1])
