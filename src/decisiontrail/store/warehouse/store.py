"""The warehouse as a :class:`~decisiontrail.store.protocol.DecisionStore`: the Parquet parts the
MANIFEST lists, plus the tail of the audit files not yet compacted (parsed by DuckDB on first use,
into memory, deduplicated against the warehouse), so a decision is visible from the moment it is in
a file. Filters run in DuckDB (:mod:`.filters`); a decision id names its date partition, so
``decision(id)`` reads one partition. :meth:`WarehouseStore.decisions_with_lifecycle` left-joins
each decision's outcomes and reviews in DuckDB from the ``lifecycle`` view (:mod:`.lifecycle`), on
which the lifecycle filters run too.

:meth:`WarehouseStore.connection` gives a DuckDB connection with the views ``decisions``, ``spans``
(parts + tail), ``records`` and ``lifecycle``, for ``sql``, ``export`` and ``report``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...conventions import DECISION_EVENT
from ...conventions import DecisionAttributes as D
from ...exporters.otlpjson import encode_attributes
from ...ids import decision_id_time_ns
from ..files import FileStore
from ..lifecycle import LifecycleRecord, records_of
from ..query import Query
from ..reader import DecisionRecord, ReadStats, SpanRecord
from .chainprev import DERIVED, restore_matches_sql, restore_sql
from .engine import connect, sql_list
from .filters import date_bounds, where_sql
from .ingest import ingest, new_tables, settle
from .layout import Manifest, load_manifest, part_date, part_model
from .lifecycle import LIFECYCLE_SELECT, lifecycle_of, lifecycle_sql, lifecycle_where, other_links_sql, records_sql
from .schema import DECISION_COLUMNS, KEY_PREFIX, KEYS, NO_MODEL
from .sources import iter_chunks

__all__ = ["WarehouseStore", "DECISION_SELECT", "STORED_VIEW"]

STORED_VIEW = "decisions_stored"

_EXTRA = ("time_unix_nano", "trace_id", "span_id", "span_name", "service_name", "event_row")
DECISION_SELECT = ", ".join([c.name for c in DECISION_COLUMNS] + list(_EXTRA) + ["attributes::VARCHAR"])
_SPAN_SELECT = ("trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano, end_time_unix_nano, "
                "attributes::VARCHAR, events::VARCHAR, resource::VARCHAR, scope, status_code, links::VARCHAR")
_FETCH = 2048


def _is_v7(decision_id: str) -> bool:
    return len(decision_id) == 36 and decision_id[14] == "7" and decision_id.count("-") == 4


def _record(row: Sequence[Any]) -> DecisionRecord:
    n = len(DECISION_COLUMNS)
    t_ns, trace_id, span_id, span_name, service, event_row = row[n:n + 6]
    attrs: dict[str, Any] = {}
    for c, v in zip(DECISION_COLUMNS, row[:n]):
        if v is not None and c.attribute is not None:
            attrs[c.attribute] = v
        elif c.name == KEYS and v:
            attrs.update((KEY_PREFIX + k, x) for k, x in v.items())
    if event_row is not None:
        attrs.pop(D.INPUT_HASH, None)  # of the packed event's rows together, not of this row
    rest = row[n + 6]
    if rest and rest != "{}":
        attrs.update(json.loads(rest))
    return DecisionRecord(decision_id=str(attrs.get(D.ID, "")), model_name=row[1], model_version=row[2],
                          trace_id=trace_id or "", span_id=span_id or "", time_unix_nano=int(t_ns or 0),
                          attributes=attrs, span_name=span_name or "", service_name=service)


def _day(t_ns: int, plus: int = 0) -> str:
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(t_ns / 1e9, tz=_dt.timezone.utc).date() + _dt.timedelta(days=plus)
    return d.isoformat()


def _clean(v: Any) -> Any:
    """OTLP JSON as DuckDB's to_json wrote it (absent fields as null) back to the OTLP form."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


