"""OTLP JSON: spans to and from the lines the Collector's file exporter writes.

One line is one ``ExportTraceServiceRequest`` in the protobuf JSON mapping as the collector's pdata
writes it: camelCase keys, trace and span ids as lower-case hex, 64-bit integers as strings, enums
(span kind, status code) as numbers. Encoding by hand (not through protobuf's json_format, which
writes ids as base64) keeps the embedded file store and the collector's files readable by one reader.
:func:`spans_from_otlp_json` is the inverse: it rebuilds ReadableSpans from such a line, so spooled
spans can be exported again (spool.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from ..native import accelerator
from ..pacing import chunks
from .json_encoder import JsonEncoder
from .paced_json import loads_paced

__all__ = ["spans_to_otlp_json", "spans_to_otlp_mapping", "spans_from_otlp_json", "JsonEncoder", "encode_value",
           "decode_value", "decode_attributes"]


def encode_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bytes):
        return {"bytesValue": base64.b64encode(v).decode("ascii")}
    if isinstance(v, Mapping):
        return {"kvlistValue": {"values": encode_attributes(v)}}
    if isinstance(v, Sequence):
        return {"arrayValue": {"values": [encode_value(x) for x in v]}}
    return {"stringValue": str(v)}


def encode_attributes(attrs: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": k, "value": encode_value(v)} for k, v in (attrs or {}).items()]


def decode_value(v: Mapping[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])  # the collector writes 1.0 as 1: keep it a float
    if "arrayValue" in v:
        return [decode_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return decode_attributes(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def decode_attributes(attrs: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: decode_value(a.get("value", {})) for a in attrs or ()}


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def _span(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.context
    if ctx is None:  # pragma: no cover - the SDK always sets it
        raise ValueError(f"span {s.name!r} has no context")
    out: dict[str, Any] = {
        "traceId": _hex(ctx.trace_id, 32),
        "spanId": _hex(ctx.span_id, 16),
        "name": s.name,
        "kind": s.kind.value + 1,  # the SDK's SpanKind starts at INTERNAL=0, OTLP's at INTERNAL=1
        "startTimeUnixNano": str(s.start_time or 0),
        "endTimeUnixNano": str(s.end_time or 0),
        "attributes": encode_attributes(s.attributes),
        "flags": 0x100 | int(ctx.trace_flags),
        "status": {"code": s.status.status_code.value} if s.status.description is None
        else {"code": s.status.status_code.value, "message": s.status.description},
    }
    if s.parent is not None:
        out["parentSpanId"] = _hex(s.parent.span_id, 16)
        if s.parent.is_remote:
            out["flags"] |= 0x200
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if s.events:
        out["events"] = [
            {"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": encode_attributes(e.attributes)}
            for e in s.events
        ]
    if s.links:
        out["links"] = [
            {"traceId": _hex(l.context.trace_id, 32), "spanId": _hex(l.context.span_id, 16),
             "attributes": encode_attributes(l.attributes)}
            for l in s.links
        ]
    dropped = s.dropped_events
    if dropped:
        out["droppedEventsCount"] = dropped
    return out


def spans_to_otlp_mapping(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The ``ExportTraceServiceRequest`` mapping of ``spans``, grouped by resource and scope: the
    format's definition. :func:`spans_to_otlp_json` writes its JSON text without building it."""
    by_resource: dict[int, tuple[Any, dict[tuple[str, str | None], list[dict[str, Any]]]]] = {}
    for s in spans:
        res = s.resource
        entry = by_resource.setdefault(id(res), (res, {}))
        scope = s.instrumentation_scope
        key = (scope.name, scope.version) if scope else ("", None)
        entry[1].setdefault(key, []).append(_span(s))
    resource_spans = []
    for res, scopes in by_resource.values():
        scope_spans = []
        for (name, version), encoded in scopes.items():
            sc: dict[str, Any] = {"name": name}
            if version:
                sc["version"] = version
            scope_spans.append({"scope": sc, "spans": encoded})
        resource_spans.append({
            "resource": {"attributes": encode_attributes(res.attributes if res else {})},
            "scopeSpans": scope_spans,
        })
    return {"resourceSpans": resource_spans}


