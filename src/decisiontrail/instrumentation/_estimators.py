"""Reading scikit-learn-style calls (``predict``, ``predict_proba``, ``decision_function``,
``score_samples``) as decisions: shared by the scikit-learn, XGBoost and LightGBM instrumentors.

- ``predict``: one decision per row; on a classifier, clusterer or outlier detector (a model with
  ``classes_``, or a 1-d integer, boolean or string output) the output is also the label;
- ``predict_proba`` / ``predict_log_proba``: the output of a row is ``{class name: probability}``
  (log-probability for ``predict_log_proba``) when the model has ``classes_``, so an auditor reads
  which number belongs to which class; label = ``classes_[argmax]``, score = its probability (the
  conventions' ``decision.score``: the probability of the recorded label);
- ``decision_function``: on a multi-class classifier label = ``classes_[argmax]`` and score = the
  top margin; on a binary one label = ``classes_[margin > 0]`` and score = the margin in its favour
  (``|margin|``); elsewhere (outlier detectors) the 1-d output is the score, as for ``score_samples``.

Options that make the output something else than predictions (``output_margin``, ``raw_score``,
``pred_leaf``, ``pred_contribs``...) leave label and score unset: the output is recorded as is.
"""

from __future__ import annotations

from typing import Any

from ._base import ModelCallWrapper
from ._patching import Patcher, classes_defined_in
from ._rows import Extracted, classifier_outcome, num_rows, rows_of

__all__ = ["EXTRACTORS", "batch_of", "input_of", "named"]

_RAW_OUTPUT_OPTIONS = ("output_margin", "raw_score", "pred_leaf", "pred_contrib", "pred_contribs",
                       "pred_interactions")


def input_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if args:
        return args[0]
    for key in ("X", "data", "x"):
        if key in kwargs:
            return kwargs[key]
    return None


def _raw_output(kwargs: dict[str, Any]) -> bool:
    return any(kwargs.get(k) for k in _RAW_OUTPUT_OPTIONS)


def _per_row(outputs: list[Any], n: int) -> list[list[Any]] | None:
    """Per-row lists of a multi-output result (a list of arrays, one per output), or None."""
    if not outputs or any(num_rows(o) != n for o in outputs):
        return None
    cols = [o.tolist() if hasattr(o, "tolist") else list(o) for o in outputs]
    return [list(t) for t in zip(*cols)]


def batch_of(X: Any, result: Any, labels: Any = None, scores: Any = None) -> Extracted:
    """The call as one decision per row, or as a single decision when rows and outputs do not align."""
    n = num_rows(X)
    if isinstance(result, list) and result and hasattr(result[0], "shape") and n is not None:
        rows = _per_row(result, n)  # multi-output: a list of per-output arrays
        if rows is not None:
            return Extracted(rows_of(X), rows, n)
    if n is None or num_rows(result) != n:
        return Extracted(X, result, single=True)
    return Extracted(rows_of(X), result, n, labels, scores)


def _is_label(model: Any, result: Any) -> bool:
    dtype = getattr(result, "dtype", None)
    if dtype is None or getattr(result, "ndim", 0) != 1:
        return False
    return dtype.kind in "iubOUS" or hasattr(model, "classes_")


def predict(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    labels = result if not _raw_output(kwargs) and _is_label(model, result) else None
    return batch_of(input_of(args, kwargs), result, labels)


def named(model: Any, proba: Any) -> Any:
    """Rows of a probability matrix as ``{class name: value}`` when the model's ``classes_`` name its
    columns; the matrix as is otherwise."""
    classes = getattr(model, "classes_", None)
    shape = getattr(proba, "shape", None)
    if classes is None or shape is None or len(shape) != 2 or len(classes) != shape[1]:
        return proba
    names = [c if isinstance(c, str) else str(c) for c in
             (classes.tolist() if hasattr(classes, "tolist") else list(classes))]
    return [dict(zip(names, row)) for row in proba.tolist()]


def predict_proba(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    if _raw_output(kwargs):
        return batch_of(input_of(args, kwargs), result)
    labels, scores = classifier_outcome(model, result)
    return batch_of(input_of(args, kwargs), named(model, result), labels, scores)


def predict_log_proba(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    labels, scores = classifier_outcome(model, result, log=True)
    return batch_of(input_of(args, kwargs), named(model, result), labels, scores)


def decision_function(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    import numpy as np

    X = input_of(args, kwargs)
    classes = getattr(model, "classes_", None)
    ndim = getattr(result, "ndim", 0)
    if classes is not None and ndim == 2:
        labels, scores = classifier_outcome(model, result)
        return batch_of(X, result, labels, scores)
    if classes is not None and ndim == 1 and len(classes) == 2:
        margin = np.asarray(result)
        return batch_of(X, result, np.asarray(classes)[(margin > 0).astype(int)], np.abs(margin))
    return batch_of(X, result, None, result if ndim == 1 else None)


def score_samples(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    return batch_of(input_of(args, kwargs), result, None, result if getattr(result, "ndim", 0) == 1 else None)


EXTRACTORS = {
    "predict": predict,
    "predict_proba": predict_proba,
    "predict_log_proba": predict_log_proba,
    "decision_function": decision_function,
    "score_samples": score_samples,
}
"""Method name -> how its call reads as decisions."""


def wrap_sklearn_api(module: Any, state: ModelCallWrapper, patcher: Patcher, recorded: tuple[str, ...],
                     not_decisions: tuple[str, ...]) -> None:
    """Wrap the scikit-learn-style estimators a library module defines (XGBoost's and LightGBM's
    sklearn APIs): ``recorded`` methods record decisions, ``not_decisions`` (fit, score) suppress the
    predicts they make inside."""
    for cls in classes_defined_in(module):
        for name in recorded:
            patcher.wrap_method(cls, name, state.recording(EXTRACTORS[name]))
        for name in not_decisions:
            patcher.wrap_method(cls, name, state.suppressing())
