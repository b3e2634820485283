"""The warehouse's tables and the SQL that builds their rows from OTLP-JSON lines.

Two tables, each a set of Parquet files:

- ``decisions``: one row per decision (the rows of a packed batch event expanded, each with its own
  id, input, output, label and score), typed columns for every convention attribute
  (:data:`DECISION_COLUMNS`) and ``attributes``: a JSON object of every other event attribute, so a
  field added later (a subject key, a business key) is queryable without a schema change.
- ``spans``: the spans of traces that hold decisions (for ``show``), without their decision events
  (those are the ``decisions`` rows); other events (outcomes, reviews, checkpoints) stay in
  ``events`` as OTLP JSON, span links in ``links`` (``[[trace id, span id], ...]``).

Another record kind with its own table (say, outcomes and reviews typed for SQL) adds its row SQL
here, its name to ``layout.TABLES``, and its write to ``compact._commit``; until then such records are
read from ``spans.events`` (``WarehouseStore.records``).

Everything is computed by DuckDB from the raw lines (``read_ndjson_objects`` + ``from_json``, which
was measured 3x faster than ``read_json``'s own transform on these nested documents). This SQL is
the definition of the rows; compaction parses most lines with :mod:`.lines` instead (msgspec, about
25% cheaper), which gives the same values and leaves every line it cannot to this path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...conventions import DECISION_EVENT
from ...conventions import DecisionAttributes as D
from ...conventions import ModelAttributes as M
from ...conventions import SpanAttributes as S
from ...conventions import SubjectAttributes as U

__all__ = ["Column", "DECISION_COLUMNS", "KEYS", "KEY_PREFIX", "SPAN_COLUMNS", "DECISION_ROW", "SPAN_ROW", "TYPED", "MACROS", "OTLP_LINE_TYPE", "spans_sql",
           "decisions_sql", "span_rows_sql", "NO_MODEL"]

NO_MODEL = "_none"
"""Partition value of decisions without ``model.name``."""

_VALUE = {"stringValue": "VARCHAR", "boolValue": "BOOLEAN", "intValue": "VARCHAR", "doubleValue": "DOUBLE",
          "arrayValue": "JSON", "kvlistValue": "JSON", "bytesValue": "VARCHAR"}
_ATTRS = [{"key": "VARCHAR", "value": _VALUE}]
OTLP_LINE_TYPE = json.dumps({"resourceSpans": [{
    "resource": {"attributes": _ATTRS},
    "scopeSpans": [{"scope": {"name": "VARCHAR"}, "spans": [{
        "traceId": "VARCHAR", "spanId": "VARCHAR", "parentSpanId": "VARCHAR", "name": "VARCHAR",
        "kind": "INTEGER", "startTimeUnixNano": "VARCHAR", "endTimeUnixNano": "VARCHAR", "attributes": _ATTRS,
        "events": [{"timeUnixNano": "VARCHAR", "name": "VARCHAR", "attributes": _ATTRS}],
        "status": {"code": "INTEGER", "message": "VARCHAR"},
        "links": [{"traceId": "VARCHAR", "spanId": "VARCHAR"}]}]}]}]})
"""DuckDB ``from_json`` type of one ``ExportTraceServiceRequest`` line (only the fields we keep)."""

MACROS = """
CREATE OR REPLACE MACRO dt_plain(v) AS coalesce(
    to_json(v.stringValue), to_json(v.boolValue), TRY_CAST(v.intValue AS JSON), to_json(v.doubleValue),
    CASE WHEN v.arrayValue IS NOT NULL THEN to_json(list_transform(
        json_extract(v.arrayValue, '$.values[*]'),
        lambda x: coalesce(x -> 'stringValue', x -> 'boolValue', TRY_CAST(x ->> 'intValue' AS JSON), x -> 'doubleValue',
                      x -> 'bytesValue', x))) END,
    v.kvlistValue, to_json(v.bytesValue));
