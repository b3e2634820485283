"""A DecisionSpanProcessor with test timings, and decision spans as the recorder makes them: shared by
the processor, delivery and spool-fault tests."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from decisiontrail.chain import ChainStage, HashChain
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.processing import DecisionSpanProcessor
from decisiontrail.spool import Spool


def make(exporter: SpanExporter, spool: Spool | None = None, **options: object
         ) -> tuple[DecisionSpanProcessor, TracerProvider]:
    settings: dict[str, object] = {"schedule_delay_millis": 20, "replay_min_backoff_millis": 20,
                                   "replay_max_backoff_millis": 100, "prepare": ChainStage(HashChain())}
    processor = DecisionSpanProcessor(exporter, spool=spool, **(settings | options))  # type: ignore[arg-type]
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return processor, provider


def decide(provider: TracerProvider, i: int) -> str:
    """One decision span, as the recorder makes it (event + decision.count)."""
    did = f"0000000{i:09d}"
    with provider.get_tracer("t").start_as_current_span("predict m") as span:
        span.add_event("model.decision", {"decision.id": did, "model.name": "m", "decision.input": str(i),
                                          "decision.output": "1"})
        span.set_attribute(S.DECISION_COUNT, 1)
    return did
