"""Fixtures for unit tests: decisiontrail configured against a temporary embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import decisiontrail
from decisiontrail import stats
from decisiontrail.config import Configuration
from decisiontrail.recorder import set_recorder
from decisiontrail.store.reader import DecisionRecord, SpanRecord, iter_decisions, iter_spans


@dataclass
class Store:
    cfg: Configuration
    path: Path

    @property
    def tracer(self):  # type: ignore[no-untyped-def]
        return self.cfg.tracer_provider.get_tracer("tests")

    def decisions(self) -> list[DecisionRecord]:
        assert self.cfg.force_flush(), "export did not finish"
        return list(iter_decisions(self.path))

    def spans(self) -> list[SpanRecord]:
        assert self.cfg.force_flush(), "export did not finish"
        return list(iter_spans(self.path))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """configure() on the embedded file store in tmp_path, with no OTLP environment leaking in."""
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER",
                "DECISIONTRAIL_REDACT_KEYS", "DECISIONTRAIL_HASH_KEYS", "DECISIONTRAIL_MODEL_VERSION"):
        monkeypatch.delenv(var, raising=False)
    stats.reset()
    cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False)
    yield Store(cfg, tmp_path / "store")
    cfg.shutdown()
    set_recorder(None)
