"""The write-ahead spool (spool.py) and the OTLP JSON inverse it relies on (exporters/otlpjson.py)."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace import TraceState, set_span_in_context

from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.exporters.otlpjson import spans_from_otlp_json, spans_to_otlp_json
from decisiontrail.spool import Replayer, Spool
from decisiontrail.store.reader import ReadStats, iter_decisions, iter_files


def make_spans(n: int = 3, *, first: int = 0) -> list[ReadableSpan]:
    """Finished SDK spans with what a decision span can carry: events, a link, a remote parent,
    trace state, a non-default kind and status."""
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "deployment.environment": "t"}))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("decisiontrail", "9.9")
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "x")]))
    ctx = set_span_in_context(NonRecordingSpan(parent))
    for i in range(first, first + n):
        link = Link(SpanContext(0xABC, 0xDEF, is_remote=False), {"why": "batch"})
        with tracer.start_as_current_span(f"predict m{i}", context=ctx, kind=SpanKind.SERVER, links=[link],
                                          attributes={"decision.count": 1, "model.name": "m"}) as span:
            span.add_event("model.decision", {"decision.id": f"id-{i}", "decision.score": 0.5,
                                              "decision.input": json.dumps({"i": i}), "decision.ok": True,
                                              "decision.reason.codes": ["a", "b"], "decision.seq": i})
            span.set_status(Status(StatusCode.ERROR, "model said no"))
    provider.shutdown()
    return list(mem.get_finished_spans())


def test_otlp_json_round_trip_is_exact() -> None:
    spans = make_spans()
    line = spans_to_otlp_json(spans)
    back = spans_from_otlp_json(line)
    assert spans_to_otlp_json(back) == line
    s, b = spans[0], back[0]
    assert (b.context.trace_id, b.context.span_id, b.parent.span_id, b.parent.is_remote) == (
        s.context.trace_id, s.context.span_id, s.parent.span_id, True)
    assert b.kind is SpanKind.SERVER and b.status.status_code is StatusCode.ERROR
    assert b.context.trace_state.to_header() == "vendor=x"
    assert b.events[0].attributes["decision.reason.codes"] == ["a", "b"]
    assert b.resource.attributes["service.name"] == "svc" and b.instrumentation_scope.version == "9.9"


def test_rebuilt_spans_go_through_the_otlp_protobuf_encoder() -> None:
    back = spans_from_otlp_json(spans_to_otlp_json(make_spans(2)))
    request = encode_spans(back)
    pb = request.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in pb] == ["predict m0", "predict m1"]
    assert pb[0].events[0].attributes[0].key == "decision.id"


def test_round_trip_keeps_dropped_counts_and_grouping() -> None:
    line = spans_to_otlp_json(make_spans(2))
    msg = json.loads(line)
    msg["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["droppedEventsCount"] = 7
    back = spans_from_otlp_json(msg)
    assert back[0].dropped_events == 7
    assert len(json.loads(spans_to_otlp_json(back))["resourceSpans"]) == 1


def test_append_writes_one_fsynced_line_per_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    spool = Spool(tmp_path / "spool")
    assert not (tmp_path / "spool").exists()  # created on first use only
    spool.append(make_spans(3))
    spool.append(make_spans(2, first=3))
    (seg,) = spool.segments()
    assert seg.name.endswith(".spool") and len(synced) >= 2
    lines = seg.read_bytes().splitlines()
    assert [len(spans_from_otlp_json(line)) for line in lines] == [3, 2]
    assert stat.S_IMODE(seg.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    spool.close()


def test_the_audit_reader_does_not_take_spooled_data_for_stored(tmp_path: Path) -> None:
    FileSpanExporter(tmp_path).export(make_spans(1))
    Spool(tmp_path / "spool").append(make_spans(2, first=1))
    assert [f.name for f in iter_files(tmp_path)] == ["decisions.jsonl"]
    assert [d.decision_id for d in iter_decisions(tmp_path)] == ["id-0"]


def test_segments_roll_at_their_size_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1)
    for i in range(3):
        spool.append(make_spans(1, first=i))
    assert len(spool.segments()) == 3


def test_claim_skips_segments_other_live_processes_hold(tmp_path: Path) -> None:
    writer, reader = Spool(tmp_path), Spool(tmp_path)  # two processes sharing one directory
    writer.append(make_spans(1))
    assert writer.claim() is None  # its own segment is being written
    assert reader.claim() is None  # locked by the live writer
    writer.roll()
    seg = reader.claim()
    assert seg is not None
    assert writer.claim() is None  # being replayed by the other one
    seg.release()
    assert writer.claim() is not None


def test_a_dead_writers_segment_is_claimed(tmp_path: Path) -> None:
    dead = Spool(tmp_path)
    dead.append(make_spans(1))
    os.close(dead._fd)  # type: ignore[arg-type]  # the kernel drops a dead process's locks, nothing more
    seg = Spool(tmp_path).claim()
    assert seg is not None and [len(s) for _, s in seg.batches()] == [1]


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(make_spans(2))
    spool.close()
    (seg_path,) = spool.segments()
    with open(seg_path, "ab") as f:
        f.write(b'{"resourceSpans":[{"reso')  # killed mid-write: never counted as spooled
    seg = spool.claim()
    assert seg is not None and [len(s) for _, s in seg.batches()] == [2]


class Switch(SpanExporter):
    """Fails while ``down``; records what it accepted."""

    def __init__(self, down: bool = True) -> None:
        self.down = down
        self.calls = 0
        self.accepted: list[list[ReadableSpan]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.down:
            return SpanExportResult.FAILURE
        self.accepted.append(list(spans))
        return SpanExportResult.SUCCESS


def test_replayer_retries_with_backoff_and_deletes_only_after_success(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(make_spans(2, first=2 * i))
    spool.roll()
    exporter = Switch(down=True)
    replayer = Replayer(spool, lambda s, strikes: exporter.export(s) is SpanExportResult.SUCCESS,
                        min_backoff=0.05, max_backoff=0.1)
    replayer.wake()
    time.sleep(0.4)
    assert exporter.calls >= 2 and len(spool.segments()) == 1  # retried, nothing deleted
    exporter.down = False
    replayer.wake()
    assert replayer.wait_idle(5)
    assert spool.segments() == [] and [len(b) for b in exporter.accepted] == [2, 2, 2]
    replayer.stop()


def test_a_failing_record_does_not_hold_back_the_next_and_none_is_sent_twice(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(make_spans(1, first=i))
    spool.roll()
    sent: list[str] = []
    fail_once = {"id-1"}

    def export(spans: list[ReadableSpan], strikes: int) -> bool:
        did = str(spans[0].events[0].attributes["decision.id"])
        if did in fail_once:
            fail_once.discard(did)
            return False
        sent.append(did)
        return True

    replayer = Replayer(spool, export, min_backoff=0.01)
    replayer.wake()
    assert replayer.wait_idle(5)
    assert sent == ["id-0", "id-2", "id-1"]  # id-2 went on; id-0 and id-2 were not sent again
    replayer.stop()


def test_an_unparseable_segment_is_set_aside_not_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(make_spans(1))
    spool.close()
    (seg_path,) = spool.segments()
    seg_path.write_bytes(b"not json\n" + seg_path.read_bytes())
    replayer = Replayer(spool, lambda s, strikes: True)
    replayer.wake()
    assert replayer.wait_idle(5)
    assert spool.segments() == [] and [p.suffixes for p in tmp_path.iterdir()] == [[".spool", ".bad"]]
    replayer.stop()


def test_replays_that_duplicate_are_deduplicated_by_the_reader(tmp_path: Path) -> None:
    store = FileSpanExporter(tmp_path)
    spans = make_spans(4)
    store.export(spans[:3])
    store.export(spans)  # a replay after an acknowledgement that never arrived
    stats = ReadStats()
    assert [d.decision_id for d in iter_decisions(tmp_path, stats)] == ["id-0", "id-1", "id-2", "id-3"]
    assert stats.duplicates == 3


def test_concurrent_appends_each_land_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    threads = [threading.Thread(target=lambda i=i: [spool.append(make_spans(1, first=i * 10 + k)) for k in range(5)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.close()
    ids = [s.events[0].attributes["decision.id"] for p in spool.segments()
           for line in p.read_bytes().splitlines() for s in spans_from_otlp_json(line)]
    assert sorted(ids) == sorted(f"id-{i * 10 + k}" for i in range(4) for k in range(5))


def test_flock_is_what_keeps_processes_apart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(make_spans(1))
    spool.roll()
    (path,) = spool.segments()
    with open(path, "rb") as other:  # another process replaying it
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        assert spool.claim() is None
    assert spool.claim() is not None
