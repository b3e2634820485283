"""Helpers of the instrumentation tests, shared by conftest.py and the test modules.

(A module of its own, not conftest.py: ``import conftest`` is ambiguous when several test
directories have one.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wrapt
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from decisiontrail.config import Configuration
from decisiontrail.exporters.otlpjson import spans_to_otlp_json
from decisiontrail.store.reader import DecisionRecord, iter_decisions


@dataclass
class Audit:
    """What the instrumented calls of one test recorded."""

    cfg: Configuration
    exporter: InMemorySpanExporter
    directory: Path

    def spans(self) -> list[ReadableSpan]:
        assert self.cfg.force_flush(), "export did not finish"
        return list(self.exporter.get_finished_spans())

    def decisions(self) -> list[DecisionRecord]:
        """Every decision, read back by the store reader from the OTLP-JSON of the exported spans."""
        spans = self.spans()
        path = self.directory / f"spans-{len(spans)}.json"
        path.write_text(spans_to_otlp_json(spans) + "\n" if spans else "", encoding="utf-8")
        return list(iter_decisions(path))

    def clear(self) -> None:
        self.cfg.force_flush()
        self.exporter.clear()


def proxies_left(wrapped: list[tuple[Any, str]]) -> list[str]:
    """Attributes among ``wrapped`` that still hold a wrapt proxy."""
    types = tuple(t for t in (getattr(wrapt, "BaseObjectProxy", None), wrapt.ObjectProxy) if isinstance(t, type))
    left = []
    for owner, name in wrapped:
        value = vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if isinstance(value, types):
            left.append(f"{getattr(owner, '__qualname__', owner)}.{name}")
    return left


def originals(wrapped: list[tuple[Any, str]]) -> dict[tuple[int, str], Any]:
    """What each wrapped attribute wrapped (the object uninstrument must put back)."""
    out = {}
    for owner, name in wrapped:
        value = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
        out[(id(owner), name)] = value.__wrapped__
    return out


def assert_restored(wrapped: list[tuple[Any, str]], before: dict[tuple[int, str], Any]) -> None:
    assert wrapped, "nothing was wrapped"
    assert proxies_left(wrapped) == []
    for owner, name in wrapped:
        value = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
        assert value is before[(id(owner), name)], f"{owner}.{name} not restored"
