"""What every decisiontrail instrumentor shares: options, the model-call wrapper, patching.

One wrapper records a library's predict-like call as decisions through the core recorder
(recorder.Recorder.start_span / record_batch / record); instrumentors only say which methods to wrap
and how to read a call (an :data:`Extractor`). The rules they all follow:

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

import contextvars
import hashlib
import logging
import math
import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import wrapt
from opentelemetry import context, trace
from opentelemetry.instrumentation.dependencies import DependencyConflictError, get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import Status, StatusCode

from .. import stats
from ..errors import DecisionLostError, RecordingError
from ..ids import offset_id
from ..models import ModelIdentity, identify
from ..recorder import Recorder, get_recorder

__all__ = [
    "IN_MODEL_CALL", "InstrumentOptions", "Extracted", "Extractor", "ModelCallWrapper", "Patcher",
    "DecisionIds", "collect_decisions", "suppressing", "in_model_call", "rows_of", "num_rows",
    "classifier_outcome", "check_dependencies", "DecisionInstrumentor", "classes_defined_in",
]

_log = logging.getLogger(__name__)

IN_MODEL_CALL = context.create_key("decisiontrail-in-model-call")
"""Context key set while an instrumented model call (or a call that is not a decision) runs."""

LARGE_ROW_ELEMENTS = 4096
"""A row of an array with more elements than this (an image, an embedding sequence) is recorded as
``{"$ndarray": {"shape", "dtype", "sha256"}}``: its digest, not its values, so recording stays
bounded in time and memory; the hash still identifies the exact input."""

_SMALL_BATCH = 16


def in_model_call() -> bool:
    """True while an instrumented model call runs in this context."""
    return bool(context.get_value(IN_MODEL_CALL))


def check_dependencies(instruments: tuple[str, ...]) -> None:
    """Raise DependencyConflictError when the instrumented library is missing or too old.

    ``opentelemetry-instrument`` checks only a distribution's ``instruments`` extra and then calls
    ``instrument(skip_dep_check=True)``; decisiontrail instruments several libraries from one
    distribution, so each instrumentor checks its own library here (the loader logs and skips it).
    """
    conflict = get_dependency_conflicts(list(instruments))
    if conflict is not None:
        raise DependencyConflictError(conflict)


# -- options ---------------------------------------------------------------------------------------


NameOption = str | Callable[[Any], "str | None"] | None


@dataclass(frozen=True)
class InstrumentOptions:
    """Options of every model instrumentor; each resolves argument > environment > default.

    ``model_name``: the name decisions carry when the model was not named with
    ``decisiontrail.register_model``: a string, or a function of the model object returning a name
    (or None for the default); ``DECISIONTRAIL_MODEL_NAME``; default the model's class name.
    ``model_version``: the version when the model has none registered; default the recorder's
    (``configure(model_version=...)`` or ``DECISIONTRAIL_MODEL_VERSION``).
    """

    model_name: NameOption = None
    model_version: str | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> InstrumentOptions:
        unknown = set(kwargs) - {"model_name", "model_version"}
        if unknown:
            raise TypeError(f"unexpected instrumentor option(s): {', '.join(sorted(unknown))} "
                            "(the tracer provider is chosen with decisiontrail.configure(tracer_provider=...))")
        name = kwargs.get("model_name")
        if name is not None and not isinstance(name, str) and not callable(name):
            raise TypeError(f"model_name must be a str or a function of the model, not {type(name).__name__}")
        version = kwargs.get("model_version")
        if version is not None and not isinstance(version, (str, int)):
            raise TypeError(f"model_version must be a str, not {type(version).__name__}")
        return cls(
            model_name=name if name is not None else (os.environ.get("DECISIONTRAIL_MODEL_NAME") or None),
            model_version=str(version) if version is not None else None,
        )


# -- what one call decided ---------------------------------------------------------------------------


@dataclass
class Extracted:
    """One call read as decisions: ``n`` rows of ``rows`` with their ``outputs`` (batched), or one
    decision (``single``) whose input is ``rows`` and output ``outputs``."""

    rows: Any
    outputs: Any
    n: int = 1
    labels: Any = None
    scores: Any = None
    single: bool = False


Extractor = Callable[[Any, tuple[Any, ...], dict[str, Any], Any], Extracted]
"""``(instance, args, kwargs, result) -> Extracted``: how a wrapped method's call reads as decisions."""


