"""The recording thread's few direct writes into the SDK's spans, each with the public-API fallback.

Everything the recorder puts on a span is valid by construction (str, bool, int, float and lists of
str/float, already bounded), yet the SDK's public calls validate it again on every decision: the
start attributes of a ``predict`` span (``BoundedAttributes`` over a MappingProxy: ~2 µs), each
``add_event`` (~0.9 µs an attribute) and ``set_attribute`` of ``decision.count`` (a Mapping ``get``
that raises KeyError, then a locked, validated write). On the SDK's own span class (checked
exactly, not by isinstance) these functions write what the SDK would have stored, in the same order,
under the same span lock; any other span, or a span whose limits would cut or drop something, takes
the public calls and gets exactly what the SDK does.

A ``predict`` span itself is started by :func:`start_audit_span` when the SDK's tracer samples with
AuditSampler: the same ``_Span`` that ``Tracer.start_span`` makes, without the generic half of that
call (a test compares the two spans field by field, and their metrics).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.trace import Tracer as _SdkTracer
from opentelemetry.sdk.trace import _Span as _SdkSpan  # what Tracer.start_span returns when recording
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.version import __version__ as _sdk_version
from opentelemetry.trace import Span, SpanContext, SpanKind, TraceFlags

from ..sampling import AuditSampler, AuditStart, shared_trace_flags

__all__ = ["start_audit_span", "starts_directly", "set_start_attributes", "add_audit_event", "has_room"]

_SAMPLED = shared_trace_flags(TraceFlags.SAMPLED)
_RANDOM: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED_RANDOM = shared_trace_flags(TraceFlags.SAMPLED | _RANDOM)
_TRACER_FIELDS = ("sampler", "resource", "span_processor", "id_generator", "instrumentation_info", "_span_limits",
                  "_instrumentation_scope", "_tracer_metrics", "_is_enabled")


def _same_start_span() -> bool:
    """The SDK's Tracer.start_span that start_audit_span does the work of: 1.45 and later 1.x (trace
    flags with random-trace-id, tracer metrics, tracer configs); earlier releases take the public call."""
    try:
        major, minor = (int(p) for p in _sdk_version.split(".")[:2])
    except ValueError:
        return False
    return major == 1 and minor >= 45 and bool(_RANDOM)


_FAST_START = _same_start_span()


def starts_directly(tracer: Any) -> bool:
    """Whether :func:`start_audit_span` applies to ``tracer`` (the SDK's, sampling with AuditSampler,
    with the fields it reads): fixed for a tracer, so a caller checks once."""
    return (_FAST_START and type(tracer) is _SdkTracer and type(getattr(tracer, "sampler", None)) is AuditSampler
            and all(hasattr(tracer, f) for f in _TRACER_FIELDS))


def start_audit_span(tracer: Any, name: str, attrs: AuditStart, checked: bool = False) -> Span | None:
    """Start a decision span as the SDK's ``Tracer.start_span(name, attributes=attrs)`` would under
    AuditSampler, without its generic work (~3 µs a span): AuditSampler keeps every span that
    carries ``AuditStart`` and hands the SDK no attributes, so the sampling result is known. The same
    ``_Span`` is made, from the same tracer's processors, limits, resource, scope and id generator,
    with the same parent, trace state and flags, counted in the tracer's metrics, and started the same
    way (processors' ``on_start`` included). Trace flags are the shared objects of
    ``sampling.shared_trace_flags``. None when this does not apply (another tracer or sampler, a
    disabled tracer, another SDK release): the caller then takes the public call. ``checked``: the
    caller found :func:`starts_directly` true for this tracer."""
    if not (checked or starts_directly(tracer)) or not tracer._is_enabled():
        return None
    parent: SpanContext | None = trace.get_current_span().get_span_context()
    ids = tracer.id_generator
    if parent is None or not parent.is_valid:
        parent = None
        trace_id, random, state = ids.generate_trace_id(), ids.is_trace_id_random(), None
    else:
        trace_id, random, state = parent.trace_id, parent.trace_flags.random_trace_id, parent.trace_state
    context = SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                          trace_flags=_SAMPLED_RANDOM if random else _SAMPLED, trace_state=state)
    end_metrics = tracer._tracer_metrics.start_span(parent, Decision.RECORD_AND_SAMPLE)
    span = _SdkSpan(name=name, context=context, parent=parent, sampler=tracer.sampler, resource=tracer.resource,
                    attributes=None, span_processor=tracer.span_processor, kind=SpanKind.INTERNAL, links=(),
                    instrumentation_info=tracer.instrumentation_info, record_exception=True,
                    set_status_on_exception=True, limits=tracer._span_limits,
                    instrumentation_scope=tracer._instrumentation_scope, record_end_metrics=end_metrics)
    span.start(start_time=None, parent_context=None)
    return span


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
