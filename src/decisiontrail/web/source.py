"""What the pages read: decisions by filter (paged), one decision, a trace's spans.

One small adapter over the read side's store protocol (``decisiontrail.store.protocol``): the
warehouse with the files' tail when one was compacted, else the files, and Jaeger for traces. A
store is opened per request: DuckDB connections are not shared between the server's threads.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..cli.pseudonym import key_filter, subject_filter
from ..store.lifecycle import Lifecycle, LifecycleIndex
from ..store.protocol import DecisionStore, decisions_with_lifecycle, open_store
from ..store.query import Query, parse_time
from ..store.reader import DecisionRecord, SpanRecord

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
    subject: str = ""
    """A subject id in clear, as ``query --subject``: looked up in the subject column."""
    key: str = ""
    """``NAME=VALUE`` of a business key, as ``query --key``: looked up in the ``keys`` column."""
    where: tuple[tuple[str, str], ...] = ()

    def query(self, limit: int | None = None) -> Query:
        """The store query; a malformed ``key`` raises ``UsageError``."""
        where = list(self.where)
        if self.subject:
            where.append(subject_filter(self.subject))
        if self.key:
            where.append(key_filter(self.key))
        return Query(model=self.model or None, version=self.version or None, label=self.label or None,
                     since_ns=parse_time(self.since) if self.since else None,
                     until_ns=parse_time(self.until) if self.until else None,
                     trace_id=self.trace_id or None, decision_id=self.decision_id or None,
                     effective_label=self.effective_label or None, where=where, limit=limit)


@dataclass
class Page:
    rows: list[DecisionRecord]
    offset: int
    has_more: bool
    unread: list[str] = field(default_factory=list)


class DecisionSource:
    """``data``: the audit directories, read as one store; ``jaeger``: a Jaeger query URL whose
    trace, when it has one, replaces the stored spans of a decision's request."""

    def __init__(self, data: Sequence[str | Path], jaeger: str | None = None,
                 warehouse: str | Path | None = None) -> None:
        self.data = list(data)
        self.jaeger = jaeger
        self.warehouse = warehouse

    def open(self) -> DecisionStore:
        """A store for this thread (the server's requests: see ``store``)."""
        return open_store(self.data, self.warehouse)

    def store(self) -> DecisionStore:
        """The current request's store, opened once per request: opening one reads the files' tail
        into DuckDB, which a page must not pay for each of its lookups."""
        from flask import g, has_app_context

        if not has_app_context():
            return self.open()
        if "dt_store" not in g:
            g.dt_store = self.open()
        store: DecisionStore = g.dt_store
        return store

    def search(self, filters: Filters, offset: int, limit: int) -> Page:
        """One page of matches, each decision with its ``lifecycle`` (effective label, reviews)."""
        matches = decisions_with_lifecycle(self.store(), filters.query(limit=offset + limit + 1))
        rows = list(itertools.islice(matches, offset, offset + limit + 1))
        return Page(rows=rows[:limit], offset=offset, has_more=len(rows) > limit)

    def decision(self, decision_id: str) -> tuple[DecisionRecord, Lifecycle] | None:
        """The decision and what was recorded about it later (reviews, outcomes)."""
        store = self.store()
        d = store.decision(decision_id)
        if d is None:
            return None
        return d, LifecycleIndex(r for r in store.records() if r.decision_id == decision_id).of(decision_id)

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
        return self.store().trace(trace_id), "store"
