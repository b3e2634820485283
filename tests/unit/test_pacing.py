"""pacing.Chunked: a batch stage applied in chunks gives what it gives applied at once."""

from __future__ import annotations

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from decisiontrail.chain import ChainStage, HashChain
from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.conventions import DecisionAttributes as D
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
