"""OTLP-JSON lines to the warehouse's rows in Python: each line parsed once by msgspec into typed
structs (fields the warehouse does not keep are skipped, not built), pivoted into flat rows, and
handed to DuckDB as flat NDJSON that it reads with declared columns (:mod:`.ingest`). DuckDB's own
path (``schema.spans_sql`` and ``decisions_sql``: ``from_json`` of the whole nested document, every
attribute a seven-field struct, each typed column looked up in the attribute list) cost 0.95 CPU-s
per 20k demo decisions for this stage; this one 0.70 s (decode and pivot 0.35, the flat rows
written 0.12 and read by DuckDB 0.23), about 11% of a whole compaction (measured on the generated
200k store).

The SQL path stays the definition: every column here is computed so that the values are the ones
``schema.decisions_sql`` / ``schema.span_rows_sql`` give for the same line (the casts, times and
lower-casing are done by the same SQL on the flat columns, :data:`DECISIONS_INSERT`). A line this
module does not take the same way raises :class:`Unhandled` and is left to the SQL path whole: not
valid JSON, a field of an unexpected type, a packed batch event, an array, map or bytes value among
the attributes kept as JSON text, a span with events other than decisions (outcome, review and
checkpoint records), a double or string whose JSON text DuckDB writes differently (exponents,
control characters), duplicate keys. ``tests/unit/test_warehouse_lines.py`` checks both paths give
the same rows.

msgspec comes with the ``warehouse`` extra; without it (:data:`AVAILABLE` false) every line takes
the SQL path.
"""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any, Union

from opentelemetry.sdk.resources import SERVICE_NAME

from ...conventions import DECISION_EVENT
from ...conventions import DecisionAttributes as D
from ...conventions import ModelAttributes as M
from ...conventions import SpanAttributes as S
from ...conventions import SubjectAttributes as U
from .engine import sql_str
from .schema import KEY_PREFIX, TYPED
from .sources import _longest_line

__all__ = ["AVAILABLE", "Unhandled", "Rows", "DECISIONS_INSERT", "SPANS_INSERT"]

try:
    import msgspec
except ImportError:  # pragma: no cover - the warehouse extra brings it
    msgspec = None  # type: ignore[assignment]
AVAILABLE = msgspec is not None
_DECODE_ERRORS: tuple[type[Exception], ...] = (msgspec.DecodeError, msgspec.ValidationError) if AVAILABLE else ()


class Unhandled(Exception):
    """This line is left to the SQL path (it decides what the line gives)."""


if AVAILABLE:
    # The OTLP-JSON shapes DuckDB's from_json type (schema.OTLP_LINE_TYPE) declares, every field
    # optional (missing or null reads as NULL there, None here); a value of another JSON type is a
    # ValidationError, so the line goes to the SQL path. gc=False: no cycle tracking of the structs.
    _Int = Union[str, int, None]

    class _Array(msgspec.Struct, gc=False):
        values: list[_Value] | None = None

    class _Value(msgspec.Struct, gc=False):
        stringValue: str | None = None
        boolValue: bool | None = None
        intValue: _Int = None
        doubleValue: float | None = None
        arrayValue: _Array | None = None
        kvlistValue: msgspec.Raw = msgspec.Raw(b"")
        bytesValue: str | None = None

    class _KeyValue(msgspec.Struct, gc=False):
        key: str | None = None
        value: _Value | None = None

    class _Event(msgspec.Struct, gc=False):
        timeUnixNano: _Int = None
        name: str | None = None
        attributes: list[_KeyValue] | None = None

    class _Status(msgspec.Struct, gc=False):
        code: int | None = None
        message: str | None = None

    class _Link(msgspec.Struct, gc=False):
        traceId: str | None = None
        spanId: str | None = None

    class _Span(msgspec.Struct, gc=False):
        traceId: str | None = None
        spanId: str | None = None
        parentSpanId: str | None = None
        name: str | None = None
        kind: int | None = None
        startTimeUnixNano: _Int = None
        endTimeUnixNano: _Int = None
        attributes: msgspec.Raw = msgspec.Raw(b"")
        """Kept raw: most decision spans repeat the same few lists (:class:`Rows` caches them)."""
        events: list[_Event] | None = None
        status: _Status | None = None
        links: list[_Link] | None = None

    class _Scope(msgspec.Struct, gc=False):
        name: str | None = None

    class _ScopeSpans(msgspec.Struct, gc=False):
        scope: _Scope | None = None
        spans: list[_Span] | None = None

    class _Resource(msgspec.Struct, gc=False):
        attributes: list[_KeyValue] | None = None

    class _ResourceSpans(msgspec.Struct, gc=False):
        resource: _Resource | None = None
        scopeSpans: list[_ScopeSpans] | None = None

    class _Request(msgspec.Struct, gc=False):
        resourceSpans: list[_ResourceSpans] | None = None

    _decode = msgspec.json.Decoder(_Request).decode
    _decode_attributes = msgspec.json.Decoder(list[_KeyValue]).decode
    _EMPTY = _Value()
    _NO_STATUS = _Status()
    _encode = msgspec.json.encode

