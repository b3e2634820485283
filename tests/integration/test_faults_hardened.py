"""No decision lost under the faults of issue 8, against the real collector binary: a huge decision
among small ones, a spool that cannot be written, a deleted spool directory, a flipped byte in a
spool segment, a multiprocessing Pool leaving its with-block, forks while threads record over gRPC,
threads sharing one span, fail-closed with a loss on the export side, durability="sync" workers
killed hard.

Each test counts decision ids sent against ids found in the collector's audit files (the project's
reader, after deduplication). Where a loss cannot be avoided (a corrupt record, segments deleted
with their directory, a decision too big to send), it must be counted, logged, reported by drain()
and kept where the docs say. Decision counts are scaled down from the issue's (30,000 -> 3,000,
20,000 -> 4,000, 128,000 -> 8,000): the behaviour does not depend on them, the run time does.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from integration_support import CollectorProcess, free_port, wait_until
from opentelemetry import trace

import decisiontrail
from decisiontrail import DecisionLostError, record_decision, stats
from decisiontrail.config import Configuration
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.deadletter import read_dead_letters
from decisiontrail.spool import segments as spool_segments
from decisiontrail.store.reader import iter_decisions

HUGE = 20 * 1024 * 1024


REPLAY_BACKOFF_MILLIS = (100, 1000)  # the conftest `configured` fixture's replay backoff


def stored_ids(collector: CollectorProcess, wanted: set[str], timeout: float = 60) -> list[str]:
    """The decision ids in the audit files once ``wanted`` are all there (or after ``timeout``)."""
    def ids() -> list[str]:
        return [d.decision_id for d in iter_decisions(collector.audit_dir)] if collector.audit_dir.is_dir() else []
    try:
        wait_until(lambda: wanted <= set(ids()), timeout=timeout, message="the decisions in the audit files")
    except AssertionError:
        pass  # the caller's assertion says what is missing
    return ids()


def assert_stored(collector: CollectorProcess, sent: list[str], scenario: str) -> None:
    got = stored_ids(collector, set(sent))
    missing = set(sent) - set(got)
    assert not missing, f"[{scenario}] {len(missing)} of {len(sent)} decisions missing, e.g. {sorted(missing)[:3]}"
    print(f"\n[{scenario}] sent {len(sent)}, stored {len(set(got))} (unique); {stats.snapshot()}")


def huge_span(cfg: Configuration, decision_id: str) -> None:
    """A decision span far over any request limit, handed to the processor as is (not through the
    recorder, which bounds every field): the processor must not let it block anything."""
    span = cfg.tracer_provider.get_tracer("injected").start_span("predict huge")
    span.add_event("model.decision", {"decision.id": decision_id, "model.name": "credit",
                                      "decision.input": "x" * HUGE, "decision.output": "1"})
    span.set_attribute(S.DECISION_COUNT, 1)
    span.end()


@pytest.mark.parametrize("exporter", ["decisiontrail", "sdk"])
def test_a_huge_decision_never_blocks_the_small_ones(collector_factory, configured, monkeypatch,  # type: ignore[no-untyped-def]
                                                     exporter: str) -> None:
    """A 20 MB label, then a 20 MB span injected at the processor, then 3,000 small decisions.
    decisiontrail's exporter refuses the span alone as too large; with the SDK's exporter (every
    failure "retry") the processor's replay finds it by splitting the batch that keeps failing."""
    if exporter == "sdk":
        monkeypatch.setenv("DECISIONTRAIL_EXPORTER", "sdk")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint)
    ids = [record_decision("credit", {"x": 0}, 1, label="L" * HUGE)]  # the recorder bounds it
    injected = "019a0000-0000-7000-8000-00000000dead"
    huge_span(cfg, injected)
    ids += [record_decision("credit", {"x": i}, i % 2) for i in range(3000)]
    assert not cfg.drain(180_000)  # one decision could not be delivered: never True
    assert_stored(collector, ids, f"huge decision, {exporter} exporter")
    (record,) = read_dead_letters(cfg.spool.directory / "dead-letter")  # type: ignore[union-attr]
    assert record["decisionIds"] == [injected]
    snap = stats.snapshot()
    assert snap["dead_lettered"] == 1 and snap["lost"] == 0 and snap["exported"] == len(ids)
    assert cfg.spool is not None and cfg.spool.segments() == []


def unwritable(monkeypatch: pytest.MonkeyPatch, on: threading.Event) -> None:
    """While ``on`` is set, every spool write fails with EROFS (root ignores a chmod, so the fault is
    put where the spool writes; the processor sees what a read-only mount gives it)."""
    real = spool_segments._write_all

    def write_all(fd: int, data: bytes) -> None:
        if on.is_set():
            raise OSError(errno.EROFS, "Read-only file system")
        real(fd, data)

    monkeypatch.setattr(spool_segments, "_write_all", write_all)


