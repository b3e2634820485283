"""Issue 8's exporter side against the real collector, with loopback HTTP servers standing in for a
gateway in front of it: oversized requests split, 413 split and retried, redirects counted as
failures and replayed, partial_success rejections dead-lettered and never counted as exported.

Every test reads the collector's audit files with the project's reader and compares decision ids.
"""

from __future__ import annotations

import http.client
import http.server
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from integration_support import CollectorProcess, wait_until
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

import decisiontrail
from decisiontrail import record_decision, stats
from decisiontrail.config import Configuration
from decisiontrail.store.reader import iter_decisions


def stored_ids(collector: CollectorProcess) -> set[str]:
    return {d.decision_id for d in iter_decisions(collector.audit_dir)} if collector.audit_dir.is_dir() else set()


def wait_stored(collector: CollectorProcess, ids: set[str], timeout: float = 180) -> None:
    wait_until(lambda: ids <= stored_ids(collector), timeout=timeout, interval=1.0,
               message=lambda: f"{len(ids - stored_ids(collector))} of {len(ids)} decisions still missing")


class Gateway(http.server.ThreadingHTTPServer):
    """A loopback HTTP server in front of the collector's OTLP/HTTP receiver. ``answer(body)`` returns
    None to forward the request, or (status, headers, body) to answer it itself."""

    daemon_threads = True

    def __init__(self, upstream: str, answer: Callable[[bytes], tuple[int, dict[str, str], bytes] | None]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream.removeprefix("http://")
        self.answer = answer
        self.answered: dict[int, int] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, status: int) -> None:
        with self.lock:
            self.answered[status] = self.answered.get(status, 0) + 1


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        server: Gateway = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        own = server.answer(body)
        if own is None:
            conn = http.client.HTTPConnection(server.upstream, timeout=30)
            try:
                conn.request("POST", self.path, body, {"Content-Type": self.headers["Content-Type"]})
                resp = conn.getresponse()
                own = resp.status, {"Content-Type": resp.getheader("Content-Type", "")}, resp.read()
            finally:
                conn.close()
        status, headers, payload = own
        server.count(status)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_sixty_request_spans_of_128_big_decisions_over_grpc_are_all_stored(
        collector_factory: Callable[..., CollectorProcess], configured: Callable[..., Configuration]) -> None:
    # 60 x 128 decisions of ~8 KB: one 60 MB request before (refused for its size, retried forever).
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint)
    tracer = cfg.tracer_provider.get_tracer("limits")
    blob = "b" * 7_900
    ids = set()
    for r in range(60):
        with tracer.start_as_current_span("POST /score"):
            for i in range(128):
                ids.add(record_decision("big", {"r": r, "i": i, "blob": blob}, i % 2))
    assert cfg.drain(300_000)
    wait_stored(collector, ids)
    snap = stats.snapshot()
    assert snap["lost"] == 0 and snap["exported"] == len(ids) == 7680
    assert cfg.exporter.requests_sent >= 15  # type: ignore[attr-defined]  # one request per ~1 MB


def test_a_gateway_refusing_bodies_over_1_mib_with_413_gets_them_split(
        collector_factory: Callable[..., CollectorProcess], configured: Callable[..., Configuration]) -> None:
    collector = collector_factory(jaeger=None)
    limit = 1 << 20
    gateway = Gateway(collector.otlp_http_endpoint,
                      lambda body: (413, {}, b"Request Entity Too Large") if len(body) > limit else None)
    cfg = configured(gateway.url, protocol="http/protobuf", max_request_bytes=8 << 20)  # over the gateway's
    blob = "g" * 3_000
    ids = {record_decision("gw", {"i": i, "blob": blob}, 1) for i in range(3424)}
    assert cfg.drain(300_000)
    wait_stored(collector, ids)
    assert stats.snapshot()["lost"] == 0 and stats.snapshot()["exported"] == 3424
    assert gateway.answered.get(413, 0) >= 1 and cfg.exporter.requests_split >= 1  # type: ignore[attr-defined]
    assert cfg.exporter.describe()["current_cap"] <= limit  # type: ignore[attr-defined]


def test_an_endpoint_redirecting_for_10_s_counts_as_failure_then_everything_is_replayed(
        collector_factory: Callable[..., CollectorProcess], configured: Callable[..., Configuration],
        caplog: pytest.LogCaptureFixture) -> None:
    collector = collector_factory(jaeger=None)
    until = time.monotonic() + 10
    gateway = Gateway(collector.otlp_http_endpoint, lambda body: (
        (302, {"Location": "https://elsewhere.invalid/v1/traces"}, b"") if time.monotonic() < until else None))
    cfg = configured(gateway.url, protocol="http/protobuf", processor_options={"schedule_delay_millis": 100})
    ids = set()
    with caplog.at_level(logging.WARNING, logger="decisiontrail"):
        for i in range(1741):
            ids.add(record_decision("redirected", {"i": i}, i % 3))
            if i % 200 == 0:
                time.sleep(0.3)  # spread over a few seconds of the redirect window
        assert cfg.force_flush(60_000)
        during = stats.snapshot()
        assert time.monotonic() < until, "the machine is too slow: the redirect window ended too early"
        assert during["exported"] < len(ids) and during["spooled"] > 0  # a failure, not an export
        assert cfg.drain(120_000)
    wait_stored(collector, ids)
    assert gateway.answered.get(302, 0) >= 1
    assert stats.snapshot()["lost"] == 0
    assert any("302" in r.getMessage() and "redirect" in r.getMessage() for r in caplog.records)


def test_partial_success_rejecting_every_span_is_dead_lettered_not_exported(
        collector_factory: Callable[..., CollectorProcess], configured: Callable[..., Configuration],
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    collector = collector_factory(jaeger=None)

    def reject_all(body: bytes) -> tuple[int, dict[str, str], bytes]:
        n = sum(len(ss.spans) for rs in ExportTraceServiceRequest.FromString(body).resource_spans
                for ss in rs.scope_spans)
        reply = ExportTraceServiceResponse(partial_success={"rejected_spans": n, "error_message": "quota"})
        return 200, {"Content-Type": "application/x-protobuf"}, reply.SerializeToString()

    gateway = Gateway(collector.otlp_http_endpoint, reject_all)
    cfg = configured(gateway.url, protocol="http/protobuf")
    with caplog.at_level(logging.WARNING, logger="decisiontrail"):
        ids = {record_decision("refused", {"i": i}, 0) for i in range(1730)}
        assert not cfg.drain(60_000)  # something was not delivered: drain says so
    snap = stats.snapshot()
    assert snap["exported"] == 0 and snap["lost"] == 0
    assert snap["dead_lettered"] == len(ids)
    assert any("partial_success" in r.getMessage() for r in caplog.records)
    dead = b"".join(p.read_bytes() for p in (tmp_path / "spool").rglob("*") if p.is_file()
                    and "dead" in str(p.relative_to(tmp_path)))
    assert all(i.encode() in dead for i in ids)
    assert not stored_ids(collector)