_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)").fullmatch
"""An intValue text that TRY_CAST(... AS JSON) keeps as it is (and Python's int() prints back)."""

# Decision columns from a string value (stringValue of the first attribute of that key), in the
# order DECISIONS_INSERT reads them.
_STRINGS = (D.ID, M.NAME, M.VERSION, M.FRAMEWORK, M.ARTIFACT_HASH, D.LABEL, D.INPUT, D.OUTPUT, D.EXPLANATION,
            D.INPUT_HASH, D.ERROR, D.CHAIN_ID, D.CHAIN_PREV, D.CHAIN_HASH, U.ID, U.PSEUDO_ID)
_LISTS = (D.REASON_CODES, D.TRUNCATED, D.REDACTED, D.COLLECTOR_REDACTED)
"""Columns of strings: an array value's strings, or a string value as a one-element list."""
_NUMBERS = (D.SCORE, D.BATCH_SIZE, D.BATCH_INDEX, D.CHAIN_SEQ)
"""Columns from an int or double value: both raw parts are passed, SQL casts as schema.py does."""
_TYPED = frozenset(TYPED)
_KEY_START = len(KEY_PREFIX)
_EMPTIES = (_EMPTY,) * len(_STRINGS) if AVAILABLE else ()
_STRING = operator.attrgetter("stringValue")


def _column(key: str) -> str:
    return "c_" + re.sub(r"[^a-z0-9]", "_", key)


_D_COLUMNS: tuple[tuple[str, str], ...] = (
    tuple((_column(k), "VARCHAR") for k in _STRINGS) + tuple((_column(k), "VARCHAR[]") for k in _LISTS)
    + tuple((f"{_column(k)}_{p}", t) for k in _NUMBERS for p, t in (("i", "VARCHAR"), ("d", "DOUBLE")))
    + (("key_names", "VARCHAR[]"), ("key_values", "VARCHAR[]"), ("t", "VARCHAR"), ("trace_id", "VARCHAR"),
       ("span_id", "VARCHAR"), ("span_name", "VARCHAR"), ("service_name", "VARCHAR"), ("attributes", "VARCHAR")))
"""The flat decision columns (and their types) :meth:`Rows.write` gives DuckDB."""
_S_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("parent_span_id", "VARCHAR"), ("name", "VARCHAR"),
    ("kind", "INTEGER"), ("t_start", "VARCHAR"), ("t_end", "VARCHAR"), ("status_code", "INTEGER"),
    ("status_message", "VARCHAR"), ("service_name", "VARCHAR"), ("scope", "VARCHAR"), ("attributes", "VARCHAR"),
    ("resource", "VARCHAR"), ("links", "VARCHAR"), ("decision_count", "BIGINT"), ("audit_i", "VARCHAR"),
    ("audit_d", "DOUBLE"))
"""The flat span columns."""


def _number(key: str, sql_type: str) -> str:
    c = _column(key)
    return f"coalesce(TRY_CAST({c}_i AS {sql_type}), TRY_CAST({c}_d AS {sql_type}))"


_c = _column
DECISIONS_INSERT = f"""
INSERT INTO new_d SELECT nextval('_ord'),
    {", ".join(_c(k) for k in (D.ID, M.NAME, M.VERSION, M.FRAMEWORK, M.ARTIFACT_HASH, D.LABEL))},
    coalesce({_c(D.SCORE)}_d, TRY_CAST({_c(D.SCORE)}_i AS DOUBLE)),
    {_c(D.INPUT)}::JSON, {_c(D.OUTPUT)}::JSON, {_c(D.EXPLANATION)}::JSON, {_c(D.INPUT_HASH)},
    {", ".join(_c(k) for k in _LISTS)}, {_c(D.ERROR)},
    {_number(D.BATCH_SIZE, "BIGINT")}, {_number(D.BATCH_INDEX, "BIGINT")}, {_c(D.CHAIN_ID)}, {_number(D.CHAIN_SEQ, "BIGINT")},
    {", ".join(_c(k) for k in (D.CHAIN_PREV, D.CHAIN_HASH, U.ID, U.PSEUDO_ID))},
    CASE WHEN len(key_names) > 0 THEN map(key_names, key_values) END,
    TRY_CAST(t AS BIGINT), make_timestamp(TRY_CAST(t AS BIGINT) // 1000)::TIMESTAMPTZ,
    lower(trace_id), lower(span_id), span_name, service_name, NULL, attributes::JSON
FROM {{rows}}"""
"""The flat decision columns (relation ``{rows}``) into ``new_d``, with the casts of ``schema.decisions_sql``."""

