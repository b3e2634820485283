"""Turning records into what the templates show: readable JSON, the waterfall, the paging links."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..conventions import DECISION_EVENT
from ..conventions import DecisionAttributes as D
from ..store.reader import SpanRecord

__all__ = ["pretty", "WaterfallRow", "waterfall", "decisions_on"]


def pretty(value: Any) -> str:
    """Readable JSON of a stored value (the template escapes it)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def decisions_on(span: SpanRecord) -> int:
    """Decisions on a span, packed batch rows counted one each."""
    n = 0
    for ev in span.events:
        if ev.get("name") != DECISION_EVENT:
            continue
        count = next((a.get("value", {}).get("intValue") for a in ev.get("attributes", [])
                      if a.get("key") == D.BATCH_COUNT), None)
        n += int(count) if count is not None else 1
    return n


@dataclass(frozen=True)
class WaterfallRow:
    span: SpanRecord
    depth: int
    left_pct: float
    width_pct: float
    duration_ms: float
    decisions: int
    highlighted: bool


def waterfall(spans: Sequence[SpanRecord], highlight_span: str = "") -> list[WaterfallRow]:
    """Spans in tree order with their offset and width as percentages of the trace's time span."""
    if not spans:
        return []
    start = min(s.start_time_unix_nano for s in spans)
    end = max(s.end_time_unix_nano for s in spans)
    total = max(end - start, 1)
    ids = {s.span_id for s in spans}
    children: dict[str, list[SpanRecord]] = {}
    for s in sorted(spans, key=lambda s: s.start_time_unix_nano):
        children.setdefault(s.parent_span_id if s.parent_span_id in ids else "", []).append(s)
    rows: list[WaterfallRow] = []

    def walk(parent: str, depth: int) -> None:
        for s in children.get(parent, []):
            dur = s.end_time_unix_nano - s.start_time_unix_nano
            rows.append(WaterfallRow(
                span=s, depth=depth, left_pct=100 * (s.start_time_unix_nano - start) / total,
                width_pct=max(0.4, 100 * dur / total), duration_ms=dur / 1e6,
                decisions=decisions_on(s), highlighted=s.span_id == highlight_span))
            walk(s.span_id, depth + 1)

    walk("", 0)
    return rows
