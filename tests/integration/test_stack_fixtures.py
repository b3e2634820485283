"""The process fixtures do what fault tests rely on: kill -9 and restart on the same ports and
directories, two collectors side by side, a collector whose Jaeger is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from integration_support import CollectorProcess, JaegerProcess, http_get
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

pytestmark = pytest.mark.integration


def _send_decision(collector: CollectorProcess) -> str:
    provider = TracerProvider(resource=Resource.create({"service.name": "fixture-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.otlp_http_traces_url)))
    with provider.get_tracer("decisiontrail").start_as_current_span("model.predict") as span:
        span.set_attribute("decision.count", 1)
        span.add_event("model.decision", {"decision.id": str(uuid.uuid4()), "decision.input": "{}"})
    provider.shutdown()
    return format(span.get_span_context().span_id, "016x")


def _audited(collector: CollectorProcess, span_id: str) -> bool:
    return any(s["spanId"] == span_id for s in collector.audit_spans())


def test_kill_and_restart_keep_ports_and_dirs(collector: CollectorProcess, jaeger: JaegerProcess,
                                              wait_for: Callable[..., Any]) -> None:
    first = _send_decision(collector)
    wait_for(lambda: _audited(collector, first), message="first decision audited")
    endpoint, audit_dir, pid = collector.otlp_http_endpoint, collector.audit_dir, collector.pid

    assert collector.kill() == -9 and not collector.running
    collector.start()
    assert collector.running and collector.pid != pid
    assert (collector.otlp_http_endpoint, collector.audit_dir) == (endpoint, audit_dir)
    assert collector.jaeger_query_url == jaeger.query_url

    second = _send_decision(collector)
    wait_for(lambda: _audited(collector, second), message="decision after restart audited")
    assert _audited(collector, first), "the file written before the kill is still there"
    assert collector.stop() == 0, collector.output(4000)
    assert "start #2" in collector.output()


def test_two_collectors_and_jaeger_down(collector_factory: Callable[..., CollectorProcess],
                                        wait_for: Callable[..., Any]) -> None:
    a = collector_factory(jaeger=None)
    b = collector_factory(jaeger=None)
    assert len({a.otlp_grpc_endpoint, b.otlp_grpc_endpoint, a.metrics_url, b.metrics_url}) == 4
    assert a.jaeger_query_url is None
    for c in (a, b):
        status, body = http_get(c.metrics_url)
        assert status == 200 and b"otelcol_" in body
    span_id = _send_decision(a)
    # Jaeger is unreachable: the audit pipeline does not care, the Jaeger batch waits on disk.
    wait_for(lambda: _audited(a, span_id), message="decision audited while Jaeger is down")
    assert not b.audit_spans()
    assert any(a.queue_dir.iterdir()), "persistent queue files exist"
    assert a.audit_queue_files() and b.audit_queue_files(), "each collector has its own audit queue"
    assert a.audit_queue_dir != b.audit_queue_dir and a.audit_loopback_address != b.audit_loopback_address
