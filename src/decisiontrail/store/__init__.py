"""The read side: audit files (embedded store or the Collector's) and the Jaeger query API."""

from __future__ import annotations

from .query import Query, parse_time
from .reader import DecisionRecord, ReadStats, SpanRecord, iter_decisions, iter_spans

__all__ = ["DecisionRecord", "SpanRecord", "ReadStats", "Query", "iter_decisions", "iter_spans", "parse_time"]
