"""OTLP protobuf, encoded straight from the SDK's spans: the bytes of an ``ExportTraceServiceRequest``.

The SDK's OTLP exporters build one Python protobuf message per span, event, attribute and value
(``encode_spans``), then serialise them; for decision spans (a dozen attributes per event) that
construction is most of the export thread's work. This encoder writes the wire format directly:

- the resource and the instrumentation scope are encoded once and kept (keyed by the objects);
- each attribute key's bytes (tag, length, UTF-8) are computed once and kept;
- values of low-cardinality keys (model name and version, label, chain id…) are kept encoded too:
  a key whose values keep changing (ids, hashes, inputs) stops being cached after a few hundred;
- nothing else is built but the bytes: no message objects.

The output is the message the SDK's ``encode_spans(spans)`` builds, field for field (the tests parse
both and compare), so the collector and everything after it see exactly what they saw before.

With the optional native accelerator on when the encoder is made (native.py), each span's message is
written by its native twin, ``decisiontrail_native.encode_span`` (native/src/proto.rs): the same
bytes, from the same fields; for anything it does not handle it returns None and ``span`` below
writes the span. Requests (``group``), the resource and scope and their caches stay here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ..native import accelerator

__all__ = ["ProtoEncoder", "varint", "encode_any_value", "parse_partial_success"]

_VARINTS = [bytes((i,)) if i < 0x80 else bytes((i & 0x7F | 0x80, i >> 7)) for i in range(1 << 14)]
_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack
_pack_i = struct.Struct("<I").pack
_pack_times = struct.Struct("<BQBQ").pack  # Span start and end times: tag, fixed64, tag, fixed64
_VALUE_CACHE_KEYS = 256    # distinct values a key may have before its values stop being cached
_VALUE_CACHE_CHARS = 256   # longer values are never cached


def varint(n: int) -> bytes:
    if 0 <= n < 16384:
        return _VARINTS[n]
    if 0 < n < 1 << 28:  # chain seqs, counts, lengths: three or four bytes without the loop
        if n < 1 << 21:
            return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21))
    if n < 0:
        n &= 0xFFFFFFFFFFFFFFFF  # int64: two's complement, ten bytes
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: tag, length, body."""
    n = len(body)
    return tag + (_VARINTS[n] if n < 16384 else varint(n)) + body