SPANS_INSERT = """
INSERT INTO new_s SELECT nextval('_ord'), lower(trace_id), lower(span_id), lower(coalesce(parent_span_id, '')), name,
    coalesce(kind, 0), TRY_CAST(t_start AS BIGINT), TRY_CAST(t_end AS BIGINT), coalesce(status_code, 0), status_message,
    service_name, scope, attributes::JSON, resource::JSON, NULL, links::JSON, decision_count,
    coalesce(TRY_CAST(audit_i AS BIGINT), TRY_CAST(audit_d AS BIGINT), 0),
    strftime(make_timestamp(TRY_CAST(t_start AS BIGINT) // 1000), '%Y-%m-%d')
FROM {rows}"""
"""The flat span columns (relation ``{rows}``) into ``new_s``, with the casts of ``schema.span_rows_sql``."""


def _int_text(i: str | int | None) -> str | None:
    """An intValue as the text DuckDB's VARCHAR field holds."""
    return str(i) if type(i) is int else i  # type: ignore[return-value]


def _plain(v: Any) -> Any:
    """The Python value whose JSON text is ``dt_plain(v)``'s (or Unhandled)."""
    if v is None:
        return None
    if v.stringValue is not None:
        return v.stringValue
    if v.boolValue is not None:
        return v.boolValue
    i = v.intValue
    if i is not None:
        n = i if type(i) is int else int(i) if _INT_TEXT(i) and i != "-0" and len(i) < 19 else None
        if n is None or not -(1 << 63) <= n < 1 << 63:
            raise Unhandled
        return n
    d = v.doubleValue
    if d is not None:
        # DuckDB writes a double without an exponent; Python's repr (and msgspec) use one outside these.
        if d == 0.0 or 1e-4 <= abs(d) < 1e16:
            return d
        raise Unhandled
    if v.arrayValue is not None or v.kvlistValue or v.bytesValue is not None:
        raise Unhandled
    return None


def _json_object(attrs: list[Any]) -> str:
    """``dt_rest(attrs, [])``: the attributes as a JSON object, in their order."""
    out = {kv.key: _plain(kv.value) for kv in attrs}
    if len(out) != len(attrs) or None in out:
        raise Unhandled  # duplicate or missing keys: written as they are by the SQL path
    text: str = _encode(out).decode()
    if "\\u" in text:
        raise Unhandled  # DuckDB escapes control characters with upper-case hex digits
    return text


def _strings(v: Any) -> list[str] | None:
    """``dt_strings(v)``."""
    if v.arrayValue is not None:
        out = [x.stringValue for x in v.arrayValue.values or ()]
        if None in out:
            raise Unhandled
        return out
    return None if v.stringValue is None else [v.stringValue]


def _span_attributes(raw: bytes) -> tuple[str | None, str | None, float | None]:
    """A span's attributes (their raw JSON) as (``dt_rest`` JSON text, audit records as intValue
    text, as doubleValue)."""
    if not raw or raw == b"null":
        return None, None, None
    attrs = _decode_attributes(raw)
    audit = next((kv.value for kv in attrs if kv.key == S.AUDIT_RECORDS), None)
    return (_json_object(attrs), None if audit is None else _int_text(audit.intValue),
            None if audit is None else audit.doubleValue)


_SPAN_CACHE = 4096
"""Span attribute lists seen (their raw JSON) and what they give: the decision spans of one model
mostly repeat the same few."""


