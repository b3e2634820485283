"""AuditSampler: decisions are recorded and exported whatever the application's sampler says."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import decisiontrail
from decisiontrail import audited, decision, record_decision, stats
from decisiontrail.config import Configuration
from decisiontrail.recorder import set_recorder
from decisiontrail.sampling import AuditSampler
from decisiontrail.store.reader import iter_decisions, iter_spans

# An incoming request whose caller decided not to sample (flags 00).
UNSAMPLED_PARENT = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}

SAMPLERS: dict[str, Callable[[], Sampler]] = {
    "always_off": lambda: ALWAYS_OFF,
    "trace_id_ratio_0": lambda: TraceIdRatioBased(0.0),
    "parent_based_unsampled_parent": lambda: ParentBased(ALWAYS_ON),
}


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Configuration]]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER",
                "OTEL_TRACES_SAMPLER_ARG"):
        monkeypatch.delenv(var, raising=False)
    made: list[Configuration] = []

    def make(**kwargs: object) -> Configuration:
        stats.reset()
        cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False, **kwargs)  # type: ignore[arg-type]
        made.append(cfg)
        return cfg

    yield make
    for cfg in made:
        cfg.shutdown()
    set_recorder(None)


def _request_context(sampler_name: str):  # type: ignore[no-untyped-def]
    return TraceContextTextMapPropagator().extract(UNSAMPLED_PARENT) if sampler_name.startswith("parent") else None


def _record(api: str) -> str:
    if api == "record_decision":
        return record_decision("credit", {"income": 1}, "approve", score=0.9)
    if api == "audited":

        @audited(model_name="credit")
        def predict(x: dict[str, int]) -> str:
            return "approve"

        predict({"income": 1})
        return ""
    with decision("credit", {"income": 1}) as d:
        d.output = "approve"
    assert d.decision_id is not None
    return d.decision_id


@pytest.mark.parametrize("api", ["record_decision", "audited", "decision"])
@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
def test_decisions_survive_a_sampler_that_drops_every_trace(configured, tmp_path: Path, sampler_name: str,  # type: ignore[no-untyped-def]
                                                           api: str) -> None:
    cfg = configured(sampler=SAMPLERS[sampler_name]())
    tracer = cfg.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /score", context=_request_context(sampler_name)) as request:
        assert not request.is_recording()  # the application's sampler dropped the request trace
        did = _record(api)
    assert cfg.force_flush()

    (got,) = list(iter_decisions(tmp_path / "store"))
    assert not did or got.decision_id == did
    (span,) = list(iter_spans(tmp_path / "store"))  # the request span itself is not exported
    # The predict span stays in the request's trace, under the (unexported) request span.
    rctx = request.get_span_context()
    assert span.name == "predict credit"
    assert span.trace_id == format(rctx.trace_id, "032x") and span.parent_span_id == format(rctx.span_id, "016x")
    if sampler_name.startswith("parent"):
        assert span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    snap = stats.snapshot()
    assert snap["recorded"] == 1 and snap["exported"] == 1 and snap["unrecorded"] == 0 and snap["lost"] == 0


def test_sampler_from_the_environment_is_wrapped(configured, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    cfg = configured()
    assert isinstance(cfg.tracer_provider.sampler, AuditSampler)
    assert "TraceIdRatioBased" in cfg.tracer_provider.sampler.get_description()
    ids = [record_decision("m", i, i) for i in range(20)]
    assert cfg.force_flush()
    assert [d.decision_id for d in iter_decisions(tmp_path / "store")] == ids


def test_the_applications_own_always_off_provider_is_wrapped(configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    cfg = configured(tracer_provider=app)
    assert isinstance(app.sampler, AuditSampler)
    with app.get_tracer("app").start_as_current_span("request"):
        did = record_decision("m", 1, 2)
    assert cfg.force_flush()
    assert [d.decision_id for d in iter_decisions(tmp_path / "store")] == [did]


def test_a_record_only_request_span_keeps_its_decisions(configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    class RecordOnly(Sampler):
        """Records spans for in-process use (e.g. span metrics) but never exports them."""

        def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return SamplingResult(Decision.RECORD_ONLY)

        def get_description(self) -> str:
            return "RecordOnly"

    cfg = configured(sampler=RecordOnly())
    with cfg.tracer_provider.get_tracer("app").start_as_current_span("POST /score") as request:
        assert request.is_recording() and not request.get_span_context().trace_flags.sampled
        did = record_decision("m", 1, 2)  # goes on the request span itself
    assert cfg.force_flush()
    (span,) = list(iter_spans(tmp_path / "store"))
    assert span.name == "POST /score" and span.attributes["decision.count"] == 1
    assert [d.decision_id for d in iter_decisions(tmp_path / "store")] == [did]


def test_other_spans_still_follow_the_applications_sampler(configured, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = configured(sampler=TraceIdRatioBased(0.0))
    tracer = cfg.tracer_provider.get_tracer("app")
    for _ in range(10):
        with tracer.start_as_current_span("GET /health"):
            pass
    with tracer.start_as_current_span("POST /score"):
        record_decision("m", 1, 2)
    assert cfg.force_flush()
    assert [s.name for s in iter_spans(tmp_path / "store")] == ["predict m"]
