"""The read side's one interface: every command reads decisions through a :class:`DecisionStore`.

Like Jaeger's storage reader (``tracestore.Reader``), it is small: decisions by filter, one decision,
a trace's spans, the outcome and review records, and the spans as recorded (verify's source).
Implementations:

- :class:`~decisiontrail.store.files.FileStore`: a linear scan of the OTLP-JSON audit files (the
  embedded store or the collector's, plain, rotated, zstd), what every reader did before the
  warehouse; used when no warehouse has been compacted;
- :class:`~decisiontrail.store.warehouse.WarehouseStore`: the compacted Parquet warehouse in DuckDB,
  plus the not-yet-compacted tail of the same files, so a decision is visible as soon as it is in a
  file;
- Jaeger's query API (:mod:`.jaeger`) answers ``show --jaeger`` (a trace, a decision by id); it has
  the protocol's shape for those two calls but is not wrapped in it yet.

:func:`open_store` picks the files or the warehouse for ``--data`` directories. Storage specifics
(file layouts, SQL) stay inside each backend's module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from .lifecycle import LifecycleIndex, LifecycleRecord
from .query import Query
from .reader import DecisionRecord, ReadStats, SpanRecord

__all__ = ["DecisionStore", "open_store", "paths_of", "decisions_with_lifecycle"]


@runtime_checkable
class DecisionStore(Protocol):
    """What every command needs from where decisions are kept."""

    stats: ReadStats

    def decisions(self, query: Query) -> Iterator[DecisionRecord]:
        """Decisions matching ``query`` (each decision id once), oldest first."""
        ...

    def decision(self, decision_id: str) -> DecisionRecord | None:
        """One decision by id, or None."""
        ...

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The stored spans of one trace (32 hex digits), by start time; decision events included."""
        ...

    def records(self) -> Iterator[LifecycleRecord]:
        """Every outcome and review record (each record id once), in store order."""
        ...

    def audit_spans(self) -> Iterator[SpanRecord]:
        """The stored spans with their events exactly as recorded, in store order, replays included:
        verify's source (``verification.audit_events`` picks the audit events from them)."""
        ...


def paths_of(data: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]


def open_store(data: str | Path | Sequence[str | Path], warehouse: str | Path | None = None,
               *, use_warehouse: bool | None = None) -> DecisionStore:
    """The store for ``--data``: the warehouse (``warehouse``, default ``<first DIR>/warehouse``)
    with the files' tail if one has been compacted, else the files themselves.

    ``use_warehouse=True`` reads through DuckDB even without a compacted warehouse (every file is
    then "tail"); ``False`` forces the linear file reader."""
    from .files import FileStore

    paths = paths_of(data)
    if use_warehouse is False:
        return FileStore(paths)
    from .warehouse.layout import load_manifest
    from .warehouse.compact import default_warehouse

    wh = Path(warehouse) if warehouse is not None else default_warehouse(paths)
    has_manifest = wh.is_dir() and load_manifest(wh) is not None
    if not has_manifest and not use_warehouse:
        return FileStore(paths)
    from .warehouse.store import WarehouseStore

    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"no audit data at {p}")
    return WarehouseStore(paths, wh)


_LIFECYCLE_FIELDS = frozenset({"effective_label", "outcome", "reviews"})


def decisions_with_lifecycle(store: DecisionStore, query: Query) -> Iterator[DecisionRecord]:
    """The decisions ``query`` selects, each with its outcomes and reviews joined (``lifecycle``). The
    store runs the decision filters; the lifecycle filters (``--where outcome=...`` included) and then
    the limit apply after the join."""
    joined = getattr(store, "decisions_with_lifecycle", None)
    if joined is not None:  # the warehouse joins and filters in SQL
        return joined(query)  # type: ignore[no-any-return]
    index = LifecycleIndex(store.records())
    later = [(k, v) for k, v in query.where if k.partition(".")[0] in _LIFECYCLE_FIELDS]
    if not query.needs_lifecycle and not later:
        return index.attach(store.decisions(query))
    inner = replace(query, effective_label=None, reviewed=None, has_outcome=None, limit=None,
                    where=[w for w in query.where if w not in later])
    return query.run(index.attach(store.decisions(inner)))
