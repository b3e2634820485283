"""The fast OTLP exporters' answers (exporters/otlp.py, otlp_http.py): size cap and split, 413 and
RESOURCE_EXHAUSTED, permanent rejections, partial_success, redirects, retries; against loopback
HTTP servers and a scripted transport."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

from decisiontrail.exporters.delivery import deliver_with
from decisiontrail.exporters.otlp import OK, REJECTED, TOO_LARGE, TRANSIENT, Answer, OTLPExporter
from decisiontrail.exporters.otlp_http import FastOTLPHttpExporter
from decisiontrail.exporters.otlp_proto import ProtoEncoder

RES = Resource({"service.name": "t"})
SCOPE = InstrumentationScope("decisiontrail")


def make_spans(n: int, size: int = 1000) -> list[ReadableSpan]:
    return [ReadableSpan("predict", SpanContext(1, i + 1, False, TraceFlags(1)), None, RES, {"decision.count": 1},
                         [Event("model.decision", {"decision.id": f"d{i}", "decision.input": "x" * size}, 1)],
                         instrumentation_scope=SCOPE) for i in range(n)]


class Scripted:
    """A transport answering each request with ``answer(body)``; records request sizes."""

    def __init__(self, answer: Callable[[bytes], Answer]) -> None:
        self.answer = answer
        self.sizes: list[int] = []

    def send(self, body: bytes, timeout: float) -> Answer:
        self.sizes.append(len(body))
        return self.answer(body)

    def partial_success(self, body: bytes) -> tuple[int, str]:
        r = ExportTraceServiceResponse.FromString(body)
        return r.partial_success.rejected_spans, r.partial_success.error_message

    def close(self) -> None:
        pass


def limit(n: int) -> Callable[[bytes], Answer]:
    return lambda body: Answer(TOO_LARGE, "too big") if len(body) > n else Answer(OK)


def test_batches_are_capped_in_bytes() -> None:
    t = Scripted(lambda body: Answer(OK))
    d = OTLPExporter(t, ProtoEncoder(), max_request_bytes=10_000).deliver(make_spans(50))
    assert d.ok and len(d.delivered) == 50
    assert len(t.sizes) >= 5 and max(t.sizes) <= 10_000


def test_a_request_refused_for_its_size_is_split_until_it_fits_and_later_requests_stay_under() -> None:
    t = Scripted(limit(20_000))
    exporter = OTLPExporter(t, ProtoEncoder(), max_request_bytes=1_000_000)
    d = exporter.deliver(make_spans(100))
    assert d.ok and sorted(s.context.span_id for s in d.delivered) == list(range(1, 101))
    assert exporter.requests_split > 0
    t.sizes.clear()
    assert exporter.deliver(make_spans(100)).ok
    assert max(t.sizes) <= 20_000  # the cap it learned


def test_a_single_span_too_large_is_rejected_the_rest_delivered() -> None:
    t = Scripted(limit(20_000))
    batch = make_spans(10)
    batch[4] = make_spans(5, size=50_000)[4]
    d = OTLPExporter(t, ProtoEncoder(), max_request_bytes=1_000_000).deliver(batch)
    assert [s.context.span_id for s, _ in d.rejected] == [5]
    assert "refused for its size" in d.rejected[0][1]
    assert len(d.delivered) == 9 and not d.retry


def test_partial_success_with_rejected_spans_is_rejected_not_delivered() -> None:
    body = ExportTraceServiceResponse(partial_success={"rejected_spans": 3, "error_message": "bad"}).SerializeToString()
    d = OTLPExporter(Scripted(lambda b: Answer(OK, body=body)), ProtoEncoder()).deliver(make_spans(3))
    assert not d.delivered and len(d.rejected) == 3 and "partial_success" in d.rejected[0][1]
    assert "bad" in d.rejected[0][1]


def test_transient_errors_are_retried_then_left_for_later() -> None:
    answers = iter([Answer(TRANSIENT, "503"), Answer(OK)])
    t = Scripted(lambda b: next(answers))
    assert OTLPExporter(t, ProtoEncoder(), retry_millis=2000).deliver(make_spans(3)).ok
    t = Scripted(lambda b: Answer(TRANSIENT, "down"))
    exporter = OTLPExporter(t, ProtoEncoder(), max_request_bytes=2_000, retry_millis=50)
    d = exporter.deliver(make_spans(6))
    assert len(d.retry) == 6 and not d.delivered
    assert len(t.sizes) < 10  # the first failing request stops the batch: the rest is not tried


def test_shutdown_stops_retrying() -> None:
    t = Scripted(lambda b: Answer(TRANSIENT, "down"))
    exporter = OTLPExporter(t, ProtoEncoder(), retry_millis=60_000)
    threading.Timer(0.2, exporter.shutdown).start()
    assert len(exporter.deliver(make_spans(2)).retry) == 2
    assert len(exporter.deliver(make_spans(2)).retry) == 2


def test_a_permanent_rejection_is_rejected_and_export_reports_failure() -> None:
    exporter = OTLPExporter(Scripted(lambda b: Answer(REJECTED, "HTTP 400")), ProtoEncoder())
    d = deliver_with(exporter, make_spans(2))
    assert len(d.rejected) == 2 and "HTTP 400" in d.rejected[0][1]
    assert not exporter.export(make_spans(1)).name == "SUCCESS"


# -- HTTP, against loopback servers --------------------------------------------------------------
class Gateway(http.server.BaseHTTPRequestHandler):
    """Answers per the server's ``mode``: a gateway with a body limit, a redirect, a rejection."""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        mode = server.mode  # type: ignore[attr-defined]
        server.received.append(body)  # type: ignore[attr-defined]
        if mode == "limit" and len(body) > 20_000:
            self.send_response(413)
            self.end_headers()
            self.wfile.write(b"Request Entity Too Large")
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode in ("400", "503", "408"):
            self.send_response(int(mode))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "hold":  # answer only once the client says it went on with other work meanwhile
            server.released.append(server.release.wait(10))  # type: ignore[attr-defined]
        n = len(ExportTraceServiceRequest.FromString(body).resource_spans[0].scope_spans[0].spans)
        reply = ExportTraceServiceResponse(partial_success={"rejected_spans": n, "error_message": "all rejected"}
                                           if mode == "partial" else None).SerializeToString()
        server.accepted += n  # type: ignore[attr-defined]  # before answering: the client goes on at once
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)  # one request at a time
    server.mode, server.received, server.accepted = "ok", [], 0  # type: ignore[attr-defined]
    server.release, server.released = threading.Event(), []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: http.server.HTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1/traces"


