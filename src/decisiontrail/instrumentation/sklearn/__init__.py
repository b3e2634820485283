"""Audit every scikit-learn prediction: one ``model.decision`` per row, with no code change.

Usage
-----
Zero code: with decisiontrail installed, ``opentelemetry-instrument python app.py`` loads this
instrumentor (entry point ``sklearn``). In code::

    import decisiontrail
    from decisiontrail.instrumentation.sklearn import SklearnInstrumentor

    decisiontrail.configure()                 # or configure(tracer_provider=your_provider)
    SklearnInstrumentor().instrument(model_version="2024-06")
    pipe.predict_proba(X)                     # len(X) decisions on one "predict Pipeline" span
    SklearnInstrumentor().uninstrument()

Each outermost call of ``predict``, ``predict_proba``, ``predict_log_proba`` or
``decision_function`` of any estimator, Pipeline or meta-estimator (and ``score_samples`` of
outlier detectors, Pipelines and searches) opens a ``predict <model name>`` span, child of the
current span, and records one decision per row of ``X`` (id, row index, batch size, input row,
output; label and score as described in ``decisiontrail.instrumentation._estimators``). Calls
made inside it (a Pipeline's final step, a VotingClassifier's estimators, CalibratedClassifierCV's
calibrated classifiers, ``predict`` calling ``decision_function``, joblib tasks on other threads or
processes) are not recorded again. Calls made while fitting or scoring (``fit``, ``partial_fit``,
``fit_predict``, ``fit_transform``, ``transform``, ``score``, ``staged_predict*``, scorers,
``cross_val_predict``, partial dependence, ``*Display.from_estimator``) are not decisions and are not
recorded.

Configuration
-------------
``instrument(model_name=..., model_version=...)``; see
``decisiontrail.instrumentation._options.InstrumentOptions``. A model's name is, in order: the one
given to ``decisiontrail.register_model(model, name=...)``, ``model_name`` (a string or a function
of the model), ``DECISIONTRAIL_MODEL_NAME``, its class name. Its version: ``register_model``,
``model_version``, ``configure(model_version=...)`` / ``DECISIONTRAIL_MODEL_VERSION``. Decisions go
through the recorder set up by ``decisiontrail.configure()``; without it, through the global
tracer provider (what ``opentelemetry-instrument`` configures). ``suppress_instrumentation()``
turns recording off for a block.

What is wrapped, and why there
------------------------------
``ClassifierMixin`` and ``RegressorMixin`` define no ``predict``: each estimator (or a private
base such as ``LinearClassifierMixin``, ``ForestClassifier``, ``BaseSVC``) defines its own. So the
methods are wrapped where they are defined: in every scikit-learn class that has
``sklearn.base`` (``BaseEstimator`` or a mixin) in its MRO or is a mixin itself
(``DiscriminantAnalysisPredictionMixin`` holds QDA's ``predict``), and has one of the methods in
its own ``__dict__``; inherited methods are then covered through the base that defines them, and no
method is wrapped twice. With all of scikit-learn 1.9 imported that is 162 recording wrappers on
84 classes (for 200-odd estimators), plus about 380 that only mark ``fit``/``transform``/``score``
and friends as "not a decision". A wrapper costs nothing until called; a pass-through (an inner or
a non-decision call) costs about a microsecond.

They are found lazily: ``instrument()`` lists scikit-learn's modules from its files (a few
milliseconds, nothing imported) and registers a post-import hook per module; classes are wrapped
when their module is imported (at once if it already is). ``sklearn.utils.all_estimators()``
would find the same classes but imports all of scikit-learn at start-up (about 1.6 s), in every
process ``opentelemetry-instrument`` runs. ``available_if`` methods (``Pipeline.predict_proba``)
are descriptors: they are wrapped as such, so ``hasattr(pipe, "predict_proba")`` keeps its
meaning, and restored from the class ``__dict__`` on uninstrument.

Limits: a subclass outside scikit-learn that overrides ``predict`` without calling ``super()``
is not audited (use ``decisiontrail.audited``); post-import hooks cannot be removed, so after
``uninstrument()`` they stay registered and do nothing.

API
---
:class:`SklearnInstrumentor`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import wrapt
from opentelemetry import context

from .._base import IN_MODEL_CALL, ModelCallWrapper
from .._patching import DecisionInstrumentor, Patcher, classes_defined_in
from .._estimators import EXTRACTORS
from .package import _instruments

__all__ = ["SklearnInstrumentor"]

_log = logging.getLogger(__name__)

RECORDED = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score_samples")
"""Methods whose outermost call is recorded as decisions."""
NOT_DECISIONS = ("fit", "partial_fit", "fit_predict", "fit_transform", "transform", "score")
"""Methods whose inner predictions are not decisions (training, evaluation, feature pipelines)."""
STAGED = ("staged_predict", "staged_predict_proba", "staged_decision_function")
"""Generators of per-stage predictions (learning curves of boosting): not decisions either."""
_SCORE_SAMPLES_DELEGATES = {("sklearn.pipeline", "Pipeline"), ("sklearn.model_selection._search", "BaseSearchCV")}
_NOT_DECISION_FUNCTIONS = {
    "sklearn.model_selection._validation": ("_fit_and_predict",),  # cross_val_predict
    "sklearn.inspection._partial_dependence": ("_partial_dependence_brute",),
}
_SKIPPED_PARTS = {"tests", "externals", "_build_utils", "__check_build", "__pycache__", "_testing",
                  "_mocking", "estimator_checks", "conftest", "_show_versions"}


def sklearn_modules() -> list[str]:
    """Names of scikit-learn's Python modules, read from its files (nothing is imported)."""
    spec = importlib.util.find_spec("sklearn")
    names: list[str] = []
    for root in (spec.submodule_search_locations or []) if spec else []:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            parts = [] if rel == "." else rel.split(os.sep)
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_PARTS and not d.startswith("."))
            if "__init__.py" not in filenames:
                dirnames[:] = []
                continue
            for f in sorted(filenames):
                stem = f[:-3]
                if f.endswith(".py") and stem not in _SKIPPED_PARTS:
                    names.append(".".join(["sklearn", *parts, *([] if stem == "__init__" else [stem])]))
    return names