class Rows:
    """The decision rows and span rows (tuples in the order of the flat columns) of the lines added so far."""

    def __init__(self) -> None:
        self.d: list[Any] = []
        self.s: list[Any] = []
        self._attrs: dict[bytes, tuple[str | None, str | None, float | None]] = {}

    def nonempty(self) -> bool:
        return bool(self.s)

    def add(self, line: bytes) -> None:
        """Add one line's rows, or raise :class:`Unhandled` (adding nothing)."""
        nd, ns = len(self.d), len(self.s)
        try:
            self._add(_decode(line))
        except _DECODE_ERRORS as exc:
            del self.d[nd:], self.s[ns:]
            raise Unhandled from exc
        except Unhandled:
            del self.d[nd:], self.s[ns:]
            raise

    def _add(self, req: Any) -> None:
        d_rows, s_rows, cache, decision = self.d, self.s, self._attrs, self._decision
        for rs in req.resourceSpans or ():
            res = rs.resource
            service = resource = None
            if res is not None and res.attributes is not None:
                resource = _json_object(res.attributes)
                v = next((kv.value for kv in res.attributes if kv.key == SERVICE_NAME), None)
                service = None if v is None else v.stringValue
            for ss in rs.scopeSpans or ():
                scope = None if ss.scope is None else ss.scope.name
                for span in ss.spans or ():
                    events = span.events
                    if events:
                        for e in events:
                            if e.name != DECISION_EVENT:
                                raise Unhandled  # other records: their events column comes from SQL
                            d_rows.append(decision(e, span, service))
                    raw = bytes(span.attributes)
                    attributes = cache.get(raw)
                    if attributes is None:
                        attributes = _span_attributes(raw)
                        if len(cache) >= _SPAN_CACHE:
                            cache.clear()
                        cache[raw] = attributes
                    status = span.status or _NO_STATUS
                    s_rows.append(_SRow(span.traceId, span.spanId, span.parentSpanId, span.name, span.kind,
                                   _int_text(span.startTimeUnixNano), _int_text(span.endTimeUnixNano),
                                   status.code, status.message, service, scope, attributes[0], resource,
                                   _links(span.links) if span.links else None, len(events) if events else 0,
                                   attributes[1], attributes[2]))

    @staticmethod
    def _decision(e: Any, span: Any, service: str | None) -> Any:
        attrs = e.attributes
        if attrs is None:
            raise Unhandled  # no attribute list: its attributes column is NULL, not {}
        m = {kv.key: kv.value or _EMPTY for kv in attrs}
        if len(m) != len(attrs) or D.BATCH_COUNT in m:
            raise Unhandled  # a duplicate key (the SQL path takes the first), a packed batch (expanded there)
        names: list[str] = []
        values: list[str] = []
        rest = "{}"
        extra = m.keys() - _TYPED
        if extra:
            others = []
            for kv in attrs:
                key = kv.key
                if key in extra:
                    if key is None:
                        raise Unhandled
                    v = kv.value
                    if key.startswith(KEY_PREFIX) and v is not None and v.stringValue is not None:
                        names.append(key[_KEY_START:])
                        values.append(v.stringValue)
                    else:
                        others.append(kv)
            if others:
                rest = _json_object(others)
        numbers = list(map(m.get, _NUMBERS, _EMPTIES))
        return _DRow(*map(_STRING, map(m.get, _STRINGS, _EMPTIES)),
                *[_strings(m[k]) if k in m else None for k in _LISTS],
                *[p for v in numbers for p in (_int_text(v.intValue), v.doubleValue)],
                names or None, values or None, _int_text(e.timeUnixNano), span.traceId, span.spanId, span.name, service, rest)

    def write(self, path: Path, what: str) -> str:
        """Write the decision rows (``what`` = ``"d"``) or span rows (``"s"``) to ``path`` as NDJSON
        objects, None fields left out; returns the relation DuckDB reads them as."""
        rows, columns = (self.d, _D_COLUMNS) if what == "d" else (self.s, _S_COLUMNS)
        blob = _encode_lines(rows)
        path.write_bytes(blob)
        types = "{" + ", ".join(f"'{short}': '{t}'" for short, (_, t) in zip(_SHORT, columns)) + "}"
        names = ", ".join(f"{short} AS {c}" for short, (c, _) in zip(_SHORT, columns))
        return (f"(SELECT {names} FROM read_json({sql_str(str(path))}, format = 'newline_delimited', "
                f"columns = {types}, maximum_object_size = {max(_longest_line(blob) + 1, 1 << 20)}))")


_SHORT = [f"c{i}" for i in range(max(len(_D_COLUMNS), len(_S_COLUMNS)))]


def _row_type(name: str, columns: tuple[tuple[str, str], ...]) -> Any:
    """A msgspec struct of one row: encoded as a JSON object with short keys, None fields left out."""
    return msgspec.defstruct(name, [(c, object, None) for c, _ in columns], omit_defaults=True, gc=False,
                             rename=dict(zip((c for c, _ in columns), _SHORT)))


def _links(links: list[Any]) -> str:
    pairs = [[None if k.traceId is None else k.traceId.lower(), None if k.spanId is None else k.spanId.lower()]
             for k in links]
    text: str = _encode(pairs).decode()
    if not text.isascii() or "\\u" in text:
        raise Unhandled  # lower() of non-ASCII text may differ from DuckDB's
    return text


if AVAILABLE:
    _DRow = _row_type("DecisionRow", _D_COLUMNS)
    _SRow = _row_type("SpanRow", _S_COLUMNS)
    _encode_lines = msgspec.json.Encoder().encode_lines
