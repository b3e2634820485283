"""The recorder's direct span writes (recorder/spans.py, sampling.AuditStart) store exactly what the
SDK's public calls would have stored: same attributes, same order, same limits applied."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased
from opentelemetry.trace.span import TraceState

from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.conventions import ModelAttributes as M
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.models import ModelIdentity
from decisiontrail.recorder import Recorder, RecorderSettings
from decisiontrail.recorder.spans import add_audit_event, has_room, set_start_attributes
from decisiontrail.sampling import AuditSampler, AuditStart


def _provider(audit: bool = True, limits: SpanLimits | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    sampler = AuditSampler(ParentBased(ALWAYS_ON)) if audit else ALWAYS_ON
    provider = TracerProvider(sampler=sampler, span_limits=limits, shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _reference(provider: TracerProvider, name: str, events: list[dict[str, Any]]) -> ReadableSpan:
    """The same span made with the SDK's public calls only (what the recorder did before)."""
    tracer = provider.get_tracer("reference")
    span = tracer.start_span(f"predict {name}", attributes={S.DECISION_AUDIT: True, M.NAME: name})
    for n, attrs in enumerate(events, 1):
        span.add_event(DECISION_EVENT, attrs)
        span.set_attribute(S.DECISION_COUNT, n)
    span.end()
    return span  # type: ignore[return-value]


def _recorded(provider: TracerProvider, name: str, events: list[dict[str, Any]]) -> ReadableSpan:
    rec = Recorder(RecorderSettings(), tracer_provider=provider)
    span = rec.start_span(ModelIdentity(name))
    for attrs in events:
        rec.emit(span, dict(attrs))
    span.end()
    return span  # type: ignore[return-value]


EVENTS = [{"decision.id": "a", "decision.input": "{}"}, {"decision.id": "b", "decision.input": "[1]"}]


@pytest.mark.parametrize("audit", [True, False], ids=["AuditSampler", "plain sampler"])
@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attribute_length=4), SpanLimits(max_span_attributes=2)],
                         ids=["default limits", "short values", "two attributes"])
def test_decision_spans_hold_what_the_public_calls_would(audit: bool, limits: SpanLimits | None) -> None:
    provider, _ = _provider(audit, limits)
    expected = _reference(provider, "loan-model", EVENTS)
    got = _recorded(provider, "loan-model", EVENTS)
    assert list(got.attributes.items()) == list(expected.attributes.items())  # type: ignore[union-attr]
    assert got.dropped_attributes == expected.dropped_attributes
    assert [e.name for e in got.events] == [DECISION_EVENT, DECISION_EVENT]
    assert [dict(e.attributes or {}) for e in got.events] == EVENTS
    assert got.name == expected.name == "predict loan-model"


def test_default_limits_keep_the_start_attributes_in_order() -> None:
    provider, exporter = _provider()
    _recorded(provider, "loan", EVENTS[:1])
    (span,) = exporter.get_finished_spans()
    assert list(span.attributes.items()) == [  # type: ignore[union-attr]
        (S.DECISION_AUDIT, True), (M.NAME, "loan"), (S.DECISION_COUNT, 1)]


def test_audit_sampler_keeps_audit_start_spans_and_leaves_their_attributes_to_the_opener() -> None:
    sampler = AuditSampler(ALWAYS_ON)
    start = AuditStart({S.DECISION_AUDIT: True, M.NAME: "loan"})
    result = sampler.should_sample(None, 1, "predict loan", attributes=start)
    assert result.decision is Decision.RECORD_AND_SAMPLE and dict(result.attributes) == {}
    plain = sampler.should_sample(None, 1, "predict loan", attributes=dict(start))
    assert plain.decision is Decision.RECORD_AND_SAMPLE and dict(plain.attributes) == dict(start)
    # under a parent with a trace state of its own, that state is kept (not the shared default)
    state = TraceState([("vendor", "x")])
    parent = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        1, 2, is_remote=True, trace_flags=trace.TraceFlags(0), trace_state=state)))
    child = sampler.should_sample(parent, 1, "predict loan", attributes=start)
    assert child.decision is Decision.RECORD_AND_SAMPLE and child.trace_state is state


