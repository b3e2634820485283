"""What the report shows, computed in DuckDB over the views ``decisions`` and ``spans``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReportData", "collect"]

_CHAIN_SQL = """
WITH links AS (
    SELECT chain_id, chain_seq, chain_prev, chain_hash,
           lag(chain_seq) OVER w AS prev_seq, lag(chain_hash) OVER w AS prev_hash
    FROM (SELECT DISTINCT ON (chain_id, chain_seq) chain_id, chain_seq, chain_prev, chain_hash
          FROM (SELECT chain_id, chain_seq, chain_prev, chain_hash FROM {source}
                WHERE chain_id IS NOT NULL AND (event_row IS NULL OR event_row = 0)
                UNION ALL  -- outcomes, reviews and checkpoints are links of the same chains
                SELECT chain_id, chain_seq, chain_prev, chain_hash FROM other_links))
    WINDOW w AS (PARTITION BY chain_id ORDER BY chain_seq))
SELECT count(DISTINCT chain_id), count(*),
       count(*) FILTER (WHERE (prev_seq IS NULL AND chain_seq <> 1) OR (prev_seq IS NOT NULL AND chain_seq <> prev_seq + 1)),
       count(*) FILTER (WHERE prev_seq IS NOT NULL AND chain_seq = prev_seq + 1 AND chain_prev <> prev_hash)
