"""DecisionSpanProcessor: backpressure, spill to the spool, outages, shutdown, and what is counted."""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

import decisiontrail
from decisiontrail import DecisionLostError, record_decision, stats
from decisiontrail.chain import verify
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.processing import DecisionSpanProcessor
from decisiontrail.recorder import set_recorder
from decisiontrail.spool import Spool
from decisiontrail.store.reader import ReadStats, iter_decisions
from processor_support import decide, make


class Store(SpanExporter):
    """Writes to an embedded file store; can be switched down, slowed down, or held."""

    def __init__(self, path: Path) -> None:
        self.file = FileSpanExporter(path)
        self.path = path
        self.down = False
        self.delay = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.gate.wait()
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            return SpanExportResult.FAILURE
        return self.file.export(spans)

    def ids(self) -> list[str]:
        return [d.decision_id for d in iter_decisions(self.path)]


@pytest.fixture(autouse=True)
def zero_stats() -> Iterator[None]:
    stats.reset()
    yield


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")




def plain(provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span("GET /"):
        pass


def test_a_full_queue_makes_the_producer_wait_not_drop(store: Store) -> None:
    store.delay = 0.01
    processor, provider = make(store, on_full="block", max_queue_size=8, max_export_batch_size=4)
    ids = [decide(provider, i) for i in range(200)]
    assert processor.force_flush()
    assert store.ids() == ids
    snap = stats.snapshot()
    assert snap["exported"] == 200 and snap["lost"] == 0 and snap["spooled"] == 0
    assert processor.queue_full_events > 0  # the producer did meet a full queue
    processor.shutdown()


def test_stuck_export_spills_to_the_spool_then_replays(store: Store, tmp_path: Path) -> None:
    store.gate.clear()  # the exporter hangs
    spool = Spool(tmp_path / "spool")
    processor, provider = make(store, spool, max_queue_size=16, max_export_batch_size=8,
                               block_timeout_millis=100)
    t0 = time.monotonic()
    ids = [decide(provider, i) for i in range(300)]
    elapsed = time.monotonic() - t0
    assert elapsed < 3  # one block_timeout, then spilling without waiting
    spooled = stats.snapshot()["spooled"]
    assert spooled >= 250
    lines = sum(len(p.read_bytes().splitlines()) for p in spool.segments())
    assert lines < spooled / 4  # spilled a batch per fsync, not a span per fsync
    store.gate.set()
    assert processor.drain(10_000)
    assert sorted(store.ids()) == sorted(ids)
    assert stats.snapshot()["lost"] == 0 and spool.segments() == []
    records = [d.chain_view() for d in iter_decisions(store.path)]
    assert verify(records) == (300, [])  # spilled decisions were linked into the chain too
    processor.shutdown()


def test_an_outage_goes_to_the_spool_and_recovers(store: Store, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    store.down = True
    spool = Spool(tmp_path / "spool")
    processor, provider = make(store, spool, max_export_batch_size=10)
    with caplog.at_level(logging.WARNING, "decisiontrail"):
        ids = [decide(provider, i) for i in range(100)]
        assert processor.force_flush()
        assert stats.snapshot()["spooled"] == 100 and not processor.healthy
        assert "export failed" in caplog.text
        store.down = False
        assert processor.drain(10_000)
    assert processor.healthy and "export works again" in caplog.text
    ids += [decide(provider, i) for i in range(100, 150)]
    assert processor.force_flush()
    assert sorted(store.ids()) == sorted(ids)
    snap = stats.snapshot()
    assert snap["exported"] == 150 and snap["lost"] == 0 and snap["spooled"] == 100
    processor.shutdown()


def test_while_down_the_exporter_is_not_called_per_batch(store: Store, tmp_path: Path) -> None:
    store.down = True
    processor, provider = make(store, Spool(tmp_path / "spool"), max_export_batch_size=5,
                               replay_min_backoff_millis=5000, replay_max_backoff_millis=5000)
    for i in range(100):
        decide(provider, i)
    assert processor.force_flush()
    assert store.calls <= 3  # one failure, then probes by the replayer only
    processor.shutdown()


def test_leftovers_are_replayed_by_the_next_processor(store: Store, tmp_path: Path) -> None:
    store.down = True
    first, provider = make(store, Spool(tmp_path / "spool"), shutdown_timeout_millis=500)
    ids = [decide(provider, i) for i in range(40)]
    first.shutdown()  # exporter down: everything stays in the spool
    assert Spool(tmp_path / "spool").segments() and store.ids() == []
    store.file = FileSpanExporter(store.path)  # shutdown closed it
    store.down = False
    second, _ = make(store, Spool(tmp_path / "spool"))
    assert second.drain(10_000)
    assert sorted(store.ids()) == sorted(ids)
    second.shutdown()


def test_shutdown_with_a_hung_exporter_spools_instead_of_losing(store: Store, tmp_path: Path) -> None:
    store.gate.clear()
    spool = Spool(tmp_path / "spool")
    processor, provider = make(store, spool, shutdown_timeout_millis=300, max_export_batch_size=10)
    for i in range(50):
        decide(provider, i)
    t0 = time.monotonic()
    processor.shutdown()
    assert time.monotonic() - t0 < 10
    snap = stats.snapshot()
    assert snap["spooled"] == 50 and snap["lost"] == 0


def test_shutdown_delivers_the_spool_while_the_exporter_works(store: Store, tmp_path: Path) -> None:
    store.gate.clear()
    spool = Spool(tmp_path / "spool")
    processor, provider = make(store, spool, max_queue_size=4, max_export_batch_size=2, block_timeout_millis=10)
    ids = [decide(provider, i) for i in range(20)]
    assert spool.segments()  # spilled while the export was stuck
    store.gate.set()
    processor.shutdown()
    assert sorted(store.ids()) == sorted(ids) and spool.segments() == []


def test_drop_is_explicit_counted_and_logged(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.gate.clear()
    processor, provider = make(store, on_full="drop", max_queue_size=10, max_export_batch_size=5)
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        for i in range(100):
            decide(provider, i)
    snap = stats.snapshot()
    assert 80 <= snap["lost"] <= 90 and snap["spooled"] == 0
    assert "decisions lost" in caplog.text and 'on_full="drop"' in caplog.text
    store.gate.set()
    assert processor.force_flush()
    assert len(store.ids()) + snap["lost"] == 100
    processor.shutdown()


def test_drop_in_fail_closed_mode_raises(store: Store) -> None:
    store.gate.clear()
    processor, provider = make(store, on_full="drop", max_queue_size=4, max_export_batch_size=2,
                               fail_closed=True)
    with pytest.raises(DecisionLostError, match="queue full"):
        for i in range(50):
            decide(provider, i)
    store.gate.set()
    processor.shutdown()


def test_without_spool_block_retries_a_failed_export_until_it_works(store: Store) -> None:
    store.down = True
    processor, provider = make(store, on_full="block")
    ids = [decide(provider, i) for i in range(10)]
    time.sleep(0.5)
    store.down = False
    assert processor.force_flush(10_000)
    assert store.ids() == ids and stats.snapshot()["lost"] == 0
    processor.shutdown()


def test_without_spool_drop_gives_up_after_its_attempts_and_counts(store: Store) -> None:
    store.down = True
    processor, provider = make(store, on_full="drop", max_export_attempts=2)
    for i in range(10):
        decide(provider, i)
    assert processor.force_flush(10_000)
    assert stats.snapshot()["lost"] == 10
    processor.shutdown()


def test_spans_without_decisions_keep_the_sdk_behaviour(store: Store, tmp_path: Path) -> None:
    store.gate.clear()
    processor, provider = make(store, Spool(tmp_path / "spool"), max_queue_size=4, max_export_batch_size=2,
                               block_timeout_millis=50)
    t0 = time.monotonic()
    for _ in range(50):
        plain(provider)
    assert time.monotonic() - t0 < 1  # never waits for them
    assert stats.snapshot()["spans_dropped"] >= 40 and stats.snapshot()["spooled"] == 0
    store.gate.set()
    processor.shutdown()


def test_a_record_only_span_with_decisions_is_exported(store: Store) -> None:
    class RecordOnly(Sampler):
        def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return SamplingResult(Decision.RECORD_ONLY)

        def get_description(self) -> str:
            return "RecordOnly"

    processor = DecisionSpanProcessor(store, schedule_delay_millis=20)
    provider = TracerProvider(sampler=RecordOnly(), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    did = decide(provider, 1)
    plain(provider)
    assert processor.force_flush()
    assert store.ids() == [did]
    processor.shutdown()


def test_policy_arguments_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="on_full"):
        DecisionSpanProcessor(store, on_full="maybe")
    with pytest.raises(ValueError, match="needs a spool"):
        DecisionSpanProcessor(store, on_full="spool")


def test_a_process_that_exits_without_shutdown_flushes(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import decisiontrail
        from opentelemetry.sdk.trace import TracerProvider
        app = TracerProvider(shutdown_on_exit=False)  # the application's provider never shuts down
        decisiontrail.configure(path={str(tmp_path / 'store')!r}, tracer_provider=app, set_global=False)
        for i in range(500):
            decisiontrail.record_decision("m", {{"i": i}}, i)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert len(list(iter_decisions(tmp_path / "store", ReadStats()))) == 500


def _record_in_child(path: str, n: int) -> None:
    ids = [record_decision("m", {"i": i}, i) for i in range(n)]
    Path(path).write_text("\n".join(ids))
    # returns: multiprocessing ends a forked child with os._exit, no atexit


def _configure_and_record_in_child(store: str, path: str, n: int) -> None:
    decisiontrail.configure(path=store, set_global=False)
    _record_in_child(path, n)


def test_a_forked_worker_delivers_its_own_decisions(tmp_path: Path) -> None:
    """A pre-forking server: configure() in the parent, decisions in forked workers."""
    cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False)
    try:
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_record_in_child, args=(str(tmp_path / f"ids-{k}"), 300)) for k in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
            assert w.exitcode == 0
        parent_ids = [record_decision("m", {"parent": i}, i) for i in range(10)]
        assert cfg.force_flush()
    finally:
        cfg.shutdown()
        set_recorder(None)
    ids = parent_ids + [i for k in range(2) for i in (tmp_path / f"ids-{k}").read_text().split()]
    got = list(iter_decisions(tmp_path / "store"))
    assert sorted(d.decision_id for d in got) == sorted(ids)
    checked, problems = verify(d.chain_view() for d in got)
    assert checked == 610 and problems == []  # each process its own chain
    assert len({d.attributes["decision.chain.id"] for d in got}) == 3


def test_a_multiprocessing_child_that_configures_itself_flushes_at_its_exit(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_configure_and_record_in_child,
                        args=(str(tmp_path / "store"), str(tmp_path / "ids"), 500))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    ids = (tmp_path / "ids").read_text().split()
    assert sorted(d.decision_id for d in iter_decisions(tmp_path / "store")) == sorted(ids)


def test_configure_wires_the_spool_and_the_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    for var in ("DECISIONTRAIL_SPOOL_DIR", "DECISIONTRAIL_ON_FULL", "DECISIONTRAIL_BLOCK_TIMEOUT_MS",
                "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    made = []

    def configure(**kwargs: object) -> decisiontrail.Configuration:
        cfg = decisiontrail.configure(set_global=False, **kwargs)  # type: ignore[arg-type]
        made.append(cfg)
        return cfg

    try:
        cfg = configure(path=tmp_path / "store")
        assert cfg.spool is not None and cfg.spool.directory == tmp_path / "store" / "spool"
        assert cfg.processor.on_full == "spool" and cfg.processor.block_timeout == 1.0
        cfg = configure(endpoint="http://127.0.0.1:9", service_name="loans/eu")
        assert cfg.spool is not None and cfg.spool.directory == Path("decisiontrail-data") / "spool" / "loans_eu"
        monkeypatch.setenv("DECISIONTRAIL_SPOOL_DIR", str(tmp_path / "env-spool"))
        monkeypatch.setenv("DECISIONTRAIL_ON_FULL", "drop")
        monkeypatch.setenv("DECISIONTRAIL_BLOCK_TIMEOUT_MS", "250")
        cfg = configure(path=tmp_path / "store")
        assert cfg.spool is not None and cfg.spool.directory == tmp_path / "env-spool"
        assert cfg.processor.on_full == "drop" and cfg.processor.block_timeout == 0.25
        cfg = configure(path=tmp_path / "store", spool_dir=tmp_path / "arg-spool", on_full="block")
        assert cfg.spool is not None and cfg.spool.directory == tmp_path / "arg-spool"
        assert cfg.processor.on_full == "block"
        monkeypatch.delenv("DECISIONTRAIL_ON_FULL")
        cfg = configure(path=tmp_path / "store", spool_dir=False)
        assert cfg.spool is None and cfg.processor.on_full == "block"
        monkeypatch.setenv("DECISIONTRAIL_ON_FULL", "sometimes")
        with caplog.at_level(logging.WARNING, "decisiontrail"):
            cfg = configure(path=tmp_path / "store")
        assert cfg.processor.on_full == "spool" and "DECISIONTRAIL_ON_FULL" in caplog.text
        with pytest.raises(decisiontrail.ConfigurationError, match="on_full"):
            configure(path=tmp_path / "store", on_full="sometimes")
        with pytest.raises(decisiontrail.ConfigurationError, match="needs a spool"):
            configure(path=tmp_path / "store", spool_dir=False, on_full="spool")
    finally:
        for cfg in made:
            cfg.shutdown()
        set_recorder(None)


def test_lost_decisions_are_reported_as_an_opentelemetry_metric(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import threading
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        import decisiontrail
        from decisiontrail import stats
        gate = threading.Event()
        class Stuck(SpanExporter):
            def export(self, spans):
                gate.wait()
                return SpanExportResult.SUCCESS
        cfg = decisiontrail.configure(exporter=Stuck(), spool_dir={str(tmp_path / 'spool')!r}, on_full="drop",
                                      set_global=False, processor_options={{"max_queue_size": 10}})
        for i in range(100):
            decisiontrail.record_decision("m", i, i)
        lost = stats.snapshot()["lost"]
        points = {{m.name: sum(p.value for p in m.data.data_points)
                  for rm in reader.get_metrics_data().resource_metrics
                  for sm in rm.scope_metrics for m in sm.metrics}}
        print(lost, points.get("decisiontrail.lost"))
        gate.set()
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True, text=True)
    lost, metric = out.stdout.split()
    assert int(lost) > 0 and metric == lost
