"""The native twin of ProtoEncoder.span (decisiontrail_native.encode_span, native/src/proto.rs):
byte for byte the Python path's ``Span`` message over generated spans of every shape, the SDK's
own message too, and ``None`` (the Python path's bytes) for everything it does not handle."""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import decisiontrail_native
import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from decisiontrail.exporters.otlp_proto import ProtoEncoder
from decisiontrail.native import use_native

encode_span = decisiontrail_native.encode_span
RES = Resource({"service.name": "native-proto"})
SCOPE = InstrumentationScope("decisiontrail", "0.1.0")

STRINGS = ["", "a", "approve", "Zoë ✓", "emoji 🎉🧪", "line\u2028sep\u2029", "tab\tnl\ncr\r\"q\"\\", "\x00\x01\x1f\x7f",
           "日本語テキスト", "x" * 127, "y" * 128, "z" * 16383, "é" * 9000, "w" * 20_000]
INTS = [0, 1, 127, 128, 16383, 16384, 1 << 21, 1 << 35, (1 << 63) - 1, -1, -128, -(1 << 63)]
FLOATS = [0.0, -0.0, 1.0, 0.81, 1e16, 1e-7, 5e-324, 1.7976931348623157e308, -2.5, math.nan, math.inf, -math.inf]


@pytest.fixture
def encoders() -> Iterator[tuple[ProtoEncoder, ProtoEncoder]]:
    """(Python path, native) encoders, whatever DECISIONTRAIL_NATIVE says."""
    use_native(False)
    python = ProtoEncoder()
    use_native(True)
    try:
        native = ProtoEncoder()
    finally:
        use_native(False)
    yield python, native
    use_native(None)


def scalar(r: random.Random, kind: int | None = None) -> Any:
    kind = r.randrange(5) if kind is None else kind
    if kind == 0:
        return r.choice(STRINGS)
    if kind == 1:
        return r.random() < 0.5
    if kind == 2:
        return r.choice(INTS + [r.randrange(-(1 << 63), 1 << 63)])
    if kind == 3:
        return r.choice(FLOATS + [r.uniform(-1e6, 1e6)])
    return r.choice([b"", b"\x00\xff raw", bytes(range(256))])


def value(r: random.Random, depth: int = 0) -> Any:
    kind = r.randrange(10)
    if kind < 6 or depth >= 3:
        return scalar(r)
    if kind == 6:  # homogeneous, as the SDK keeps them
        of = r.randrange(5)
        return tuple(scalar(r, of) for _ in range(r.randrange(5)))
    if kind == 7:
        return [scalar(r) for _ in range(r.randrange(4))]
    if kind == 8:
        return {f"k{i}": value(r, depth + 1) for i in range(r.randrange(4))} if r.random() < 0.8 else None
    return [value(r, depth + 1) for _ in range(r.randrange(3))]


def attributes(r: random.Random, n: int) -> Any:
    attrs = {r.choice(["model.name", "decision.id", "k", "ключ", "🔑", "a.b.c"]) + str(i): value(r) for i in range(n)}
    shape = r.randrange(4)
    if shape == 0:
        return None if not attrs else attrs
    if shape == 1:
        return BoundedAttributes(max(n - r.randrange(3), 0), attrs, immutable=r.random() < 0.5)  # some dropped
    return attrs


def context(r: random.Random, remote: bool = False, state: bool = False) -> SpanContext:
    ts = TraceState([("vendor", "v1"), ("b", "2-x")]) if state else None
    return SpanContext(r.getrandbits(128) or 1, r.getrandbits(64) or 1, remote, TraceFlags(r.randrange(2)), ts)


def sequence(r: random.Random, items: list[Any]) -> Any:
    shape = r.randrange(3)
    if shape == 0:
        return tuple(items)
    if shape == 1:
        return items
    bounded = BoundedList(max(len(items) - r.randrange(3), 0))
    bounded.extend(items)
    return bounded