def _utf8(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: protobuf strings must be valid UTF-8
        return s.encode("utf-8", "replace")


def encode_any_value(v: Any) -> bytes:
    """The body of an ``AnyValue`` message for ``v``, as the SDK's ``_encode_value`` makes it."""
    t = type(v)
    if t is str:
        return _field(b"\x0a", _utf8(v))
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        return b"\x18" + varint(v)
    if t is float:
        return b"\x21" + _pack_d(v)
    if v is None:
        return b""
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, str):
        return _field(b"\x0a", _utf8(v))
    if isinstance(v, int):
        return b"\x18" + varint(int(v))
    if isinstance(v, float):
        return b"\x21" + _pack_d(float(v))
    if isinstance(v, bytes):
        return _field(b"\x3a", v)
    if isinstance(v, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", encode_any_value(x)) for x in v]))
    if isinstance(v, Mapping):
        return _field(b"\x32", b"".join([_field(b"\x0a", _key_value(_field(b"\x0a", _utf8(str(k))), x))
                                         for k, x in v.items()]))
    raise TypeError(f"invalid attribute value type {type(v).__name__}")


def _key_value(key: bytes, v: Any) -> bytes:
    return key + _field(b"\x12", encode_any_value(v))


class ProtoEncoder:
    """Encodes spans to OTLP protobuf bytes. One per exporter; used from one thread at a time."""

    def __init__(self) -> None:
        self._keys: dict[Any, list[Any]] = {}  # key -> [key bytes, {str value: KeyValue bytes} or None, n]
        self._resources: dict[int, tuple[Resource | None, bytes]] = {}
        self._names: dict[str, bytes] = {}        # span name -> its field
        self._event_names: dict[str, bytes] = {}  # event name -> its field
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}
        native = accelerator()
        if native is not None:  # the instance's own ``span``: with it off, nothing changes at all
            self._native_span = native.encode_span
            self.span = self._span_native  # type: ignore[method-assign]

    def _span_native(self, s: ReadableSpan) -> bytes:
        """``span``, written natively; the Python path for whatever the native encoder declines."""
        b: bytes | None = self._native_span(s)
        return b if b is not None else ProtoEncoder.span(self, s)

    # -- attributes ----------------------------------------------------------------------------
    def _attributes(self, tag: bytes, attrs: Mapping[str, Any] | None) -> bytes:
        """Each attribute as a repeated ``KeyValue`` field ``tag``."""
        if not attrs:
            return b""
        keys = self._keys
        out: list[bytes] = []
        add = out.extend
        V = _VARINTS
        for k, v in attrs.items():
            entry = keys.get(k)
            if entry is None:
                entry = self._key(k)
            if type(v) is str:
                cache = entry[1]
                if cache is not None:
                    kv = cache.get(v)
                    if kv is not None:
                        add((tag, V[len(kv)], kv) if len(kv) < 16384 else (tag, varint(len(kv)), kv))
                        continue
                try:
                    b = v.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: protobuf strings must be valid UTF-8
                    b = v.encode("utf-8", "replace")
                n = len(b)
                if n < 16000:
                    vn = V[n]
                    m = n + 1 + len(vn)      # AnyValue: tag, length, bytes
                    vm = V[m]
                    kvlen = entry[2] + len(vm) + m  # KeyValue: key field, value tag, length, AnyValue
                    if cache is not None:
                        kv = entry[0] + b"\x12" + vm + b"\x0a" + vn + b
                        if n > _VALUE_CACHE_CHARS or len(cache) >= _VALUE_CACHE_KEYS:
                            entry[1] = None  # high cardinality (ids, hashes, inputs): stop caching this key
                        else:
                            cache[v] = kv
                        add((tag, V[kvlen] if kvlen < 16384 else varint(kvlen), kv))
                    else:
                        add((tag, V[kvlen] if kvlen < 16384 else varint(kvlen), entry[0], b"\x12", vm, b"\x0a", vn, b))
                    continue
                kv = entry[0] + _field(b"\x12", _field(b"\x0a", b))
            elif type(v) is float:
                kv = entry[0] + b"\x12\x09\x21" + _pack_d(v)
            elif type(v) is int and v >= 0:
                vb = V[v] if v < 16384 else varint(v)
                kv = entry[0] + b"\x12" + V[len(vb) + 1] + b"\x18" + vb
            elif type(v) is bool:
                kv = entry[0] + (b"\x12\x02\x10\x01" if v else b"\x12\x02\x10\x00")
            else:
                try:
                    kv = entry[0] + _field(b"\x12", encode_any_value(v))
                except TypeError:  # the SDK logs and skips such an attribute
                    continue
            n = len(kv)
            add((tag, V[n] if n < 16384 else varint(n), kv))
        return b"".join(out)

    def _key(self, k: Any) -> list[Any]:
        kb = _field(b"\x0a", _utf8(str(k)))
        entry: list[Any] = [kb, {}, len(kb) + 1]  # key field, value cache, key field + value tag length
        if len(self._keys) < 4096:
            self._keys[k] = entry
        return entry

    # -- resource and scope, once each -----------------------------------------------------------
    def _resource(self, res: Resource | None) -> bytes:
        """``ResourceSpans.resource`` (field 1), whole."""
        hit = self._resources.get(id(res))
        if hit is not None and hit[0] is res:
            return hit[1]
        body = self._attributes(b"\x0a", res.attributes if res is not None else None)
        enc = _field(b"\x0a", body)
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(res)] = (res, enc)  # the reference keeps the id from being reused
        return enc

    def _scope(self, scope: InstrumentationScope | None) -> bytes:
        """``ScopeSpans.scope`` (field 1), whole."""
        hit = self._scopes.get(id(scope))
        if hit is not None and hit[0] is scope:
            return hit[1]
        body = b""
        if scope is not None:
            if scope.name:
                body += _field(b"\x0a", _utf8(scope.name))
            if scope.version:
                body += _field(b"\x12", _utf8(scope.version))
            body += self._attributes(b"\x1a", scope.attributes)
        enc = _field(b"\x0a", body)
        if len(self._scopes) > 256:
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, enc)
        return enc

    # -- spans ---------------------------------------------------------------------------------
    def span(self, s: ReadableSpan) -> bytes:
        """The ``Span`` message body of ``s``, as the SDK's ``_encode_span`` makes it."""
        # ReadableSpan's own fields: its properties copy (events, links) or wrap (attributes) them.
        ctx = s._context
        if ctx is None:  # pragma: no cover - the SDK always sets it
            raise ValueError(f"span {s.name!r} has no context")
        attrs = self._attributes
        span_attrs = s._attributes
        parent = s._parent
        parts = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08", ctx.span_id.to_bytes(8, "big")]
        ts = ctx.trace_state
        if ts:
            parts.append(_field(b"\x1a", _utf8(",".join(f"{k}={v}" for k, v in ts.items()))))
        if parent is not None:
            parts.append(b"\x22\x08")
            parts.append(parent.span_id.to_bytes(8, "big"))
        name = self._names.get(s._name)
        if name is None:
            name = _field(b"\x2a", _utf8(s._name)) if s._name else b""
            if len(self._names) < 4096:
                self._names[s._name] = name
        parts.append(name)
        parts.append(_KINDS[s._kind._value_])
        start, end = s._start_time, s._end_time
        if start and end:
            parts.append(_pack_times(0x39, start, 0x41, end))
        else:
            if start:
                parts.append(b"\x39" + _pack_q(start))
            if end:
                parts.append(b"\x41" + _pack_q(end))
        if type(span_attrs) is not dict and isinstance(span_attrs, BoundedAttributes):  # (an ABC: slow)
            if span_attrs.dropped:
                parts.append(attrs(b"\x4a", span_attrs._dict) + b"\x50" + varint(span_attrs.dropped))
            else:
                parts.append(attrs(b"\x4a", span_attrs._dict))
        else:
            parts.append(attrs(b"\x4a", span_attrs))
        events = s._events
        if events:
            names = self._event_names
            for e in events:
                ea = e._attributes
                ename = names.get(e._name)
                if ename is None:
                    ename = _field(b"\x12", _utf8(e._name)) if e._name else b""
                    if len(names) < 4096:
                        names[e._name] = ename
                body = (b"\x09" + _pack_q(e._timestamp) + ename) if e._timestamp else ename
                if type(ea) is not dict and isinstance(ea, BoundedAttributes):
                    body += attrs(b"\x1a", ea._dict)
                    if ea.dropped:
                        body += b"\x20" + varint(ea.dropped)
                else:
                    body += attrs(b"\x1a", ea)
                n = len(body)
                parts.append(b"\x5a" + (_VARINTS[n] if n < 16384 else varint(n)) + body)
        if type(events) is not tuple and isinstance(events, BoundedList) and events.dropped:  # (even all of them)
            parts.append(b"\x60" + varint(events.dropped))
        links = s._links
        if links:
            for link in links:
                lc = link.context
                body = b"\x0a\x10" + lc.trace_id.to_bytes(16, "big") + b"\x12\x08" + lc.span_id.to_bytes(8, "big") \
                    + attrs(b"\x22", link.attributes)
                if link.dropped_attributes:
                    body += b"\x28" + varint(link.dropped_attributes)
                body += b"\x35" + _pack_i(0x300 if lc.is_remote else 0x100)
                parts.append(_field(b"\x6a", body))
        if type(links) is not tuple and isinstance(links, BoundedList) and links.dropped:
            parts.append(b"\x70" + varint(links.dropped))
        status = s._status
        if status is not None:
            code = status._status_code._value_
            if code or status._description:
                body = _field(b"\x12", _utf8(status.description)) if status.description else b""
                if code:
                    body += b"\x18" + varint(code)
                parts.append(_field(b"\x7a", body))
            else:
                parts.append(b"\x7a\x00")
        parts.append(b"\x85\x01\x00\x03\x00\x00" if parent is not None and parent.is_remote
                     else b"\x85\x01\x00\x01\x00\x00")
        return b"".join(parts)

    def group(self, spans: Sequence[ReadableSpan], encoded: Sequence[bytes]) -> bytes:
        """An ``ExportTraceServiceRequest`` of already encoded spans, grouped by resource and scope
        (first-seen order, as the SDK groups them). Lengths are summed, the bytes joined once."""
        by_resource: dict[int, tuple[Resource | None, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]] = {}
        last_key, last = (-1, -1), None
        for s, b in zip(spans, encoded):
            res, scope = s._resource, s._instrumentation_scope
            key = (id(res), id(scope))
            if key != last_key:
                entry = by_resource.get(key[0])
                if entry is None:
                    entry = by_resource[key[0]] = (res, {})
                last = entry[1].get(key[1])
                if last is None:
                    last = entry[1][key[1]] = (scope, [])
                last_key = key
            last[1].append(b)  # type: ignore[index]
        out: list[bytes] = []
        V = _VARINTS
        for group_res, scopes in by_resource.values():
            body: list[bytes] = [self._resource(group_res)]
            for scope, spans_b in scopes.values():
                ss: list[bytes] = [self._scope(scope)]
                for b in spans_b:
                    n = len(b)
                    ss.append(b"\x12" + (V[n] if n < 16384 else varint(n)))
                    ss.append(b)
                if scope is not None and scope.schema_url:
                    ss.append(_field(b"\x1a", _utf8(scope.schema_url)))
                n = sum(map(len, ss))
                body.append(b"\x12" + varint(n))
                body.extend(ss)
            if group_res is not None and group_res.schema_url:
                body.append(_field(b"\x1a", _utf8(group_res.schema_url)))
            out.append(b"\x0a" + varint(sum(map(len, body))))
            out.extend(body)
        return b"".join(out)

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """One ``ExportTraceServiceRequest`` holding every span."""
        return self.group(spans, [self.span(s) for s in spans])

    def overhead(self, s: ReadableSpan) -> int:
        """Bytes a request spends on the resource and scope of ``s`` (and their headers)."""
        return len(self._resource(s.resource)) + len(self._scope(s.instrumentation_scope)) + 12


