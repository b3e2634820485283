"""How many audit records a span carries: what decides that the processor keeps it; and what a
span waiting in the queue holds."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

from ..conventions import SpanAttributes as S

__all__ = ["decision_count", "decisions", "compact_lists"]


def decision_count(span: ReadableSpan) -> int:
    """Audit records on the span: its decisions (``decision.count``) plus its other audit records
    (``decision.audit.records``: outcomes, reviews, checkpoints). Every span with one is kept."""
    # The SDK's span keeps its attributes in a BoundedAttributes whose plain dict ``_dict`` reads
    # without the lock and the generic Mapping.get that ``span.attributes`` goes through: on_end runs
    # for every span the application ends.
    attrs = getattr(getattr(span, "_attributes", None), "_dict", None)
    if attrs is None:
        attrs = span.attributes or {}
    n = attrs.get(S.DECISION_COUNT)
    r = attrs.get(S.AUDIT_RECORDS)
    return (n if isinstance(n, int) else 0) + (r if isinstance(r, int) else 0)


def decisions(spans: Sequence[ReadableSpan]) -> int:
    return sum(decision_count(s) for s in spans)


def compact_lists(span: ReadableSpan) -> None:
    """Hold a queued span's events and links as tuples, as ``chain.ChainStage`` holds the spans it
    rebuilds.

    Each of the SDK's ``BoundedList`` is three objects the garbage collector tracks (the list, its
    deque, its lock), and every full collection traverses all the spans the no-loss queue holds (up
    to ``max_queue_size``): a decision span goes from ~13 tracked objects to ~8. Only lists that
    dropped nothing are replaced, so ``events``, ``links`` and their ``dropped_*`` counts read the
    same; an ended span's lists are never written again (the SDK refuses events on an ended span)."""
    for name in ("_events", "_links"):
        lst = getattr(span, name, None)
        if type(lst) is BoundedList and not lst.dropped:
            setattr(span, name, tuple(lst))
