"""The collector's persistent audit queue (otlp/audit on file_storage/audit), against the real binary.

traces/audit answers the sender once a request is fsynced into the audit queue; the queue's
consumers send it over a loopback gRPC hop inside the collector (otlp/audit-loopback ->
traces/audit-write -> file/audit). These tests stop that hop on purpose with an overlay that points
otlp/audit at a port where nothing listens, so acknowledged decisions exist *only* in the queue:

- SIGKILL the collector in that state (or stop it with SIGTERM), start it with the normal
  configuration: every decision the sender saw acknowledged reaches the audit files, each exactly once.
- a full queue refuses new requests with a retryable error (HTTP 503, gRPC UNAVAILABLE) instead of
  dropping them; what it had accepted is written after the restart, the refused request once resent.

A third test leaves the hop up and makes the audit files unwritable instead: the senders are
acknowledged, the queue retries the writes and delivers once the files can be written again.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from integration_support import CollectorProcess, free_port, wait_until
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

import decisiontrail
from decisiontrail import record_decision, stats
from decisiontrail.recorder import set_recorder
from decisiontrail.store.reader import ReadStats, iter_decisions

pytestmark = pytest.mark.integration


def stalled_overlay(tmp_path: Path, **queue: Any) -> Path:
    """A config overlay under which otlp/audit cannot deliver: it sends to a port nobody listens on.
    ``queue`` overrides settings of its sending_queue (e.g. a tiny queue_size)."""
    lines = ["# test overlay: the audit queue holds everything, nothing reaches the audit files",
             "exporters:", "  otlp/audit:", f"    endpoint: 127.0.0.1:{free_port()}"]
    if queue:
        lines += ["    sending_queue:", *(f"      {k}: {v}" for k, v in queue.items())]
    path = tmp_path / f"stalled-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def restart_without(collector: CollectorProcess, overlay: Path, graceful: bool = False) -> None:
    """SIGKILL (nothing flushed, nothing shut down), or SIGTERM with ``graceful``, and start again
    with the shipped configuration: same ports, same directories, hence the same audit queue."""
    if graceful:
        assert collector.stop() == 0
    else:
        assert collector.kill() == -9
    collector.argv = [a for a in collector.argv if str(overlay) not in a]
    collector.start()


def stored_ids(collector: CollectorProcess, read: ReadStats | None = None) -> list[str]:
    if not collector.audit_dir.is_dir():
        return []
    return [d.decision_id for d in iter_decisions(collector.audit_dir, read)]


def audit_queue_size(collector: CollectorProcess) -> float:
    size = collector.metric("otelcol_exporter_queue_size", exporter="otlp/audit")
    assert size is not None, "otelcol_exporter_queue_size of otlp/audit not exposed"
    return size


@pytest.fixture
def clean_stats(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in [v for v in os.environ if v.startswith(("OTEL_", "DECISIONTRAIL_"))]:
        monkeypatch.delenv(var)
    stats.reset()
    yield
    set_recorder(None)


@pytest.mark.parametrize("stop", ["sigkill", "sigterm"])
def test_acknowledged_decisions_survive_a_restart_in_the_audit_queue(  # type: ignore[no-untyped-def]
        collector_factory: Callable[..., CollectorProcess], tmp_path: Path, clean_stats, stop: str) -> None:
    overlay = stalled_overlay(tmp_path)
    collector = collector_factory(jaeger=None, overlays=[overlay])
    # No spool on the sender's side: once force_flush() returns, the collector's acknowledgement is
    # the only thing standing between these decisions and oblivion.
    cfg = decisiontrail.configure(endpoint=collector.otlp_grpc_endpoint, spool_dir=False, service_name="audit-queue",
                                  set_global=False, processor_options={"max_export_batch_size": 256})
    tracer = cfg.tracer_provider.get_tracer("app")
    n = 3000
    try:
        ids = []
        for i in range(n):
            with tracer.start_as_current_span("POST /score"):
                ids.append(record_decision("credit", {"income": 40_000 + i}, {"approved": i % 3 != 0}))
        assert cfg.force_flush(60_000), "the collector did not acknowledge every request"
    finally:
        cfg.shutdown()
    snap = stats.snapshot()
    assert snap["exported"] == n and snap["lost"] == 0 and snap["spooled"] == 0, snap

    # Acknowledged, yet nowhere but in the fsynced queue: the hop to the audit files is down.
    wait_until(lambda: audit_queue_size(collector) > 0, timeout=10, message="the audit queue holding the requests")
    time.sleep(1)  # the consumers keep retrying; still nothing may come through
    assert stored_ids(collector) == [], "the stalled hop wrote to the audit files"
    assert collector.audit_queue_files(), "no audit queue file"
    queued_bytes = audit_queue_size(collector)

    t0 = time.monotonic()
    restart_without(collector, overlay, graceful=stop == "sigterm")
    wait_until(lambda: set(ids) <= set(stored_ids(collector)), timeout=60,
               message="every acknowledged decision in the audit files after the restart")
    delivered = time.monotonic() - t0
    wait_until(lambda: audit_queue_size(collector) == 0, timeout=30, message="the audit queue drained")

    read = ReadStats()
    stored = stored_ids(collector, read)
    assert len(stored) == len(set(stored)) == n and set(stored) == set(ids)
    # Nothing had been written before the kill, so the redelivered requests are written once each.
    assert read.duplicates == 0, f"{read.duplicates} duplicates"
    print(f"\n[audit queue + {stop}] {n} decisions acknowledged with the hop down ({queued_bytes / 1e6:.1f} MB "
          f"queued), all {len(stored)} in the audit files {delivered:.1f} s after {stop} + restart, "
          f"{read.duplicates} duplicates")


def _decision_request(decision_id: str) -> ExportTraceServiceRequest:
    def kv(key: str, value: AnyValue) -> KeyValue:
        return KeyValue(key=key, value=value)

    now = time.time_ns()
    span = Span(trace_id=os.urandom(16), span_id=os.urandom(8), name="predict credit", kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now, end_time_unix_nano=now + 1000,
                attributes=[kv("decision.count", AnyValue(int_value=1))],
                events=[Span.Event(time_unix_nano=now, name="model.decision", attributes=[
                    kv("decision.id", AnyValue(string_value=decision_id)),
                    kv("model.name", AnyValue(string_value="credit")),
                    kv("decision.input", AnyValue(string_value='{"income":52000}')),
                    kv("decision.output", AnyValue(string_value="1")),
                ])])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", AnyValue(string_value="queue-full"))]),
        scope_spans=[ScopeSpans(spans=[span])])])


def _post(collector: CollectorProcess, request: ExportTraceServiceRequest) -> int:
    req = urllib.request.Request(collector.otlp_http_traces_url, data=request.SerializeToString(), method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _grpc_export(collector: CollectorProcess, request: ExportTraceServiceRequest) -> grpc.StatusCode:
    with grpc.insecure_channel(collector.otlp_grpc_address) as channel:
        try:
            TraceServiceStub(channel).Export(request, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_full_audit_queue_refuses_with_a_retryable_error(collector_factory: Callable[..., CollectorProcess],
                                                        tmp_path: Path) -> None:
    overlay = stalled_overlay(tmp_path, sizer="requests", queue_size=2)
    collector = collector_factory(jaeger=None, overlays=[overlay])
    ids = [str(uuid.uuid4()) for _ in range(4)]
    # Two requests fill the queue (one is being retried by a consumer: it still counts).
    assert _post(collector, _decision_request(ids[0])) == 200
    assert _grpc_export(collector, _decision_request(ids[1])) == grpc.StatusCode.OK
    # Then the sender is told to retry: HTTP 503 / gRPC UNAVAILABLE, both retryable in OTLP.
    assert _post(collector, _decision_request(ids[2])) == 503
    assert _grpc_export(collector, _decision_request(ids[3])) == grpc.StatusCode.UNAVAILABLE
    assert stored_ids(collector) == []
    # Counted where docs/operations.md says to look.
    assert collector.metric("otelcol_exporter_enqueue_failed_spans_total", exporter="otlp/audit") == 2
    assert collector.metric("otelcol_receiver_refused_spans_total", receiver="otlp") == 2

    restart_without(collector, overlay)
    wait_until(lambda: set(ids[:2]) <= set(stored_ids(collector)), timeout=30,
               message="the two queued decisions in the audit files")
    # The senders retry what was refused.
    assert _post(collector, _decision_request(ids[2])) == 200
    assert _grpc_export(collector, _decision_request(ids[3])) == grpc.StatusCode.OK
    wait_until(lambda: set(ids) <= set(stored_ids(collector)), timeout=30, message="all four decisions")
    stored = stored_ids(collector, ReadStats())
    assert sorted(stored) == sorted(ids), "each decision once, the refused ones not written twice"


def test_failed_audit_writes_are_retried_from_the_queue(  # type: ignore[no-untyped-def]
        collector_factory: Callable[..., CollectorProcess], tmp_path: Path, clean_stats) -> None:
    """The audit files cannot be written (here: a regular file stands where the audit directory's
    parent should be, so creating the directory fails, as a full or read-only disk would refuse the
    write): the sender is still acknowledged, the requests wait in the queue and are written, without
    the sender, once the files can be written again."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    collector = collector_factory(jaeger=None, env={"DT_AUDIT_DIR": str(blocker / "audit")})
    cfg = decisiontrail.configure(endpoint=collector.otlp_grpc_endpoint, spool_dir=False, service_name="disk-full",
                                  set_global=False)
    try:
        tracer = cfg.tracer_provider.get_tracer("app")
        ids = []
        for i in range(500):
            with tracer.start_as_current_span("POST /score"):
                ids.append(record_decision("credit", {"income": i}, 1))
        assert cfg.force_flush(30_000)
    finally:
        cfg.shutdown()
    assert stats.snapshot()["exported"] == 500
    wait_until(lambda: (collector.metric("otelcol_receiver_refused_spans_total", receiver="otlp/audit-loopback") or 0) > 0
               and (collector.metric("otelcol_exporter_send_failed_spans_total", exporter="file/audit") or 0) > 0,
               timeout=15, message="failed writes counted at the loopback receiver and the file exporter")
    assert audit_queue_size(collector) > 0
    blocker.unlink()  # the disk is back
    wait_until(lambda: set(ids) <= set(stored_ids(collector)), timeout=30,
               message="the queued decisions written once the file can be written")
    wait_until(lambda: audit_queue_size(collector) == 0, timeout=30, message="the audit queue drained")
    assert sorted(stored_ids(collector)) == sorted(ids)