def test_an_event_for_an_ended_span_is_refused_as_the_sdk_refuses_it() -> None:
    provider, _ = _provider()
    span: Any = provider.get_tracer("t").start_span("request")
    span.end()
    add_audit_event(span, DECISION_EVENT, {"decision.id": "late"}, 1, S.DECISION_COUNT, 1)
    assert len(span.events) == 0 and S.DECISION_COUNT not in span.attributes


def test_threads_recording_onto_one_span_lose_no_count() -> None:
    provider, _ = _provider()
    rec = Recorder(RecorderSettings(), tracer_provider=provider)
    request: Any = provider.get_tracer("t").start_span("request")
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for i in range(25):
            rec.record("loan", {"i": i}, i, span=request)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(request.events) == 100 and request.attributes[S.DECISION_COUNT] == 100
    assert has_room(request)  # 100 of the SDK's 128
    request.end()


def test_queued_spans_read_the_same_with_their_lists_compacted() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter as Memory
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    from tests.unit.processor_support import make

    exporter = Memory()
    processor, provider = make(exporter, prepare=None)  # the chain rebuilds spans: the lists as on_end left them
    limited = TracerProvider(span_limits=SpanLimits(max_links=1, max_span_attributes=2), shutdown_on_exit=False)
    limited.add_span_processor(processor)
    linked = Link(SpanContext(7, 8, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    other = Link(SpanContext(9, 10, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    for name, tracer, links in (("plain", provider, []), ("linked", provider, [linked]),
                                ("dropped", limited, [linked, other]), ("bare", provider, [])):
        span = tracer.get_tracer("t").start_span(name, links=links)
        if name == "dropped":
            span.set_attributes({"a": 1, "b": 2})  # decision.count then pushes "a" out
        if name != "bare":
            span.add_event(DECISION_EVENT, {"decision.id": name})
            span.set_attribute(S.DECISION_COUNT, 1)
        span.end()
    assert processor.force_flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert (spans["plain"].links, spans["plain"].dropped_links) == ((), 0)
    assert [e.attributes["decision.id"] for e in spans["plain"].events] == ["plain"]  # type: ignore[index]
    assert [lk.context.span_id for lk in spans["linked"].links] == [8]
    assert (len(spans["dropped"].links), spans["dropped"].dropped_links) == (1, 1)
    assert (dict(spans["dropped"].attributes or {}), spans["dropped"].dropped_attributes) == (
        {"b": 2, S.DECISION_COUNT: 1}, 1)
    assert dict(spans["plain"].attributes or {}) == {S.DECISION_COUNT: 1}
    assert (spans["bare"].events, spans["bare"].links, spans["bare"].dropped_events) == ((), (), 0)
    plain: Any = spans["plain"]
    dropped: Any = spans["dropped"]
    assert (type(plain._attributes), type(plain._events), plain._links) == (dict, tuple, ())
    assert type(dropped._links) is not tuple and type(dropped._attributes) is not dict  # they keep their counts
    processor.shutdown()


def test_queued_spans_share_their_trace_flags_and_keep_their_context() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter as Memory

    from tests.unit.processor_support import make

    exporter = Memory()
    processor, provider = make(exporter, prepare=None)
    started = []
    for name in ("one", "two"):
        span = provider.get_tracer("t").start_span(name)
        started.append(span.get_span_context())
        span.add_event(DECISION_EVENT, {"decision.id": name})
        span.set_attribute(S.DECISION_COUNT, 1)
        span.end()
    assert processor.force_flush()
    one, two = exporter.get_finished_spans()
    assert [one.context, two.context] == started  # trace id, span id, flags, state: the same values
    assert one.context.trace_flags is two.context.trace_flags  # one TraceFlags object for both
    assert one.context.trace_flags.sampled and type(one.context.trace_flags) is type(started[0].trace_flags)
    assert one.context.trace_state is started[0].trace_state
    processor.shutdown()


def test_a_queued_decision_keeps_four_objects_alive_for_the_garbage_collector() -> None:
    """What every collection walks while the no-loss queue holds a decision (processing/counting.py)."""
    import gc

    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from decisiontrail.processing import DecisionSpanProcessor

    release = threading.Event()

    class Held(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            release.wait(10)
            return SpanExportResult.SUCCESS

    processor = DecisionSpanProcessor(Held(), max_export_batch_size=1, schedule_delay_millis=1)
    provider = TracerProvider(sampler=AuditSampler(ParentBased(ALWAYS_ON)), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    rec = Recorder(RecorderSettings(), tracer_provider=provider)
    try:
        rec.record("m", {"x": 1}, 1)  # the export thread takes it and waits in Held
        for _ in range(500):
            if not processor._queue:
                break
            threading.Event().wait(0.01)
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(200):
            rec.record("m", {"x": 1}, 1)
        gc.collect()
        assert len(processor._queue) == 200
        assert (len(gc.get_objects()) - before) / 200 <= 4.05  # span, context, events tuple, event
    finally:
        release.set()
        processor.shutdown()


def test_a_decision_span_started_directly_is_the_one_the_sdk_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """recorder.spans.start_audit_span against Tracer.start_span: same span, processors and metrics."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import SpanProcessor

    from decisiontrail.recorder.spans import start_audit_span

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    provider = TracerProvider(sampler=AuditSampler(ParentBased(ALWAYS_ON)), shutdown_on_exit=False,
                              meter_provider=MeterProvider(metric_readers=[reader]))
    exporter = InMemorySpanExporter()
    started: list[tuple[str, Any]] = []

    class Starts(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append((span.name, parent_context))

    provider.add_span_processor(Starts())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("decisiontrail")
    attrs = AuditStart({S.DECISION_AUDIT: True, M.NAME: "m"})

    def both() -> list[ReadableSpan]:
        direct = start_audit_span(tracer, "predict m", attrs)
        assert direct is not None  # the installed SDK takes the direct start
        sdk = tracer.start_span("predict m", attributes=attrs)
        for span in (direct, sdk):
            assert span.is_recording()
            set_start_attributes(span, attrs)
            span.end()
        return list(exporter.get_finished_spans())[-2:]

    def metrics() -> list[Any]:
        data = reader.get_metrics_data()
        return [(m.name, [(dict(p.attributes or {}), p.value) for p in m.data.data_points])  # type: ignore[union-attr]
                for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]

    roots = both()
    parent = tracer.start_span("POST /x", context=trace.set_span_in_context(trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1),
                          trace_state=TraceState([("vendor", "v1")])))))
    with trace.use_span(parent, end_on_exit=True):
        children = both()
    for direct, sdk in (roots, children):
        assert type(direct) is type(sdk)
        for field in ("name", "kind", "parent", "resource", "instrumentation_scope", "attributes", "links",
                      "events", "dropped_attributes", "dropped_events", "dropped_links"):
            assert getattr(direct, field) == getattr(sdk, field), field
        assert (direct.status.status_code, direct.status.description) == (sdk.status.status_code, sdk.status.description)
        assert direct.context.trace_flags == sdk.context.trace_flags and direct.context.is_remote is False
        assert direct.context.trace_state == sdk.context.trace_state and direct.context.span_id != sdk.context.span_id
    assert children[0].context.trace_id == children[1].context.trace_id == 0xABC
    assert children[0].context.trace_state.get("vendor") == "v1"
    assert children[0].parent == parent.get_span_context()
    assert roots[0].context.trace_id != roots[1].context.trace_id and roots[0].parent is None
    assert started == [("predict m", None)] * 2 + [("POST /x", started[2][1])] + [("predict m", None)] * 2
    counted = dict(metrics())
    started_counts = counted["otel.sdk.span.started"]
    assert sum(v for a, v in started_counts if a.get("otel.span.sampling_result") == "RECORD_AND_SAMPLE") == 5
    assert all(v == 0 for _, v in counted["otel.sdk.span.live"]) or not counted["otel.sdk.span.live"]


def test_other_tracers_and_samplers_take_the_sdk_start() -> None:
    from decisiontrail.recorder.spans import start_audit_span

    attrs = AuditStart({S.DECISION_AUDIT: True, M.NAME: "m"})
    plain = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False).get_tracer("t")
    assert start_audit_span(plain, "predict m", attrs) is None  # not AuditSampler: its own decision
    assert start_audit_span(trace.NoOpTracer(), "predict m", attrs) is None
