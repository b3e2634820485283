"""A :class:`~decisiontrail.store.query.Query` as SQL over the ``decisions`` table, so filters run in
DuckDB: the same fields and the same comparison rules as the file reader's ``Query.matches``.

``--where FIELD=VALUE`` resolves FIELD as ``query.field_value`` does: an attribute kept in a typed
column (``decision.label``), a flat key of ``to_dict()`` (``label``, ``model_name``), a path into
the input or output (``input.applicant_id``, ``output.0``), else any other event attribute (the
``attributes`` JSON column, so fields added later need no schema change). A plain string value is
first looked for as a substring of the JSON text (a cheap scan) before the JSON is parsed.
"""

from __future__ import annotations

import re
from typing import Any

from ..query import Query
from .schema import DECISION_COLUMNS, KEY_PREFIX, KEYS

__all__ = ["where_sql", "field_sql", "date_bounds"]

_BY_ATTRIBUTE = {c.attribute: c.name for c in DECISION_COLUMNS if c.attribute}
_STRING_COLUMNS = {**{c.attribute: c.name for c in DECISION_COLUMNS if c.attribute and c.sql_type == "VARCHAR"},
                   **{c.name: c.name for c in DECISION_COLUMNS if c.sql_type == "VARCHAR"},
                   "trace_id": "trace_id", "span_id": "span_id", "service_name": "service_name",
                   "span_name": "span_name"}
"""Fields held in a VARCHAR column, by attribute and by flat name."""
_NULL_WORDS = ("", "null", "None")
_FLAT = {c.name for c in DECISION_COLUMNS} | {"trace_id", "span_id", "service_name", "span_name",
                                               "time_unix_nano"}
_JSON_COLUMNS = {"input", "output", "explanation"}
_PLAIN = re.compile(r"^[A-Za-z0-9_:.@+\-]+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^(nan|inf|infinity)$", re.IGNORECASE)


def _pointer(parts: list[str]) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def field_sql(key: str) -> tuple[str, list[Any], str | None]:
    """SQL of FIELD as a JSON value, its parameters, and the JSON text column that holds it (for a
    substring pre-filter), if any."""
    if key in _BY_ATTRIBUTE:
        return f"to_json({_BY_ATTRIBUTE[key]})", [], None
    head, _, rest = key.partition(".")
    if head in ("input", "output") and rest:
        return f"json_extract({head}, ?)", [_pointer(rest.split("."))], head
    if key == "timestamp":
        return "to_json(strftime(time, '%Y-%m-%dT%H:%M:%S.%fZ'))", [], None
    if key in _FLAT:
        return (key if key in _JSON_COLUMNS else f"to_json({key})"), [], None
    return "json_extract(attributes, ?)", [_pointer([key])], "attributes"


def _same_sql(key: str, wanted: str) -> tuple[str, list[Any]]:
    column = _STRING_COLUMNS.get(key)
    if column is not None and wanted not in _NULL_WORDS:
        # A string column equals the value exactly: a plain filter DuckDB pushes into the Parquet scan.
        return f"{column} = ?", [wanted]
    if key.startswith(KEY_PREFIX):
        name = key[len(KEY_PREFIX):]
        if _PLAIN.match(wanted) and not _NUMBER.match(wanted) and wanted.lower() not in ("true", "false", "null", "none"):
            # Only a string can equal such a value, and string keys are in the keys column.
            return f"{KEYS}[?] = ?", [name, wanted]
        return (f"dt_same(coalesce(to_json({KEYS}[?]), json_extract(attributes, ?)), ?)",
                [name, _pointer([key]), wanted])
    expr, params, text_column = field_sql(key)
    if text_column is not None and _PLAIN.match(wanted) and not _NUMBER.match(wanted) \
            and wanted.lower() not in ("true", "false", "null", "none"):
        # Only a JSON string can equal such a value, and the JSON text holds it verbatim.
        return f"(contains({text_column}, ?) AND dt_same({expr}, ?))", [wanted, *params, wanted]
    return f"dt_same({expr}, ?)", [*params, wanted]


def where_sql(q: Query) -> tuple[str, list[Any]]:
    """``WHERE`` conditions (without the keyword; ``true`` if none) and their parameters."""
    conds: list[str] = []
    params: list[Any] = []
    if q.model is not None:
        conds.append("model_name = ?")
        params.append(q.model)
    if q.version is not None:
        conds.append("model_version = ?")
        params.append(q.version)
    if q.label is not None:
        conds.append("dt_same(to_json(label), ?)")
        params.append(q.label)
    if q.since_ns is not None:
        conds.append("time_unix_nano >= ?")
        params.append(q.since_ns)
    if q.until_ns is not None:
        conds.append("time_unix_nano <= ?")
        params.append(q.until_ns)
    if q.trace_id is not None:
        conds.append("trace_id = ?")
        params.append(q.trace_id.lower())
    if q.decision_id is not None:
        conds.append("decision_id = ?")
        params.append(q.decision_id)
    for key, wanted in q.where:
        sql, more = _same_sql(key, wanted)
        conds.append(sql)
        params.extend(more)
    return (" AND ".join(conds) or "true"), params


def date_bounds(q: Query) -> tuple[str | None, str | None]:
    """The first and last ``date=`` partitions the time filters allow (a day of slack on each side:
    a partition is the date of the decision id, which can differ from the event time by a clock)."""
    import datetime as _dt

    def day(ns: int | None, slack: int) -> str | None:
        if ns is None:
            return None
        d = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc).date() + _dt.timedelta(days=slack)
        return d.isoformat()

    return day(q.since_ns, -1), day(q.until_ns, 1)
