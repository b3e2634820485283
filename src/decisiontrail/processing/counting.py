"""How many audit records a span carries: what decides that the processor keeps it."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from ..conventions import SpanAttributes as S

__all__ = ["decision_count", "decisions"]


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
