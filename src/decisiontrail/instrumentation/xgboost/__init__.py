"""Audit XGBoost predictions: scikit-learn API and Booster, one ``model.decision`` per row.

Usage
-----
Zero code: ``opentelemetry-instrument python app.py`` loads this instrumentor (entry point
``xgboost``). In code::

    import decisiontrail
    from decisiontrail.instrumentation.xgboost import XGBoostInstrumentor

    decisiontrail.configure()
    XGBoostInstrumentor().instrument(model_name="churn")
    clf.predict_proba(X)          # XGBClassifier: len(X) decisions, label and probability each
    booster.predict(dmatrix)      # Booster: len(dmatrix) decisions, the raw output per row

Recorded, at the outermost call only: ``predict`` / ``predict_proba`` of ``XGBModel``,
``XGBClassifier``, ``XGBRegressor``, ``XGBRanker`` and the random-forest variants (they call the
Booster inside: not recorded again), ``Booster.predict`` and ``Booster.inplace_predict``. Labels and
scores follow ``decisiontrail.instrumentation._estimators``; a Booster's output (probability,
margin, leaf indices or contributions, depending on its objective and options) is recorded as is,
without label or score. A ``DMatrix`` input is recorded from ``DMatrix.get_data()``, missing
values as NaN, with its feature names as columns (pandas installed). ``fit`` and ``score`` are not
decisions. When scikit-learn is instrumented too (``opentelemetry-instrument`` enables both), a
Pipeline ending in an ``XGBClassifier`` records once, at the Pipeline.

Configuration
-------------
``instrument(model_name=..., model_version=...)``, as for the scikit-learn instrumentor
(``decisiontrail.instrumentation._options.InstrumentOptions``); ``register_model`` names one model.

API
---
:class:`XGBoostInstrumentor`. Classes are wrapped when ``xgboost.sklearn`` / ``xgboost.core`` are
imported (post-import hooks), so instrumenting does not import XGBoost; ``uninstrument()``
restores every method.
"""

from __future__ import annotations

from typing import Any

import wrapt

from .._base import ModelCallWrapper
from .._patching import DecisionInstrumentor, Patcher
from .._rows import Extracted
from .._estimators import batch_of, input_of, wrap_sklearn_api
from .package import _instruments

__all__ = ["XGBoostInstrumentor"]

SKLEARN_API_RECORDED = ("predict", "predict_proba")
SKLEARN_API_NOT_DECISIONS = ("fit", "score")
BOOSTER_RECORDED = ("predict", "inplace_predict")


def dmatrix_rows(dm: Any) -> Any:
    """The rows of a DMatrix: a DataFrame (feature names as columns) or an array, NaN where missing."""
    import numpy as np

    csr = dm.get_data()
    dense = np.full(csr.shape, np.nan)
    coo = csr.tocoo()
    dense[coo.row, coo.col] = coo.data
    names = dm.feature_names
    if names:
        try:
            import pandas as pd

            return pd.DataFrame(dense, columns=list(names))
        except ImportError:
            pass
    return dense


def booster_predict(booster: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    data = input_of(args, kwargs)
    if type(data).__name__ == "DMatrix" and hasattr(data, "get_data"):
        data = dmatrix_rows(data)
    return batch_of(data, result)


class XGBoostInstrumentor(DecisionInstrumentor):
    """Records XGBoost predictions as decisions; see the module docstring."""

    _instruments = _instruments

    def _install(self, state: ModelCallWrapper, patcher: Patcher) -> None:
        def on_sklearn_api(module: Any) -> None:
            if state.active:  # a hook of an earlier instrument() stays: hooks cannot be removed
                wrap_sklearn_api(module, state, patcher, SKLEARN_API_RECORDED, SKLEARN_API_NOT_DECISIONS)

        def on_core(module: Any) -> None:
            if state.active:
                for name in BOOSTER_RECORDED:
                    patcher.wrap_method(module.Booster, name, state.recording(booster_predict))

        wrapt.register_post_import_hook(on_sklearn_api, "xgboost.sklearn")
        wrapt.register_post_import_hook(on_core, "xgboost.core")
