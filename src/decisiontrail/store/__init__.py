"""The read side: one store protocol (:mod:`.protocol`) over the audit files (:mod:`.files`, parsed by
:mod:`.reader`), the compacted warehouse (:mod:`.warehouse`) and the Jaeger query API (:mod:`.jaeger`)."""

from __future__ import annotations

from .protocol import DecisionStore, open_store
from .query import Query, parse_time
from .reader import DecisionRecord, ReadStats, SpanRecord, iter_decisions, iter_spans

__all__ = ["DecisionRecord", "SpanRecord", "ReadStats", "Query", "iter_decisions", "iter_spans", "parse_time",
           "DecisionStore", "open_store"]