def num_rows(data: Any) -> int | None:
    """Rows of a batch-like input (array, DataFrame, sparse matrix, list), or None."""
    shape = getattr(data, "shape", None)
    if shape is not None:
        try:
            return int(shape[0]) if len(shape) >= 1 else None
        except (TypeError, IndexError):
            return None
    if isinstance(data, (list, tuple)):
        return len(data)
    return None


def _digest_rows(arr: Any) -> list[dict[str, Any]]:
    import numpy as np

    shape, dtype = list(arr.shape[1:]), str(arr.dtype)
    out = []
    for row in arr:
        h = hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest()
        out.append({"$ndarray": {"shape": shape, "dtype": dtype, "sha256": "sha256:" + h}})
    return out


def _sparse_rows(matrix: Any) -> list[dict[str, Any]]:
    """Rows of a scipy sparse matrix as ``{column index: value}`` of the stored entries: a wide
    sparse matrix (a TF-IDF vocabulary) is never densified."""
    csr = matrix.tocsr()
    indptr, indices, data = csr.indptr.tolist(), csr.indices.tolist(), csr.data.tolist()
    return [dict(zip(map(str, indices[indptr[i]:indptr[i + 1]]), data[indptr[i]:indptr[i + 1]]))
            for i in range(csr.shape[0])]


def rows_of(data: Any) -> Any:
    """``data`` in the form the batch encoder reads row by row, bounded: sparse matrices as per-row
    ``{column: value}`` objects, rows of huge arrays as digests (:data:`LARGE_ROW_ELEMENTS`)."""
    module = type(data).__module__
    if module.startswith("scipy") and hasattr(data, "tocsr"):
        return _sparse_rows(data)
    shape = getattr(data, "shape", None)
    if module.startswith("numpy") and shape is not None and len(shape) >= 2:
        per_row = 1
        for d in shape[1:]:
            per_row *= int(d)
        if per_row > LARGE_ROW_ELEMENTS:
            return _digest_rows(data)
    return data


def classifier_outcome(model: Any, proba: Any, log: bool = False) -> tuple[Any, Any]:
    """(labels, scores) of a probability matrix: the argmax class of each row (``classes_`` when
    the model has them) and its probability."""
    import numpy as np

    p = np.asarray(proba)
    if p.ndim != 2 or p.shape[0] == 0:
        return None, None
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) != p.shape[1]:
        classes = None
    if p.shape[0] <= _SMALL_BATCH:  # a few rows: plain Python beats numpy's per-call overhead
        rows = p.tolist()
        idx_list = [max(range(len(r)), key=r.__getitem__) for r in rows]
        top = [r[j] for r, j in zip(rows, idx_list)]
        names: Any = classes.tolist() if classes is not None and hasattr(classes, "tolist") else classes
        return ([names[j] for j in idx_list] if names is not None else idx_list,
                [math.exp(v) for v in top] if log else top)
    idx = p.argmax(axis=1)
    scores = p[np.arange(p.shape[0]), idx]
    if log:
        scores = np.exp(scores)
    labels = np.asarray(classes)[idx] if classes is not None else idx
    return labels, scores


# -- decision ids for the caller ---------------------------------------------------------------------


