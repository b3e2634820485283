"""The recording thread's few direct writes into the SDK's spans, each with the public-API fallback.

Everything the recorder puts on a span is valid by construction (str, bool, int, float and lists of
str/float, already bounded), yet the SDK's public calls validate it again on every decision: the
start attributes of a ``predict`` span (``BoundedAttributes`` over a MappingProxy: ~2 µs), each
``add_event`` (~0.9 µs an attribute) and ``set_attribute`` of ``decision.count`` (a Mapping ``get``
that raises KeyError, then a locked, validated write). On the SDK's own span class (checked
exactly, not by isinstance) these functions write what the SDK would have stored, in the same order,
under the same span lock; any other span, or a span whose limits would cut or drop something, takes
the public calls and gets exactly what the SDK does.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.trace import _Span as _SdkSpan  # what Tracer.start_span returns when recording
from opentelemetry.trace import Span

__all__ = ["set_start_attributes", "add_audit_event", "has_room"]


def _plain(span: Any, adding: int) -> dict[str, Any] | None:
    """The SDK span's attribute dict when ``adding`` more attributes keep within its limits, else None."""
    bounded = span._attributes
    d = getattr(bounded, "_dict", None)
    if type(d) is not dict or bounded.max_value_len is not None:
        return None
    maxlen = bounded.maxlen
    if maxlen is not None and len(d) + adding > maxlen:
        return None
    return d


def set_start_attributes(span: Span, attrs: dict[str, Any]) -> None:
    """Set the start attributes of a span whose sampler was given them as ``sampling.AuditStart``
    (AuditSampler keeps the span and hands the SDK none to validate)."""
    if type(span) is _SdkSpan:
        with span._lock:
            d = _plain(span, len(attrs)) if span._end_time is None else None
            if d is not None:
                d.update(attrs)
                return
    span.set_attributes(attrs)


def add_audit_event(span: Span, name: str, attrs: dict[str, Any], timestamp: int, count_key: str,
                    records: int) -> None:
    """Append the event ``name`` with ``attrs`` (as is: valid by construction) and add ``records``
    to the span's ``count_key`` attribute, in one hold of the span's lock."""
    if type(span) is _SdkSpan:
        with span._lock:
            d = _plain(span, 1) if span._end_time is None else None
            if d is not None:
                events: Any = span._events  # a BoundedList: its append takes its own lock
                events.append(Event(name, attrs, timestamp))
                d[count_key] = d.get(count_key, 0) + records
                return
    add = getattr(span, "_add_event", None)
    if add is not None:
        add(Event(name, attrs, timestamp))
    else:
        span.add_event(name, attrs, timestamp)
    current = getattr(span, "attributes", None)
    span.set_attribute(count_key, (current.get(count_key, 0) if current else 0) + records)


def has_room(span: Span) -> bool:
    """False when one more event would push an older one out of the span (the SDK keeps 128
    by default and drops the oldest silently)."""
    events: Any = span._events if type(span) is _SdkSpan else getattr(span, "_events", None)
    dq = getattr(events, "_dq", None)
    maxlen = getattr(dq, "maxlen", None)
    return maxlen is None or len(dq) < maxlen  # type: ignore[arg-type]