_encoder = JsonEncoder(native=False)
_native_encoder: list[JsonEncoder] = []  # made on first use with the accelerator on


def spans_to_otlp_json(spans: Sequence[ReadableSpan], *, paced: bool = False) -> str:
    """One OTLP JSON line (without the newline) for ``spans``: ``json.dumps`` of
    :func:`spans_to_otlp_mapping` (compact, not ASCII-escaped, NaN allowed), character for character.
    ``paced``: the export thread's way, giving the GIL up between chunks of spans (pacing.py).
    With the native accelerator on (native.py), spans are written by its twin: the same text."""
    if accelerator() is None:
        return _encoder.text(spans, paced=paced)
    if not _native_encoder:
        _native_encoder.append(JsonEncoder(native=True))
    return _native_encoder[0].text(spans, paced=paced)


def _context(trace_id: str, span_id: str, flags: int, trace_state: str | None = None) -> SpanContext:
    return SpanContext(
        trace_id=int(trace_id, 16), span_id=int(span_id, 16), is_remote=bool(flags & 0x200),
        trace_flags=TraceFlags(flags & 0xFF),
        trace_state=TraceState.from_header([trace_state]) if trace_state else None,
    )


def _bounded(items: list[Any], dropped: int) -> Sequence[Any]:
    if not dropped:
        return tuple(items)
    out: BoundedList[Any] = BoundedList(None)  # carries the original droppedEventsCount / droppedLinksCount
    out.extend(items)
    out.dropped = dropped
    return out


def _readable(s: Mapping[str, Any], resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    flags = int(s.get("flags", 0))
    trace_id = s["traceId"]
    parent_id = s.get("parentSpanId")
    status = s.get("status") or {}
    events = [Event(e.get("name", ""), decode_attributes(e.get("attributes")), int(e.get("timeUnixNano", 0)))
              for e in s.get("events", ())]
    links = [Link(_context(l["traceId"], l["spanId"], int(l.get("flags", 0)), l.get("traceState")),
                  decode_attributes(l.get("attributes")))
             for l in s.get("links", ())]
    return ReadableSpan(
        name=s.get("name", ""),
        context=_context(trace_id, s["spanId"], flags, s.get("traceState")),
        # Only is_remote of the parent is known (from the span's flags); the SDK keeps the same.
        parent=_context(trace_id, parent_id, flags & 0x200) if parent_id else None,
        resource=resource,
        attributes=decode_attributes(s.get("attributes")),
        events=_bounded(events, int(s.get("droppedEventsCount", 0))),
        links=_bounded(links, int(s.get("droppedLinksCount", 0))),
        kind=SpanKind(max(int(s.get("kind", 1)) - 1, 0)),
        status=Status(StatusCode(int(status.get("code", 0))), status.get("message")),
        start_time=int(s.get("startTimeUnixNano", 0)),
        end_time=int(s.get("endTimeUnixNano", 0)),
        instrumentation_scope=scope,
    )


def spans_from_otlp_json(line: str | bytes | Mapping[str, Any]) -> list[ReadableSpan]:
    """The spans of one OTLP JSON line (or its parsed object), as ReadableSpans an exporter takes.

    Inverse of :func:`spans_to_otlp_json`: ids, times, kind, status, attributes, events, links,
    resource and scope round-trip. Raises ValueError (or KeyError for a span without ids) on a line
    that is not an ``ExportTraceServiceRequest``.
    """
    msg = loads_paced(line) if isinstance(line, (str, bytes)) else line  # parsed span by span, pausing
    if not isinstance(msg, Mapping):
        raise ValueError("not an OTLP JSON object")
    out: list[ReadableSpan] = []
    for rs in msg.get("resourceSpans", ()):
        resource = Resource(decode_attributes((rs.get("resource") or {}).get("attributes")))
        for ss in rs.get("scopeSpans", ()):
            sc = ss.get("scope") or {}
            scope = InstrumentationScope(sc.get("name", ""), sc.get("version") or None)
            for part in chunks(ss.get("spans", ())):  # the replay thread gives the GIL up between chunks
                out.extend(_readable(s, resource, scope) for s in part)
    return out
