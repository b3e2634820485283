"""A decision's life after the model answered: outcomes and human reviews, bound by decision id.

``record_outcome`` says what later happened (the loan was repaid, the fraud flag was right);
``record_review`` records a human's review (``confirm``, ``override``, ``escalate``, ``annotate``).
Each call adds one ``model.decision.outcome`` / ``model.decision.review`` event carrying the
``decision.id`` it refers to and its own ``decision.record.id``, on its own span (``record outcome``
/ ``record review``, a child of the current context, e.g. the reviewer's HTTP request), with a span
link to the decision's span when ``trace_id`` and ``span_id`` are given.

The records take the decisions' path: the span carries ``decision.audit`` (AuditSampler keeps it)
and ``decision.audit.records`` (the no-loss processor keeps and spools it, the collector routes it to
the audit files); values go through the recorder's encoding, size cap and redaction policy (the
outcome and the review's output like a decision's output; ``reviewer``, ``rationale`` and
``source`` when the policy names them); the export thread links them into the process's hash chain.

Append-only: nothing is changed in place. An override is a new record; the decision and the
earlier reviews stay as they were, and the read side takes the latest override as the effective
label. A decision id that is not in any store this process knows is recorded all the same (the
read side says "refers to a decision not found here"); a call that is plainly wrong raises
:class:`~decisiontrail.errors.InvalidRecordError` at once, in every mode.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.trace import Link, SpanContext, TraceFlags

from . import stats
from .conventions import OUTCOME_EVENT, REVIEW_ACTIONS, REVIEW_EVENT
from .conventions import DecisionAttributes as D
from .conventions import LifecycleAttributes as L
from .conventions import SpanAttributes as S
from .encoding import to_jsonable
from .errors import InvalidRecordError, RecordingError
from .ids import new_decision_id
from .recorder import AttributeValue, Recorder, get_recorder
from .recorder.spans import set_start_attributes
from .redaction import REDACTED
from .sampling import AuditStart

__all__ = ["record_outcome", "record_review", "OUTCOME_SPAN", "REVIEW_SPAN"]

OUTCOME_SPAN = "record outcome"
REVIEW_SPAN = "record review"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # one for every link (each would be an object for the GC)
_Build = Callable[[dict[str, Any], list[str], list[str]], None]  # (attributes, truncated, redacted)


def record_outcome(decision_id: str, outcome: Any, *, observed_at: Any = None, source: str | None = None,
                   attributes: Mapping[str, AttributeValue] | None = None,
                   trace_id: str | int | None = None, span_id: str | int | None = None) -> str:
    """Record what happened to decision ``decision_id`` and return the new record's id.

    ``outcome`` is any value the encoder takes (the true label such as ``"default"``, an amount, an
    object); a plain string or number is compared with the decision's label for accuracy.
    ``observed_at`` (a datetime, epoch seconds or ISO 8601 text) is when it was observed, if not now;
    ``source`` says where it comes from. ``trace_id`` / ``span_id`` (hex or int) of the decision's
    span, when known, make a span link to it.
    """
    _check_id(decision_id)
    observed = _iso(observed_at) if observed_at is not None else None
    if source is not None and not isinstance(source, str):
        raise InvalidRecordError(f"source must be a string, not {type(source).__name__}")
    link = _link(trace_id, span_id)
    rec = get_recorder()

    def build(attrs: dict[str, Any], truncated: list[str], redacted: list[str]) -> None:
        rec._encode_into(attrs, L.OUTCOME_VALUE, "outcome", outcome, truncated, redacted)
        if observed is not None:
            attrs[L.OUTCOME_OBSERVED_AT] = observed
        _text(rec, attrs, L.OUTCOME_SOURCE, "source", source, truncated, redacted)

    return _record(rec, OUTCOME_EVENT, OUTCOME_SPAN, decision_id, build, attributes, link)


def record_review(decision_id: str, *, reviewer: str, action: str, label: Any = None, output: Any = None,
                  rationale: str | None = None, attributes: Mapping[str, AttributeValue] | None = None,
                  trace_id: str | int | None = None, span_id: str | int | None = None) -> str:
    """Record a human review of decision ``decision_id`` and return the new record's id.

    ``reviewer`` is who reviewed (required); ``action`` one of ``confirm``, ``override``, ``escalate``,
    ``annotate``. An override gives the new ``label`` and/or ``output`` (the decision itself is never
    changed); ``rationale`` says why. ``trace_id`` / ``span_id`` as in :func:`record_outcome`.
    """
    _check_id(decision_id)
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise InvalidRecordError(f"record_review needs a reviewer (a non-empty string), not {reviewer!r}")
    if action not in REVIEW_ACTIONS:
        raise InvalidRecordError(f"review action must be one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
    if action == "override" and label is None and output is None:
        raise InvalidRecordError("an override needs the label or the output that replaces the model's")
    if rationale is not None and not isinstance(rationale, str):
        raise InvalidRecordError(f"rationale must be a string, not {type(rationale).__name__}")
    link = _link(trace_id, span_id)
    rec = get_recorder()

    def build(attrs: dict[str, Any], truncated: list[str], redacted: list[str]) -> None:
        _text(rec, attrs, L.REVIEW_REVIEWER, "reviewer", reviewer.strip(), truncated, redacted)
        attrs[L.REVIEW_ACTION] = action
        if label is not None:
            rec.attribute(attrs, L.REVIEW_LABEL, label if isinstance(label, str) else str(to_jsonable(label)),
                          truncated)
        if output is not None:
            rec._encode_into(attrs, L.REVIEW_OUTPUT, "output", output, truncated, redacted)
        _text(rec, attrs, L.REVIEW_RATIONALE, "rationale", rationale, truncated, redacted)

    return _record(rec, REVIEW_EVENT, REVIEW_SPAN, decision_id, build, attributes, link)


def _record(rec: Recorder, event: str, span_name: str, decision_id: str, build: _Build,
            attributes: Mapping[str, AttributeValue] | None, link: Link | None) -> str:
    record_id = new_decision_id()
    attrs: dict[str, Any] = {D.ID: decision_id, L.RECORD_ID: record_id}
    truncated: list[str] = []
    redacted: list[str] = []
    try:
        build(attrs, truncated, redacted)
        if attributes:
            rec.application_attributes(attrs, attributes, truncated)
    except Exception as exc:  # the encoder is total; this is a bug, and the record still goes out
        attrs = _failed(rec, record_id, decision_id, exc)
    else:
        if truncated:
            attrs[D.TRUNCATED] = truncated
        if redacted:
            attrs[D.REDACTED] = redacted
    # decision.audit makes AuditSampler keep the span; emit() sets decision.audit.records on it.
    start = AuditStart({S.DECISION_AUDIT: True})
    span = rec.tracer.start_span(span_name, links=[link] if link is not None else None, attributes=start)
    try:
        if span.is_recording():
            set_start_attributes(span, start)
        else:
            rec.lost(record_id, "its span is not recording (sampled out; configure AuditSampler)")
            return record_id
        rec.emit(span, attrs, event=event)  # every value is bounded and of an attribute type
    finally:
        span.end()
    return record_id


def _failed(rec: Recorder, record_id: str, decision_id: str, exc: Exception) -> dict[str, Any]:
    stats.add("recording_errors")
    if rec.settings.fail_closed:
        raise RecordingError(f"record {record_id} of decision {decision_id} could not be built: {exc!r}") from exc
    return {D.ID: decision_id, L.RECORD_ID: record_id, D.ERROR: f"{type(exc).__name__}: {exc}"[:1000]}


def _text(rec: Recorder, attrs: dict[str, Any], key: str, name: str, value: str | None,
          truncated: list[str], redacted: list[str]) -> None:
    """A plain text field: replaced when the redaction policy names it, bounded like every attribute."""
    if value is None:
        return
    policy = rec.settings.redaction
    if name in policy.redact_keys:
        value = REDACTED
        redacted.append(name)
    elif name in policy.hash_keys:
        value = policy.pseudonym(value)
        redacted.append(name)
    rec.attribute(attrs, key, value, truncated)


def _check_id(decision_id: Any) -> None:
    if not isinstance(decision_id, str):
        raise InvalidRecordError(f"decision_id must be a string (the id record_decision returned), "
                                 f"not {type(decision_id).__name__}")
    if not decision_id.strip():
        raise InvalidRecordError("decision_id is empty")


def _iso(value: Any) -> str:
    """``observed_at`` as ISO 8601 UTC text."""
    try:
        if isinstance(value, _dt.datetime):
            t = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            t = _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
        elif isinstance(value, str):
            t = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        else:
            raise TypeError(type(value).__name__)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise InvalidRecordError(f"observed_at must be a datetime, epoch seconds or ISO 8601 text, "
                                 f"not {value!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _link(trace_id: str | int | None, span_id: str | int | None) -> Link | None:
    """The span link to the decision's span, or None when its context is not known."""
    if trace_id is None and span_id is None:
        return None
    if trace_id is None or span_id is None:
        raise InvalidRecordError("give both trace_id and span_id of the decision's span, or neither")
    try:
        t = trace_id if isinstance(trace_id, int) else int(trace_id, 16)
        s = span_id if isinstance(span_id, int) else int(span_id, 16)
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(f"trace_id and span_id are hex (or int), not {trace_id!r}, {span_id!r}") from exc
    if not (0 < t < 1 << 128 and 0 < s < 1 << 64):
        raise InvalidRecordError(f"not a valid span context: trace_id {trace_id!r}, span_id {span_id!r}")
    return Link(SpanContext(t, s, is_remote=True, trace_flags=_SAMPLED))