def generated_span(r: random.Random) -> ReadableSpan:
    events = [Event(r.choice(["model.decision", "", "décision ✓"]), attributes(r, r.randrange(8)),
                    r.choice([0, 1, 1_700_000_000_000_000_000 + r.randrange(10**9)])) for _ in range(r.randrange(5))]
    links = [Link(context(r, remote=r.random() < 0.5), attributes(r, r.randrange(3))) for _ in range(r.randrange(3))]
    parent = r.choice([None, context(r), context(r, remote=True)])
    status = r.choice([Status(StatusCode.UNSET), Status(StatusCode.OK), Status(StatusCode.ERROR),
                       Status(StatusCode.ERROR, "boom ✓"), Status(StatusCode.ERROR, "")])
    start = r.choice([None, 0, 1, 1_700_000_000_000_000_000])
    return ReadableSpan(r.choice(["predict", "", "POST /score ✓"]), context(r, state=r.random() < 0.2), parent, RES,
                        attributes(r, r.randrange(12)), sequence(r, events), sequence(r, links),
                        r.choice(list(SpanKind)), status=status, start_time=start,
                        end_time=r.choice([None, 0, (start or 0) + 5]), instrumentation_scope=SCOPE)


def show(s: ReadableSpan) -> str:
    return repr((s._name, s._attributes, [(e._name, e._attributes) for e in s._events], s._links, s._status))


