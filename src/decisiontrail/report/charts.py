"""The report's charts, drawn by matplotlib (Agg, no display) and returned as inline SVG text: no
network, no JavaScript, fonts as paths, so the page renders the same anywhere."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

__all__ = ["per_hour", "label_mix", "score_distribution", "latency", "reason_codes"]

_W, _H = 8.0, 3.4


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("decisiontrail report needs matplotlib: pip install 'decisiontrail[report]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.hashsalt": "decisiontrail"})
    return plt


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _empty(title: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_W, 1.2))
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{title}: no data", ha="center", va="center", transform=ax.transAxes)
    return _svg(fig)


def per_hour(rows: Sequence[tuple[Any, str, int]]) -> str:
    """Decisions per hour, stacked bars by model version."""
    if not rows:
        return _empty("decisions per hour")
    import datetime as _dt

    import matplotlib.dates as mdates

    plt = _plt()
    fig, ax = plt.subplots(figsize=(_W, _H))
    hours = sorted({r[0] for r in rows})
    keys = list(dict.fromkeys(r[1] for r in rows))
    counts = {(h, k): n for h, k, n in rows}
    bottom = [0] * len(hours)
    for key in keys:
        ys = [counts.get((h, key), 0) for h in hours]
        ax.bar(hours, ys, bottom=bottom, width=1 / 24 * 0.9, align="edge", label=key)
        bottom = [a + b for a, b in zip(bottom, ys)]
    hour = _dt.timedelta(hours=1)
    ax.set_xlim(hours[0] - hour, hours[-1] + 2 * hour)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:00"))  # type: ignore[no-untyped-call]
    ax.set_ylabel("decisions per hour")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return _svg(fig)


def label_mix(rows: Sequence[tuple[str, str, int]]) -> str:
    """Share of each label per model version (stacked bars)."""
    if not rows:
        return _empty("label mix")
    plt = _plt()
    versions = list(dict.fromkeys(r[0] for r in rows))
    labels = list(dict.fromkeys(r[1] for r in rows))
    counts = {(v, lbl): n for v, lbl, n in rows}
    totals = {v: sum(counts.get((v, lbl), 0) for lbl in labels) or 1 for v in versions}
    fig, ax = plt.subplots(figsize=(_W, max(1.6, 0.5 * len(versions) + 1)))
    left = [0.0] * len(versions)
    for lbl in labels:
        share = [counts.get((v, lbl), 0) / totals[v] for v in versions]
        ax.barh(versions, share, left=left, label=lbl)
        left = [a + b for a, b in zip(left, share)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of decisions")
    ax.legend(loc="lower right", fontsize=8, ncol=min(len(labels), 6), frameon=False, bbox_to_anchor=(1, 1))
    return _svg(fig)


def score_distribution(scores: dict[str, list[float]]) -> str:
    """Histogram of scores per model version."""
    if not scores:
        return _empty("score distribution")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_W, _H))
    for key, values in scores.items():
        ax.hist(values, bins=40, histtype="step", linewidth=1.5, density=True, label=key)
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(loc="upper center", fontsize=8, frameon=False)
    return _svg(fig)


def latency(rows: Sequence[tuple[str, int, float, float, float]]) -> str:
    """p50 / p95 / p99 of the predict spans, per model version (grouped bars)."""
    if not rows:
        return _empty("predict latency")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_W, max(1.8, 0.6 * len(rows) + 1)))
    height = 0.25
    for i, (name, offset) in enumerate((("p50", -height), ("p95", 0.0), ("p99", height))):
        ax.barh([k + offset for k in range(len(rows))], [r[2 + i] for r in rows], height=height, label=name)
    ax.set_yticks(range(len(rows)), [f"{r[0]} ({r[1]} spans)" for r in rows])
    ax.set_xlabel("ms")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _svg(fig)


def reason_codes(rows: Sequence[tuple[str, int]]) -> str:
    """The most frequent reason codes."""
    if not rows:
        return _empty("reason codes")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(_W, max(1.6, 0.3 * len(rows) + 0.8)))
    ax.barh([r[0] for r in reversed(rows)], [r[1] for r in reversed(rows)], color="#c0504d")
    ax.set_xlabel("decisions")
    return _svg(fig)
