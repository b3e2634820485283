"""OTLP JSON written straight from the spans: the text ``json.dumps`` makes of the collector-style
``ExportTraceServiceRequest`` mapping (otlpjson.py documents the format), without building it.

Building the nested dicts (one per attribute and value) and then dumping them was most of the file
exporter's and the spool's cost. This encoder concatenates the same text directly: strings through
the json module's own C string encoder, floats through ``float.__repr__`` (``NaN``/``Infinity`` as
``json.dumps(allow_nan=True)`` writes them), attribute keys and low-cardinality values kept encoded.
The tests compare its output with ``json.dumps`` of the mapping, character for character.

Native twin: with the optional accelerator on (native.py) when an encoder is made, ``span_text``
and ``span`` are ``json_span_text`` / ``json_span_bytes`` of ``decisiontrail_native``
(native/src/json.rs), which write the same text from the same span fields in Rust; for any value
they do not handle they return None and this module's Python path writes the span. The request's
grouping, the resource cache and the paced path (pacing.py) stay Python either way.
"""

from __future__ import annotations

import base64
import json.encoder
from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import Any, Callable

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

from ..native import accelerator
from ..pacing import chunks

__all__ = ["JsonEncoder", "json_value"]

_enc: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
_VALUE_CACHE_KEYS = 256
_VALUE_CACHE_CHARS = 256
_INF, _NINF = float("inf"), float("-inf")


def _float(v: float) -> str:
    if v != v:
        return "NaN"
    if v == _INF:
        return "Infinity"
    if v == _NINF:
        return "-Infinity"
    return float.__repr__(v)


def json_value(v: Any) -> str:
    """The OTLP JSON ``AnyValue`` object of ``v`` (otlpjson.encode_value, dumped)."""
    if isinstance(v, bool):
        return '{"boolValue":true}' if v else '{"boolValue":false}'
    if isinstance(v, int):
        return '{"intValue":"' + int.__repr__(v) + '"}'
    if isinstance(v, float):
        return '{"doubleValue":' + _float(v) + "}"
    if isinstance(v, str):
        return '{"stringValue":' + _enc(v) + "}"
    if isinstance(v, bytes):
        return '{"bytesValue":"' + base64.b64encode(v).decode("ascii") + '"}'
    if isinstance(v, Mapping):
        return '{"kvlistValue":{"values":[' + ",".join(
            '{"key":' + _enc(k) + ',"value":' + json_value(x) + "}" for k, x in v.items()) + "]}}"
    if isinstance(v, Sequence):
        return '{"arrayValue":{"values":[' + ",".join(json_value(x) for x in v) + "]}}"
    return '{"stringValue":' + _enc(str(v)) + "}"


def _hex32(n: int) -> str:
    return '"' + format(n, "032x") + '"'


def _hex16(n: int) -> str:
    return '"' + format(n, "016x") + '"'


