"""Spool faults: damaged records, records of the wrong shape, a deleted directory, a spool that
cannot be written, a segment that is never filled, a batch that keeps failing (spool/, processing/)."""

from __future__ import annotations

import errno
import logging
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from decisiontrail import stats
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.deadletter import decision_ids, read_dead_letters
from decisiontrail.spool import Replayer, Spool
from decisiontrail.spool import segments as segments_module
from processor_support import decide, make


class Switch(SpanExporter):
    """Fails while ``down`` and for any batch holding a decision id in ``poison``."""

    def __init__(self, down: bool = False, poison: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.down, self.poison = down, set(poison)
        self.accepted: list[str] = []
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ids = decision_ids(spans)
        with self.lock:
            if self.down or self.poison & set(ids):
                return SpanExportResult.FAILURE
            self.accepted.extend(ids)
        return SpanExportResult.SUCCESS


@pytest.fixture(autouse=True)
def zero_stats() -> Iterator[None]:
    stats.reset()
    yield




def spooled(tmp_path: Path, records: int, per_record: int) -> tuple[Spool, list[str]]:
    """One closed segment of ``records`` records of ``per_record`` decisions each."""
    spool = Spool(tmp_path / "spool", max_segment_age=3600)
    spans = spans_of(records * per_record)
    for r in range(records):
        spool.append(spans[r * per_record:(r + 1) * per_record], per_record)
    spool.close()
    stats.reset()
    return spool, decision_ids(spans)


def test_one_flipped_byte_costs_one_record_the_rest_is_replayed(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    spool, ids = spooled(tmp_path, 18, per_record=8)
    (seg,) = spool.segments()
    lines = seg.read_bytes().split(b"\n")
    assert len(lines) == 19 and lines[-1] == b""  # 18 records
    damaged = bytearray(lines[6])
    damaged[len(damaged) // 2] ^= 0x01  # one bit of one byte, inside a string: still valid JSON
    lines[6] = bytes(damaged)
    seg.write_bytes(b"\n".join(lines))
    exporter = Switch()
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        processor, _ = make(exporter, Spool(tmp_path / "spool"))
        assert not processor.drain(10_000)  # something was not delivered
    assert len(exporter.accepted) == 17 * 8 and set(exporter.accepted) <= set(ids)
    assert set(ids) - set(exporter.accepted) == set(ids[6 * 8:7 * 8])  # the records before and after went
    snap = stats.snapshot()
    assert snap["spool_corrupt"] == 1 and snap["lost"] == 8 and snap["exported"] == 17 * 8
    (bad,) = (tmp_path / "spool").glob("*.spool.bad")
    assert bad.read_bytes() == lines[6] + b"\n"  # kept aside, byte for byte
    assert "checksum mismatch" in caplog.text and "1 spool record(s) with 8 decision(s) are corrupt" in caplog.text
    assert processor.health()["undelivered"]["spool_corrupt"] == 1  # type: ignore[index]
    assert Spool(tmp_path / "spool").segments() == []
    processor.shutdown()


@pytest.mark.parametrize("line", [b'{"resourceSpans":[]}', b'{"traces":"elsewhere"}', b'[1, 2]',
                                  b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]}'])
def test_a_record_of_the_wrong_shape_is_kept_aside_not_deleted(tmp_path: Path, line: bytes) -> None:
    spool = Spool(tmp_path)
    spool.append(spans_of(2), 2)
    spool.close()
    (seg,) = spool.segments()
    seg.write_bytes(line + b"\n" + seg.read_bytes())
    corrupt: list[str] = []
    replayer = Replayer(spool, lambda s, strikes: True,
                        on_corrupt=lambda sg, rec: (corrupt.append(str(rec.problem)), sg.keep_aside(rec)))
    replayer.wake()
    assert replayer.wait_idle(5)
    replayer.stop()
    assert len(corrupt) == 1 and replayer.replayed_batches == 1
    assert (tmp_path / (seg.name[:-len(".spool")] + ".spool.bad")).read_bytes() == line + b"\n"


def spans_of(n: int) -> list[ReadableSpan]:
    got: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            got.extend(spans)
            return SpanExportResult.SUCCESS

    processor, provider = make(Keep(), Spool(Path("/nonexistent/never-written")))
    for i in range(n):
        decide(provider, i)
    processor.force_flush()
    processor.shutdown()
    return got


def test_the_segment_being_written_is_replayed_after_a_bounded_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_segment_age=0.2)
    spool.append(spans_of(1), 1)
    sent: list[int] = []
    # Another replayer's segment would be claimed first; here there is only the open one, which
    # the replayer closes once it is old enough, with no further append.
    replayer = Replayer(spool, lambda s, strikes: sent.append(len(s)) is None, poll_interval=0.05)
    replayer.wake()
    assert replayer.wait_idle(5)
    replayer.stop()
    assert sent == [1] and spool.segments() == []


def test_a_batch_that_keeps_failing_does_not_block_the_others_and_is_dead_lettered(tmp_path: Path) -> None:
    poison = "0000000000000013"
    exporter = Switch(poison={poison})
    spool = Spool(tmp_path / "spool")
    processor, provider = make(exporter, spool, max_export_batch_size=64)
    ids = [decide(provider, i) for i in range(64 * 6)]
    for i in range(64 * 6, 64 * 8):  # later traffic
        ids.append(decide(provider, i))
    assert not processor.drain(20_000)
    assert sorted(exporter.accepted) == sorted(set(ids) - {poison})  # each of the others once
    (record,) = read_dead_letters(tmp_path / "spool" / "dead-letter")
    assert record["decisionIds"] == [poison] and "times while the exporter accepted other batches" in record["reason"]
    snap = stats.snapshot()
    assert snap["dead_lettered"] == 1 and snap["exported"] == len(ids) - 1 and snap["lost"] == 0
    assert spool.segments() == [] and processor.healthy
    processor.shutdown()


def test_a_deleted_spool_directory_is_made_again_and_the_open_segment_rewritten(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_segment_age=3600)
    problems: list[str] = []
    spool.on_problem = problems.append
    spans = spans_of(30)
    spool.append(spans[:10], 10)
    spool.append(spans[10:20], 10)
    shutil.rmtree(tmp_path / "spool")  # with the segment being written in it
    spool.append(spans[20:], 10)
    assert any("was deleted while being written; its 20 decisions were written again" in p for p in problems)
    sent: list[str] = []
    replayer = Replayer(spool, lambda s, strikes: sent.extend(decision_ids(s)) is None)
    replayer.wake()
    assert replayer.wait_idle(5)
    replayer.stop()
    assert sent == decision_ids(spans) and spool.segments() == []


def test_closed_segments_deleted_with_their_directory_are_counted_lost(tmp_path: Path) -> None:
    exporter = Switch(down=True)
    spool = Spool(tmp_path / "spool", max_segment_age=3600)
    processor, provider = make(exporter, spool, replay_min_backoff_millis=60_000)
    for i in range(30):
        decide(provider, i)
    assert processor.force_flush()
    spool.roll()  # closed, waiting for replay
    # The replayer's first pass (woken by the spill) tries the segment and fails: wait until it let
    # go of it and backs off, or it would still hold it open when the directory goes (and rescue it).
    replayer = processor.replayer
    assert replayer is not None
    deadline = time.monotonic() + 10
    while not replayer._failures and time.monotonic() < deadline:
        time.sleep(0.01)
    shutil.rmtree(tmp_path / "spool")
    decide(provider, 99)
    assert processor.force_flush()
    assert stats.snapshot()["lost"] == 30 and not processor.drain(100)
    assert "vanished with the spool directory" in str(processor.health()["undelivered"])
    processor.shutdown()


def test_health_recovers_with_the_exporter_while_the_spool_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(fd: int, data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(segments_module, "_write_all", read_only)
    exporter = Switch(down=True)
    processor, provider = make(exporter, Spool(tmp_path / "spool"), max_export_batch_size=16)
    ids = [decide(provider, i) for i in range(200)]
    threading.Event().wait(0.5)
    assert not processor.healthy and stats.snapshot()["spool_errors"] > 0
    exporter.down = False  # the collector is back; the spool is still read-only
    assert processor.force_flush(10_000)
    assert processor.healthy and sorted(exporter.accepted) == sorted(ids)
    assert stats.snapshot()["lost"] == 0 and stats.snapshot()["spooled"] == 0
    processor.shutdown()
