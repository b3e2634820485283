"""Outcomes and reviews in the warehouse: the views ``records`` and ``lifecycle``, joined to
``decisions`` by decision id.

Compaction keeps every audit-record span (``decision.audit.records`` > 0) in ``spans``, with its
non-decision events in the ``events`` column; these views read the records from there (parts and
tail alike), so no extra table or schema change is needed:

- ``records``: one row per outcome or review, each ``decision.record.id`` once: ``kind``
  (``outcome`` / ``review``), ``record_id``, ``decision_id``, ``time_unix_nano``, ``time``,
  ``action``, ``review_label``, ``outcome`` (JSON), ``outcome_text`` (a JSON string's text or a
  number's, what accuracy compares with the label), the chain fields, ``trace_id``, ``span_id``,
  ``service_name`` and ``attributes`` (every event attribute, JSON);
- ``lifecycle``: one row per decision id with records: ``reviews``, ``outcomes`` (counts),
  ``overridden``, ``override_label`` (of the latest override that gives one), ``outcome`` /
  ``outcome_text`` (of the latest outcome) and ``records`` (JSON list, oldest first).

The effective label is ``coalesce(override_label, label)``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ...conventions import AUDIT_EVENTS, DECISION_EVENT, OUTCOME_EVENT, REVIEW_EVENT
from ...conventions import DecisionAttributes as D
from ...conventions import LifecycleAttributes as L
from ..lifecycle import Lifecycle, LifecycleRecord
from ..query import Query
from .schema import OTLP_LINE_TYPE

__all__ = ["records_sql", "lifecycle_sql", "other_links_sql", "lifecycle_where", "lifecycle_of", "LIFECYCLE_SELECT"]

_EVENTS_TYPE = json.dumps(json.loads(OTLP_LINE_TYPE)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["events"])
_ORDER = "(time_unix_nano, record_id)"

LIFECYCLE_SELECT = "lifecycle.records::VARCHAR"
"""Column to add to a decisions query left-joined with ``lifecycle`` (:func:`lifecycle_of` reads it)."""


def records_sql(spans: str) -> str:
    """One row per lifecycle record of the spans in relation ``spans`` (the warehouse's span rows)."""
    return f"""
SELECT * FROM (
  SELECT CASE WHEN e.name = '{OUTCOME_EVENT}' THEN 'outcome' ELSE 'review' END AS kind,
         m['{L.RECORD_ID}'].stringValue AS record_id, m['{D.ID}'].stringValue AS decision_id,
         TRY_CAST(e.timeUnixNano AS BIGINT) AS time_unix_nano,
         make_timestamp(TRY_CAST(e.timeUnixNano AS BIGINT) // 1000)::TIMESTAMPTZ AS time,
         m['{L.REVIEW_ACTION}'].stringValue AS action, m['{L.REVIEW_LABEL}'].stringValue AS review_label,
         TRY_CAST(m['{L.OUTCOME_VALUE}'].stringValue AS JSON) AS outcome,
         CASE WHEN json_type(TRY_CAST(m['{L.OUTCOME_VALUE}'].stringValue AS JSON)) = 'VARCHAR'
                   THEN TRY_CAST(m['{L.OUTCOME_VALUE}'].stringValue AS JSON) ->> '$'
              WHEN json_type(TRY_CAST(m['{L.OUTCOME_VALUE}'].stringValue AS JSON)) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN')
                   THEN m['{L.OUTCOME_VALUE}'].stringValue END AS outcome_text,
         m['{D.CHAIN_ID}'].stringValue AS chain_id, dt_int(m['{D.CHAIN_SEQ}']) AS chain_seq,
         m['{D.CHAIN_PREV}'].stringValue AS chain_prev, m['{D.CHAIN_HASH}'].stringValue AS chain_hash,
         trace_id, span_id, service_name, date,
         dt_rest(e.attributes, [])::JSON AS attributes
  FROM (SELECT trace_id, span_id, service_name, date, unnest(from_json(events, '{_EVENTS_TYPE}')) AS e
        FROM {spans} WHERE audit_records > 0 AND events IS NOT NULL),
       LATERAL (SELECT map_from_entries(e.attributes) AS m)
  WHERE e.name IN ('{OUTCOME_EVENT}', '{REVIEW_EVENT}'))
QUALIFY row_number() OVER (PARTITION BY record_id ORDER BY time_unix_nano) = 1"""


def other_links_sql(spans: str) -> str:
    """The chain fields of every audit event that is not a decision (outcomes, reviews, checkpoints):
    the links of the chains between decisions, for a continuity check over ``decisions`` plus these."""
    names = ", ".join(f"'{n}'" for n in AUDIT_EVENTS if n != DECISION_EVENT)
    return f"""
SELECT DISTINCT m['{D.CHAIN_ID}'].stringValue AS chain_id, dt_int(m['{D.CHAIN_SEQ}']) AS chain_seq,
       m['{D.CHAIN_PREV}'].stringValue AS chain_prev, m['{D.CHAIN_HASH}'].stringValue AS chain_hash
FROM (SELECT unnest(from_json(events, '{_EVENTS_TYPE}')) AS e FROM {spans}
      WHERE audit_records > 0 AND events IS NOT NULL),
     LATERAL (SELECT map_from_entries(e.attributes) AS m)
WHERE e.name IN ({names}) AND m['{D.CHAIN_ID}'].stringValue IS NOT NULL"""


def lifecycle_sql(records: str) -> str:
    """One row per decision id that has records in relation ``records``."""
    return f"""
SELECT decision_id,
       count(*) FILTER (WHERE kind = 'review') AS reviews,
       count(*) FILTER (WHERE kind = 'outcome') AS outcomes,
       bool_or(kind = 'review' AND action = 'override') AS overridden,
       arg_max(review_label, {_ORDER}) FILTER (WHERE kind = 'review' AND action = 'override'
                                               AND review_label IS NOT NULL) AS override_label,
       arg_max(outcome, {_ORDER}) FILTER (WHERE kind = 'outcome') AS outcome,
       arg_max(outcome_text, {_ORDER}) FILTER (WHERE kind = 'outcome') AS outcome_text,
       to_json(list({{'kind': kind, 'record_id': record_id, 'time_unix_nano': time_unix_nano,
                     'trace_id': trace_id, 'span_id': span_id, 'service_name': service_name,
                     'attributes': attributes}} ORDER BY time_unix_nano, record_id)) AS records
FROM {records} GROUP BY decision_id"""


_JOINED = {"effective_label": "to_json(coalesce(lifecycle.override_label, label))", "outcome": "lifecycle.outcome"}
"""``--where`` keys that name a joined field rather than a decision's own."""


def lifecycle_where(q: Query) -> tuple[Query, list[str], list[Any]]:
    """``q`` without its lifecycle conditions, and those as SQL (over decisions left-joined with
    ``lifecycle``): the lifecycle filters and ``--where effective_label=`` / ``outcome=``."""
    conds: list[str] = []
    params: list[Any] = []
    for key, wanted in q.where:
        if key in _JOINED:
            conds.append(f"dt_same({_JOINED[key]}, ?)")
            params.append(wanted)
    if q.effective_label is not None:
        conds.append("dt_same(to_json(coalesce(lifecycle.override_label, label)), ?)")
        params.append(q.effective_label)
    if q.reviewed is not None:
        conds.append(f"coalesce(lifecycle.reviews, 0) {'>' if q.reviewed else '='} 0")
    if q.has_outcome is not None:
        conds.append(f"coalesce(lifecycle.outcomes, 0) {'>' if q.has_outcome else '='} 0")
    return replace(q, where=[(k, v) for k, v in q.where if k not in _JOINED]), conds, params


def lifecycle_of(decision_id: str, records_json: str | None) -> Lifecycle:
    """The :class:`Lifecycle` of one decision from its ``lifecycle.records`` JSON (None: no records)."""
    life = Lifecycle(decision_id)
    for r in json.loads(records_json) if records_json else ():
        attrs = r.get("attributes") or {}
        life.add(LifecycleRecord(kind=r["kind"], record_id=r["record_id"], decision_id=decision_id,
                                 time_unix_nano=int(r["time_unix_nano"] or 0), attributes=attrs,
                                 trace_id=r.get("trace_id") or "", span_id=r.get("span_id") or "",
                                 service_name=r.get("service_name")))
    return life