def sdk_spans() -> list[ReadableSpan]:
    """Spans as the SDK's own Span makes them: BoundedAttributes with dropped and truncated values,
    BoundedLists of events and links."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RES, span_limits=SpanLimits(max_span_attributes=4, max_events=2,
                                                                   max_event_attributes=3, max_links=1,
                                                                   max_attribute_length=10))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("sdk", "1.0")
    r = random.Random(7)
    for i in range(20):
        with tracer.start_as_current_span("outer", kind=SpanKind.SERVER, links=[Link(context(r), {"l": i})] * 2):
            with tracer.start_as_current_span(f"inner {i}", attributes={f"a{j}": value(r) for j in range(i % 7)}) as s:
                for j in range(i % 4):
                    s.add_event("model.decision", {f"e{k}": scalar(r) for k in range(j + 2)})
                s.set_status(Status(StatusCode.ERROR, "failed") if i % 3 else Status(StatusCode.OK))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_generated_spans_are_the_python_paths_bytes(encoders: tuple[ProtoEncoder, ProtoEncoder]) -> None:
    python, native = encoders
    r = random.Random(20261201)
    spans = [generated_span(r) for _ in range(1500)] + sdk_spans()
    for s in spans:
        b = encode_span(s)
        assert b is not None, show(s)
        assert b == python.span(s), show(s)
        assert native.span(s) == b
    for i in range(0, len(spans), 100):  # whole requests: the SDK's encoder makes the same message
        batch = spans[i:i + 100]
        ours = native.encode(batch)
        assert ours == python.encode(batch)
        sdk = encode_spans(batch).SerializeToString()
        assert ours == sdk
        assert ExportTraceServiceRequest.FromString(ours).SerializeToString() == sdk


def test_a_decision_span_parses_as_the_sdks_span_message() -> None:
    s = ReadableSpan("predict", context(random.Random(1), state=True), context(random.Random(2), remote=True), RES,
                     BoundedAttributes(2, {"decision.audit": True, "model.name": "credit", "x": 1}),
                     (Event("model.decision", {"decision.score": 0.81, "decision.label": "approve",
                                               "decision.reason_codes": ("R1", "R2"), "n": -3}, 9),),
                     kind=SpanKind.CLIENT, status=Status(StatusCode.ERROR, "boom"), start_time=5, end_time=7)
    b = encode_span(s)
    assert b is not None
    m = SpanMessage.FromString(b)
    assert m.name == "predict" and m.kind == SpanMessage.SPAN_KIND_CLIENT
    assert m.trace_state == "vendor=v1,b=2-x" and m.flags == 0x300
    assert m.start_time_unix_nano == 5 and m.end_time_unix_nano == 7
    assert [a.key for a in m.attributes] == ["model.name", "x"] and m.dropped_attributes_count == 1
    (e,) = m.events
    assert e.name == "model.decision" and e.time_unix_nano == 9
    values = {a.key: a.value for a in e.attributes}
    assert values["decision.score"].double_value == 0.81 and values["n"].int_value == -3
    assert [v.string_value for v in values["decision.reason_codes"].array_value.values] == ["R1", "R2"]
    assert m.status.code == 2 and m.status.message == "boom"


class Text(str):
    pass


class Number(float):
    pass


class Odd:
    def __str__(self) -> str:
        return "odd"


def _nested(depth: int) -> Any:
    v: Any = "leaf"
    for _ in range(depth):
        v = [v]
    return v


FALLBACKS: list[tuple[str, dict[str, Any]]] = [
    ("lone surrogate value", {"attributes": {"s": "bad \ud800 text"}}),
    ("lone surrogate key", {"attributes": {"k\udc00": "v"}}),
    ("lone surrogate in a list", {"attributes": {"l": ["ok", "\udfff"]}}),
    ("str subclass", {"attributes": {"s": Text("sub")}}),
    ("float subclass", {"attributes": {"f": Number(1.5)}}),
    ("int beyond int64", {"attributes": {"i": 1 << 63}}),
    ("int beyond uint64", {"attributes": {"i": 1 << 70}}),
    ("int below int64", {"attributes": {"i": -(1 << 63) - 1}}),
    ("odd type (the SDK skips it)", {"attributes": {"o": Odd(), "kept": 1}}),
    ("a set", {"attributes": {"s": {1, 2}}}),
    ("non-str key", {"attributes": {7: "seven"}}),
    ("mapping proxy", {"attributes": MappingProxyType({"a": 1})}),
    ("ordered dict", {"attributes": OrderedDict(a=1)}),
    ("nested deeper than the native limit", {"attributes": {"deep": _nested(40)}}),
    ("surrogate in an event name", {"events": (Event("e\ud800", {}, 1),)}),
    ("str subclass as span name", {"name": Text("predict")}),
    ("status subclass", {"status": type("MyStatus", (Status,), {})(StatusCode.OK)}),
    ("link subclass", {"links": (type("MyLink", (Link,), {})(SpanContext(1, 2, False)),)}),
    ("bool as a time", {"start_time": True}),
    ("events as a generator's list subclass", {"events": type("Events", (list,), {})([Event("e", {}, 1)])}),
]


@pytest.mark.parametrize("case", [c for c, _ in FALLBACKS])
def test_what_it_does_not_handle_takes_the_python_path(case: str, encoders: tuple[ProtoEncoder, ProtoEncoder]
                                                       ) -> None:
    python, native = encoders
    fields: dict[str, Any] = {"name": "s", "context": SpanContext(1 << 100, 99, False), "resource": RES,
                              "instrumentation_scope": SCOPE, "start_time": 1, "end_time": 2}
    fields.update(dict(FALLBACKS)[case])
    s = ReadableSpan(**fields)
    assert encode_span(s) is None
    expected = python.span(s)
    assert native.span(s) == expected  # the Python path's bytes (a surrogate replaced, an odd value skipped)
    if case == "odd type (the SDK skips it)":
        assert b"kept" in expected and b"odd" not in expected


def test_a_str_subclass_nested_in_a_span_of_plain_values_falls_back_whole(
        encoders: tuple[ProtoEncoder, ProtoEncoder]) -> None:
    python, native = encoders
    s = ReadableSpan("s", SpanContext(5, 6, False), None, RES, {"a": 1}, (Event("e", {"x": Text("y")}, 1),),
                     instrumentation_scope=SCOPE)
    assert encode_span(s) is None and native.span(s) == python.span(s)


def test_not_a_span_gives_none() -> None:
    for obj in (None, 1, "span", object(), ReadableSpan("no context")):
        assert encode_span(obj) is None


def test_the_accelerator_is_looked_up_once_and_off_costs_nothing(encoders: tuple[ProtoEncoder, ProtoEncoder]) -> None:
    python, native = encoders
    assert "span" not in vars(python)  # off: the class's own method, exactly as before
    assert vars(native)["span"] == native._span_native
    s = ReadableSpan("s", SpanContext(5, 6, False), None, RES, {"a": 1}, instrumentation_scope=SCOPE)
    calls: list[ReadableSpan] = []
    native._native_span = lambda span: calls.append(span)  # declines everything
    assert native.span(s) == python.span(s) and calls == [s]


def test_a_count_of_events_and_links_all_dropped_is_written_as_the_sdk_writes_it(
        encoders: tuple[ProtoEncoder, ProtoEncoder]) -> None:
    python, native = encoders
    events, links = BoundedList(0), BoundedList(0)
    events.extend([Event("e", {}, 1)] * 3)
    links.append(Link(SpanContext(1, 2, False)))
    s = ReadableSpan("s", SpanContext(5, 6, False), None, RES, None, events, links, instrumentation_scope=SCOPE)
    m = SpanMessage.FromString(python.span(s))
    assert (m.dropped_events_count, m.dropped_links_count, len(m.events), len(m.links)) == (3, 1, 0, 0)
    assert encode_span(s) == native.span(s) == python.span(s)
    assert python.encode([s]) == encode_spans([s]).SerializeToString()
