from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import decisiontrail
from decisiontrail import RecordingError, audited, decision, record_decision, register_model, stats
from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.recorder import Recorder, RecorderSettings, set_recorder

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.unit.conftest import Store


def test_record_onto_the_current_request_span(store: Store) -> None:
    with store.tracer.start_as_current_span("POST /loans") as req:
        did = record_decision("loan", {"income": 52000}, {"approved": True}, version="3",
                              label="approve", score=0.81, reason_codes=["R1"], explanation={"income": 0.4})
    (d,) = store.decisions()
    assert d.decision_id == did
    assert d.span_id == format(req.get_span_context().span_id, "016x")
    assert d.trace_id == format(req.get_span_context().trace_id, "032x")
    assert (d.model_name, d.model_version, d.label, d.score) == ("loan", "3", "approve", 0.81)
    assert d.input == {"income": 52000} and d.output == {"approved": True}
    assert d.attributes[D.REASON_CODES] == ["R1"]
    assert json.loads(d.attributes[D.EXPLANATION]) == {"income": 0.4}
    assert d.attributes[D.INPUT_HASH].startswith("sha256:")
    (span,) = [s for s in store.spans() if s.name == "POST /loans"]
    assert span.attributes[S.DECISION_COUNT] == 1


def test_without_a_recording_span_a_predict_span_is_opened(store: Store) -> None:
    did = record_decision("fraud", [1, 2], 0)
    (d,) = store.decisions()
    assert d.decision_id == did and d.span_name == "predict fraud"


def test_predict_span_is_a_child_of_the_request(store: Store) -> None:
    with store.tracer.start_as_current_span("request") as req:
        with decision("loan", {"x": 1}) as d:
            d.output = "approve"
            d.label = "approve"
    spans = {s.name: s for s in store.spans()}
    assert spans["predict loan"].parent_span_id == format(req.get_span_context().span_id, "016x")
    (rec,) = store.decisions()
    assert rec.decision_id == d.decision_id and rec.output == "approve" and rec.label == "approve"


