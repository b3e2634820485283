"""decisiontrail's OTLP exporters (exporters/otlp*.py) against the real collector: what the collector
stores from them is, span for span, what it stores from the SDK's own OTLP exporters, and the
reader and ``verify`` read it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from integration_support import CollectorProcess, wait_until
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as SdkGrpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as SdkHttp
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

import decisiontrail
from decisiontrail.exporters.factory import otlp_exporter
from decisiontrail.recorder import set_recorder
from decisiontrail.store import iter_decisions


class Capture(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def recorded_spans(tmp_path: Any) -> list[ReadableSpan]:
    """Decision spans as the processor hands them to an exporter (chained), of every shape: own
    spans, request spans with several decisions, batches, errors, links, unicode, big inputs."""
    capture = Capture()
    cfg = decisiontrail.configure(exporter=capture, service_name="fast-exporter", set_global=False,
                                  spool_dir=tmp_path / "spool", max_chars=20_000)
    tracer = cfg.tracer_provider.get_tracer("fast-exporter-test", "1.2")
    try:
        for i in range(40):
            decisiontrail.record_decision("loan", {"i": i, "name": "Zoë ✓ \u2028", "x": i / 4}, {"p": 0.25},
                                          label="approve", score=i / 40, reason_codes=["R1", "R2"])
        for i in range(10):
            with tracer.start_as_current_span("POST /score", kind=SpanKind.SERVER,
                                              attributes={"http.status_code": 200, "ratio": 0.5}) as span:
                for j in range(5):
                    decisiontrail.record_decision("fraud", {"tx": i * 10 + j, "blob": "x" * (3000 * j)},
                                                  -1.5, label=None, score=None, explanation={"f": [1, 2.5]})
                span.set_status(Status(StatusCode.ERROR, "boom"))
        decisiontrail.recorder.get_recorder().record_batch("batch", [[1.0, 2.0]] * 300, [0, 1] * 150)
        assert cfg.force_flush()
    finally:
        cfg.shutdown()
        set_recorder(None)
    return [s for s in capture.spans if (s.attributes or {}).get("decision.count")]


def stored_by_span(collector: CollectorProcess, n: int) -> dict[str, list[dict[str, Any]]]:
    def ready() -> dict[str, list[dict[str, Any]]] | None:
        by: dict[str, list[dict[str, Any]]] = {}
        for s in collector.audit_spans():
            by.setdefault(s["spanId"], []).append(s)
        return by if sum(len(v) for v in by.values()) >= n else None
    return wait_until(ready, timeout=60, message=f"{n} spans in the audit files")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_the_collector_stores_the_same_spans_as_from_the_sdk_exporter(
        protocol: str, collector_factory: Callable[..., CollectorProcess], tmp_path: Any) -> None:
    collector = collector_factory(jaeger=None)
    spans = recorded_spans(tmp_path)
    sdk: SpanExporter = SdkGrpc(endpoint=collector.otlp_grpc_endpoint, insecure=True) if protocol == "grpc" \
        else SdkHttp(endpoint=collector.otlp_http_traces_url)
    assert sdk.export(spans) is SpanExportResult.SUCCESS
    sdk.shutdown()
    stored_by_span(collector, len(spans))  # the SDK's copies first, so each pair is (SDK, ours)
    ours = otlp_exporter(protocol, collector.otlp_grpc_endpoint if protocol == "grpc" else collector.otlp_http_endpoint,
                         max_request_bytes=64 * 1024)  # several requests per batch
    delivery = ours.deliver(spans)  # type: ignore[attr-defined]
    ours.shutdown()
    assert delivery.ok and len(delivery.delivered) == len(spans)
    assert ours.requests_sent > 1  # type: ignore[attr-defined]
    by_span = stored_by_span(collector, 2 * len(spans))
    assert len(by_span) == len(spans)
    for span_id, (from_sdk, from_ours) in by_span.items():
        assert from_ours == from_sdk, span_id
    decisions = list(iter_decisions(collector.audit_dir))
    assert len(decisions) == 40 + 50 + 300
    v = subprocess.run([sys.executable, "-m", "decisiontrail.cli", "verify", "--data", str(collector.audit_dir)],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0 and "0 problem(s)" in v.stdout, v.stdout + v.stderr
