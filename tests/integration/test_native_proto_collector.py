"""The native protobuf span encoder (decisiontrail_native.encode_span, behind ProtoEncoder when the
accelerator is on) against the real collector, over OTLP gRPC and HTTP/protobuf: what the collector
stores from it is, span for span, what it stores from the Python path, and ``verify`` and the
reader read it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import decisiontrail_native
from integration_support import CollectorProcess
from test_fast_exporter import recorded_spans, stored_by_span

from decisiontrail.exporters.factory import otlp_exporter
from decisiontrail.native import use_native
from decisiontrail.store import iter_decisions

PROTOCOLS = ("grpc", "http/protobuf")


def test_the_collector_stores_the_same_spans_from_the_native_encoder(
        collector_factory: Callable[..., CollectorProcess], tmp_path: Any) -> None:
    collector = collector_factory(jaeger=None)
    spans = recorded_spans(tmp_path)  # chained decision spans of every shape the recorder makes
    assert all(decisiontrail_native.encode_span(s) is not None for s in spans)  # none falls back
    sent = 0
    try:
        for protocol in PROTOCOLS:
            endpoint = collector.otlp_grpc_endpoint if protocol == "grpc" else collector.otlp_http_endpoint
            for native in (False, True):  # each pair stored in this order: (Python path, native)
                use_native(native)
                exporter = otlp_exporter(protocol, endpoint, max_request_bytes=64 * 1024)  # several requests
                assert ("span" in vars(exporter.encoder)) is native  # type: ignore[attr-defined]
                delivery = exporter.deliver(spans)  # type: ignore[attr-defined]
                exporter.shutdown()
                assert delivery.ok and len(delivery.delivered) == len(spans), (protocol, native)
                sent += len(spans)
                stored_by_span(collector, sent)
    finally:
        use_native(None)
    by_span = stored_by_span(collector, sent)
    assert len(by_span) == len(spans)
    for span_id, copies in by_span.items():
        assert len(copies) == 2 * len(PROTOCOLS), span_id
        for python_path, native_path in zip(copies[::2], copies[1::2]):
            assert native_path == python_path, span_id
    assert len(list(iter_decisions(collector.audit_dir))) == 40 + 50 + 300
    v = subprocess.run([sys.executable, "-m", "decisiontrail.cli", "verify", "--data", str(collector.audit_dir)],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0 and "0 problem(s)" in v.stdout, v.stdout + v.stderr
