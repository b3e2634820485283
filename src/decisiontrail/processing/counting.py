"""How many audit records a span carries: what decides that the processor keeps it; and what a
span waiting in the queue holds."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

from ..conventions import SpanAttributes as S

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
    """Hold a queued span's attributes in a plain dict and its events and links in tuples, as the
    SDK's ReadableSpan takes them and as ``chain.ChainStage`` holds the spans it rebuilds.

    Each of the SDK's ``BoundedList`` is three objects the garbage collector tracks (the list, its
    deque, its lock) and a ``BoundedAttributes`` two (its dict of plain values is not tracked); every
    full collection traverses all the spans the no-loss queue holds (up to ``max_queue_size``), so a
    decision span goes from ~13 tracked objects to ~5. Only containers that dropped nothing are
    replaced, so ``attributes``, ``events``, ``links`` and their ``dropped_*`` counts read the same;
    an ended span is never written again (the SDK refuses attributes and events on it)."""
    attrs = getattr(span, "_attributes", None)
    if type(attrs) is BoundedAttributes and not attrs.dropped and type(attrs._dict) is dict:
        span._attributes = attrs._dict
    for name in ("_events", "_links"):
        lst = getattr(span, name, None)
        if type(lst) is BoundedList and not lst.dropped:
            setattr(span, name, tuple(lst))
