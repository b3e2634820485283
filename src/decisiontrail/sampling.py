"""AuditSampler: decisions are never sampled out.

It wraps the application's sampler. Spans that decisiontrail opens for decisions carry the
attribute ``decision.audit=true`` at start, and for those the sampler always answers
RECORD_AND_SAMPLE; every other span gets the wrapped sampler's answer. When the wrapped sampler drops
a request trace, its ``predict <model>`` spans are still exported: they keep the request's trace id
and parent span id, so the backend shows them as a trace whose root is missing (Jaeger marks the
parent as "invalid parent span"), and the decision is in the audit store all the same.

The recorder passes its spans' start attributes as :class:`AuditStart`: for those the sampler keeps
the span and returns no attributes, so that the SDK does not validate them again (~2 µs a span);
the recorder sets them, valid by construction, as soon as the span has started
(``recorder.spans.set_start_attributes``). Span processors' ``on_start`` therefore do not see them
on decisiontrail's own spans; ``on_end`` does, and the exported span is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceFlags, get_current_span
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState
from opentelemetry.util.types import Attributes

from .conventions import SpanAttributes as S

__all__ = ["AuditSampler", "AuditStart", "shared_trace_flags"]


class AuditStart(dict[str, Any]):
    """Start attributes that the span's opener sets itself once the span started (see above)."""


_FLAGS: dict[int, TraceFlags] = {}


def shared_trace_flags(flags: int) -> TraceFlags:
    """One ``TraceFlags`` object per value (0-255), for the spans decisiontrail makes and queues: the
    SDK makes one per span, an int with a ``__dict__`` that the garbage collector tracks."""
    found = _FLAGS.get(flags)
    if found is None:
        found = _FLAGS.setdefault(int(flags), flags if type(flags) is TraceFlags else TraceFlags(flags))
    return found


# The SDK only reads a SamplingResult: one for the usual trace states serves every decision span.
_KEEP_ROOT = SamplingResult(Decision.RECORD_AND_SAMPLE, None, None)
_KEEP_CHILD = SamplingResult(Decision.RECORD_AND_SAMPLE, None, DEFAULT_TRACE_STATE)


class AuditSampler(Sampler):
    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if attributes and attributes.get(S.DECISION_AUDIT):
            parent = get_current_span(parent_context).get_span_context()
            state = parent.trace_state if parent.is_valid else trace_state
            if type(attributes) is AuditStart:
                if state is None:
                    return _KEEP_ROOT
                if state is DEFAULT_TRACE_STATE:
                    return _KEEP_CHILD
                return SamplingResult(Decision.RECORD_AND_SAMPLE, None, state)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"AuditSampler{{{self.delegate.get_description()}}}"