def test_model_objects_are_named_by_registration_or_class(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    class LoanModel:
        pass

    a, b = LoanModel(), LoanModel()
    register_model(b, name="loan-v2", version="2.1")
    record_decision(a, 1, 0)
    record_decision(b, 1, 0)
    record_decision(b, 1, 0, version="explicit")
    names = [(d.model_name, d.model_version) for d in store.decisions()]
    assert names == [("LoanModel", None), ("loan-v2", "2.1"), ("loan-v2", "explicit")]
    assert store.decisions()[0].attributes["model.framework"]  # module of the class


def test_env_model_version(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DECISIONTRAIL_MODEL_VERSION", "9.9")
    cfg = decisiontrail.configure(path=tmp_path, set_global=False)
    try:
        record_decision("m", 1, 2)
        cfg.force_flush()
        from decisiontrail.store import iter_decisions

        assert [d.model_version for d in iter_decisions(tmp_path)] == ["9.9"]
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_audited_sync_async_and_methods(store: Store) -> None:
    @audited(model_name="m", model_version="1", label=lambda r: r["label"], score=lambda r: r["p"])
    def predict(x: dict) -> dict:
        return {"label": "yes", "p": 0.9}

    @audited(model_name="am")
    async def apredict(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y

    class Model:
        @audited(model_name="method")
        def predict(self, row: list[int]) -> int:
            return sum(row)

    assert predict({"a": 1}) == {"label": "yes", "p": 0.9}
    assert asyncio.run(apredict(1, y=2)) == 3
    assert Model().predict([1, 2]) == 3
    got = {d.model_name: d for d in store.decisions()}
    assert got["m"].label == "yes" and got["m"].score == 0.9 and got["m"].input == {"a": 1}
    assert got["am"].input == {"args": [1], "kwargs": {"y": 2}} and got["am"].output == 3
    assert got["method"].input == [1, 2]  # self is not part of the input
    assert all(d.span_name == f"predict {d.model_name}" for d in got.values())


def test_user_exceptions_propagate_untouched_and_make_no_decision(store: Store) -> None:
    class Boom(Exception):
        pass

    @audited(model_name="m")
    def predict(x: int) -> int:
        raise Boom("model failed")

    with pytest.raises(Boom, match="model failed"):
        predict(1)
    with pytest.raises(Boom):
        with decision("m", 1):
            raise Boom()
    assert store.decisions() == []
    assert {s.status_code for s in store.spans()} == {2}  # ERROR


def test_bad_input_is_recorded_with_a_bounded_representation(store: Store) -> None:
    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    did = record_decision("m", {"x": Evil(), "nan": float("nan")}, Evil(), score=float("nan"))
    (d,) = store.decisions()
    assert d.decision_id == did and d.input == {"x": "<Evil>", "nan": "NaN"} and d.output == "<Evil>"
    assert d.score is None  # a non-finite score is not an attribute; the output keeps the value


def test_a_failure_while_recording_still_records_the_decision(store: Store) -> None:
    did = record_decision("m", 1, 2, score="not a number")  # type: ignore[arg-type]
    (d,) = store.decisions()
    assert d.decision_id == did and "ValueError" in d.attributes[D.ERROR]
    assert stats.snapshot()["recording_errors"] == 1


def test_fail_closed_raises_a_typed_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = decisiontrail.configure(path=tmp_path, set_global=False, fail_closed=True)
    try:
        with pytest.raises(RecordingError, match="could not be recorded") as info:
            record_decision("m", 1, 2, score="not a number")  # type: ignore[arg-type]
        assert isinstance(info.value.__cause__, ValueError)
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_many_decisions_on_one_span_are_not_lost_to_the_event_limit(store: Store) -> None:
    with store.tracer.start_as_current_span("batch request"):
        made = [record_decision("m", i, i) for i in range(300)]
    assert sorted(d.decision_id for d in store.decisions()) == sorted(made)


def test_batches_record_one_decision_per_row(store: Store) -> None:
    import numpy as np

    rec = decisiontrail.recorder.get_recorder()
    x = np.arange(40_000, dtype=float).reshape(20_000, 2)
    first = rec.record_batch("m", x, (x[:, 0] > 100).astype(int), labels=(x[:, 0] > 100), scores=x[:, 1] / 1e5)
    got = store.decisions()
    assert len(got) == 20_000 and got[0].decision_id == first and len({d.decision_id for d in got}) == 20_000
    row = got[12_345]
    assert row.input == [24_690.0, 24_691.0] and row.output == 1 and row.label == "True"
    assert row.to_dict()[D.BATCH_INDEX] == 12_345 and row.to_dict()[D.BATCH_SIZE] == 20_000
    assert max(len([e for e in s.events if e["name"] == DECISION_EVENT]) for s in store.spans()) <= 64


def test_works_with_the_applications_own_provider() -> None:
    exporter = InMemorySpanExporter()
    app = TracerProvider()
    app.add_span_processor(SimpleSpanProcessor(exporter))
    set_recorder(Recorder(RecorderSettings(), tracer_provider=app))
    try:
        with app.get_tracer("app").start_as_current_span("request"):
            did = record_decision("m", 1, 2)
        (span,) = exporter.get_finished_spans()
        (event,) = span.events
        assert event.name == DECISION_EVENT and event.attributes[D.ID] == did
    finally:
        set_recorder(None)


def test_sampled_out_span_without_audit_sampler_is_counted_not_silent() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    stats.reset()
    app = TracerProvider(sampler=ALWAYS_OFF)
    set_recorder(Recorder(RecorderSettings(), tracer_provider=app))
    try:
        record_decision("m", 1, 2)
        assert stats.snapshot()["unrecorded"] == 1
    finally:
        set_recorder(None)
    assert not trace.get_current_span().is_recording()
