"""Bad input never breaks inference: failures while recording are logged and counted and the model's
answer is returned; in fail-closed mode a typed error says what failed."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import decisiontrail
from decisiontrail import DecisionLostError, RecordingError, audited, decision, record_decision, stats
from decisiontrail.config import Configuration
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.recorder import set_recorder
from decisiontrail.store.reader import DecisionRecord, iter_decisions


class ReprBomb:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    __str__ = __repr__


class HashBomb(ReprBomb):
    def __hash__(self) -> int:
        return 1


class Node:
    def __init__(self) -> None:
        self.me = self


class Faulty(SpanExporter):
    """Raises (or answers nonsense) while ``broken``; else writes to a file store. ``gate`` holds it."""

    def __init__(self, path: Path, broken: str | None = None) -> None:
        self.file = FileSpanExporter(path)
        self.broken = broken
        self.gate = threading.Event()
        self.gate.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait()
        if self.broken == "raise":
            raise ConnectionError("exporter bug")
        if self.broken == "nonsense":
            return None  # type: ignore[return-value]
        return self.file.export(spans)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[Configuration, Faulty]]]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER",
                "DECISIONTRAIL_FAIL_CLOSED", "DECISIONTRAIL_ON_FULL"):
        monkeypatch.delenv(var, raising=False)
    made: list[Configuration] = []

    def make(broken: str | None = None, **kwargs: Any) -> tuple[Configuration, Faulty]:
        stats.reset()
        exporter = Faulty(tmp_path / "store", broken)
        options = {"schedule_delay_millis": 20, "replay_min_backoff_millis": 20, "replay_max_backoff_millis": 100}
        options |= kwargs.pop("processor_options", {})
        cfg = decisiontrail.configure(exporter=exporter, spool_dir=tmp_path / "spool", set_global=False,
                                      processor_options=options, **kwargs)
        made.append(cfg)
        return cfg, exporter

    yield make
    for cfg in made:
        cfg.exporter.gate.set()  # type: ignore[attr-defined]
        cfg.shutdown()
    set_recorder(None)


def stored(cfg: Configuration, *, lossy: bool = False) -> dict[str, DecisionRecord]:
    assert cfg.drain(10_000) is not lossy  # drain() is False once anything was lost
    path = cfg.exporter.file.directory  # type: ignore[attr-defined]
    return {d.decision_id: d for d in iter_decisions(path)}


BAD_VALUES: dict[str, Callable[[], Any]] = {
    "repr raises": ReprBomb,
    "repr-raising dict key": lambda: {HashBomb(): 1},
    "dict cycle": lambda: (lambda d: (d.__setitem__("self", d), d)[1])({}),
    "list cycle": lambda: (lambda l: (l.append(l), l)[1])([]),
    "object cycle": Node,
    "NaN and inf": lambda: {"x": math.nan, "y": [math.inf, -math.inf], "z": np.float32("nan")},
    "numpy NaN array": lambda: np.array([[np.nan, 1.0], [np.inf, 2.0]]),
    "lone surrogate and bytes": lambda: ["\ud800", b"\xff\xfe"],
    "deep nesting": lambda: (lambda f: f(f, 500))(lambda f, n: [f(f, n - 1)] if n else []),
    "generator": lambda: (i for i in range(3)),
}


@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_bad_inputs_and_outputs_are_recorded_not_raised(setup, name: str) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = setup()
    make = BAD_VALUES[name]
    ids = [record_decision("m", make(), 1), record_decision("m", 1, make()),
           record_decision("m", {"nested": make()}, [make()], explanation=make(), label=make())]
    got = stored(cfg)
    assert set(ids) <= set(got)
    assert stats.snapshot()["lost"] == 0


def test_a_model_object_whose_repr_raises(setup) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = setup()
    did = record_decision(ReprBomb(), {"x": 1}, 1)
    assert did in stored(cfg)


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_non_finite_scores_are_left_out_not_fatal(setup, score: float) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = setup()
    did = record_decision("m", 1, {"p": score}, score=score)
    rec = stored(cfg)[did]
    assert D.SCORE not in rec.attributes and D.ERROR not in rec.attributes


def test_a_score_that_is_not_a_number_is_recorded_with_the_error(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = setup()
    with caplog.at_level(logging.WARNING, "decisiontrail"):
        did = record_decision("m", 1, 1, score="high")  # type: ignore[arg-type]
    rec = stored(cfg)[did]
    assert "ValueError" in rec.attributes[D.ERROR] and "partly failed" in caplog.text
    assert stats.snapshot()["recording_errors"] == 1


def test_audited_returns_the_models_answer_whatever_fails_in_recording(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = setup()
    answer = ReprBomb()

    @audited(model_name="m", score=lambda r: 1 / 0, label=lambda r: ReprBomb(), explanation=lambda r: r)
    def predict(x: Any) -> Any:
        return answer

    with caplog.at_level(logging.WARNING, "decisiontrail"):
        assert predict(Node()) is answer
    assert "extractor" in caplog.text
    assert len(stored(cfg)) == 1


def test_the_users_exception_propagates_untouched(setup) -> None:  # type: ignore[no-untyped-def]
    cfg, _ = setup(fail_closed=True)

    class ModelError(Exception):
        pass

    err = ModelError("no")

    @audited(model_name="m")
    def predict(x: Any) -> Any:
        raise err

    with pytest.raises(ModelError) as caught:
        predict(ReprBomb())
    assert caught.value is err
    with pytest.raises(ModelError):
        with decision("m", ReprBomb()):
            raise ModelError("in block")
    assert stored(cfg) == {}


@pytest.mark.parametrize("broken", ["raise", "nonsense"])
def test_an_exporter_that_raises_or_misbehaves_does_not_reach_inference(setup, broken: str) -> None:  # type: ignore[no-untyped-def]
    cfg, exporter = setup(broken)

    @audited(model_name="m")
    def predict(x: int) -> int:
        return x * 2

    assert [predict(i) for i in range(50)] == [i * 2 for i in range(50)]
    assert cfg.force_flush()
    assert stats.snapshot()["spooled"] == 50 and stats.snapshot()["lost"] == 0
    exporter.broken = None  # fixed: the spool is replayed
    assert len(stored(cfg)) == 50


def full_queue(setup, on_full: str, fail_closed: bool = False):  # type: ignore[no-untyped-def]
    cfg, exporter = setup(on_full=on_full, fail_closed=fail_closed, block_timeout_millis=50,
                          processor_options={"max_queue_size": 8, "max_export_batch_size": 4})
    exporter.gate.clear()  # the export thread is stuck: the queue fills

    @audited(model_name="m")
    def predict(x: int) -> int:
        return x + 1

    return cfg, exporter, predict


def test_full_queue_spool_returns_answers_and_keeps_decisions(setup) -> None:  # type: ignore[no-untyped-def]
    cfg, exporter, predict = full_queue(setup, "spool")
    assert [predict(i) for i in range(100)] == list(range(1, 101))
    assert stats.snapshot()["spooled"] > 0
    exporter.gate.set()
    assert len(stored(cfg)) == 100 and stats.snapshot()["lost"] == 0


def test_full_queue_block_waits_then_returns_answers(setup) -> None:  # type: ignore[no-untyped-def]
    cfg, exporter, predict = full_queue(setup, "block")
    threading.Timer(0.3, exporter.gate.set).start()
    t0 = time.monotonic()
    assert [predict(i) for i in range(100)] == list(range(1, 101))
    assert time.monotonic() - t0 >= 0.25  # it waited for the exporter
    assert len(stored(cfg)) == 100 and stats.snapshot()["lost"] == 0 and stats.snapshot()["spooled"] == 0


def test_full_queue_drop_returns_answers_and_counts_what_it_dropped(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    cfg, exporter, predict = full_queue(setup, "drop")
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        assert [predict(i) for i in range(100)] == list(range(1, 101))
        lost = stats.snapshot()["lost"]
        assert lost > 0 and 'decisions lost (export queue full (on_full="drop"))' in caplog.text
        exporter.gate.set()
        assert len(stored(cfg, lossy=True)) + lost == 100
        assert cfg.processor.health()["undelivered"]["lost"] == lost  # type: ignore[index]
        cfg.shutdown()  # the log lines are rate-limited; the last one gives the total
    assert f"{lost} lost in this process so far" in caplog.text


def test_fail_closed_bad_input_raises_recording_error(setup) -> None:  # type: ignore[no-untyped-def]
    setup(fail_closed=True)
    with pytest.raises(RecordingError) as caught:
        record_decision("m", 1, 1, score="high")  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, ValueError) and "could not be recorded" in str(caught.value)


def test_fail_closed_full_queue_with_drop_raises_decision_lost(setup) -> None:  # type: ignore[no-untyped-def]
    _, _, predict = full_queue(setup, "drop", fail_closed=True)
    with pytest.raises(DecisionLostError, match="queue full"):
        for i in range(100):
            predict(i)
    assert issubclass(DecisionLostError, RecordingError)


def test_fail_closed_with_a_spool_does_not_raise_when_spooling_works(setup) -> None:  # type: ignore[no-untyped-def]
    cfg, exporter, predict = full_queue(setup, "spool", fail_closed=True)
    assert [predict(i) for i in range(100)] == list(range(1, 101))
    exporter.gate.set()
    assert len(stored(cfg)) == 100


def test_fail_closed_when_the_spool_cannot_be_written(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "spool").write_text("a file where the spool directory should be")
    _, _, predict = full_queue(setup, "spool", fail_closed=True)
    with pytest.raises(DecisionLostError, match="writing the spool failed"):
        for i in range(100):
            predict(i)


def test_when_the_spool_cannot_be_written_recording_waits_for_the_exporter(setup, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                          caplog) -> None:
    """Spilling to a spool that cannot be written would lose decisions; waiting loses none: the
    recording thread waits on the full queue until the exporter moves again."""
    (tmp_path / "spool").write_text("not a directory")
    cfg, exporter, predict = full_queue(setup, "spool")
    answers: list[int] = []
    with caplog.at_level(logging.ERROR, "decisiontrail"):
        producer = threading.Thread(target=lambda: answers.extend(predict(i) for i in range(100)))
        producer.start()
        producer.join(1.0)
        assert producer.is_alive() and len(answers) < 100  # waiting on the stuck exporter
        exporter.gate.set()
        producer.join(30)
    assert answers == list(range(1, 101))
    assert "spool problem: writing" in caplog.text and stats.snapshot()["spool_errors"] > 0
    assert len(stored(cfg)) == 100 and stats.snapshot()["lost"] == 0