def _is_estimator_class(cls: type) -> bool:
    """BaseEstimator or a sklearn.base mixin in the MRO (no import of sklearn.base needed: hooks may
    run while it is still being imported), or a mixin of its own (``DiscriminantAnalysisPredictionMixin``
    holds QDA's predict). Helpers that are not models (losses, ``TreePredictor``) are left alone."""
    return cls.__name__.endswith("Mixin") or any(k.__module__ == "sklearn.base" for k in cls.__mro__)


def _is_outlier_detector(cls: type) -> bool:
    return any(k.__module__ == "sklearn.base" and k.__name__ == "OutlierMixin" for k in cls.__mro__)


class _InModelCall:
    """A joblib task run with the in-model-call mark: worker threads and processes do not inherit
    the caller's context, and a RandomForest's trees must not record decisions of their own."""

    __slots__ = ("func",)

    def __init__(self, func: Any) -> None:
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = context.attach(context.set_value(IN_MODEL_CALL, True))
        try:
            return self.func(*args, **kwargs)
        finally:
            context.detach(token)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_InModelCall, (self.func,))


class SklearnInstrumentor(DecisionInstrumentor):
    """Records scikit-learn predictions as decisions; see the module docstring."""

    _instruments = _instruments

    def _install(self, state: ModelCallWrapper, patcher: Patcher) -> None:
        recorders = {name: state.recording(EXTRACTORS[name]) for name in RECORDED}
        not_a_decision = state.suppressing()
        staged = state.suppressing(generator=True)

        def on_import(module: Any) -> None:
            if not state.active:  # a hook of an earlier instrument(): hooks cannot be removed
                return
            try:
                _wrap_module(module, patcher, recorders, not_a_decision, staged)
            except Exception as exc:  # never break the application's import
                _log.warning("decisiontrail: instrumenting %s failed: %r", module.__name__, exc)

        def on_joblib(module: Any) -> None:
            if state.active:
                patcher.wrap_method(module.Parallel, "__call__", _parallel_wrapper(state))

        for name in sklearn_modules():
            wrapt.register_post_import_hook(on_import, name)
        wrapt.register_post_import_hook(on_joblib, "joblib.parallel")


def _wrap_module(module: Any, patcher: Patcher, recorders: dict[str, Any], not_a_decision: Any,
                 staged: Any) -> None:
    modname = module.__name__
    for cls in classes_defined_in(module):
        if cls.__name__.endswith("Display"):
            patcher.wrap_method(cls, "from_estimator", not_a_decision)
            continue
        if cls.__name__ == "_BaseScorer":
            patcher.wrap_method(cls, "__call__", not_a_decision)
            continue
        if not _is_estimator_class(cls):
            continue
        for name in RECORDED:
            if name == "score_samples" and not (
                    _is_outlier_detector(cls) or (modname, cls.__name__) in _SCORE_SAMPLES_DELEGATES):
                continue
            patcher.wrap_method(cls, name, recorders[name])
        for name in NOT_DECISIONS:
            patcher.wrap_method(cls, name, not_a_decision)
        for name in STAGED:
            patcher.wrap_method(cls, name, staged)
    for fname in _NOT_DECISION_FUNCTIONS.get(modname, ()):
        patcher.wrap_function(module, fname, not_a_decision)


def _parallel_wrapper(state: ModelCallWrapper) -> Any:
    def dispatch(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not state.active or not context.get_value(IN_MODEL_CALL) or not args:
            return wrapped(*args, **kwargs)
        marked = ((_InModelCall(func), a, kw) for func, a, kw in args[0])
        return wrapped(marked, *args[1:], **kwargs)

    return dispatch
