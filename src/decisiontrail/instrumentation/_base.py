"""What every decisiontrail instrumentor shares: options, the model-call wrapper, patching.

One wrapper records a library's predict-like call as decisions through the core recorder
(recorder.Recorder.start_span / record_batch / record); instrumentors only say which methods to wrap
and how to read a call (an :data:`~._rows.Extractor`). The modules, by role: ``_base`` (the
wrappers), ``_options`` (InstrumentOptions), ``_rows`` (what a call decided), ``_ids``
(:func:`collect_decisions`), ``_patching`` (Patcher, DecisionInstrumentor). The rules they all follow:

- **outermost call only**: while an instrumented call runs, the context holds :data:`IN_MODEL_CALL`;
  any instrumented call made inside it (a Pipeline's final estimator, a meta-estimator's base
  estimators, ``XGBClassifier.predict`` calling the Booster, ``predict`` calling
  ``decision_function``) passes straight through, so each row is one decision of the call the
  application made. :func:`suppressing` marks calls that are not decisions (``fit``, ``score``);
- **telemetry never breaks inference**: a failure of ours is logged and counted
  (``stats`` ``recording_errors``) and the library's result is returned, unless the recorder's
  settings say ``fail_closed``; the library's own exceptions propagate untouched;
- ``opentelemetry.instrumentation.utils.suppress_instrumentation`` turns recording off;
- the ids of the decisions made are published to :func:`collect_decisions` scopes (the
  ``decision-id`` response header of the Flask instrumentor comes from there).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Status, StatusCode

from .. import stats
from ..errors import DecisionLostError, RecordingError
from ..models import ModelIdentity, identify
from ..recorder import Recorder, get_recorder
from ._ids import publish
from ._options import InstrumentOptions
from ._rows import Extracted, Extractor

__all__ = ["IN_MODEL_CALL", "ModelCallWrapper", "suppressing", "in_model_call"]

_log = logging.getLogger(__name__)

IN_MODEL_CALL = context.create_key("decisiontrail-in-model-call")
"""Context key set while an instrumented model call (or a call that is not a decision) runs."""


def in_model_call() -> bool:
    """True while an instrumented model call runs in this context."""
    return bool(context.get_value(IN_MODEL_CALL))


# -- the wrappers ------------------------------------------------------------------------------------


def _telemetry_failed(rec: Recorder | None, exc: BaseException, what: str) -> None:
    """A failure of ours: counted and logged; raised only when the recorder is fail-closed."""
    stats.add("recording_errors")
    if rec is not None and rec.settings.fail_closed:
        raise RecordingError(f"decisiontrail: {what} failed: {exc!r}") from exc
    _log.warning("decisiontrail: %s failed; the prediction is returned unrecorded: %r", what, exc)


class ModelCallWrapper:
    """State shared by an instrumentor's wrappers: whether it is active, its options, and the
    identity of each model object (resolved once per object and recorder settings)."""

    def __init__(self, options: InstrumentOptions,
                 default_name: Callable[[Any], str | None] | None = None,
                 artifact_hash: Callable[[Any], str | None] | None = None) -> None:
        self.options = options
        self.active = True
        self._default_name = default_name
        self._artifact_hash = artifact_hash
        self._idents: weakref.WeakKeyDictionary[Any, tuple[ModelIdentity, Recorder, ModelIdentity]] = \
            weakref.WeakKeyDictionary()

    # -- identity -----------------------------------------------------------------------------
    def identity(self, rec: Recorder, model: Any) -> ModelIdentity:
        base = identify(model, rec.settings.hash_artifacts)  # cached per object: hashed once
        try:
            cached = self._idents.get(model)
        except TypeError:  # not weakly referenceable or unhashable
            cached = None
        if cached is not None and cached[0] is base and cached[1] is rec:
            return cached[2]
        ident = self._resolve(rec, model, base)
        try:
            self._idents[model] = (base, rec, ident)
        except TypeError:
            pass
        return ident

    def _resolve(self, rec: Recorder, model: Any, base: ModelIdentity) -> ModelIdentity:
        name = base.name
        if name == type(model).__name__:  # not named with register_model
            opt = self.options.model_name
            chosen = opt(model) if callable(opt) else opt
            if not chosen and self._default_name is not None:
                chosen = self._default_name(model)
            name = str(chosen) if chosen else name
        version = base.version or self.options.model_version or rec.settings.model_version
        artifact = base.artifact_hash
        if artifact is None and rec.settings.hash_artifacts and self._artifact_hash is not None:
            artifact = self._artifact_hash(model)
        if (name, version, artifact) == (base.name, base.version, base.artifact_hash):
            return base
        return ModelIdentity(name, version, base.framework, artifact)

    # -- wrapper factories --------------------------------------------------------------------
    def recording(self, extract: Extractor) -> Callable[..., Any]:
        """A wrapt wrapper recording each outermost call as decisions read by ``extract``."""

        def traced(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
            if not self.active or context.get_value(IN_MODEL_CALL) or not is_instrumentation_enabled():
                return wrapped(*args, **kwargs)
            rec = None
            try:
                rec = get_recorder()
                ident = self.identity(rec, instance)
                span = rec.start_span(ident)
                token = context.attach(context.set_value(IN_MODEL_CALL, True, trace.set_span_in_context(span)))
            except Exception as exc:
                _telemetry_failed(rec, exc, "starting the predict span")
                with suppressing():  # inner model calls would fail the same way: once is enough
                    return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                context.detach(token)
                _end_failed(span, exc)
                raise
            try:
                # Still inside the predict span: the continuation spans of a large batch are its
                # children, in the same trace even when the call has no parent span.
                self._record(rec, ident, extract(instance, args, kwargs, result), span)
            except (RecordingError, DecisionLostError):
                raise  # fail-closed: already counted by the recorder
            except Exception as exc:
                _telemetry_failed(rec, exc, "recording the decision")
            finally:
                context.detach(token)
                span.end()
            return result

        return traced

    def suppressing(self, generator: bool = False) -> Callable[..., Any]:
        """A wrapt wrapper marking calls that are not decisions (``fit``, ``score``): the model
        calls they make inside are not recorded. With ``generator``, the wrapped method returns a
        generator (``staged_predict``) whose steps run, later, each under the mark."""

        def not_a_decision(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> Any:
            if not self.active or context.get_value(IN_MODEL_CALL):
                return wrapped(*args, **kwargs)
            token = context.attach(context.set_value(IN_MODEL_CALL, True))
            try:
                result = wrapped(*args, **kwargs)
            finally:
                context.detach(token)
            return _marked_steps(result) if generator else result

        return not_a_decision

    @staticmethod
    def _record(rec: Recorder, ident: ModelIdentity, ex: Extracted, span: trace.Span) -> None:
        if ex.single:
            first = rec.record(ident, ex.rows, ex.outputs, span=span, label=ex.labels, score=ex.scores)
            publish(first, 1)
            return
        first = rec.record_batch(ident, ex.rows, ex.outputs, labels=ex.labels, scores=ex.scores, span=span)
        publish(first, ex.n)


def _end_failed(span: trace.Span, exc: BaseException) -> None:
    try:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()
    except Exception as inner:  # never hide the library's exception behind ours
        _log.warning("decisiontrail: ending a failed predict span failed: %r", inner)


def _marked_steps(steps: Iterator[Any]) -> Iterator[Any]:
    it = iter(steps)
    while True:
        token = context.attach(context.set_value(IN_MODEL_CALL, True))
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            context.detach(token)
        yield item


@contextmanager
def suppressing() -> Iterator[None]:
    """Model calls in this block are not recorded (what the in-model-call mark does, as a block)."""
    token = context.attach(context.set_value(IN_MODEL_CALL, True))
    try:
        yield
    finally:
        context.detach(token)
