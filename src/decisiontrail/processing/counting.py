"""How many audit records a span carries: what decides that the processor keeps it; and what a
span waiting in the queue holds."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, TraceFlags

from ..conventions import SpanAttributes as S
from ..sampling import shared_trace_flags

__all__ = ["decision_count", "decisions", "compact"]


def decision_count(span: ReadableSpan) -> int:
    """Audit records on the span: its decisions (``decision.count``) plus its other audit records
    (``decision.audit.records``: outcomes, reviews, checkpoints). Every span with one is kept."""
    # The SDK's span keeps its attributes in a BoundedAttributes whose plain dict ``_dict`` reads
    # without the lock and the generic Mapping.get that ``span.attributes`` goes through (on_end runs
    # for every span the application ends); a queued span holds that dict itself (compact()).
    attrs = getattr(span, "_attributes", None)
    if type(attrs) is not dict:
        attrs = getattr(attrs, "_dict", None)
        if attrs is None:
            attrs = span.attributes or {}
    n = attrs.get(S.DECISION_COUNT)
    r = attrs.get(S.AUDIT_RECORDS)
    return (n if isinstance(n, int) else 0) + (r if isinstance(r, int) else 0)


def decisions(spans: Sequence[ReadableSpan]) -> int:
    return sum(decision_count(s) for s in spans)


def compact(span: ReadableSpan) -> None:
    """Hold a queued span's attributes in a plain dict, its events and links in tuples (as the SDK's
    ReadableSpan takes them and as ``chain.ChainStage`` holds the spans it rebuilds), and its trace
    flags in one shared ``TraceFlags`` per value.

    Every full collection traverses all the spans the no-loss queue holds (up to ``max_queue_size``),
    and the objects a queued span keeps alive set how often collections run at all (a collection of
    the youngest generation every 700 of them). Each of the SDK's ``BoundedList`` is three objects the
    garbage collector tracks (the list, its deque, its lock), a ``BoundedAttributes`` two (its dict of
    plain values is not tracked), and the SDK makes a ``TraceFlags`` (an int with a ``__dict__``, so
    tracked) for every span; a decision span goes from ~13 tracked objects to 4: the span, its
    ``SpanContext``, its events tuple and its event. Only containers that dropped nothing are
    replaced, so ``attributes``, ``events``, ``links``, the context and the ``dropped_*`` counts read
    the same; an ended span is never written again (the SDK refuses attributes and events on it)."""
    attrs = getattr(span, "_attributes", None)
    if type(attrs) is BoundedAttributes and not attrs.dropped and type(attrs._dict) is dict:
        span._attributes = attrs._dict
    for name in ("_events", "_links"):
        lst = getattr(span, name, None)
        if type(lst) is BoundedList and not lst.dropped:
            # its deque as it is: iterating the BoundedList takes its lock and copies it first
            setattr(span, name, tuple(getattr(lst, "_dq", lst)))
    ctx = getattr(span, "_context", None)
    if type(ctx) is SpanContext:
        flags = ctx.trace_flags
        if type(flags) is TraceFlags and 0 <= flags <= 0xFF:
            shared = shared_trace_flags(flags)
            if shared is not flags:  # the recorder's own spans are made with the shared one
                span._context = SpanContext(ctx.trace_id, ctx.span_id, ctx.is_remote, shared, ctx.trace_state)
