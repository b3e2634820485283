"""Audit LightGBM predictions: scikit-learn API and Booster, one ``model.decision`` per row.

Usage
-----
Zero code: ``opentelemetry-instrument python app.py`` loads this instrumentor (entry point
``lightgbm``). In code::

    import decisiontrail
    from decisiontrail.instrumentation.lightgbm import LightGBMInstrumentor

    decisiontrail.configure()
    LightGBMInstrumentor().instrument()
    clf.predict(X)                # LGBMClassifier: len(X) decisions, the class as label
    booster.predict(X)            # Booster: len(X) decisions, the raw output per row

Recorded, at the outermost call only: ``predict`` / ``predict_proba`` of ``LGBMModel``,
``LGBMClassifier``, ``LGBMRegressor`` and ``LGBMRanker`` (``LGBMClassifier.predict`` calls
``predict_proba``, which calls the Booster: recorded once), and ``Booster.predict``. Labels and
scores follow ``decisiontrail.instrumentation._estimators``; ``raw_score``, ``pred_leaf`` and
``pred_contrib`` outputs are recorded without label or score, as is a Booster's output. A Booster
given a file name predicts rows decisiontrail does not see: that call is one decision whose input is
the file name. ``fit`` is not a decision.

Configuration
-------------
``instrument(model_name=..., model_version=...)``, as for the scikit-learn instrumentor
(``decisiontrail.instrumentation._options.InstrumentOptions``); ``register_model`` names one model.

API
---
:class:`LightGBMInstrumentor`. Classes are wrapped when ``lightgbm.sklearn`` / ``lightgbm.basic``
are imported (post-import hooks); ``uninstrument()`` restores every method.
"""

from __future__ import annotations

from typing import Any

import wrapt

from .._base import ModelCallWrapper
from .._patching import DecisionInstrumentor, Patcher
from .._rows import Extracted
from .._estimators import batch_of, input_of, wrap_sklearn_api
from .package import _instruments

__all__ = ["LightGBMInstrumentor"]

SKLEARN_API_RECORDED = ("predict", "predict_proba")
SKLEARN_API_NOT_DECISIONS = ("fit",)


def booster_predict(booster: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Extracted:
    data = input_of(args, kwargs)
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):  # a data file
        return Extracted({"data_file": str(data)}, result, single=True)
    return batch_of(data, result)


class LightGBMInstrumentor(DecisionInstrumentor):
    """Records LightGBM predictions as decisions; see the module docstring."""

    _instruments = _instruments

    def _install(self, state: ModelCallWrapper, patcher: Patcher) -> None:
        def on_sklearn_api(module: Any) -> None:
            if state.active:  # a hook of an earlier instrument() stays: hooks cannot be removed
                wrap_sklearn_api(module, state, patcher, SKLEARN_API_RECORDED, SKLEARN_API_NOT_DECISIONS)

        def on_basic(module: Any) -> None:
            if state.active:
                patcher.wrap_method(module.Booster, "predict", state.recording(booster_predict))

        wrapt.register_post_import_hook(on_sklearn_api, "lightgbm.sklearn")
        wrapt.register_post_import_hook(on_basic, "lightgbm.basic")
