"""The processor's side of the delivery contract (exporters/delivery.py): delivered spans are counted
as exported, spans to retry go to the spool and are replayed, spans rejected for good go to the
dead-letter file with their ids and reason, counted, logged, reported by drain()/health() and raised
under fail-closed, never retried and never counted as exported."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import decisiontrail
from decisiontrail import DecisionLostError, record_decision, stats
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.deadletter import decision_ids, read_dead_letters
from decisiontrail.exporters.delivery import Delivery
from decisiontrail.recorder import set_recorder
from decisiontrail.spool import Spool
from processor_support import decide, make


class Judge(SpanExporter):
    """A delivering exporter: rejects the decision ids in ``reject``, asks to retry those in
    ``retry`` (once each), delivers the rest; remembers every id it was offered."""

    def __init__(self, reject: set[str] = frozenset(), retry: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.reject, self.retry = set(reject), set(retry)
        self.reject_input = "\0"  # also reject decisions whose input contains this
        self.offered: list[str] = []
        self.delivered: list[str] = []
        self.lock = threading.Lock()

    def deliver(self, spans: Sequence[ReadableSpan]) -> Delivery:
        out = Delivery()
        with self.lock:
            for s in spans:
                (did,) = decision_ids([s]) or ["-"]
                self.offered.append(did)
                inputs = str(s.events[0].attributes.get("decision.input", "")) if s.events else ""  # type: ignore[union-attr]
                if did in self.reject or self.reject_input in inputs:
                    out.rejected.append((s, "HTTP 400: invalid span"))
                elif did in self.retry:
                    self.retry.discard(did)
                    out.retry.append(s)
                else:
                    self.delivered.append(did)
                    out.delivered.append(s)
        return out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:  # pragma: no cover - deliver is used
        raise AssertionError("the processor must call deliver()")


@pytest.fixture(autouse=True)
def zero_stats() -> Iterator[None]:
    stats.reset()
    yield




def test_rejected_spans_are_dead_lettered_counted_logged_and_never_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    judge = Judge(reject={f"0000000{i:09d}" for i in (3, 7)})
    processor, provider = make(judge, Spool(tmp_path / "spool"))
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        ids = [decide(provider, i) for i in range(20)]
        assert not processor.drain(5000)  # something was not delivered: never True again
    rejected = sorted(judge.reject)
    assert judge.offered.count(rejected[0]) == 1 and judge.offered.count(rejected[1]) == 1  # never retried
    assert sorted(judge.delivered) == sorted(set(ids) - judge.reject)
    snap = stats.snapshot()
    assert snap["exported"] == 18 and snap["dead_lettered"] == 2 and snap["lost"] == 0
    (record,) = read_dead_letters(tmp_path / "spool" / "dead-letter")
    assert sorted(record["decisionIds"]) == rejected and record["decisions"] == 2
    assert record["reason"] == "HTTP 400: invalid span" and record["request"]["resourceSpans"]
    assert "2 decisions dead-lettered (HTTP 400: invalid span" in caplog.text
    health = processor.health()
    assert health["delivered_all"] is False and health["undelivered"]["dead_lettered"] == 2  # type: ignore[index]
    processor.shutdown()


def test_spans_to_retry_go_to_the_spool_and_are_replayed(tmp_path: Path) -> None:
    judge = Judge(retry={f"0000000{i:09d}" for i in range(0, 20, 2)})
    spool = Spool(tmp_path / "spool")
    processor, provider = make(judge, spool)
    ids = [decide(provider, i) for i in range(20)]
    assert processor.drain(10_000)
    assert sorted(judge.delivered) == sorted(ids)  # each once: what was delivered is not sent again
    snap = stats.snapshot()
    assert snap["exported"] == 20 and snap["spooled"] == 10 and snap["dead_lettered"] == 0
    assert spool.segments() == [] and processor.health()["delivered_all"] is True
    processor.shutdown()


def test_without_a_dead_letter_directory_a_rejection_is_counted_lost(tmp_path: Path) -> None:
    judge = Judge(reject={"0000000000000001"})
    processor, provider = make(judge, None, on_full="block")
    for i in range(3):
        decide(provider, i)
    assert not processor.drain(5000)
    assert stats.snapshot()["lost"] == 1 and stats.snapshot()["exported"] == 2
    processor.shutdown()


def test_fail_closed_raises_an_export_side_loss_on_the_next_recording_call(tmp_path: Path) -> None:
    judge = Judge()
    cfg = decisiontrail.configure(exporter=judge, spool_dir=tmp_path / "spool", set_global=False, fail_closed=True,
                                  processor_options={"schedule_delay_millis": 20})
    try:
        judge.reject_input = '"x":1'
        record_decision("m", {"x": 1}, 1)
        assert not cfg.drain(5000)
        with pytest.raises(DecisionLostError, match="dead-lettered") as caught:
            record_decision("m", {"x": 2}, 2)  # recorded, then the earlier loss is raised
        assert "1 decision(s) rejected for good" in str(caught.value)
        record_decision("m", {"x": 3}, 3)  # raised once
        judge.reject_input = "\0"
        assert not cfg.drain(5000)  # the loss stays on record
        assert len(judge.delivered) == 2 and cfg.health()["undelivered"]["dead_lettered"] == 1  # type: ignore[index]
    finally:
        cfg.shutdown()
        set_recorder(None)
