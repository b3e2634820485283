"""ChainStage on the export path: the links it adds are chain_hash's (the C encoder called directly
gives json.dumps's text), and a linked span is the span it replaces with new events only."""

from __future__ import annotations

import hashlib
import json
import math

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from decisiontrail.chain import ChainStage, HashChain, _canonical, _dumps, _payload_text, chain_hash
from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.exporters.otlp_proto import ProtoEncoder

PAYLOADS = [
    {"event": "model.decision", "attributes": {"b": 1, "a": "é\u2028\"\\", "z": [1.5, True, None, "x"],
                                               "n": math.nan, "i": -1 << 70}, "time_unix_nano": 1, "span_id": "0f"},
    {"k": ("tuple", 2), "e": {}, "f": 1e300, "g": -0.0, "s": "\ud800 lone surrogate"},
]


def test_the_direct_c_encoder_writes_json_dumps_text() -> None:
    for p in PAYLOADS:
        assert _canonical(p) == _dumps(p) == json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_the_payload_text_is_the_canonical_text_of_the_payload() -> None:
    """chain_hash writes the payload's five keys around the attributes' text without building the
    payload dict; the text is the canonical JSON of that dict, whatever the values."""
    attributes = [PAYLOADS[0]["attributes"], PAYLOADS[1], {}]
    for attrs in attributes:
        for name, t, trace_id, span_id in (("model.decision", 1_700_000_000_123_456_789, "0a" * 16, "0b" * 8),
                                           ("é\u2028\"", 0, "", "x"), ("n", True, "t", "s"), ("f", 1.5, "t", "s"),
                                           ("i", -(1 << 70), None, 7)):
            payload = {"event": name, "attributes": attrs, "time_unix_nano": t, "trace_id": trace_id, "span_id": span_id}
            assert _payload_text(name, attrs, t, trace_id, span_id) == _canonical(payload)  # type: ignore[arg-type]


def test_chain_hash_leaves_the_input_and_its_own_hash_out_unless_the_input_was_cut() -> None:
    base = {"model.name": "m", D.INPUT_HASH: "sha256:00", D.CHAIN_SEQ: 1}
    plain = chain_hash(DECISION_EVENT, base, 5, "t", "s")
    assert chain_hash(DECISION_EVENT, {**base, D.INPUT: '{"x":1}', D.CHAIN_HASH: "h"}, 5, "t", "s") == plain
    cut = {**base, D.INPUT: '{"x":"…"}', D.TRUNCATED: ["input.x"]}
    assert chain_hash(DECISION_EVENT, cut, 5, "t", "s") != chain_hash(DECISION_EVENT, {**base, D.TRUNCATED: ["input.x"]},
                                                                       5, "t", "s")
    payload = {"event": DECISION_EVENT, "attributes": base, "time_unix_nano": 5, "trace_id": "t", "span_id": "s"}
    assert plain == hashlib.sha256(_canonical(payload).encode()).hexdigest()


def finished_spans(n: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span("predict m", attributes={"decision.count": 1}) as span:
            span.add_event(DECISION_EVENT, {"model.name": "m", D.INPUT: f'{{"x":{i}}}', "decision.score": 0.5})
            span.add_event("log", {"other": i})
    return list(memory.get_finished_spans())


def test_a_linked_span_is_the_span_with_linked_events() -> None:
    spans = finished_spans(3)
    linked = ChainStage(HashChain("chain-1"))(spans)
    prev = ""
    for seq, (before, after) in enumerate(zip(spans, linked), 1):
        assert type(after) is ReadableSpan and after is not before
        for field in ("name", "context", "parent", "resource", "kind", "status", "start_time", "end_time",
                      "instrumentation_scope", "links"):
            assert getattr(after, field) == getattr(before, field), field
        # the span's own attribute mapping, not a read-only view of it
        assert isinstance(after._attributes, BoundedAttributes) and dict(after.attributes) == dict(before.attributes)
        decision, log = after.events
        assert log is before.events[1]  # not an audit event: untouched
        a = decision.attributes
        assert a is not None and a[D.CHAIN_SEQ] == seq and a[D.CHAIN_PREV] == prev and a[D.CHAIN_ID] == "chain-1"
        assert a[D.INPUT_HASH] == "sha256:" + hashlib.sha256(str(a[D.INPUT]).encode()).hexdigest()
        ctx = after.context
        assert a[D.CHAIN_HASH] == chain_hash(DECISION_EVENT, a, decision.timestamp, format(ctx.trace_id, "032x"),
                                             format(ctx.span_id, "016x"))
        prev = str(a[D.CHAIN_HASH])
        assert D.CHAIN_HASH not in (before.events[0].attributes or {})  # the recorded span is not changed
    # what goes on the wire is what the SDK's encoder makes of the linked spans
    assert ProtoEncoder().encode(linked) == encode_spans(linked).SerializeToString()


def test_linked_spans_are_not_linked_again() -> None:
    stage = ChainStage(HashChain())
    once = stage(finished_spans(2))
    again = stage(once)
    assert [a is b for a, b in zip(once, again)] == [True, True]
    assert stage.chain is not None and stage.chain.seq == 2


def test_a_linked_span_keeps_the_count_of_events_the_sdk_dropped() -> None:
    """Events pushed out by the span's event limit stay counted on the span the stage rebuilds
    (OTLP's dropped_events_count), in both encoders' output."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_events=3))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("POST /score") as span:
        span.add_event("log", {"n": 0})  # the oldest: pushed out by the last one
        span.add_event(DECISION_EVENT, {"model.name": "m", D.INPUT: '{"x":1}'})
        span.add_event("log", {"n": 1})
        span.add_event("log", {"n": 2})
    (before,) = memory.get_finished_spans()
    assert before.dropped_events == 1
    (after,) = ChainStage(HashChain())([before])
    assert after is not before and after.events[0].attributes[D.CHAIN_SEQ] == 1  # type: ignore[index]
    assert after.dropped_events == 1 and len(after.events) == 3
    assert ProtoEncoder().encode([after]) == encode_spans([after]).SerializeToString()
