"""Reading decisions back from Jaeger's HTTP query API (stdlib ``urllib`` only).

Jaeger holds every span the collector forwards, so it answers "which request led to this decision":
:func:`fetch_trace` gets a trace by id (``GET /api/traces/{id}``), :func:`find_decision_trace` finds
the trace of a decision id with the search endpoint (``GET /api/traces?service=...&tags=...``) and
:func:`to_records` turns a trace into the :class:`~decisiontrail.store.reader.SpanRecord` /
:class:`~decisiontrail.store.reader.DecisionRecord` objects the audit-file reader produces.

What the search can do (Jaeger v2, checked against v2.13): ``tags`` matches span attributes,
resource attributes and, in the in-memory store, *event* attributes too, so
a ``tags`` filter on ``decision.id`` finds the span that carries the ``model.decision`` event. Badger,
Cassandra and Elasticsearch/OpenSearch index span-log (event) fields as tags as well; if a backend
does not, search by trace id (``decisiontrail show <trace id> --jaeger URL``). Limits:

- ``service`` is required by the API; without it every service from ``/api/services`` is searched;
- the time window is derived from the decision id (a UUIDv7 carries its millisecond timestamp):
  spans that started up to ``lookback`` (default 1 hour) before the decision;
- a row of a packed batch event other than the first has no stored id of its own (row ``i`` is
  ``offset_id(event id, i)``), so no tag matches it: when the tag search finds nothing, the traces
  that started in the hour before the id's own timestamp are scanned, newest first (at most
  ``ROW_SCAN_LIMIT`` per service), for a packed event whose rows include it;
- Jaeger's model keeps no attribute types beyond string/bool/int64/float64/binary: arrays arrive as
  JSON text and are decoded back, which is what a reader wants but not byte-for-byte the recorded
  attributes, so verify hash chains on the collector's audit files, not on Jaeger.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..conventions import DECISION_EVENT
from ..conventions import DecisionAttributes as D
from ..exporters.otlpjson import encode_value
from ..ids import batch_row, decision_id_time_ns
from .reader import DecisionRecord, SpanRecord, decisions_of

__all__ = ["JaegerError", "fetch_trace", "find_decision_trace", "list_services", "to_records"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_LOOKBACK = timedelta(hours=1)
_CLOCK_SLACK_US = 10 * 60 * 1_000_000  # search 10 minutes past the decision's own timestamp
ROW_SCAN_LIMIT = 200
"""Traces per service scanned for the packed event holding a batch row (newest first)."""

# Event attributes that hold JSON text by convention: never decoded into lists.
_JSON_TEXT = frozenset({D.INPUT, D.OUTPUT, D.EXPLANATION})
# Tags the OTLP -> Jaeger translation adds for span fields; they go back to the fields.
_SPAN_KINDS = {"unspecified": 0, "internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}
_RESERVED_TAGS = frozenset({"span.kind", "otel.status_code", "otel.status_description", "otel.scope.name",
                            "otel.scope.version", "otel.library.name", "otel.library.version", "error",
                            "w3c.tracestate", "internal.span.format"})


class JaegerError(RuntimeError):
    """Jaeger could not be reached or answered with an error."""


def _get(base_url: str, path: str, params: Mapping[str, str] | None, timeout: float) -> tuple[int, Any]:
    url = base_url.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            body: Any = json.load(exc)
        except ValueError:
            body = None
        return exc.code, body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise JaegerError(f"cannot query Jaeger at {url}: {exc}") from exc


def _error(status: int, body: Any, what: str) -> JaegerError:
    errors = body.get("errors") if isinstance(body, dict) else None
    msg = "; ".join(str(e.get("msg", e)) for e in errors) if errors else f"HTTP {status}"
    return JaegerError(f"Jaeger {what}: {msg}")


def fetch_trace(base_url: str, trace_id: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """The trace ``trace_id`` (32 hex digits) as Jaeger's JSON trace object (``traceID``, ``spans``,
    ``processes``: element ``data[0]`` of ``GET {base_url}/api/traces/{trace_id}``), or ``{}`` when
    Jaeger does not have it. Raises :class:`JaegerError` if Jaeger is unreachable or rejects the id."""
    status, body = _get(base_url, f"/api/traces/{urllib.parse.quote(trace_id.strip().lower())}", None, timeout)
    if status == 404:
        return {}
    if status != 200 or not isinstance(body, dict):
        raise _error(status, body, f"trace {trace_id}")
    data = body.get("data") or []
    return dict(data[0]) if data else {}


def list_services(base_url: str, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Service names Jaeger has seen (``GET /api/services``)."""
    status, body = _get(base_url, "/api/services", None, timeout)
    if status != 200 or not isinstance(body, dict):
        raise _error(status, body, "services")
    return sorted(str(s) for s in body.get("data") or [])


def _has_decision(trace: Mapping[str, Any], decision_id: str, rows: bool = False) -> bool:
    """Whether an event of ``trace`` has ``decision_id``; with ``rows``, also as a row of a packed
    batch event (``decision.batch.count`` rows from its ``decision.id``)."""
    for span in trace.get("spans") or []:
        for log in span.get("logs") or []:
            fields = {f.get("key"): f.get("value") for f in log.get("fields") or []}
            # Outcomes and reviews carry the decision.id they refer to: only the decision event counts.
            if fields.get("event") != DECISION_EVENT:
                continue
            first = fields.get(D.ID)
            if first == decision_id:
                return True
            count = fields.get(D.BATCH_COUNT)
            if rows and isinstance(first, str) and isinstance(count, (int, str)) and str(count).isdigit():
                row = batch_row(first, decision_id)
                if row is not None and row < int(count):
                    return True
    return False


