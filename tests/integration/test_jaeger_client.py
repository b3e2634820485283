"""decisiontrail.store.jaeger against a running Jaeger v2 (spans sent to it directly over OTLP)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from integration_support import JaegerProcess, free_port
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from decisiontrail.ids import new_decision_id
from decisiontrail.store import jaeger as jc

pytestmark = pytest.mark.integration


def _record(jaeger: JaegerProcess, service: str, decision_id: str) -> tuple[str, str, str]:
    """A server request span with a decision child span; returns (trace id, request span id, decision span id)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=jaeger.otlp_grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("decisiontrail", "0.1.0")
    with tracer.start_as_current_span("POST /score", kind=SpanKind.SERVER) as req:
        req.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("model.predict") as span:
            span.set_attribute("decision.count", 1)
            span.add_event("model.decision", {
                "model.name": "credit", "model.version": "3", "decision.id": decision_id,
                "decision.input": json.dumps({"income": 52000, "tags": ["a", "b"]}, separators=(",", ":")),
                "decision.output": "[0.3,0.7]", "decision.label": "approve", "decision.score": 1.0,
                "decision.reason_codes": ["R1", "R2"], "decision.chain.seq": 7,
            })
            span.set_status(Status(StatusCode.ERROR, "partly failed"))
    provider.shutdown()
    ctx_req, ctx_dec = req.get_span_context(), span.get_span_context()
    return format(ctx_req.trace_id, "032x"), format(ctx_req.span_id, "016x"), format(ctx_dec.span_id, "016x")


def test_fetch_find_and_convert(jaeger: JaegerProcess, wait_for: Callable[..., Any]) -> None:
    service = f"client-{uuid.uuid4().hex[:8]}"
    decision_id = new_decision_id()
    trace_id, request_span_id, decision_span_id = _record(jaeger, service, decision_id)

    trace = wait_for(lambda: (t := jc.fetch_trace(jaeger.query_url, trace_id)) and len(t["spans"]) == 2 and t,
                     message="the trace in Jaeger")
    assert trace["traceID"] == trace_id
    assert jc.fetch_trace(jaeger.query_url + "/", trace_id.upper())["traceID"] == trace_id

    # Search by the decision id: it is an event attribute, which Jaeger's search matches.
    found = jc.find_decision_trace(jaeger.query_url, decision_id, service=service)
    assert found is not None and found["traceID"] == trace_id
    assert service in jc.list_services(jaeger.query_url)
    found_anywhere = jc.find_decision_trace(jaeger.query_url, decision_id)  # every service searched
    assert found_anywhere is not None and found_anywhere["traceID"] == trace_id

    spans, decisions = jc.to_records(trace)
    assert [s.span_id for s in spans] == [request_span_id, decision_span_id]  # by start time
    req, dec = spans
    assert req.parent_span_id == "" and dec.parent_span_id == request_span_id
    assert req.trace_id == dec.trace_id == trace_id
    assert req.kind == 2 and dec.kind == 1  # server, internal (OTLP numbering)
    assert dec.status_code == 2 and req.status_code == 0
    assert req.attributes == {"http.response.status_code": 200}
    assert dec.attributes == {"decision.count": 1}
    assert dec.scope == "decisiontrail"
    assert dec.service_name == service and dec.resource["deployment.environment"] == "test"
    assert dec.end_time_unix_nano >= dec.start_time_unix_nano > 0

    (d,) = decisions
    assert d.decision_id == decision_id
    assert (d.model_name, d.model_version, d.label) == ("credit", "3", "approve")
    assert d.score == 1.0 and isinstance(d.score, float)  # Jaeger writes 1.0 as 1
    assert d.input == {"income": 52000, "tags": ["a", "b"]}
    assert d.output == [0.3, 0.7]
    assert d.attributes["decision.reason_codes"] == ["R1", "R2"]  # JSON text in Jaeger, a list again
    assert d.attributes["decision.chain.seq"] == 7
    assert d.trace_id == trace_id and d.span_id == decision_span_id and d.service_name == service
    assert d.time_unix_nano >= dec.start_time_unix_nano

    # The whole /api/traces answer is accepted too.
    assert jc.to_records({"data": [trace]})[1][0].decision_id == decision_id


def test_not_found_and_errors(jaeger: JaegerProcess) -> None:
    assert jc.fetch_trace(jaeger.query_url, "0" * 31 + "1") == {}
    assert jc.find_decision_trace(jaeger.query_url, new_decision_id(), service="no-such-service") is None
    assert jc.find_decision_trace(jaeger.query_url, str(uuid.uuid4()), lookback=timedelta(minutes=5)) is None
    with pytest.raises(jc.JaegerError, match="trace not-hex"):
        jc.fetch_trace(jaeger.query_url, "not-hex")
    with pytest.raises(jc.JaegerError, match="cannot query Jaeger"):
        jc.fetch_trace(f"http://127.0.0.1:{free_port()}", "0" * 32, timeout=2)
