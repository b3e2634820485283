"""Auto-instrumentation: decisions recorded from ML libraries' own predict calls, with no code.

One OpenTelemetry instrumentor per library, each a ``BaseInstrumentor`` registered under the
``opentelemetry_instrumentor`` entry-point group, so ``opentelemetry-instrument python app.py``
loads them (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=lightgbm`` leaves one out):

- ``sklearn``: :class:`~decisiontrail.instrumentation.sklearn.SklearnInstrumentor`, estimators,
  Pipelines and meta-estimators;
- ``xgboost``: :class:`~decisiontrail.instrumentation.xgboost.XGBoostInstrumentor`, scikit-learn
  API and ``Booster``;
- ``lightgbm``: :class:`~decisiontrail.instrumentation.lightgbm.LightGBMInstrumentor`, scikit-learn
  API and ``Booster``;
- ``onnxruntime``: :class:`~decisiontrail.instrumentation.onnxruntime.OnnxRuntimeInstrumentor`,
  ``InferenceSession.run``;
- ``decisiontrail_flask``: :class:`~decisiontrail.instrumentation.flask.FlaskDecisionIdInstrumentor`,
  the ``decision-id`` response header (not a model: it tells the caller which decisions answered).

Each module's docstring is its manual. Shared rules (``_base``): a call records one decision per
row at the outermost instrumented call only; telemetry failures never break the prediction unless
the recorder is fail-closed; :func:`collect_decisions` gives the ids a block of code decided.
"""

from __future__ import annotations

from ._ids import DecisionIds, collect_decisions

__all__ = ["collect_decisions", "DecisionIds"]