-- The attributes not in ``typed`` as a JSON object, in their order (built as text: twice as fast as
-- to_json of a map_from_entries, measured).
CREATE OR REPLACE MACRO dt_rest(attrs, typed) AS '{' || array_to_string(list_transform(
    list_filter(attrs, lambda a: NOT list_contains(typed, a.key)),
    lambda a: to_json(a.key) || ':' || coalesce(dt_plain(a.value), 'null')), ',') || '}';
CREATE OR REPLACE MACRO dt_strings(v) AS CASE WHEN v.arrayValue IS NOT NULL
    THEN json_extract_string(v.arrayValue, '$.values[*].stringValue')
    WHEN v.stringValue IS NOT NULL THEN [v.stringValue] END;
CREATE OR REPLACE MACRO dt_int(v) AS coalesce(TRY_CAST(v.intValue AS BIGINT), TRY_CAST(v.doubleValue AS BIGINT));
CREATE OR REPLACE MACRO dt_num(v) AS coalesce(v.doubleValue, TRY_CAST(v.intValue AS DOUBLE));
CREATE OR REPLACE MACRO dt_scalar_text(x) AS coalesce(x ->> 'stringValue', x ->> 'intValue', x ->> 'doubleValue', x ->> 'boolValue');
CREATE OR REPLACE MACRO dt_id_ms(id) AS TRY_CAST(('0x' || substr(id, 1, 8) || substr(id, 10, 4)) AS BIGINT);
CREATE OR REPLACE MACRO dt_is_v7(id) AS length(id) = 36 AND substr(id, 15, 1) = '7'
    AND regexp_full_match(id, '[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}');
-- ids.offset_id in SQL: row i of a packed event has the first id's counter + i (26 bits, wrapping).
CREATE OR REPLACE MACRO dt_id_counter(id) AS (TRY_CAST(('0x' || substr(id, 16, 3)) AS BIGINT) << 14)
    | (TRY_CAST(('0x' || substr(id, 20, 4)) AS BIGINT) & 16383);
CREATE OR REPLACE MACRO dt_offset_id(id, i) AS CASE WHEN i = 0 THEN id ELSE
    substr(id, 1, 15) || lpad(lower(hex(((dt_id_counter(id) + i) & 67108863) >> 14)), 3, '0') || '-'
    || lower(hex(32768 | (((dt_id_counter(id) + i) & 67108863) & 16383))) || '-' || substr(id, 25) END;
-- The date partition of a decision id: the UUIDv7's own millisecond time, else the event time.
CREATE OR REPLACE MACRO dt_id_date(id, t_ns) AS strftime(make_timestamp(
    CASE WHEN dt_is_v7(id) THEN dt_id_ms(id) * 1000 ELSE t_ns // 1000 END), '%Y-%m-%d');
-- decisiontrail's --where comparison (store.query._same) on a JSON value and the wanted text.
CREATE OR REPLACE MACRO dt_same(x, wanted) AS CASE
    WHEN x IS NULL OR json_type(x) = 'NULL' THEN wanted IN ('', 'null', 'None')
    WHEN json_type(x) = 'VARCHAR' THEN (x ->> '$') = wanted
    WHEN json_type(x) = 'BOOLEAN' THEN lower(x::VARCHAR) = lower(wanted)
    WHEN json_type(x) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN TRY_CAST(x::VARCHAR AS DOUBLE) = TRY_CAST(wanted AS DOUBLE)
    ELSE x::VARCHAR = wanted END;
"""
"""Scalar SQL macros the transform and the reader use (created on every connection)."""


@dataclass(frozen=True)
class Column:
    """A typed column of ``decisions`` and the event attribute it holds."""

    name: str
    sql_type: str
    attribute: str | None
    single: str
    """SQL of the value on a single-decision event (``m`` is the attribute map)."""
    row: str | None = None
    """SQL of the value on row ``i`` of a packed event, if it differs."""


KEYS = "keys"
"""The ``decisions`` column of the business keys: ``{name: value}`` of every string ``decision.key.<name>``."""
KEY_PREFIX = U.KEY + "."
_IS_KEY = f"(starts_with(a.key, '{KEY_PREFIX}') AND a.value.stringValue IS NOT NULL)"


def _v(key: str) -> str:
    return f"attrs[list_position(ks, '{key}')].value"


# On a packed event the per-row lists are extracted once per event (pk_* in decisions_sql), then
# indexed by row i (1-based lists).
_PACKED_INPUT = ("CASE WHEN pk_rows IS NULL THEN attrs[list_position(ks, '{i}')].value.stringValue "
                 "WHEN pk_cols IS NULL THEN pk_rows[i + 1] "
                 "ELSE to_json(map_from_entries(list_transform(list_zip(pk_cols, from_json(pk_rows[i + 1], '[\"JSON\"]')), "
                 "lambda p: {{'k': p[1], 'v': p[2]}}))) END").format(i=D.INPUT)
_PACKED_OUTPUT = "CASE WHEN pk_outs IS NULL THEN attrs[list_position(ks, '{o}')].value.stringValue ELSE pk_outs[i + 1] END".format(o=D.OUTPUT)

DECISION_COLUMNS: tuple[Column, ...] = (
    Column("decision_id", "VARCHAR", D.ID, f"{_v(D.ID)}.stringValue", f"dt_offset_id({_v(D.ID)}.stringValue, i)"),
    Column("model_name", "VARCHAR", M.NAME, f"{_v(M.NAME)}.stringValue"),
    Column("model_version", "VARCHAR", M.VERSION, f"{_v(M.VERSION)}.stringValue"),
    Column("model_framework", "VARCHAR", M.FRAMEWORK, f"{_v(M.FRAMEWORK)}.stringValue"),
    Column("model_artifact_hash", "VARCHAR", M.ARTIFACT_HASH, f"{_v(M.ARTIFACT_HASH)}.stringValue"),
    Column("label", "VARCHAR", D.LABEL, f"{_v(D.LABEL)}.stringValue",
           "dt_scalar_text(pk_labels[i + 1])"),
    Column("score", "DOUBLE", D.SCORE, f"dt_num({_v(D.SCORE)})",
           "TRY_CAST(dt_scalar_text(pk_scores[i + 1]) AS DOUBLE)"),
    Column("input", "JSON", D.INPUT, f"{_v(D.INPUT)}.stringValue", _PACKED_INPUT),
    Column("output", "JSON", D.OUTPUT, f"{_v(D.OUTPUT)}.stringValue", _PACKED_OUTPUT),
    Column("explanation", "JSON", D.EXPLANATION, f"{_v(D.EXPLANATION)}.stringValue"),
    # The packed event's input hash covers all its rows: kept on every row, told apart by event_row.
    Column("input_hash", "VARCHAR", D.INPUT_HASH, f"{_v(D.INPUT_HASH)}.stringValue"),
    Column("reason_codes", "VARCHAR[]", D.REASON_CODES, f"dt_strings({_v(D.REASON_CODES)})"),
    Column("truncated", "VARCHAR[]", D.TRUNCATED, f"dt_strings({_v(D.TRUNCATED)})"),
    Column("redacted", "VARCHAR[]", D.REDACTED, f"dt_strings({_v(D.REDACTED)})"),
    Column("collector_redacted", "VARCHAR[]", D.COLLECTOR_REDACTED, f"dt_strings({_v(D.COLLECTOR_REDACTED)})"),
    Column("error", "VARCHAR", D.ERROR, f"{_v(D.ERROR)}.stringValue"),
    Column("batch_size", "BIGINT", D.BATCH_SIZE, f"dt_int({_v(D.BATCH_SIZE)})"),
    Column("batch_index", "BIGINT", D.BATCH_INDEX, f"dt_int({_v(D.BATCH_INDEX)})", f"dt_int({_v(D.BATCH_INDEX)}) + i"),
    Column("chain_id", "VARCHAR", D.CHAIN_ID, f"{_v(D.CHAIN_ID)}.stringValue"),
    Column("chain_seq", "BIGINT", D.CHAIN_SEQ, f"dt_int({_v(D.CHAIN_SEQ)})"),
    Column("chain_prev", "VARCHAR", D.CHAIN_PREV, f"{_v(D.CHAIN_PREV)}.stringValue"),
    Column("chain_hash", "VARCHAR", D.CHAIN_HASH, f"{_v(D.CHAIN_HASH)}.stringValue"),
    # Who the decision is about and its business keys (subjects.py): plain columns, so a lookup by
    # subject or key is a column filter, not a parse of every row's input or attributes.
    Column("subject_id", "VARCHAR", U.ID, f"{_v(U.ID)}.stringValue"),
    Column("subject_pseudo_id", "VARCHAR", U.PSEUDO_ID, f"{_v(U.PSEUDO_ID)}.stringValue"),
    Column(KEYS, "MAP(VARCHAR, VARCHAR)", None,
           f"CASE WHEN len(list_filter(attrs, lambda a: {_IS_KEY})) > 0 THEN map_from_entries(list_transform("
           f"list_filter(attrs, lambda a: {_IS_KEY}), lambda a: {{'k': a.key[{len(KEY_PREFIX) + 1}:], "
           f"'v': a.value.stringValue}})) END"),
)
"""Typed columns of ``decisions`` that hold one convention attribute each."""

# Keys of attributes kept in typed columns (decision.batch.count is implied by event_row).
_TYPED = [c.attribute for c in DECISION_COLUMNS if c.attribute] + [D.BATCH_COUNT]
TYPED: tuple[str, ...] = tuple(_TYPED)
"""The event attributes ``decisions`` keeps in typed columns (not repeated in ``attributes``)."""

DECISION_ROW: tuple[tuple[str, str], ...] = tuple((c.name, c.sql_type) for c in DECISION_COLUMNS) + (
    ("time_unix_nano", "BIGINT"), ("time", "TIMESTAMPTZ"), ("trace_id", "VARCHAR"), ("span_id", "VARCHAR"),
    ("span_name", "VARCHAR"), ("service_name", "VARCHAR"), ("event_row", "BIGINT"), ("attributes", "JSON"))
"""Every column of a :func:`decisions_sql` row and its type (the row tables are declared from it)."""

SPAN_ROW: tuple[tuple[str, str], ...] = (
    ("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("parent_span_id", "VARCHAR"), ("name", "VARCHAR"),
    ("kind", "INTEGER"), ("start_time_unix_nano", "BIGINT"), ("end_time_unix_nano", "BIGINT"),
    ("status_code", "INTEGER"), ("status_message", "VARCHAR"), ("service_name", "VARCHAR"), ("scope", "VARCHAR"),
    ("attributes", "JSON"), ("resource", "JSON"), ("events", "JSON"), ("links", "JSON"),
    ("decision_count", "BIGINT"), ("audit_records", "BIGINT"), ("date", "VARCHAR"))
"""Every column of a :func:`span_rows_sql` row and its type."""

SPAN_COLUMNS = tuple(name for name, _ in SPAN_ROW)


def spans_sql(lines: str) -> str:
    """One row per span of the lines in relation ``lines`` (column ``json``): the span struct ``s``,
    its service name, resource attributes (JSON) and scope name."""
    return f"""
SELECT service_name, resource, ss.scope.name AS scope, s
FROM (SELECT map_from_entries(rs.resource.attributes)['service.name'].stringValue AS service_name,
             dt_rest(rs.resource.attributes, [])::JSON AS resource, unnest(rs.scopeSpans) AS ss
      FROM (SELECT unnest(from_json(json, '{OTLP_LINE_TYPE}').resourceSpans) AS rs FROM {lines})),
     LATERAL (SELECT unnest(ss.spans) AS s)"""


def decisions_sql(spans: str) -> str:
    """One row per decision of the spans in relation ``spans`` (as :func:`spans_sql` gives)."""
    typed = "[" + ", ".join(f"'{k}'" for k in _TYPED) + "]"
    cols = ",\n    ".join(
        (f"CASE WHEN i IS NULL THEN {c.single} ELSE {c.row} END" if c.row else c.single) + f"::{c.sql_type} AS {c.name}"
        for c in DECISION_COLUMNS)
    # Plain projections and a select-list unnest (no LATERAL): DuckDB runs them as one pipeline.
    return f"""
SELECT
    {cols},
    t_ns AS time_unix_nano,
    make_timestamp(t_ns // 1000)::TIMESTAMPTZ AS time,
    trace_id, span_id, span_name, service_name,
    i AS event_row,
    dt_rest(list_filter(attrs, lambda a: NOT {_IS_KEY}), {typed})::JSON AS attributes
FROM (
    SELECT *, unnest(CASE WHEN n IS NULL THEN [NULL::BIGINT] ELSE range(n) END) AS i
    FROM (
        SELECT *,
            CASE WHEN n IS NOT NULL AND json_type({_v(D.INPUT)}.stringValue) = 'OBJECT'
                 THEN json_extract({_v(D.INPUT)}.stringValue, '$.rows[*]') END AS pk_rows,
            CASE WHEN n IS NOT NULL AND json_type({_v(D.INPUT)}.stringValue, '$.columns') = 'ARRAY'
                 THEN json_extract_string({_v(D.INPUT)}.stringValue, '$.columns[*]') END AS pk_cols,
            CASE WHEN n IS NOT NULL AND json_type({_v(D.OUTPUT)}.stringValue) = 'ARRAY'
                 THEN json_extract({_v(D.OUTPUT)}.stringValue, '$[*]') END AS pk_outs,
            CASE WHEN n IS NOT NULL THEN json_extract({_v(D.LABEL)}.arrayValue, '$.values[*]') END AS pk_labels,
            CASE WHEN n IS NOT NULL THEN json_extract({_v(D.SCORE)}.arrayValue, '$.values[*]') END AS pk_scores
        FROM (
            SELECT attrs, ks, t_ns, trace_id, span_id, span_name, service_name, dt_int({_v(D.BATCH_COUNT)}) AS n
            FROM (SELECT e.attributes AS attrs, list_transform(e.attributes, lambda a: a.key) AS ks,
                         TRY_CAST(e.timeUnixNano AS BIGINT) AS t_ns, lower(s.traceId) AS trace_id,
                         lower(s.spanId) AS span_id, s.name AS span_name, service_name
                  FROM (SELECT service_name, s, unnest(s.events) AS e FROM {spans} WHERE len(s.events) > 0)
                  WHERE e.name = '{DECISION_EVENT}'))))"""


def span_rows_sql(spans: str) -> str:
    """One row per span of ``spans``, decision events left out (they are the decisions rows)."""
    return f"""
SELECT trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano, end_time_unix_nano, status_code,
       status_message, service_name, scope, attributes, resource,
       CASE WHEN n_events > decision_count THEN to_json(list_filter(events, lambda e: e.name <> '{DECISION_EVENT}'))
            END AS events, links, decision_count, audit_records,
       strftime(make_timestamp(start_time_unix_nano // 1000), '%Y-%m-%d') AS date
FROM (
    SELECT lower(s.traceId) AS trace_id, lower(s.spanId) AS span_id, lower(coalesce(s.parentSpanId, '')) AS parent_span_id,
           s.name AS name, coalesce(s.kind, 0) AS kind,
           TRY_CAST(s.startTimeUnixNano AS BIGINT) AS start_time_unix_nano,
           TRY_CAST(s.endTimeUnixNano AS BIGINT) AS end_time_unix_nano,
           coalesce(s.status.code, 0) AS status_code, s.status.message AS status_message,
           service_name, scope, dt_rest(s.attributes, [])::JSON AS attributes, resource,
           coalesce(len(s.events), 0) AS n_events,
           CASE WHEN len(s.links) > 0 THEN to_json(list_transform(s.links, lambda k: [lower(k.traceId), lower(k.spanId)])) END AS links,
           s.events AS events,
           coalesce(list_count(list_filter(list_transform(s.events, lambda e: e.name), lambda x: x = '{DECISION_EVENT}')), 0)
               AS decision_count,
           coalesce(dt_int(s.attributes[list_position(list_transform(s.attributes, lambda a: a.key), '{S.AUDIT_RECORDS}')].value), 0) AS audit_records
    FROM {spans})"""