class JsonEncoder:
    """Spans to OTLP JSON text (``span_text`` / ``text``) or UTF-8 bytes (``span`` / ``group``, the
    exporter's Encoder interface). One per writer; used from one thread at a time.

    ``native``: None (the default) takes the native accelerator when ``native.accelerator()`` is on
    at construction; True takes it (ImportError when it is not installed); False keeps Python."""

    def __init__(self, *, wire_flags: bool = False, native: bool | None = None) -> None:
        # The files keep the trace flags in ``flags`` (0x100 | trace flags); on the wire, OTLP/HTTP
        # JSON carries what the SDK's exporters send (0x100, | 0x200 for a remote parent).
        self.wire_flags = wire_flags
        self._keys: dict[Any, list[Any]] = {}  # key -> ['{"key":…,"value":', {str value: text} or None]
        self._resources: dict[int, tuple[Resource | None, str]] = {}
        acc = accelerator() if native is None else import_module("decisiontrail_native") if native else None
        self.native = acc is not None
        if acc is not None:
            # Instance attributes over the methods: with the accelerator off, nothing changes.
            self.span_text = self._native_text(acc.json_span_text)  # type: ignore[method-assign,assignment]
            self.span = self._native_bytes(acc.json_span_bytes)  # type: ignore[method-assign,assignment]

    def _native_text(self, fn: Callable[[ReadableSpan, bool], str | None]) -> Callable[[ReadableSpan], str]:
        python, wire_flags = self._python_text, self.wire_flags

        def span_text(s: ReadableSpan) -> str:
            text = fn(s, wire_flags)
            return python(s) if text is None else text
        return span_text

    def _native_bytes(self, fn: Callable[[ReadableSpan, bool], bytes | None]) -> Callable[[ReadableSpan], bytes]:
        python, wire_flags = self._python_text, self.wire_flags

        def span(s: ReadableSpan) -> bytes:
            data = fn(s, wire_flags)
            return python(s).encode("utf-8", "surrogatepass") if data is None else data
        return span

    def attributes(self, attrs: Mapping[str, Any] | None) -> str:
        """The ``[{"key":…,"value":…},…]`` array of ``attrs``."""
        if not attrs:
            return "[]"
        if type(attrs) is not dict and isinstance(attrs, BoundedAttributes):  # (an ABC: isinstance is slow)
            attrs = attrs._dict
        keys = self._keys
        out = []
        for k, v in attrs.items():
            entry = keys.get(k)
            if entry is None:
                entry = [ '{"key":' + _enc(k) + ',"value":', {}]
                if len(keys) < 4096:
                    keys[k] = entry
            if type(v) is str:
                cache = entry[1]
                if cache is not None:
                    kv = cache.get(v)
                    if kv is None:
                        kv = entry[0] + '{"stringValue":' + _enc(v) + "}}"
                        if len(v) > _VALUE_CACHE_CHARS or len(cache) >= _VALUE_CACHE_KEYS:
                            entry[1] = None
                        else:
                            cache[v] = kv
                    out.append(kv)
                else:
                    out.append(entry[0] + '{"stringValue":' + _enc(v) + "}}")
            elif type(v) is float:
                out.append(entry[0] + '{"doubleValue":' + _float(v) + "}}")
            elif type(v) is int:
                out.append(entry[0] + '{"intValue":"' + int.__repr__(v) + '"}}')
            elif type(v) is bool:
                out.append(entry[0] + ('{"boolValue":true}}' if v else '{"boolValue":false}}'))
            else:
                out.append(entry[0] + json_value(v) + "}")
        return "[" + ",".join(out) + "]"

    def span_text(self, s: ReadableSpan) -> str:
        """The OTLP JSON object of one span (the Python path; see __init__ for the native one)."""
        # ReadableSpan's own fields: its properties copy (events, links) or wrap (attributes) them.
        ctx = s._context
        if ctx is None:  # pragma: no cover - the SDK always sets it
            raise ValueError(f"span {s._name!r} has no context")
        flags = 0x100 if self.wire_flags else 0x100 | int(ctx.trace_flags)
        parent = s._parent
        if parent is not None and parent.is_remote:
            flags |= 0x200
        status = s._status
        code = status._status_code._value_
        span_attrs = s._attributes
        if type(span_attrs) is not dict and isinstance(span_attrs, BoundedAttributes):
            span_attrs = span_attrs._dict
        parts = ['{"traceId":', _hex32(ctx.trace_id), ',"spanId":', _hex16(ctx.span_id), ',"name":', _enc(s._name),
                 ',"kind":', str(s._kind._value_ + 1), ',"startTimeUnixNano":"', str(s._start_time or 0),
                 '","endTimeUnixNano":"', str(s._end_time or 0), '","attributes":', self.attributes(span_attrs),
                 ',"flags":', str(flags), ',"status":{"code":', str(code)]
        if status.description is not None:
            parts.append(',"message":')
            parts.append(_enc(status.description))
        parts.append("}")
        if parent is not None:
            parts.append(',"parentSpanId":')
            parts.append(_hex16(parent.span_id))
        if ctx.trace_state:
            parts.append(',"traceState":')
            parts.append(_enc(ctx.trace_state.to_header()))
        events = s._events
        if events:
            attrs = self.attributes
            parts.append(',"events":[')
            parts.append(",".join(['{"timeUnixNano":"' + str(e._timestamp) + '","name":' + _enc(e._name)
                                   + ',"attributes":' + attrs(e._attributes) + "}" for e in events]))
            parts.append("]")
        links = s._links
        if links:
            parts.append(',"links":[')
            parts.append(",".join(['{"traceId":' + _hex32(l.context.trace_id) + ',"spanId":'
                                   + _hex16(l.context.span_id) + ',"attributes":' + self.attributes(l.attributes)
                                   + "}" for l in links]))
            parts.append("]")
        dropped = events.dropped if type(events) is not tuple and isinstance(events, BoundedList) else 0
        if dropped:
            parts.append(',"droppedEventsCount":')
            parts.append(str(dropped))
        parts.append("}")
        return "".join(parts)

    _python_text = span_text

    def _resource(self, res: Resource | None) -> str:
        hit = self._resources.get(id(res))
        if hit is not None and hit[0] is res:
            return hit[1]
        text = '{"resource":{"attributes":' + self.attributes(res.attributes if res else {}) + '},"scopeSpans":['
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(res)] = (res, text)
        return text

    def _assemble(self, spans: Sequence[ReadableSpan], encoded: Sequence[Any]) -> list[Any]:
        """The request as a list of header strings and the encoded spans, grouped by resource and
        scope (name, version) in first-seen order."""
        by_resource: dict[int, tuple[Resource | None, dict[tuple[str, str | None], list[Any]]]] = {}
        for s, e in zip(spans, encoded):
            res = s._resource  # the fields, not their properties
            entry = by_resource.get(id(res))
            if entry is None:
                entry = by_resource[id(res)] = (res, {})
            scope = s._instrumentation_scope
            key = (scope.name, scope.version) if scope else ("", None)
            entry[1].setdefault(key, []).append(e)
        out: list[Any] = ['{"resourceSpans":[']
        for i, (group_res, scopes) in enumerate(by_resource.values()):
            out.append(("," if i else "") + self._resource(group_res))
            for j, ((name, version), items) in enumerate(scopes.items()):
                head = ("," if j else "") + '{"scope":{"name":' + _enc(name)
                if version:
                    head += ',"version":' + _enc(version)
                out.append(head + '},"spans":[')
                for k, item in enumerate(items):
                    if k:
                        out.append(",")
                    out.append(item)
                out.append("]}")
            out.append("]}")
        out.append("]}")
        return out

    def text(self, spans: Sequence[ReadableSpan], *, paced: bool = False) -> str:
        """One OTLP JSON line (without the newline) for ``spans``. ``paced``: encoded in chunks,
        giving the GIL up between them (pacing.py), as the export thread does."""
        if not paced:
            return "".join(self._assemble(spans, [self.span_text(s) for s in spans]))
        span_text = self.span_text
        texts: list[str] = []
        for part in chunks(spans):
            texts.extend([span_text(s) for s in part])
        return "".join(self._assemble(spans, texts))

    # -- the exporter's Encoder interface (otlp.py): UTF-8 bytes -----------------------------------
    def span(self, s: ReadableSpan) -> bytes:
        return self.span_text(s).encode("utf-8", "surrogatepass")

    def group(self, spans: Sequence[ReadableSpan], encoded: Sequence[bytes]) -> bytes:
        return b"".join(p.encode("utf-8") if isinstance(p, str) else p for p in self._assemble(spans, encoded))

    def overhead(self, s: ReadableSpan) -> int:
        return len(self._resource(s.resource)) + 64 + len(s.instrumentation_scope.name if s.instrumentation_scope
                                                           else "")