def test_spool_read_only_while_the_collector_is_down_then_back(collector_factory, configured,  # type: ignore[no-untyped-def]
                                                               monkeypatch, caplog) -> None:
    collector = collector_factory(jaeger=None)
    read_only = threading.Event()
    unwritable(monkeypatch, read_only)
    cfg = configured(collector.otlp_grpc_endpoint)
    read_only.set()
    collector.stop()
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        ids = [record_decision("credit", {"x": i}, 1) for i in range(2000)]
        wait_until(lambda: not cfg.processor.healthy and stats.snapshot()["spool_errors"] > 0, timeout=30,
                   message="the outage felt, the spool unwritable")
        collector.start()  # the collector is back; the spool stays read-only
        assert cfg.drain(120_000)
    assert cfg.processor.healthy and "spool problem" in caplog.text
    assert_stored(collector, ids, "spool read-only, collector down then back")
    assert stats.snapshot()["lost"] == 0 and stats.snapshot()["exported"] == 2000


def test_spool_directory_deleted_while_running(collector_factory, configured, caplog) -> None:  # type: ignore[no-untyped-def]
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint)
    collector.stop()
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        before = [record_decision("credit", {"x": i}, 1) for i in range(1500)]
        wait_until(lambda: stats.snapshot()["spooled"] > 0, timeout=30, message="decisions in the spool")
        assert cfg.force_flush(30_000)
        shutil.rmtree(cfg.spool.directory)  # type: ignore[union-attr]
        after = [record_decision("credit", {"x": i}, 1) for i in range(1500)]
        assert cfg.force_flush(30_000)
        collector.start()
        drained = cfg.drain(120_000)
    assert "spool directory" in caplog.text and stats.snapshot()["spool_errors"] >= 1
    assert_stored(collector, after, "spool directory deleted: decisions after the deletion")
    got = set(stored_ids(collector, set(before), timeout=5))
    lost = stats.snapshot()["lost"]
    assert len(set(before) - got) == lost  # whatever did not arrive was counted
    assert drained is (lost == 0)  # and drain() says so
    if lost:
        assert "vanished with the spool directory" in caplog.text