@dataclass
class DecisionIds:
    """The decisions made within a :func:`collect_decisions` scope, as (first id, rows) ranges."""

    ranges: list[tuple[str, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(n for _, n in self.ranges)

    def ids(self, limit: int | None = None) -> list[str]:
        """Every id in order (row ``i`` of a batch is ``offset_id(first, i)``), at most ``limit``."""
        out: list[str] = []
        for first, n in self.ranges:
            for i in range(n):
                if limit is not None and len(out) >= limit:
                    return out
                out.append(offset_id(first, i))
        return out


_collector: contextvars.ContextVar[DecisionIds | None] = contextvars.ContextVar(
    "decisiontrail_decision_ids", default=None)


@contextmanager
def collect_decisions() -> Iterator[DecisionIds]:
    """Collect the ids of the decisions instrumented calls make in this block (this thread or task):
    what a web framework hook returns to the caller. Scopes nest; each sees only its own block."""
    ids = DecisionIds()
    token = _collector.set(ids)
    try:
        yield ids
    finally:
        _collector.reset(token)


def _publish(first: str, n: int) -> None:
    ids = _collector.get()
    if ids is not None:
        ids.ranges.append((first, n))


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
            _publish(first, 1)
            return
        first = rec.record_batch(ident, ex.rows, ex.outputs, labels=ex.labels, scores=ex.scores, span=span)
        _publish(first, ex.n)


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


# -- patching ----------------------------------------------------------------------------------------


class Patcher:
    """The wraps an instrumentor made, so that ``_uninstrument`` is their exact mirror.

    Class attributes are read and restored statically (``vars(cls)``), never through ``getattr``:
    scikit-learn's ``available_if`` methods are descriptors whose ``__get__`` on the class returns a
    new plain function, so ``opentelemetry.instrumentation.utils.unwrap`` (which uses ``getattr``)
    would put that function back instead of the descriptor and ``hasattr(pipe, "predict_proba")``
    would turn true for every Pipeline.
    """

    def __init__(self) -> None:
        self._done: list[tuple[Any, str, Any]] = []  # (owner, attribute, the wrapper we set)
        self._keys: set[tuple[int, str]] = set()

    def __len__(self) -> int:
        return len(self._done)

    @property
    def wrapped(self) -> list[tuple[Any, str]]:
        return [(owner, name) for owner, name, _ in self._done]

    def wrap_method(self, cls: type, name: str, wrapper: Callable[..., Any]) -> bool:
        """Wrap ``cls.name`` where ``cls`` itself defines it (``name in vars(cls)``)."""
        if (id(cls), name) in self._keys or name not in vars(cls):
            return False
        if "<locals>" in cls.__qualname__:  # not reachable by module path
            return False
        wrapt.wrap_function_wrapper(cls.__module__, f"{cls.__qualname__}.{name}", wrapper)
        self._remember(cls, name, vars(cls)[name])
        return True

    def wrap_function(self, module: Any, name: str, wrapper: Callable[..., Any]) -> bool:
        """Wrap the module-level function ``module.name``."""
        if (id(module), name) in self._keys or not hasattr(module, name):
            return False
        wrapt.wrap_function_wrapper(module, name, wrapper)
        self._remember(module, name, getattr(module, name))
        return True

    def _remember(self, owner: Any, name: str, proxy: Any) -> None:
        self._done.append((owner, name, proxy))
        self._keys.add((id(owner), name))

    def unwrap_all(self) -> None:
        for owner, name, proxy in reversed(self._done):
            if isinstance(owner, type):
                current = vars(owner).get(name)
                if current is proxy and proxy is not None:
                    setattr(owner, name, proxy.__wrapped__)
                else:  # someone wrapped over ours: leave their wrapper in place
                    _log.debug("decisiontrail: %s.%s was re-wrapped; left as is", owner.__qualname__, name)
            else:
                unwrap(owner, name)
        self._done.clear()
        self._keys.clear()


def classes_defined_in(module: Any) -> list[type]:
    """The classes a module defines (not those it imports)."""
    return [c for c in list(vars(module).values()) if isinstance(c, type) and c.__module__ == module.__name__]


class DecisionInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of the model instrumentors: options, dependency check, patch bookkeeping.

    A subclass sets ``_instruments`` and writes :meth:`_install`, which registers its wraps with the
    :class:`Patcher` (usually from post-import hooks, so that instrumenting imports nothing);
    ``_uninstrument`` undoes exactly those. ``BaseInstrumentor`` keeps one instance per subclass.
    """

    _instruments: tuple[str, ...] = ()
    _state: ModelCallWrapper | None = None
    _patcher: Patcher | None = None

    def instrumentation_dependencies(self) -> tuple[str, ...]:
        return self._instruments

    def _instrument(self, **kwargs: Any) -> None:
        check_dependencies(self._instruments)
        state = self._new_state(InstrumentOptions.from_kwargs(kwargs))
        self._state, self._patcher = state, Patcher()
        self._install(state, self._patcher)

    def _new_state(self, options: InstrumentOptions) -> ModelCallWrapper:
        return ModelCallWrapper(options)

    def _install(self, state: ModelCallWrapper, patcher: Patcher) -> None:
        raise NotImplementedError

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._state is not None:
            self._state.active = False  # hooks of this instrument() stay registered and do nothing
        if self._patcher is not None:
            self._patcher.unwrap_all()
        self._state = self._patcher = None

    @property
    def wrapped(self) -> list[tuple[Any, str]]:
        """(class or module, attribute) of every wrap in place (tests, diagnostics)."""
        return self._patcher.wrapped if self._patcher is not None else []
