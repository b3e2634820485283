"""How many audit records a span carries: what decides that the processor keeps it; and what a
span waiting in the queue holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

from ..conventions import SpanAttributes as S

__all__ = ["decision_count", "decisions", "share_empty_lists"]

_EMPTY: BoundedList[Any] = BoundedList(0)  # never appended to: an ended span's lists are read, not written


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


def share_empty_lists(span: ReadableSpan) -> None:
    """Let a queued span's empty links (and events) list be one shared empty list.

    Each of the SDK's ``BoundedList`` is three objects the garbage collector tracks (the list, its
    deque, its lock), and every full collection traverses all the spans the no-loss queue holds (up
    to ``max_queue_size``): a decision span rarely has links, so this takes 3 of its ~12 tracked
    objects off every collection. Only lists that are empty and dropped nothing are replaced, so
    ``links``, ``events`` and their ``dropped_*`` counts read the same."""
    for name in ("_links", "_events"):
        lst = getattr(span, name, None)
        if type(lst) is BoundedList and not lst.dropped and not len(lst):
            setattr(span, name, _EMPTY)