def test_one_byte_flipped_in_a_spool_segment(collector_factory, configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    collector = collector_factory(jaeger=None)
    unreachable = f"http://127.0.0.1:{free_port()}"
    first = configured(unreachable, processor_options={"max_export_batch_size": 56,
                                                       "replay_min_backoff_millis": 60_000})
    ids = [record_decision("credit", {"x": i}, 1) for i in range(1000)]
    first.shutdown()  # everything in the spool
    stats.reset()
    segments = sorted(first.spool.segments(), key=lambda p: -p.stat().st_size)  # type: ignore[union-attr]
    lines = segments[0].read_bytes().split(b"\n")
    assert len(lines) - 1 >= 8
    victim = bytearray(lines[len(lines) // 2])
    victim[len(victim) // 2] ^= 0x20
    lines[len(lines) // 2] = bytes(victim)
    segments[0].write_bytes(b"\n".join(lines))
    cfg = configured(collector.otlp_grpc_endpoint)  # the next process replays
    assert not cfg.drain(60_000)
    snap = stats.snapshot()
    assert snap["spool_corrupt"] == 1 and 0 < snap["lost"] <= 56
    assert_stored(collector, [], "one byte flipped")
    got = set(stored_ids(collector, set(ids), timeout=5))
    assert len(set(ids) - got) == snap["lost"]  # exactly the damaged record's decisions, counted
    assert list(cfg.spool.directory.glob("*.spool.bad")) and cfg.spool.segments() == []  # type: ignore[union-attr]


def _record_task(n: int) -> list[str]:
    return [record_decision("credit", {"task": n, "i": i}, i) for i in range(500)]


def test_multiprocessing_pool_leaving_its_with_block(collector_factory, configured) -> None:  # type: ignore[no-untyped-def]
    """Leaving ``with Pool(...)`` terminates the workers (SIGTERM) with decisions still queued."""
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint, processor_options={"schedule_delay_millis": 5000})
    with multiprocessing.get_context("fork").Pool(4) as pool:
        ids = [i for part in pool.map(_record_task, range(8)) for i in part]
    assert len(ids) == 4000
    assert cfg.drain(120_000)  # the workers' spooled leftovers are replayed here
    assert_stored(collector, ids, "Pool(4) leaving the with-block")


def _child_records(ids_path: str) -> None:
    ids = [record_decision("credit", {"child": os.getpid(), "i": i}, i) for i in range(50)]
    Path(ids_path).write_text("\n".join(ids))


def test_fork_while_the_parents_threads_record_over_grpc(collector_factory, configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A pre-forking server: 40 children forked while two parent threads keep recording."""
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint, processor_options={"schedule_delay_millis": 20,
                                                                      "max_export_batch_size": 32})
    stop = threading.Event()
    parent_ids: list[str] = []

    def keep_recording() -> None:
        while not stop.is_set():
            parent_ids.append(record_decision("credit", {"parent": 1}, 1))

    threads = [threading.Thread(target=keep_recording) for _ in range(2)]
    for t in threads:
        t.start()
    ctx = multiprocessing.get_context("fork")
    children = []
    for k in range(40):
        p = ctx.Process(target=_child_records, args=(str(tmp_path / f"ids-{k}"),))
        p.start()
        children.append(p)
    for p in children:
        p.join(60)
    stop.set()
    for t in threads:
        t.join()
    hung = [p.pid for p in children if p.is_alive()]
    for p in children:
        if p.is_alive():
            p.kill()
    assert not hung, f"children still running after 60 s: {hung}"
    assert [p.exitcode for p in children] == [0] * 40
    assert cfg.drain(120_000)
    child_ids = [i for k in range(40) for i in (tmp_path / f"ids-{k}").read_text().split()]
    assert len(child_ids) == 2000
    assert_stored(collector, child_ids + parent_ids, "fork while the parent records over gRPC")


def test_sixteen_threads_on_one_shared_span(collector_factory, configured) -> None:  # type: ignore[no-untyped-def]
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        request = cfg.tracer_provider.get_tracer("app").start_span("POST /batch")
        ids: list[list[str]] = [[] for _ in range(16)]

        def work(k: int) -> None:
            with trace.use_span(request, end_on_exit=False):
                ids[k].extend(record_decision("credit", {"k": k, "i": i}, i) for i in range(500))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    shared_events = len(request.events)  # type: ignore[attr-defined]
    assert request.attributes[S.DECISION_COUNT] == shared_events == 128  # type: ignore[attr-defined]
    request.end()
    assert cfg.drain(120_000)
    sent = [i for part in ids for i in part]
    assert_stored(collector, sent, "16 threads on one span")
    records = list(iter_decisions(collector.audit_dir))
    assert len(records) == 8000 and stats.snapshot()["recorded"] == 8000


def test_fail_closed_raises_a_loss_on_the_export_side(collector_factory, configured) -> None:  # type: ignore[no-untyped-def]
    collector = collector_factory(jaeger=None)
    cfg = configured(collector.otlp_grpc_endpoint, fail_closed=True, processor_options={"schedule_delay_millis": 20})
    injected = "019a0000-0000-7000-8000-00000000beef"
    huge_span(cfg, injected)  # refused by the collector for its size: dead-lettered on the export thread
    wait_until(lambda: stats.snapshot()["dead_lettered"] == 1, timeout=60, message="the span dead-lettered")
    with pytest.raises(DecisionLostError, match="dead-lettered") as caught:
        record_decision("credit", {"x": 1}, 1)  # recorded, then the earlier loss is raised
    assert "1 decision(s) rejected for good" in str(caught.value)
    later = record_decision("credit", {"x": 2}, 2)  # raised once
    assert not cfg.drain(60_000)
    assert cfg.health()["undelivered"]["dead_lettered"] == 1  # type: ignore[index]
    assert_stored(collector, [later], "fail-closed, export-side loss")


SYNC_CHILD = textwrap.dedent("""
    import os, sys
    import decisiontrail
    from decisiontrail import record_decision
    n, ids_path, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    decisiontrail.configure(service_name="sync-child")  # durability and spool from the environment
    with open(ids_path, "w") as f:
        for i in range(n):
            f.write(record_decision("credit", {"i": i}, i) + "\\n")  # durable before it returns
            f.flush()
    if how == "exit":
        os._exit(0)  # no atexit, no flush
    os.kill(os.getpid(), 9)
""")


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_durability_sync_survives_os_exit_and_sigkill(collector_factory, configured, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      how: str) -> None:
    collector = collector_factory(jaeger=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DECISIONTRAIL_"))} | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_grpc_endpoint, "DECISIONTRAIL_DURABILITY": "sync",
        "DECISIONTRAIL_SPOOL_DIR": str(tmp_path / "spool")}
    done = subprocess.run([sys.executable, "-c", SYNC_CHILD, "300", str(tmp_path / "ids"), how], env=env,
                          timeout=120)
    assert done.returncode == (0 if how == "exit" else -signal.SIGKILL)
    ids = (tmp_path / "ids").read_text().split()
    assert len(ids) == 300
    cfg = configured(collector.otlp_grpc_endpoint)  # the next process: same spool
    assert cfg.drain(60_000)
    assert_stored(collector, ids, f"durability=sync, worker ended by {how}")
    assert cfg.spool is not None and cfg.spool.segments() == []
    time.sleep(0)  # (no timed assertion: only that each decision arrived)