@pytest.mark.parametrize("mode, outcome", [("ok", "delivered"), ("limit", "delivered"), ("redirect", "retry"),
                                           ("503", "retry"), ("408", "retry"), ("400", "rejected"),
                                           ("partial", "rejected")])
def test_http_answers(gateway: http.server.HTTPServer, mode: str, outcome: str) -> None:
    gateway.mode = mode  # type: ignore[attr-defined]
    exporter = FastOTLPHttpExporter(url(gateway), retry_millis=100)
    d = exporter.deliver(make_spans(40))
    exporter.shutdown()
    got = {"delivered": len(d.delivered), "retry": len(d.retry), "rejected": len(d.rejected)}
    assert got[outcome] == 40, got
    if mode == "limit":
        assert gateway.accepted == 40  # type: ignore[attr-defined]
        assert exporter.requests_split > 0
    if mode == "redirect":
        assert len(gateway.received) == 1  # type: ignore[attr-defined]  # not followed, not retried here


def test_over_http_the_exporter_works_ahead_while_the_receiver_answers(gateway: http.server.HTTPServer) -> None:
    """``idle`` (the processor's work-ahead) runs after the request was sent and before its answer
    is read: the receiver here answers only once ``idle`` ran."""
    gateway.mode = "hold"  # type: ignore[attr-defined]
    exporter = FastOTLPHttpExporter(url(gateway), retry_millis=100)
    calls: list[int] = []

    def idle() -> None:
        calls.append(len(calls))
        gateway.release.set()  # type: ignore[attr-defined]
    exporter.idle = idle
    d = exporter.deliver(make_spans(40))
    exporter.shutdown()
    assert len(d.delivered) == 40 and calls == [0]
    assert gateway.released == [True]  # type: ignore[attr-defined]  # the answer came after idle, not after a timeout
