"""Fixtures for the instrumentation tests: decisiontrail recording into memory, read back with the
store reader, and each instrumentor instrumented for one test and uninstrumented after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from instrumentation_support import Audit
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import decisiontrail
from decisiontrail import stats
from decisiontrail.instrumentation._patching import DecisionInstrumentor
from decisiontrail.recorder import set_recorder

_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER",
        "DECISIONTRAIL_REDACT_KEYS", "DECISIONTRAIL_HASH_KEYS", "DECISIONTRAIL_MODEL_VERSION",
        "DECISIONTRAIL_MODEL_NAME", "DECISIONTRAIL_FAIL_CLOSED")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    stats.reset()


@pytest.fixture
def audit(tmp_path: Path, clean_env: None) -> Iterator[Audit]:
    """configure() with an in-memory exporter, not touching the global tracer provider."""
    exporter = InMemorySpanExporter()
    cfg = decisiontrail.configure(exporter=exporter, set_global=False)
    yield Audit(cfg, exporter, tmp_path)
    cfg.shutdown()
    set_recorder(None)


@pytest.fixture
def instrumented() -> Iterator[Callable[..., DecisionInstrumentor]]:
    """``instrumented(SklearnInstrumentor, **options)`` instruments for this test; uninstruments after."""
    done: list[Any] = []

    def make(cls: type[Any], **options: Any) -> Any:
        inst = cls()
        inst.instrument(**options)
        done.append(inst)
        return inst

    yield make
    for inst in reversed(done):
        inst.uninstrument()
