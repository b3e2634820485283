"""What the pages read: decisions by filter (paged), one decision, a trace's spans.

One small adapter over the read side (``decisiontrail.store``), so the views never know whether the
records come from the raw audit files, the warehouse or Jaeger.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..store.lifecycle import Lifecycle, LifecycleIndex
from ..store.query import Query, parse_time
from ..store.reader import DecisionRecord, SpanRecord, iter_decisions, iter_spans

__all__ = ["Filters", "Page", "DecisionSource"]


@dataclass(frozen=True)
class Filters:
    """The search form's fields; empty strings mean "any"."""

    model: str = ""
    version: str = ""
    label: str = ""
    since: str = ""
    until: str = ""
    trace_id: str = ""
    decision_id: str = ""
    effective_label: str = ""
    where: tuple[tuple[str, str], ...] = ()

    def query(self, limit: int | None = None) -> Query:
        return Query(model=self.model or None, version=self.version or None, label=self.label or None,
                     since_ns=parse_time(self.since) if self.since else None,
                     until_ns=parse_time(self.until) if self.until else None,
                     trace_id=self.trace_id or None, decision_id=self.decision_id or None,
                     effective_label=self.effective_label or None, where=list(self.where), limit=limit)


@dataclass
class Page:
    rows: list[DecisionRecord]
    offset: int
    has_more: bool
    unread: list[str] = field(default_factory=list)


class DecisionSource:
    """``data``: the audit directories, read as one store; ``jaeger``: a Jaeger query URL whose
    trace, when it has one, replaces the stored spans of a decision's request."""

    def __init__(self, data: Sequence[str | Path], jaeger: str | None = None) -> None:
        self.data = list(data)
        self.jaeger = jaeger
        self.warnings: list[str] = []

    def search(self, filters: Filters, offset: int, limit: int) -> Page:
        """One page of matches, each decision with its ``lifecycle`` (effective label, reviews)."""
        decisions = LifecycleIndex.read(self.data).attach(iter_decisions(self.data))
        matches = filters.query().run(decisions)
        rows = list(itertools.islice(matches, offset, offset + limit + 1))
        return Page(rows=rows[:limit], offset=offset, has_more=len(rows) > limit)

    def decision(self, decision_id: str) -> tuple[DecisionRecord, Lifecycle] | None:
        """The decision and what was recorded about it later (reviews, outcomes)."""
        d = next(Query(decision_id=decision_id).run(iter_decisions(self.data)), None)
        if d is None:
            return None
        return d, LifecycleIndex.read(self.data).of(decision_id)

    def spans(self, trace_id: str) -> tuple[list[SpanRecord], str]:
        """The trace's spans and where they came from (``"jaeger"`` or ``"store"``)."""
        if self.jaeger:
            from ..store import jaeger

            try:
                spans, _ = jaeger.to_records(jaeger.fetch_trace(self.jaeger, trace_id))
                if spans:
                    return spans, "jaeger"
            except Exception:  # Jaeger down or without the trace: the stored spans still tell
                pass
        return [s for s in iter_spans(self.data) if s.trace_id == trace_id], "store"
