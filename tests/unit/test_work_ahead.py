"""While a request is on its way, the export thread links and encodes the next batch
(processor._work_ahead through the OTLP exporter's ``idle``); a batch counts as delivered only
once its own request was answered, and the chain stays in queue order."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from decisiontrail import stats
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.exporters.otlp import OK, TRANSIENT, Answer, OTLPExporter
from decisiontrail.exporters.otlp_proto import ProtoEncoder
from processor_support import decide, make


class Overlapping:
    """A transport that can start a request; what happens in between is logged in order."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.log: list[str] = []
        self.requests: list[bytes] = []
        self.answers = answers or []
        self.gate = threading.Event()
        self.gate.set()
        self.encoded: list[int] = []  # spans encoded so far, appended to by the test

    def send(self, body: bytes, timeout: float) -> Answer:
        return self.start(body, timeout)()

    def start(self, body: bytes, timeout: float) -> Callable[[], Answer]:
        self.gate.wait()  # the test opens it once everything is queued
        n = len(self.requests)
        self.requests.append(body)
        self.log.append(f"start {n}")

        def wait() -> Answer:
            kind = self.answers.pop(0) if self.answers else OK
            self.log.append(f"answer {n} {kind} after {len(self.encoded)} spans encoded")
            return Answer(kind)
        return wait

    def partial_success(self, body: bytes) -> tuple[int, str]:
        return 0, ""

    def close(self) -> None:
        pass


def decision_ids(body: bytes) -> list[tuple[str, int]]:
    req = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for e in span.events:
                    a = {kv.key: kv.value for kv in e.attributes}
                    out.append((a[D.ID].string_value, a[D.CHAIN_SEQ].int_value))
    return out


def test_the_next_batch_is_linked_and_encoded_while_a_request_is_on_its_way() -> None:
    transport = Overlapping()
    exporter = OTLPExporter(transport, ProtoEncoder())
    encoded = transport.encoded
    span = exporter.encoder.span

    def counting(s):  # type: ignore[no-untyped-def]
        encoded.append(1)
        return span(s)
    exporter.encoder.span = counting  # type: ignore[method-assign]
    processor, provider = make(exporter, max_export_batch_size=10, schedule_delay_millis=60_000,
                               max_queue_size=1000)
    assert exporter.idle is not None
    before = stats.snapshot()
    transport.gate.clear()  # hold the first request until everything is queued
    ids = [decide(provider, i) for i in range(35)]
    transport.gate.set()
    assert processor.force_flush(10_000)
    sent = [d for body in transport.requests for d in decision_ids(body)]
    assert [d for d, _ in sent] == ids  # each decision once, in order
    assert [seq for _, seq in sent] == list(range(1, 36))  # the chain in queue order
    assert len(encoded) == 35  # what was encoded ahead was sent as it was, not encoded again
    # the second batch was linked and encoded while the first request was on its way
    assert transport.log[:2] == ["start 0", "answer 0 ok after 20 spans encoded"], transport.log
    assert stats.snapshot()["exported"] - before["exported"] == 35 and stats.snapshot()["lost"] == before["lost"]
    processor.shutdown()


def test_a_failed_request_still_retries_only_its_own_batch() -> None:
    transport = Overlapping(answers=[TRANSIENT, TRANSIENT, TRANSIENT, TRANSIENT, TRANSIENT])
    exporter = OTLPExporter(transport, ProtoEncoder(), retry_millis=0)
    processor, provider = make(exporter, max_export_batch_size=10, schedule_delay_millis=60_000,
                               max_queue_size=1000)
    before = stats.snapshot()
    transport.gate.clear()
    ids = [decide(provider, i) for i in range(30)]
    transport.gate.set()
    assert processor.force_flush(30_000)
    delivered = [d for body, kind in zip(transport.requests, [TRANSIENT] * 5 + [OK] * 100)
                 if kind == OK for d, _ in decision_ids(body)]
    assert sorted(delivered) == sorted(ids)
    assert stats.snapshot()["exported"] - before["exported"] == 30 and stats.snapshot()["lost"] == before["lost"]
    processor.shutdown()