# Span.kind field (6), by the SDK's SpanKind value (INTERNAL=0 … CONSUMER=4; OTLP's start at 1).
_KINDS = [b"\x30" + bytes((v + 1,)) for v in range(5)]


def parse_partial_success(body: bytes) -> tuple[int, str]:
    """(rejected_spans, error_message) of an ``ExportTraceServiceResponse``; (0, "") when absent."""
    rejected, message = 0, ""
    for field, value in _fields(body):
        if field == 1 and isinstance(value, bytes):
            for f, v in _fields(value):
                if f == 1 and isinstance(v, int):
                    rejected = v - (1 << 64) if v >= 1 << 63 else v
                elif f == 2 and isinstance(v, bytes):
                    message = v.decode("utf-8", "replace")
    return rejected, message


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field of a protobuf message: varints as int, length-delimited as
    bytes, fixed fields as int. Raises ValueError on a malformed message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _read_varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
            yield field, value
        elif wire == 2:
            length, i = _read_varint(buf, i)
            if i + length > n:
                raise ValueError("truncated protobuf message")
            yield field, buf[i:i + length]
            i += length
        elif wire == 1:
            yield field, int.from_bytes(buf[i:i + 8], "little")
            i += 8
        elif wire == 5:
            yield field, int.from_bytes(buf[i:i + 4], "little")
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