def find_decision_trace(base_url: str, decision_id: str, service: str | None = None,
                        lookback: timedelta = DEFAULT_LOOKBACK,
                        timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
    """The trace (as :func:`fetch_trace` returns it) whose ``model.decision`` event has
    ``decision.id == decision_id``, or None. Searches ``service`` or, if None, every service.

    The window is [decision time - ``lookback``, decision time + 10 min], the decision time taken from
    the id; for an id that is not a UUIDv7, Jaeger's default window (the last 2 days) applies."""
    decision_id = decision_id.strip()
    params = {"tags": json.dumps({D.ID: decision_id}), "limit": "20"}
    try:
        if len(decision_id) != 36 or decision_id[14] != "7":
            raise ValueError("not a UUIDv7")
        t_us = decision_id_time_ns(decision_id) // 1000
        params["start"] = str(max(0, t_us - int(lookback.total_seconds() * 1_000_000)))
        params["end"] = str(t_us + _CLOCK_SLACK_US)
    except ValueError:
        pass
    services = [service] if service else list_services(base_url, timeout)
    for svc in services:
        for trace in _search(base_url, svc, params, timeout):
            # The tag may have matched a span attribute of the same name: check the events.
            if _has_decision(trace, decision_id):
                return dict(trace)
    if "start" not in params:
        return None
    # A row of a packed batch: its event holds the batch's id, not this one. The event was recorded
    # after its span started, and the id was made just before the event: scan the traces that
    # started up to the id's own time (plus a second), newest first.
    window = {"start": params["start"], "end": str(int(params["end"]) - _CLOCK_SLACK_US + 1_000_000),
              "limit": str(ROW_SCAN_LIMIT)}
    for svc in services:
        for trace in _search(base_url, svc, window, timeout):
            if _has_decision(trace, decision_id, rows=True):
                return dict(trace)
    return None


def _search(base_url: str, service: str, params: Mapping[str, str], timeout: float) -> list[dict[str, Any]]:
    status, body = _get(base_url, "/api/traces", {"service": service, **params}, timeout)
    if status != 200 or not isinstance(body, dict):
        raise _error(status, body, f"search in service {service}")
    return list(body.get("data") or [])


def _tag_value(tag: Mapping[str, Any]) -> Any:
    kind, value = tag.get("type", "string"), tag.get("value")
    if kind == "float64" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "int64" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "string" and isinstance(value, str) and tag.get("key") not in _JSON_TEXT \
            and value.startswith("[") and value.endswith("]"):
        try:  # an OTLP array attribute, flattened to JSON text by the OTLP -> Jaeger translation
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, list) else value
    return value


def _otlp_attribute(tag: Mapping[str, Any]) -> dict[str, Any]:
    if tag.get("type") == "binary":
        return {"key": tag["key"], "value": {"bytesValue": tag.get("value", "")}}
    return {"key": tag["key"], "value": encode_value(_tag_value(tag))}


def _hex_id(value: Any, width: int) -> str:
    return str(value or "").lower().rjust(width, "0")


def to_records(trace: Mapping[str, Any]) -> tuple[list[SpanRecord], list[DecisionRecord]]:
    """Spans (by start time) and decisions of a Jaeger trace object, as the audit-file reader gives
    them. Accepts the trace object or a whole ``/api/traces`` answer (its first trace)."""
    if "data" in trace and "spans" not in trace:
        data = trace.get("data") or []
        trace = data[0] if data else {}
    processes: Mapping[str, Any] = trace.get("processes") or {}
    spans: list[SpanRecord] = []
    for s in trace.get("spans") or []:
        process = s.get("process") or processes.get(s.get("processID", ""), {})
        resource = {t["key"]: _tag_value(t) for t in process.get("tags") or []}
        if process.get("serviceName"):
            resource["service.name"] = process["serviceName"]
        tags = {t["key"]: t for t in s.get("tags") or []}
        trace_id = _hex_id(s.get("traceID") or trace.get("traceID"), 32)
        parent = next((r.get("spanID") for r in s.get("references") or []
                       if r.get("refType") == "CHILD_OF" and _hex_id(r.get("traceID"), 32) == trace_id), "")
        start_us, duration_us = int(s.get("startTime", 0)), int(s.get("duration", 0))
        events = []
        for log in s.get("logs") or []:
            fields = log.get("fields") or []
            name = next((str(f.get("value")) for f in fields if f.get("key") == "event"), "")
            events.append({
                "timeUnixNano": str(int(log.get("timestamp", 0)) * 1000),
                "name": name,
                "attributes": [_otlp_attribute(f) for f in fields if f.get("key") != "event"],
            })
        spans.append(SpanRecord(
            trace_id=trace_id,
            span_id=_hex_id(s.get("spanID"), 16),
            parent_span_id=_hex_id(parent, 16) if parent else "",
            name=str(s.get("operationName", "")),
            kind=_SPAN_KINDS.get(str(tags.get("span.kind", {}).get("value", "")).lower(), 0),
            start_time_unix_nano=start_us * 1000,
            end_time_unix_nano=(start_us + duration_us) * 1000,
            attributes={k: _tag_value(t) for k, t in tags.items() if k not in _RESERVED_TAGS},
            events=events,
            resource=resource,
            scope=str(tags.get("otel.scope.name", {}).get("value", "")),
            status_code=_STATUS.get(str(tags.get("otel.status_code", {}).get("value", "UNSET")).upper(), 0),
        ))
    spans.sort(key=lambda r: (r.start_time_unix_nano, r.span_id))
    decisions = [d for span in spans for d in decisions_of(span)]
    return spans, decisions