class WarehouseStore:
    def __init__(self, paths: Sequence[str | Path], warehouse: Path, *, threads: int = 2) -> None:
        self.paths = [Path(p) for p in paths]
        self.warehouse = Path(warehouse)
        self.manifest: Manifest = load_manifest(self.warehouse) or Manifest()
        self.stats = ReadStats()
        self._tmp = Path(tempfile.mkdtemp(prefix="decisiontrail-tail-"))
        self.con = connect(temp_directory=self._tmp / "duckdb", threads=threads)
        self._tail_rows: tuple[int, int] | None = None
        self._lifecycle_ready = False

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __del__(self) -> None:  # pragma: no cover - best effort
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)

    # -- the tail: files (or parts of files) no commit holds yet --------------------------------

    def _tail(self) -> tuple[int, int]:
        """Load the tail once into tables tail_d / tail_s; returns their row counts."""
        if self._tail_rows is None:
            new_tables(self.con)
            chunks = self._tmp / "chunks"
            chunks.mkdir()
            read = False
            for chunk in iter_chunks(self.paths, self.manifest.sources, chunks, exclude=self.warehouse):
                if chunk.nbytes:
                    self.stats.bad_lines += ingest(self.con, chunk)
                    self.stats.messages += 1
                    read = True
            if read:  # nothing new since the last compaction: nothing to parse or deduplicate
                _, self.stats.duplicates, _ = settle(self.con, self.warehouse, self.manifest)
            self.con.execute("ALTER TABLE new_d DROP COLUMN ord; ALTER TABLE new_s DROP COLUMN ord")
            self.con.execute("ALTER TABLE new_d RENAME TO tail_d; ALTER TABLE new_s RENAME TO tail_s")
            counts = self.con.execute("SELECT (SELECT count(*) FROM tail_d), (SELECT count(*) FROM tail_s)").fetchone()
            self._tail_rows = (int(counts[0]), int(counts[1]))
        return self._tail_rows

    def _files(self, table: str, *, dates: set[str] | None = None, since: str | None = None,
               until: str | None = None, model: str | None = None) -> list[str]:
        """The parts of ``table`` that may hold rows of these dates and model."""
        files = []
        for p in self.manifest.parts(table):
            d = part_date(p.path)
            if dates is not None and d not in dates:
                continue
            if d is not None and ((since and d < since) or (until and d > until)):
                continue
            if model is not None and table == "decisions" and part_model(p.path) not in (model,):
                continue
            files.append(str(self.warehouse / p.path))
        return files

    @staticmethod
    def _scan(table: str, files: list[str]) -> str:
        scan = (f"read_parquet({sql_list(files)}, union_by_name = true, hive_partitioning = true, "
                f"hive_types_autocast = false, filename = true)")
        if table == "decisions":  # parts written before chainprev.py have no such column
            scan = f"(SELECT * FROM {scan} UNION ALL BY NAME SELECT NULL::BOOLEAN AS {DERIVED} WHERE false)"
        return scan

    def _relation(self, table: str, *, raw: bool = False, files: list[str] | None = None, **prune: Any) -> str:
        """SQL of the rows of ``table`` in the parts that may match (``files``, else those ``prune``
        allows: see :meth:`_files`), plus the tail. ``raw``: decisions as stored, with ``filename``
        and ``chain_prev_derived`` (for :func:`.chainprev.restore_matches_sql`), else as recorded."""
        files = self._files(table, **prune) if files is None else files
        tail = ("SELECT *, dt_id_date(decision_id, time_unix_nano) AS date, "
                f"coalesce(model_name, '{NO_MODEL}') AS model FROM tail_d") if table == "decisions" \
            else "SELECT * FROM tail_s"
        parts = []
        if files:
            scan = self._scan(table, files)
            if table != "decisions":
                parts.append(f"SELECT * EXCLUDE (filename) FROM {scan}")
            else:  # chain_prev put back where the part derived it (chainprev.py)
                parts.append(f"SELECT * FROM {scan}" if raw else restore_sql(scan))
        self._tail()
        parts.append(tail)
        return "(" + " UNION ALL BY NAME ".join(parts) + ")"

    # -- DecisionStore ----------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any]) -> Iterator[Sequence[Any]]:
        cur = self.con.cursor()
        cur.execute(sql, params)
        while True:
            batch = cur.fetchmany(_FETCH)
            if not batch:
                return
            yield from batch

    def _lifecycle(self) -> str:
        """Table ``lc``: the ``lifecycle`` view computed once for this store (the records are in ``spans``)."""
        if not self._lifecycle_ready:
            records = "(" + records_sql(self._relation("spans")) + ")"
            self.con.execute(f"CREATE OR REPLACE TABLE lc AS {lifecycle_sql(records)}")
            self._lifecycle_ready = True
        return "lc"

    def decisions(self, query: Query, *, dates: set[str] | None = None) -> Iterator[DecisionRecord]:
        """Decisions matching ``query``; ``dates`` limits the partitions read (when known)."""
        return self._decisions(query, dates, joined=False)

    def decisions_with_lifecycle(self, query: Query) -> Iterator[DecisionRecord]:
        """Decisions matching ``query``, lifecycle filters included, each with its ``lifecycle``:
        left-joined in DuckDB (what ``cli._store.decisions_with_lifecycle`` does in Python otherwise)."""
        return self._decisions(query, None, joined=True)

    def _decisions(self, query: Query, dates: set[str] | None, *, joined: bool) -> Iterator[DecisionRecord]:
        conds: list[str] = []
        more: list[Any] = []
        if joined:
            query, conds, more = lifecycle_where(query)
        where, params = where_sql(query)
        if conds:
            where, params = " AND ".join([where, *conds]), [*params, *more]
        since, until = date_bounds(query)
        if query.decision_id is not None and _is_v7(query.decision_id):
            dates = {self._date_of(query.decision_id)}
        files = self._files("decisions", dates=dates, since=since, until=until, model=query.model)
        # Filters run on the rows as stored and chain_prev is put back for the matches only, unless a
        # filter is on chain_prev itself.
        raw = bool(files) and "chain_prev" not in where
        rel = self._relation("decisions", raw=raw, files=files)
        limit = f" LIMIT {int(query.limit)}" if query.limit is not None else ""
        select = f"{DECISION_SELECT}, {LIFECYCLE_SELECT}" if joined else DECISION_SELECT
        join = f" LEFT JOIN {self._lifecycle()} AS lifecycle USING (decision_id)" if joined else ""
        sql = (f"SELECT {select}{f', filename, {DERIVED}' if raw else ''} FROM {rel}{join} WHERE {where} "
               f"ORDER BY decision_id{limit}")
        if raw:
            sql = restore_matches_sql(sql, self._scan("decisions", files), "decision_id")
        if not joined:
            for row in self._rows(sql, params):
                yield _record(row)
            return
        for row in self._rows(sql, params):
            d = _record(row)
            d.lifecycle = lifecycle_of(d.decision_id, row[-1])
            yield d

    @staticmethod
    def _date_of(decision_id: str) -> str:
        import datetime as _dt

        t = decision_id_time_ns(decision_id) / 1e9
        return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).date().isoformat()

    def decision(self, decision_id: str) -> DecisionRecord | None:
        return next(self.decisions(Query(decision_id=decision_id.strip(), limit=1)), None)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        trace_id = trace_id.strip().lower()
        rows = list(self._rows(f"SELECT {_SPAN_SELECT} FROM {self._relation('spans')} WHERE trace_id = ? "
                               f"ORDER BY start_time_unix_nano, span_id", [trace_id]))
        # A trace's decisions are in the partitions of its spans' days (or the next, past midnight).
        days = {_day(int(r[5] or 0), plus) for r in rows for plus in (0, 1)}
        decisions = list(self.decisions(Query(trace_id=trace_id), dates=days))
        by_span: dict[str, list[dict[str, Any]]] = {}
        for d in decisions:
            by_span.setdefault(d.span_id, []).append({
                "timeUnixNano": str(d.time_unix_nano), "name": DECISION_EVENT,
                "attributes": encode_attributes(d.attributes)})
        return [self._span(r, by_span.get(r[1], [])) for r in rows]

    @staticmethod
    def _span(row: Sequence[Any], decision_events: list[dict[str, Any]]) -> SpanRecord:
        tid, sid, parent, name, kind, start, end, attrs, events, resource, scope, status, links = row
        other = _clean(json.loads(events)) if events else []
        return SpanRecord(
            trace_id=tid, span_id=sid, parent_span_id=parent or "", name=name or "", kind=int(kind or 0),
            start_time_unix_nano=int(start or 0), end_time_unix_nano=int(end or 0),
            attributes=json.loads(attrs) if attrs else {}, events=decision_events + other,
            resource=json.loads(resource) if resource else {}, scope=scope or "", status_code=int(status or 0),
            links=[(str(t), str(sp)) for t, sp in json.loads(links)] if links else [])

    def records(self) -> Iterator[LifecycleRecord]:
        seen: set[str] = set()
        sql = (f"SELECT {_SPAN_SELECT} FROM {self._relation('spans')} WHERE audit_records > 0 "
               f"ORDER BY start_time_unix_nano, span_id")
        for row in self._rows(sql, []):
            for r in records_of(self._span(row, [])):
                if r.record_id in seen:
                    self.stats.duplicates += 1
                    continue
                seen.add(r.record_id)
                yield r

    def audit_spans(self) -> Iterator[SpanRecord]:
        # The chain covers the events exactly as recorded: read them from the audit files, which
        # compaction never changes (the warehouse keeps typed columns, not the original encoding).
        files = FileStore(self.paths)
        files.stats = self.stats
        return files.audit_spans()

    # -- SQL --------------------------------------------------------------------------------------

    def connection(self) -> Any:
        """The DuckDB connection with views ``decisions``, ``spans`` (parts + tail), ``records`` and
        ``lifecycle`` (outcomes and reviews, by decision id), and ``decisions_stored``
        (``decisions`` as stored: ``chain_prev`` NULL where ``chain_prev_derived``, cheaper to scan)."""
        self.con.execute(f"CREATE OR REPLACE VIEW decisions AS SELECT * FROM {self._relation('decisions')}")
        # The rows as stored (chain_prev NULL where chain_prev_derived): no join, for scans that do
        # not read chain_prev (the report's charts).
        stored = self._relation("decisions", raw=True)
        self.con.execute(f"CREATE OR REPLACE VIEW {STORED_VIEW} AS SELECT * "
                         f"{'EXCLUDE (filename) ' if self._files('decisions') else ''}FROM {stored}")
        self.con.execute(f"CREATE OR REPLACE VIEW spans AS SELECT * FROM {self._relation('spans')}")
        self.con.execute(f"CREATE OR REPLACE VIEW records AS {records_sql('spans')}")
        self.con.execute(f"CREATE OR REPLACE VIEW lifecycle AS {lifecycle_sql('records')}")
        self.con.execute(f"CREATE OR REPLACE VIEW other_links AS {other_links_sql('spans')}")
        return self.con

