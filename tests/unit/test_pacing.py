"""pacing: a batch stage applied in chunks gives what it gives applied at once; the GIL is given up by
time between chunks."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from decisiontrail.chain import ChainStage, HashChain
from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail import pacing
from decisiontrail.exporters.otlpjson import spans_to_otlp_json
from decisiontrail.pacing import Chunked


def spans(n: int) -> list[ReadableSpan]:
    return [ReadableSpan("predict", SpanContext(1, i + 1, False, TraceFlags(1)),
                         events=[Event(DECISION_EVENT, {D.ID: f"d{i}", D.INPUT: "{}", D.OUTPUT: "1"}, 10 + i)])
            for i in range(n)]


def test_chunks_give_the_same_chain_as_one_batch() -> None:
    calls: list[int] = []
    whole = ChainStage(HashChain("c"))(spans(100))
    stage = ChainStage(HashChain("c"))

    def counting(batch: list[ReadableSpan]) -> list[ReadableSpan]:
        calls.append(len(batch))
        return stage(batch)

    chunked = Chunked(counting, chunk=16)
    parts = chunked(spans(100))
    assert calls == [16] * 6 + [4]
    assert [dict(s.events[0].attributes or {}) for s in parts] == [dict(s.events[0].attributes or {}) for s in whole]


def test_other_attributes_are_the_wrapped_stages() -> None:
    stage = ChainStage(HashChain("a"))
    chunked = Chunked(stage)
    assert chunked.chain is stage.chain
    chunked.chain = HashChain("b")
    assert stage.chain is not None and stage.chain.chain_id == "b"


def test_the_gil_is_given_up_by_time_not_after_every_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    sleeps: list[float] = []
    monkeypatch.setattr(pacing, "_perf", lambda: clock[0])
    monkeypatch.setattr(pacing.time, "sleep", sleeps.append)
    pacing.pause()
    sleeps.clear()
    seen = []
    for part in pacing.chunks(list(range(10)), 2):  # each chunk "takes" a third of a slice
        seen.extend(part)
        clock[0] += pacing.SLICE_SECONDS / 3
    assert seen == list(range(10))
    assert len(sleeps) == 1  # five chunks: 4/3 of a slice before the last one, one pause


def test_paced_json_is_the_same_text() -> None:
    batch = spans(100)
    assert spans_to_otlp_json(batch, paced=True) == spans_to_otlp_json(batch)
