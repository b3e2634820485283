"""``decisiontrail report``: one self-contained HTML page about the decisions in a store.

Charts (matplotlib, inline SVG): decisions per hour by model and version, the label mix and the
score distribution per version, predict latency p50/p95/p99 from the spans, the top reason codes;
tables of redacted/truncated/failed records and the verification summary. The numbers come from
DuckDB over the warehouse views (:mod:`.data`), so a report on millions of decisions is a few
aggregate queries. Needs the ``report`` extra.
"""

from __future__ import annotations

from .data import ReportData, collect
from .page import SECTIONS, render

__all__ = ["ReportData", "collect", "render", "SECTIONS"]
