"""The report as one self-contained HTML page: inline SVG charts, inline CSS, nothing fetched."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

from . import charts
from .data import ReportData

__all__ = ["render", "SECTIONS"]

SECTIONS = ("decisions per hour", "label mix per version", "score distribution per version",
            "predict latency", "top reason codes")
"""Titles of the chart sections, in page order (each an ``<svg>`` in a ``<section class="chart">``)."""

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
.meta { color: #666; } table { border-collapse: collapse; } td, th { padding: .2rem .8rem; text-align: left; }
th { border-bottom: 1px solid #ccc; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
section.chart svg { max-width: 100%; height: auto; }
.ok { color: #2a7d2a; } .bad { color: #b22; font-weight: 600; }
"""


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td class='n'>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _charts(data: ReportData) -> Iterator[tuple[str, Callable[[], str]]]:
    yield SECTIONS[0], lambda: charts.per_hour(data.per_hour)
    yield SECTIONS[1], lambda: charts.label_mix(data.labels)
    yield SECTIONS[2], lambda: charts.score_distribution(data.scores)
    yield SECTIONS[3], lambda: charts.latency(data.latency)
    yield SECTIONS[4], lambda: charts.reason_codes(data.reasons)


def render(data: ReportData, *, title: str, scope: str, verify: tuple[int, int, list[str]] | None = None,
           advance: Callable[[int], None] | None = None) -> str:
    """The page. ``verify``: (decisions, chains, problems) of a full verification of the audit files
    (``verification.verify_records``), when one was run."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='meta'>{html.escape(scope)} · {data.total} decisions"
             + (f" from {html.escape(data.first or '')} to {html.escape(data.last or '')}" if data.total else "")
             + "</p>"]
    for name, draw in _charts(data):
        parts.append(f"<section class='chart'><h2>{html.escape(name[0].upper() + name[1:])}</h2>{draw()}</section>")
        if advance is not None:
            advance(1)
    if data.latency:
        parts.append("<section><h2>Predict latency, ms</h2>" + _table(
            [(f"{v}: p50 / p95 / p99", f"{p50:.2f} / {p95:.2f} / {p99:.2f}") for v, _, p50, p95, p99 in data.latency])
            + "</section>")
    parts.extend(_lifecycle(data))
    parts.append("<section><h2>Redacted, truncated and failed records</h2>"
                 + _table(list(data.markers.items())) + "</section>")
    c = data.chain
    state = "ok" if not (c.get("gaps") or c.get("broken links")) else "bad"
    parts.append("<section><h2>Verification</h2>"
                 f"<p class='{state}'>Chain continuity: {c.get('chains', 0)} chains, {c.get('links', 0)} links, "
                 f"{c.get('gaps', 0)} gaps, {c.get('broken links', 0)} broken links "
                 "(from the stored chain fields, every decision in the store).</p>")
    if verify is not None:
        rows, chains, problems = verify
        cls = "ok" if not problems else "bad"
        parts.append(f"<p class='{cls}'>Hash chains re-verified over the audit files: {rows} decisions in "
                     f"{chains} chain(s), {len(problems)} problems.</p>")
        if problems:
            parts.append("<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems[:50]) + "</ul>")
    else:
        parts.append("<p class='meta'>Full hash re-verification: <code>decisiontrail verify</code>, or "
                     "<code>decisiontrail report --verify</code>.</p>")
    parts.append("</section></body></html>\n")
    return "".join(parts)


def _rate(n: int, of: int) -> str:
    return f"{100 * n / of:.1f} %" if of else "–"


def _lifecycle(data: ReportData) -> Iterator[str]:
    """Human review and outcomes: override rate per version; accuracy and a confusion table where
    outcomes were recorded (the latest outcome of each decision against the model's label)."""
    if not any(reviewed or outcomes for _, _, reviewed, _, outcomes, _, _ in data.reviews):
        yield ("<section><h2>Human review and outcomes</h2><p class='meta'>No reviews or outcomes recorded "
               "(<code>record_review</code>, <code>record_outcome</code>).</p></section>")
        return
    head = ("<tr><th>version</th><th>decisions</th><th>reviewed</th><th>overridden</th><th>override rate</th>"
            "<th>with outcome</th><th>accuracy</th><th>after review</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(v)}</td><td class='n'>{n}</td><td class='n'>{rev}</td><td class='n'>{over}</td>"
        f"<td class='n'>{_rate(over, n)}</td><td class='n'>{out}</td><td class='n'>{_rate(right, out)}</td>"
        f"<td class='n'>{_rate(after, out)}</td></tr>"
        for v, n, rev, over, out, right, after in data.reviews)
    yield (f"<section><h2>Human review and outcomes</h2><table class='lifecycle'>{head}{rows}</table>"
           "<p class='meta'>Override rate: decisions with an override, of all decisions. Accuracy: the model's "
           "label equals the latest outcome, of the decisions with an outcome (after review: the effective "
           "label, the latest override's).</p>")
    for version, cells in data.confusion.items():
        labels = sorted({c[0] for c in cells})
        outcomes = sorted({c[1] for c in cells})
        counts = {(lbl, out): n for lbl, out, n in cells}
        table = ("<tr><th>label \\ outcome</th>" + "".join(f"<th>{html.escape(o)}</th>" for o in outcomes) + "</tr>"
                 + "".join(f"<tr><th>{html.escape(lbl)}</th>"
                           + "".join(f"<td class='n'>{counts.get((lbl, o), 0)}</td>" for o in outcomes) + "</tr>"
                           for lbl in labels))
        yield f"<h3>Confusion table: {html.escape(version)}</h3><table class='confusion'>{table}</table>"
    yield "</section>"