FROM links"""


_BASE_COLUMNS = ("decision_id, time, model_name, model_version, label, score, trace_id, span_id, reason_codes, "
                 "redacted, truncated, collector_redacted, error")


@dataclass
class ReportData:
    total: int = 0
    first: str | None = None
    last: str | None = None
    per_hour: list[tuple[Any, str, int]] = field(default_factory=list)
    """(hour, "model version", decisions)."""
    labels: list[tuple[str, str, int]] = field(default_factory=list)
    """("model version", label, decisions)."""
    scores: dict[str, list[float]] = field(default_factory=dict)
    """"model version" -> scores (a sample of at most 20,000 per version)."""
    latency: list[tuple[str, int, float, float, float]] = field(default_factory=list)
    """("model version", spans, p50 ms, p95 ms, p99 ms) of the spans holding decisions."""
    reasons: list[tuple[str, int]] = field(default_factory=list)
    markers: dict[str, int] = field(default_factory=dict)
    """Records with fields redacted, truncated, with a recording error, masked by the collector."""
    chain: dict[str, int] = field(default_factory=dict)
    reviews: list[tuple[str, int, int, int, int, int, int]] = field(default_factory=list)
    """("model version", decisions, reviewed, overridden, with a scalar outcome, model right, right
    after review) per version: override rate and accuracy (the latest outcome against the label)."""
    confusion: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)
    """"model version" -> (model's label, latest outcome, decisions), where outcomes exist."""


def _version(model: str, version: str | None) -> str:
    return f"{model} {version}" if version else model


def collect(con: Any, where: str = "true", params: list[Any] | None = None) -> ReportData:
    """Aggregate the decisions matching ``where`` (SQL over ``decisions``) and their spans."""
    params = params or []
    # As stored when the warehouse offers it (no chain_prev join): a derived chain_prev (NULL) is by
    # construction the hash of the link before it, so it counts as no broken link.
    stored = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'decisions_stored'").fetchone()[0]
    source = "decisions_stored" if stored and "chain_prev" not in where else "decisions"
    # A table, not a view: DuckDB takes no prepared parameters in a view's definition (the filter's
    # values arrive as parameters), and every chart below reads the filtered set again.
    # Only the columns the charts read: the inputs, outputs and explanations are most of the bytes.
    con.execute(f"CREATE OR REPLACE TEMP TABLE base AS SELECT {_BASE_COLUMNS} FROM {source} WHERE {where}", params)
    r = ReportData()
    total, first, last = con.execute(
        "SELECT count(*), strftime(min(time), '%Y-%m-%d %H:%M UTC'), strftime(max(time), '%Y-%m-%d %H:%M UTC') "
        "FROM base").fetchone()
    r.total, r.first, r.last = int(total), first, last
    mv = "coalesce(model_name, '?') AS m, model_version AS v"
    r.per_hour = [(h, _version(m, v), int(n)) for h, m, v, n in con.execute(
        f"SELECT date_trunc('hour', time) AS h, {mv}, count(*) FROM base GROUP BY ALL ORDER BY h, m, v").fetchall()]
    r.labels = [(_version(m, v), str(lbl), int(n)) for m, v, lbl, n in con.execute(
        f"SELECT {mv}, coalesce(label, '(none)'), count(*) FROM base GROUP BY ALL ORDER BY m, v, 4 DESC").fetchall()]
    for m, v, scores in con.execute(
            f"SELECT {mv}, list(score) FROM (SELECT *, row_number() OVER (PARTITION BY model_name, model_version "
            f"ORDER BY decision_id) AS k FROM base WHERE score IS NOT NULL) WHERE k <= 20000 GROUP BY ALL ORDER BY m, v"
    ).fetchall():
        r.scores[_version(m, v)] = [float(s) for s in scores]
    r.latency = [(_version(m, v), int(n), float(p50), float(p95), float(p99)) for m, v, n, p50, p95, p99 in con.execute(
        f"""SELECT m, v, count(*), quantile_cont(ms, 0.5), quantile_cont(ms, 0.95), quantile_cont(ms, 0.99)
        FROM (SELECT DISTINCT s.trace_id, s.span_id, {mv.replace('model_', 'b.model_')},
                     (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6 AS ms
              FROM spans s JOIN (SELECT DISTINCT trace_id, span_id, model_name, model_version FROM base) b
              ON s.trace_id = b.trace_id AND s.span_id = b.span_id)
        GROUP BY ALL ORDER BY m, v""").fetchall()]
    r.reasons = [(str(c), int(n)) for c, n in con.execute(
        "SELECT code, count(*) FROM (SELECT unnest(reason_codes) AS code FROM base) "
        "GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 15").fetchall()]
    red, trunc, err, coll = con.execute(
        "SELECT count(*) FILTER (WHERE len(redacted) > 0), count(*) FILTER (WHERE len(truncated) > 0), "
        "count(*) FILTER (WHERE error IS NOT NULL), count(*) FILTER (WHERE len(collector_redacted) > 0) "
        "FROM base").fetchone()
    r.markers = {"redacted or hashed fields": int(red), "truncated to the size cap": int(trunc),
                 "recording errors": int(err), "masked by the collector": int(coll)}
    _collect_lifecycle(con, r)
    chains, links, gaps, broken = con.execute(_CHAIN_SQL.format(source=source)).fetchone()
    r.chain = {"chains": int(chains), "links": int(links), "gaps": int(gaps), "broken links": int(broken)}
    return r


def _collect_lifecycle(con: Any, r: ReportData) -> None:
    """Override rate per version and, where outcomes exist, accuracy and a confusion table: the
    decisions of ``base`` left-joined with the ``lifecycle`` view (store.warehouse.lifecycle)."""
    mv = "coalesce(model_name, '?') AS m, model_version AS v"
    r.reviews = [(_version(m, v), int(n), int(rev), int(over), int(out), int(right), int(after))
                 for m, v, n, rev, over, out, right, after in con.execute(
        f"""SELECT {mv}, count(*), count(*) FILTER (WHERE l.reviews > 0), count(*) FILTER (WHERE l.overridden),
               count(*) FILTER (WHERE l.outcome_text IS NOT NULL),
               count(*) FILTER (WHERE l.outcome_text = b.label),
               count(*) FILTER (WHERE l.outcome_text = coalesce(l.override_label, b.label))
        FROM base b LEFT JOIN lifecycle l USING (decision_id) GROUP BY ALL ORDER BY m, v""").fetchall()]
    for m, v, label, outcome, n in con.execute(
            f"""SELECT {mv}, coalesce(b.label, '(none)'), l.outcome_text, count(*)
            FROM base b JOIN lifecycle l USING (decision_id) WHERE l.outcome_text IS NOT NULL
            GROUP BY ALL ORDER BY m, v, 3, 4""").fetchall():
        r.confusion.setdefault(_version(m, v), []).append((str(label), str(outcome), int(n)))
