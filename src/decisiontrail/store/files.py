"""The audit files themselves as a :class:`~decisiontrail.store.protocol.DecisionStore`: a linear
scan in Python (:mod:`.reader`), no index. Right for small stores and the moments before a first
``compact``; the warehouse answers the same calls from Parquet."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from .lifecycle import LifecycleRecord, iter_records
from .query import Query
from .reader import DecisionRecord, ReadStats, SpanRecord, iter_decisions, iter_spans

__all__ = ["FileStore"]


class FileStore:
    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.stats = ReadStats()

    def decisions(self, query: Query) -> Iterator[DecisionRecord]:
        return query.run(iter_decisions(self.paths, self.stats))

    def decision(self, decision_id: str) -> DecisionRecord | None:
        return next(self.decisions(Query(decision_id=decision_id.strip(), limit=1)), None)

    def trace(self, trace_id: str) -> list[SpanRecord]:
        trace_id = trace_id.strip().lower()
        spans = [s for s in iter_spans(self.paths, self.stats) if s.trace_id == trace_id]
        unique = {(s.span_id): s for s in spans}  # a replayed span once
        return sorted(unique.values(), key=lambda s: (s.start_time_unix_nano, s.span_id))

    def records(self) -> Iterator[LifecycleRecord]:
        return iter_records(self.paths, self.stats)

    def audit_spans(self) -> Iterator[SpanRecord]:
        return iter_spans(self.paths, self.stats)
