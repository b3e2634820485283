"""The direct encoders: OTLP protobuf bytes identical to the SDK's encode_spans, and OTLP JSON text
identical to json.dumps of the documented mapping."""

from __future__ import annotations

import json
import math

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from decisiontrail.exporters.otlp_proto import ProtoEncoder, parse_partial_success, varint
from decisiontrail.exporters.otlpjson import spans_from_otlp_json, spans_to_otlp_json, spans_to_otlp_mapping

RES_A = Resource({"service.name": "loans", "host.id": 7, "k8s": ["a", "b"]}, "https://schema/1")
RES_B = Resource({"service.name": "other"})
SCOPE_A = InstrumentationScope("decisiontrail", "0.1.0", "https://schema/s", {"scope.attr": True})
SCOPE_B = InstrumentationScope("bench")


def ctx(trace_id: int, span_id: int, remote: bool = False, state: TraceState | None = None) -> SpanContext:
    return SpanContext(trace_id, span_id, remote, TraceFlags(1), state)


def spans() -> list[ReadableSpan]:
    events = BoundedList(3)
    for i in range(5):  # two dropped
        events.append(Event("model.decision", {"decision.id": f"id-{i}", "decision.input": "é" * (i * 9000),
                                               "decision.score": 0.1 * i, "decision.batch.count": i,
                                               "decision.reason_codes": ["R1", "R2"]}, 1_700_000_000_000 + i))
    out = [
        ReadableSpan("predict loan", ctx(1 << 120, 5), None, RES_A, {"decision.count": 3, "decision.audit": True,
                                                                      "neg": -42, "big": 1 << 62},
                     events, kind=SpanKind.INTERNAL, start_time=10, end_time=20, instrumentation_scope=SCOPE_A,
                     status=Status(StatusCode.ERROR, "boom ✓")),
        ReadableSpan("POST /x", ctx(2, 6, state=TraceState([("vendor", "v1"), ("b", "2")])), ctx(2, 99, remote=True),
                     RES_A, {"nan": math.nan, "inf": math.inf, "f": 1.0, "floats": [1.5, -0.0], "bools": [True, False],
                             "ints": [1, -2], "empty": "", "zero": 0, "false": False},
                     [Event("", None, 0), Event("x", {"a": "b"}, 5)],
                     [Link(ctx(3, 4, remote=True), {"link": "l"}), Link(ctx(3, 5))], SpanKind.SERVER,
                     start_time=1, end_time=2, instrumentation_scope=SCOPE_B),
        ReadableSpan("", ctx(7, 8), ctx(7, 9), RES_B, {}, kind=SpanKind.CONSUMER, instrumentation_scope=None),
        ReadableSpan("third", ctx(10, 11), None, RES_A, {"x": "y" * 20_000}, kind=SpanKind.CLIENT,
                     start_time=3, end_time=4, instrumentation_scope=SCOPE_A, status=Status(StatusCode.OK)),
    ]
    return out


def test_protobuf_bytes_are_the_sdk_encoders_bytes() -> None:
    batch = spans()
    enc = ProtoEncoder()
    assert enc.encode(batch) == encode_spans(batch).SerializeToString()
    assert enc.encode(batch) == encode_spans(batch).SerializeToString()  # again, from the caches
    for s in batch:
        assert enc.encode([s]) == encode_spans([s]).SerializeToString()


def test_protobuf_value_cache_keeps_values_apart() -> None:
    enc = ProtoEncoder()
    many = [ReadableSpan("s", ctx(1, i + 1), None, RES_A, {"k": str(i % 300), "b": True, "n": 1, "f": 1.0},
                         instrumentation_scope=SCOPE_A) for i in range(1000)]
    assert enc.encode(many) == encode_spans(many).SerializeToString()


def test_integers_of_every_varint_length_are_the_sdk_encoders_bytes() -> None:
    values = [0, 1, 127, 128, 16383, 16384, (1 << 21) - 1, 1 << 21, (1 << 28) - 1, 1 << 28, (1 << 63) - 1, -1, -(1 << 63)]
    span = ReadableSpan("s", ctx(1, 2), None, RES_B, {f"i{n}": v for n, v in enumerate(values)},
                        [Event("model.decision", {"decision.chain.seq": v}, 1) for v in values],
                        instrumentation_scope=SCOPE_B)
    assert ProtoEncoder().encode([span]) == encode_spans([span]).SerializeToString()
    for v in values[:-2]:
        assert varint(v) == bytes(_reference_varint(v))


def _reference_varint(n: int) -> list[int]:
    out = []
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return out


def test_varint() -> None:
    for n in (0, 1, 127, 128, 16383, 16384, 1 << 35, -1):
        b = varint(n)
        value, shift = 0, 0
        for byte in b:
            value |= (byte & 0x7F) << shift
            shift += 7
        assert value == n & 0xFFFFFFFFFFFFFFFF


def test_partial_success_is_read_from_the_response() -> None:
    body = ExportTraceServiceResponse(partial_success={"rejected_spans": 7, "error_message": "no"}).SerializeToString()
    assert parse_partial_success(body) == (7, "no")
    assert parse_partial_success(b"") == (0, "")
    assert parse_partial_success(ExportTraceServiceResponse().SerializeToString()) == (0, "")
    with pytest.raises(ValueError):
        parse_partial_success(b"\x0a\x05ab")


def test_json_text_is_json_dumps_of_the_mapping() -> None:
    batch = spans()
    text = spans_to_otlp_json(batch)
    assert text == json.dumps(spans_to_otlp_mapping(batch), separators=(",", ":"), ensure_ascii=False,
                              allow_nan=True)
    assert spans_to_otlp_json(spans_from_otlp_json(text)) == text  # and it still round-trips
