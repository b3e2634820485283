"""The Recorder: decisions onto spans, no decision silently missing.

A decision goes onto the span it is given, else the current recording span, else a ``predict
<model>`` span of its own (also the continuation of a span whose events are full); a batch is packed
into events spread over continuation spans (``max_events_per_span``). A span that is not recording
is a lost decision, counted and logged (raised under ``fail_closed``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from .. import stats
from ..batching import BatchEncoder
from ..conventions import DECISION_EVENT, SCOPE_NAME
from ..conventions import DecisionAttributes as D
from ..conventions import ModelAttributes as M
from ..conventions import SpanAttributes as S
from ..errors import DecisionLostError, RecordingError
from ..ids import new_decision_id, new_decision_ids, offset_id
from ..losses import raise_pending
from ..models import ModelIdentity
from ..sampling import AuditStart
from ..subjects import subject_attributes
from ..version import __version__
from .building import RecordBuilder
from .settings import RecorderSettings
from .spans import add_audit_event, has_room, set_start_attributes, start_audit_span, starts_directly

__all__ = ["Recorder"]

_log = logging.getLogger(__name__)


class Recorder(RecordBuilder):
    # The SDK keeps 128 events per span by default; packed batch events stay well below that.
    max_events_per_span = 64

    def __init__(self, settings: RecorderSettings | None = None, tracer_provider: Any = None) -> None:
        super().__init__(settings)
        self.tracer: Tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        self._direct = starts_directly(self.tracer)  # decision spans started by start_audit_span
        self._batch: BatchEncoder | None = None  # stateless between calls: made once per settings
        # id(identity) -> (identity, span name, start attributes); the identity kept keeps its id unique
        self._starts: dict[int, tuple[ModelIdentity, str, AuditStart]] = {}
        _warn_without_no_loss(tracer_provider or trace.get_tracer_provider())

    def emit(self, span: Span, attrs: dict[str, Any], decisions: int = 1, validated: bool = True,
             event: str = DECISION_EVENT) -> None:
        """Add one decision event to ``span`` (or, with ``event``, another audit event: an outcome or
        review record, counted in ``decision.audit.records`` instead of ``decision.count``). The hash
        chain and the input hash are applied later, on the export thread (chain.ChainStage), so the
        recording thread only encodes and appends. The subject and business keys of the current
        ``using_subject`` scope are added here, once for single and batch events alike (explicit
        attributes win)."""
        scoped = subject_attributes(self.settings.redaction, self.settings.max_chars)
        if scoped:
            _add_scoped(attrs, scoped)
        key = S.DECISION_COUNT if event == DECISION_EVENT else S.AUDIT_RECORDS
        if validated:
            # The SDK's add_event re-validates every attribute (~0.9 µs each); ours are valid by
            # construction (str, int, float, bool and lists of str/float): appended as they are.
            add_audit_event(span, event, attrs, time.time_ns(), key, decisions)
        else:
            span.add_event(event, attrs, time.time_ns())
            current = getattr(span, "attributes", None)
            span.set_attribute(key, (current.get(key, 0) if current else 0) + decisions)
        stats.add_local("recorded", decisions)

    def has_room(self, span: Span) -> bool:
        """False when one more event would push an older one out of the span (the SDK keeps 128
        by default and drops the oldest silently)."""
        return has_room(span)

    def record_batch(self, model: Any, rows: Any, outputs: Any, *, version: str | None = None,
                     labels: Sequence[Any] | None = None, scores: Sequence[float] | None = None,
                     span: Span | None = None) -> str:
        """Record one decision per row of a batched predict; returns the first row's id.

        Rows are packed into ``model.decision`` events of up to ``BatchEncoder.chunk_rows`` rows
        (see conventions.BATCH_COUNT), and events are spread over continuation ``predict`` spans so
        that no span holds more than ``max_events_per_span`` of them: no row is lost to the SDK's
        per-span event limit.
        """
        ident = self.identity(model, version)
        try:
            batch = self._batch
            if batch is None or batch.settings is not self.settings:
                batch = self._batch = BatchEncoder(self.settings)
            chunks = batch.encode(rows, outputs, labels, scores)
        except Exception as exc:
            n = _safe_len(rows)
            first = new_decision_ids(max(n, 1))
            attrs = self._failed(first, model, exc)
            attrs[D.BATCH_SIZE] = n
            attrs[D.BATCH_INDEX] = 0
            attrs[D.BATCH_COUNT] = max(n, 1)
            self._emit_batch(ident, [attrs], span)
            return first
        n = sum(c[D.BATCH_COUNT] for c in chunks)
        first = new_decision_ids(max(n, 1))
        events = []
        for c in chunks:
            attrs = ident.attributes()
            attrs[D.ID] = offset_id(first, c[D.BATCH_INDEX])
            attrs[D.BATCH_SIZE] = n
            attrs.update(c)
            events.append(attrs)
        self._emit_batch(ident, events, span)
        for attrs in events:
            self._raise_if_partial(attrs)
        if self.settings.fail_closed:
            raise_pending()  # losses found on the export side since the last call (losses.py)
        return first

    def _emit_batch(self, ident: ModelIdentity, events: list[dict[str, Any]], span: Span | None) -> None:
        per_span = self.max_events_per_span
        target = span if span is not None else self._current()
        done = 0
        if target is not None:
            if not target.is_recording():
                self.lost(events[0][D.ID], "its span is not recording (sampled out; configure AuditSampler)")
                return
            with _lock_for(target):  # the span may be shared with other threads: see _emit_if_room
                while done < min(len(events), per_span) and self.has_room(target):
                    self.emit(target, events[done], events[done].get(D.BATCH_COUNT, 1))
                    done += 1
        for start in range(done, len(events), per_span):
            part = events[start:start + per_span]
            own = self.start_span(ident)
            try:
                if not own.is_recording():
                    self.lost(part[0][D.ID], "its span is not recording (sampled out; configure AuditSampler)")
                    continue
                for attrs in part:
                    self.emit(own, attrs, attrs.get(D.BATCH_COUNT, 1))
            finally:
                own.end()

    def _current(self) -> Span | None:
        """The current span when it is recording and decisions may join it, else None."""
        if self.settings.own_spans:
            return None
        current = trace.get_current_span()
        return current if current.is_recording() else None

    def _emit_if_room(self, span: Span, attrs: dict[str, Any]) -> bool:
        """Add the event to ``span`` unless it is full, atomically: a span shared by threads (a
        request span several workers record onto) never has an event pushed out by the SDK's event
        limit between the check and the add, and its ``decision.count`` (read, then written) never
        loses an update."""
        with _lock_for(span):
            if not self.has_room(span):
                return False
            self.emit(span, attrs)  # valid by construction: every value went through attribute()
            return True

    def _raise_if_partial(self, attrs: dict[str, Any]) -> None:
        """Under fail-closed, a decision recorded with ``decision.error`` (its payload could not be
        offloaded) raises once it is recorded: the caller hears of it, the record is not dropped."""
        if self.settings.fail_closed and D.ERROR in attrs:
            raise RecordingError(f"decision {attrs.get(D.ID)} recorded incompletely: {attrs[D.ERROR]}")

    def start_span(self, ident: ModelIdentity) -> Span:
        # decision.audit and model.name let AuditSampler keep this span whatever the trace sampler
        # says; it leaves setting them to us (sampling.AuditStart), valid as they are. The name and
        # the start attributes are made once per identity: only read (by the sampler, and copied
        # into the span), never written.
        known = self._starts.get(id(ident))
        if known is None or known[0] is not ident:
            known = (ident, f"predict {ident.name}", AuditStart({S.DECISION_AUDIT: True, M.NAME: ident.name}))
            if len(self._starts) >= 4096:
                self._starts.clear()
            self._starts[id(ident)] = known
        _, name, attrs = known
        span = start_audit_span(self.tracer, name, attrs, True) if self._direct else None
        if span is None:  # (start_audit_span: the SDK's work, without its generic part)
            span = self.tracer.start_span(name, attributes=attrs)
        if span.is_recording():
            set_start_attributes(span, attrs)
        return span

    def lost(self, decision_id: str, why: str) -> None:
        stats.add("unrecorded")
        if self.settings.fail_closed:
            raise DecisionLostError(f"decision {decision_id} not recorded: {why}")
        _log.warning("decisiontrail: decision %s not recorded: %s (%d so far)", decision_id, why,
                     stats.snapshot()["unrecorded"])

    def record(self, model: Any, inputs: Any, output: Any, *, version: str | None = None,
               span: Span | None = None, **fields: Any) -> str:
        decision_id = new_decision_id()
        try:
            ident = self.identity(model, version)
            attrs = self.build(decision_id, ident, inputs, output, **fields)
        except (RecordingError, TypeError) as exc:
            if isinstance(exc, TypeError) and not _is_bad_field(exc):
                attrs = self._failed(decision_id, model, exc, inputs, output)
                ident = ModelIdentity(attrs[M.NAME])
            else:
                raise
        except Exception as exc:
            attrs = self._failed(decision_id, model, exc, inputs, output)
            ident = ModelIdentity(attrs[M.NAME])
        target = span if span is not None else self._current()
        if target is not None and not target.is_recording():
            self.lost(decision_id, "its span is not recording (sampled out; configure AuditSampler)")
            return decision_id
        if target is None or not self._emit_if_room(target, attrs):
            own = self.start_span(ident)  # a span of its own, or a continuation of a full one
            try:
                if not own.is_recording():
                    self.lost(decision_id, "its span is not recording (sampled out; configure AuditSampler)")
                    return decision_id
                self.emit(own, attrs)
            finally:
                own.end()
        self._raise_if_partial(attrs)
        if self.settings.fail_closed:
            raise_pending()  # losses found on the export side since the last call (losses.py)
        return decision_id


def _add_scoped(attrs: dict[str, Any], scoped: dict[str, Any]) -> None:
    for k, v in scoped.items():
        if k in (D.REDACTED, D.TRUNCATED):
            attrs[k] = [*attrs.get(k, ()), *v]
        else:
            attrs.setdefault(k, v)


def _safe_len(rows: Any) -> int:
    try:
        return len(rows)
    except Exception:
        return 1


def _is_bad_field(exc: TypeError) -> bool:
    return "unexpected keyword argument" in str(exc)


def _warn_without_no_loss(provider: Any) -> None:
    """Log once when an SDK provider has processors but none that keeps decisions (the SDK's
    BatchSpanProcessor evicts and drops them): set up outside configure() and the configurator."""
    global _warned_provider
    active = getattr(provider, "_active_span_processor", None)
    processors = getattr(active, "_span_processors", None)
    if _warned_provider or not processors:
        return
    from ..processing import DecisionSpanProcessor

    if not any(isinstance(p, DecisionSpanProcessor) for p in processors):
        _warned_provider = True
        _log.warning("decisiontrail: the TracerProvider has no DecisionSpanProcessor, so its processors may "
                     "drop decisions under load or during an outage; under opentelemetry-instrument set "
                     "OTEL_PYTHON_CONFIGURATOR=decisiontrail, in code call decisiontrail.configure("
                     "tracer_provider=...) (docs/no-loss.md)")


_SPAN_LOCKS = tuple(threading.Lock() for _ in range(64))


def _lock_for(span: Span) -> threading.Lock:
    """One of a few locks, by span: recording onto one span from many threads is serialised, while
    threads recording onto different spans rarely meet (a lock each would cost a dict per span)."""
    return _SPAN_LOCKS[(id(span) >> 4) & 63]


def _new_span_locks() -> None:  # a forked child: a lock may have been held by a thread of the parent
    global _SPAN_LOCKS
    _SPAN_LOCKS = tuple(threading.Lock() for _ in range(64))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_span_locks)

_warned_provider = False
