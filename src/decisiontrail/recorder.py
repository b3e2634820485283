"""Recording decisions: the hot path.

``record_decision`` builds one ``model.decision`` event (id, model identity, encoded and redacted
input/output, label, score, explanation) and adds it to the current recording span, or
to a new ``predict <model>`` span child of the current context. ``audited`` and ``decision`` are the
decorator and context-manager forms. By default a failure while recording is logged and counted and
the inference result is returned; a decision that failed to encode is still recorded, with
``decision.error`` saying what failed. With ``fail_closed=True`` the failure raises RecordingError.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from opentelemetry import context, trace
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from . import stats
from ._env import env_bool, env_int
from .conventions import DECISION_EVENT, SCOPE_NAME
from .conventions import DecisionAttributes as D
from .conventions import LifecycleAttributes as L
from .conventions import ModelAttributes as M
from .conventions import SpanAttributes as S
from .encoding import DEFAULT_MAX_CHARS, DEFAULT_MAX_DEPTH, FieldEncoder, bound_attribute, sha256_hex, to_jsonable
from .errors import DecisionLostError, RecordingError
from .ids import new_decision_id, new_decision_ids, offset_id
from .losses import raise_pending
from .batching import BatchEncoder
from .models import ModelIdentity, default_version, identify
from .redaction import RedactionPolicy
from .store.payloads import PayloadStore, payload_store_from_env
from .subjects import subject_attributes
from .version import __version__

__all__ = [
    "RecorderSettings", "Recorder", "record_decision", "audited", "decision",
    "get_recorder", "set_recorder", "DecisionHandle",
]

_log = logging.getLogger(__name__)
_MAX_KEY = 256  # characters of an attribute name from the application
MAX_APPLICATION_ATTRIBUTES = 128  # the SDK's default event attribute count limit, which emit() bypasses
# field -> (hash of its full text, reference to its full text in the payload store: decisions only)
FULL_TEXT: dict[str, tuple[str, str | None]] = {
    D.INPUT: (D.INPUT_HASH, D.INPUT_REF), D.OUTPUT: (D.OUTPUT_HASH, D.OUTPUT_REF),
    D.EXPLANATION: (D.EXPLANATION_HASH, D.EXPLANATION_REF),
    L.OUTCOME_VALUE: (L.OUTCOME_HASH, None), L.REVIEW_OUTPUT: (L.REVIEW_OUTPUT_HASH, None)}
F = TypeVar("F", bound=Callable[..., Any])
AttributeValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]


@dataclass(frozen=True)
class RecorderSettings:
    max_chars: int = DEFAULT_MAX_CHARS
    max_depth: int = DEFAULT_MAX_DEPTH
    fail_closed: bool = False
    hash_artifacts: bool = True
    redaction: RedactionPolicy = field(default_factory=RedactionPolicy)
    model_version: str | None = field(default_factory=default_version)
    payload_store: PayloadStore | None = None  # full texts of bounded fields (store/payloads.py)
    own_spans: bool = False  # each decision on a span of its own, ended at once (durability="sync")

    @classmethod
    def from_env(cls) -> RecorderSettings:
        """Settings from ``DECISIONTRAIL_MAX_CHARS``, ``DECISIONTRAIL_FAIL_CLOSED``, the redaction
        variables (redaction.py), ``DECISIONTRAIL_MODEL_VERSION`` and ``DECISIONTRAIL_PAYLOAD_STORE``:
        what a zero-code process gets."""
        return cls(max_chars=env_int("DECISIONTRAIL_MAX_CHARS", DEFAULT_MAX_CHARS),
                   fail_closed=env_bool("DECISIONTRAIL_FAIL_CLOSED", False),
                   redaction=RedactionPolicy.create(), payload_store=payload_store_from_env())


class Recorder:
    # The SDK keeps 128 events per span by default; packed batch events stay well below that.
    max_events_per_span = 64

    def __init__(self, settings: RecorderSettings | None = None, tracer_provider: Any = None) -> None:
        self.settings = settings or RecorderSettings()
        self.tracer: Tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider=tracer_provider)
        self._names: dict[tuple[str, str | None], ModelIdentity] = {}
        self._encode = FieldEncoder(self.settings.max_chars, self.settings.max_depth).encode
        self._identity_cut: dict[ModelIdentity, list[str]] = {}  # identities whose strings were bounded
        _warn_without_no_loss(tracer_provider or trace.get_tracer_provider())

    # -- building ----------------------------------------------------------------------------
    def identity(self, model: Any, version: str | None) -> ModelIdentity:
        if isinstance(model, ModelIdentity):  # resolved by the caller (an instrumentor)
            v = version or model.version or self.settings.model_version
            return self._bounded_identity(model if v == model.version else ModelIdentity(
                model.name, v, model.framework, model.artifact_hash))
        key = (model, version) if isinstance(model, str) else None
        if key is not None:
            found = self._names.get(key)
            if found is not None:
                return found
        ident = identify(model, self.settings.hash_artifacts)
        v = version or ident.version or self.settings.model_version
        if v != ident.version:
            ident = ModelIdentity(ident.name, v, ident.framework, ident.artifact_hash)
        ident = self._bounded_identity(ident)
        if key is not None and len(self._names) < 4096:
            self._names[key] = ident
        return ident

    def _bounded_identity(self, ident: ModelIdentity) -> ModelIdentity:
        limit = self.settings.max_chars
        if len(ident.name) <= limit and len(ident.version or "") <= limit:
            return ident
        cut: list[str] = []
        bounded = ModelIdentity(bound_attribute(M.NAME, ident.name, limit, cut),
                                bound_attribute(M.VERSION, ident.version, limit, cut),
                                ident.framework, ident.artifact_hash)
        if len(self._identity_cut) < 4096:
            self._identity_cut[bounded] = cut
        return bounded

    def attribute(self, attrs: dict[str, Any], key: str, value: Any, truncated: list[str]) -> None:
        """The one way a value the application gave becomes an attribute: bounded, of a valid
        attribute type (encoding/attributes.py), its path in ``truncated`` when it was cut."""
        v = bound_attribute(key, value, self.settings.max_chars, truncated)
        if v is not None:
            attrs[key] = v

    def application_attributes(self, attrs: dict[str, Any], attributes: Mapping[str, Any],
                               truncated: list[str]) -> None:
        """The application's own attributes, bounded; they never replace one decisiontrail set. Past
        ``MAX_APPLICATION_ATTRIBUTES`` the rest are left out and ``attributes`` is named in ``truncated``."""
        for n, (k, v) in enumerate(attributes.items()):
            if n == MAX_APPLICATION_ATTRIBUTES:
                truncated.append("attributes")
                break
            k = k if isinstance(k, str) and len(k) <= _MAX_KEY else bound_attribute("key", str(k), _MAX_KEY, [])
            if k not in attrs:
                self.attribute(attrs, k, v, truncated)

    def _encode_into(self, attrs: dict[str, Any], key: str, name: str, value: Any,
                     truncated: list[str], redacted: list[str]) -> None:
        s = self.settings
        if s.redaction.active:
            value = s.redaction.apply(to_jsonable(value, s.max_depth), name, redacted)
        encoded = self._encode(value, name)
        if isinstance(encoded, str):
            attrs[key] = encoded  # whole: the export thread hashes it (chain.ChainStage), off this thread
            return
        # A bounded summary: the full text is not kept, so its hash is taken now (and the text
        # offloaded, when there is a payload store, before the decision can be exported).
        attrs[key] = encoded.text
        hash_key, ref_key = FULL_TEXT[key]
        attrs[hash_key] = sha256_hex(encoded.full)
        truncated.extend(encoded.cut)
        if s.payload_store is not None and ref_key is not None:
            problem = s.payload_store.offload(attrs, ref_key, encoded.full)
            if problem:
                attrs[D.ERROR] = f"{attrs[D.ERROR]}; {problem}" if D.ERROR in attrs else problem

    def build(self, decision_id: str, ident: ModelIdentity, inputs: Any, output: Any, *,
              label: Any = None, score: Any = None, explanation: Any = None,
              reason_codes: Sequence[str] | None = None,
              attributes: Mapping[str, AttributeValue] | None = None) -> dict[str, Any]:
        attrs: dict[str, Any] = ident.attributes()
        attrs[D.ID] = decision_id
        truncated: list[str] = list(self._identity_cut.get(ident, ())) if self._identity_cut else []
        redacted: list[str] = []
        self._encode_into(attrs, D.INPUT, "input", inputs, truncated, redacted)
        self._encode_into(attrs, D.OUTPUT, "output", output, truncated, redacted)
        if explanation is not None:
            self._encode_into(attrs, D.EXPLANATION, "explanation", explanation, truncated, redacted)
        if label is not None:
            self.attribute(attrs, D.LABEL, label if isinstance(label, str) else str(to_jsonable(label)), truncated)
        if score is not None:
            f = float(score)
            if math.isfinite(f):  # OTLP JSON has no NaN; a non-finite score stays in the output
                attrs[D.SCORE] = f
        if reason_codes:
            self.attribute(attrs, D.REASON_CODES, [str(c) for c in reason_codes], truncated)
        if attributes:
            self.application_attributes(attrs, attributes, truncated)
        if truncated:
            attrs[D.TRUNCATED] = truncated
        if redacted:
            attrs[D.REDACTED] = redacted
        return attrs

    def _failed(self, decision_id: str, model: Any, exc: BaseException, inputs: Any = None,
                output: Any = None) -> dict[str, Any]:
        """A decision that failed to build is still recorded, minimal, saying what failed."""
        stats.add("recording_errors")
        if self.settings.fail_closed:
            raise RecordingError(f"decision {decision_id} could not be recorded: {exc!r}") from exc
        _log.warning("decisiontrail: recording decision %s partly failed: %r", decision_id, exc)
        try:
            name = model if isinstance(model, str) else (
                model.name if isinstance(model, ModelIdentity) else type(model).__name__)
        except Exception:
            name = "unknown"
        cut: list[str] = []
        redacted: list[str] = []
        attrs: dict[str, Any] = {M.NAME: bound_attribute(M.NAME, str(name), self.settings.max_chars, cut),
                                 D.ID: decision_id, D.ERROR: f"{type(exc).__name__}: {exc}"[:1000]}
        for key, field_name, value in ((D.INPUT, "input", inputs), (D.OUTPUT, "output", output)):
            try:  # what failed was elsewhere (a score that is not a number): keep the input and output
                self._encode_into(attrs, key, field_name, value, cut, redacted)
            except Exception:
                attrs[key] = "null"
        if cut:
            attrs[D.TRUNCATED] = cut
        if redacted:
            attrs[D.REDACTED] = redacted
        return attrs

    # -- emitting ----------------------------------------------------------------------------
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
        add = getattr(span, "_add_event", None) if validated else None
        if add is not None:
            # The SDK's add_event re-validates every attribute (~0.9 µs each); ours are valid by
            # construction (str, int, float, bool and lists of str/float), so append the Event as is.
            add(Event(event, attrs, time.time_ns()))
        else:
            span.add_event(event, attrs, time.time_ns())
        key = S.DECISION_COUNT if event == DECISION_EVENT else S.AUDIT_RECORDS
        current = getattr(span, "attributes", None)
        span.set_attribute(key, (current.get(key, 0) if current else 0) + decisions)
        stats.add_local("recorded", decisions)

    def has_room(self, span: Span) -> bool:
        """False when one more event would push an older one out of the span (the SDK keeps 128
        by default and drops the oldest silently)."""
        events = getattr(span, "_events", None)
        dq = getattr(events, "_dq", None)
        maxlen = getattr(dq, "maxlen", None)
        return maxlen is None or len(dq) < maxlen  # type: ignore[arg-type]

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
            chunks = BatchEncoder(self.settings).encode(rows, outputs, labels, scores)
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
        # decision.audit and model.name let AuditSampler keep this span whatever the trace sampler says.
        return self.tracer.start_span(
            f"predict {ident.name}", attributes={S.DECISION_AUDIT: True, M.NAME: ident.name}
        )

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
    from .processing import DecisionSpanProcessor

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
_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> Recorder:
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = Recorder(RecorderSettings.from_env())
    return _recorder


def set_recorder(recorder: Recorder | None) -> None:
    global _recorder
    _recorder = recorder


def record_decision(model: Any, inputs: Any, output: Any, *, version: str | None = None,
                    label: Any = None, score: float | None = None, explanation: Any = None,
                    reason_codes: Sequence[str] | None = None,
                    attributes: Mapping[str, AttributeValue] | None = None) -> str:
    """Record one decision and return its id.

    ``model`` is a name or a model object (its registered name, else its class name). The event goes
    on the current span when it is recording, else on a new ``predict <model>`` span.
    """
    return get_recorder().record(
        model, inputs, output, version=version, label=label, score=score,
        explanation=explanation, reason_codes=reason_codes, attributes=attributes,
    )


class DecisionHandle:
    """What ``with decision(...) as d`` gives: set ``output`` (and optionally the rest) in the block."""

    def __init__(self, inputs: Any) -> None:
        self.inputs = inputs
        self.output: Any = _UNSET
        self.label: Any = None
        self.score: float | None = None
        self.explanation: Any = None
        self.reason_codes: Sequence[str] | None = None
        self.attributes: dict[str, AttributeValue] = {}
        self.decision_id: str | None = None
        self.span: Span | None = None


_UNSET: Any = object()


@contextmanager
def decision(model: Any, inputs: Any = None, *, version: str | None = None) -> Iterator[DecisionHandle]:
    """Open a ``predict <model>`` span; on exit record the decision with the output set in the block.

    If the block raises before setting ``output``, the exception is recorded on the span and no
    decision is made; the exception propagates untouched.
    """
    rec = get_recorder()
    ident = rec.identity(model, version)
    handle = DecisionHandle(inputs)
    span = rec.start_span(ident)
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield handle
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        if handle.output is not _UNSET:
            handle.decision_id = _record_handle(rec, model, version, handle, span)
        raise
    else:
        handle.decision_id = _record_handle(rec, model, version, handle, span)
    finally:
        span.end()


def _record_handle(rec: Recorder, model: Any, version: str | None, h: DecisionHandle, span: Span) -> str:
    output = None if h.output is _UNSET else h.output
    return rec.record(model, h.inputs, output, version=version, span=span, label=h.label, score=h.score,
                      explanation=h.explanation, reason_codes=h.reason_codes, attributes=h.attributes or None)


def _call_inputs(sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The decision's input: the single argument of predict(x), else the bound arguments by name."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if sig is not None:
        try:
            bound = sig.bind_partial(*args, **kwargs)
            return dict(bound.arguments)
        except TypeError:
            pass
    return {"args": list(args), "kwargs": kwargs}


@overload
def audited(fn: F, *, model_name: str | None = None, model_version: str | None = None,
            label: Callable[[Any], Any] | None = None, score: Callable[[Any], float] | None = None,
            explanation: Callable[[Any], Any] | None = None,
            reason_codes: Callable[[Any], Sequence[str]] | None = None) -> F: ...


@overload
def audited(fn: None = None, *, model_name: str | None = None, model_version: str | None = None,
            label: Callable[[Any], Any] | None = None, score: Callable[[Any], float] | None = None,
            explanation: Callable[[Any], Any] | None = None,
            reason_codes: Callable[[Any], Sequence[str]] | None = None) -> Callable[[F], F]: ...


def audited(fn: F | None = None, *, model_name: str | None = None, model_version: str | None = None,
            label: Callable[[Any], Any] | None = None, score: Callable[[Any], float] | None = None,
            explanation: Callable[[Any], Any] | None = None,
            reason_codes: Callable[[Any], Sequence[str]] | None = None) -> Any:
    """Decorate a predict-like function (sync or async): each call is one decision.

    ``label``, ``score``, ``explanation`` and ``reason_codes`` are optional functions of the
    return value. A method's
    ``self`` is not part of the recorded input.
    """

    def decorate(func: F) -> F:
        name = model_name or getattr(func, "__qualname__", getattr(func, "__name__", "model"))
        try:
            sig: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            sig = None
        is_method = bool(sig and next(iter(sig.parameters), None) == "self")

        extractors = [(key, extract) for key, extract in (("label", label), ("score", score),
                                                           ("explanation", explanation),
                                                           ("reason_codes", reason_codes)) if extract is not None]

        def outcome(result: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, extract in extractors:
                try:
                    out[key] = extract(result)
                except Exception as exc:  # a broken extractor must not break the prediction
                    _log.warning("decisiontrail: %s extractor of %s failed: %r", key, name, exc)
            return out

        def split(args: tuple[Any, ...]) -> tuple[Any, ...]:
            return args[1:] if is_method and args else args

        def begin() -> tuple[Recorder, Span, Any]:
            rec = get_recorder()
            span = rec.start_span(rec.identity(name, model_version))
            # attach/detach by hand: trace.use_span is a generator context manager costing ~3 µs
            return rec, span, context.attach(trace.set_span_in_context(span))

        def failed(span: Span, exc: BaseException) -> None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()

        def finish(rec: Recorder, span: Span, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            try:
                rec.record(name, _call_inputs(None, split(args), kwargs), result,
                           version=model_version, span=span, **outcome(result))
            finally:
                span.end()

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                rec, span, token = begin()
                try:
                    try:
                        result = await func(*args, **kwargs)
                    finally:
                        context.detach(token)
                except BaseException as exc:
                    failed(span, exc)
                    raise
                finish(rec, span, args, kwargs, result)
                return result
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            rec, span, token = begin()
            try:
                try:
                    result = func(*args, **kwargs)
                finally:
                    context.detach(token)
            except BaseException as exc:
                failed(span, exc)
                raise
            finish(rec, span, args, kwargs, result)
            return result
        return wrapper  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate
