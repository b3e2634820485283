"""XGBoostInstrumentor against the real XGBoost."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from instrumentation_support import assert_restored, originals
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from decisiontrail import register_model
from decisiontrail.ids import offset_id
from decisiontrail.instrumentation.sklearn import SklearnInstrumentor
from decisiontrail.instrumentation.xgboost import XGBoostInstrumentor

if TYPE_CHECKING:
    from instrumentation_support import Audit

rng = np.random.default_rng(11)
X = rng.normal(size=(150, 4))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)
PARAMS = {"n_estimators": 5, "max_depth": 2, "n_jobs": 1}


@pytest.fixture
def xg(instrumented: Callable[..., Any]) -> XGBoostInstrumentor:
    return instrumented(XGBoostInstrumentor)


def fitted(model: Any, y: Any = Y) -> Any:
    with suppress_instrumentation():
        return model.fit(X, y)


def test_classifier_predict_proba_and_predict(audit: Audit, xg: Any) -> None:
    clf = fitted(xgb.XGBClassifier(**PARAMS))
    proba = clf.predict_proba(X[:6])
    labels = clf.predict(X[:6])  # XGBModel.predict and the Booster inside: recorded once
    decisions = audit.decisions()
    assert len(decisions) == 12
    assert [s.name for s in audit.spans()] == ["predict XGBClassifier"] * 2
    first = decisions[0].decision_id
    for i, d in enumerate(decisions[:6]):
        assert d.decision_id == offset_id(first, i)
        assert d.label == str(proba[i].argmax()) and d.score == pytest.approx(proba[i].max())
        assert d.output == pytest.approx({str(c): v for c, v in enumerate(proba[i].tolist())}, rel=1e-6)
        assert d.attributes["model.framework"] == "xgboost"
    assert [d.label for d in decisions[6:]] == [str(v) for v in labels]


def test_regressor_has_outputs_only(audit: Audit, xg: Any) -> None:
    reg = fitted(xgb.XGBRegressor(**PARAMS), X[:, 1])
    out = reg.predict(X[:3])
    decisions = audit.decisions()
    assert [d.output for d in decisions] == pytest.approx(out.tolist(), rel=1e-6)
    assert all(d.label is None and d.score is None for d in decisions)


def test_booster_predict_on_a_dmatrix_keeps_names_and_missing_values(audit: Audit, xg: Any) -> None:
    booster = fitted(xgb.XGBClassifier(**PARAMS)).get_booster()
    data = X[:3].copy()
    data[1, 2] = np.nan
    frame = pd.DataFrame(data, columns=["a", "b", "c", "d"])
    out = booster.predict(xgb.DMatrix(frame))
    booster.inplace_predict(data)
    decisions = audit.decisions()
    assert len(decisions) == 6
    d1 = decisions[1]
    assert set(d1.input) == {"a", "b", "c", "d"} and d1.input["c"] == "NaN"
    assert d1.input["a"] == pytest.approx(data[1, 0])
    assert [d.output for d in decisions[:3]] == pytest.approx(out.tolist(), rel=1e-6)
    assert {d.model_name for d in decisions} == {"Booster"}


def test_an_xgboost_step_in_an_instrumented_pipeline_records_once(audit: Audit, xg: Any,
                                                                  instrumented: Callable[..., Any]) -> None:
    instrumented(SklearnInstrumentor)
    pipe = make_pipeline(StandardScaler(), xgb.XGBClassifier(**PARAMS))
    pipe.fit(X, Y)
    pipe.predict_proba(X[:5])
    decisions = audit.decisions()
    assert len(decisions) == 5 and {d.model_name for d in decisions} == {"Pipeline"}


def test_fit_is_not_a_decision(audit: Audit, xg: Any) -> None:
    xgb.XGBClassifier(**PARAMS).fit(X, Y, eval_set=[(X, Y)], verbose=False)
    assert audit.decisions() == []


def test_registered_name_and_version(audit: Audit, xg: Any) -> None:
    clf = fitted(xgb.XGBClassifier(**PARAMS))
    register_model(clf, name="churn", version="3")
    clf.predict(X[:2])
    assert {(d.model_name, d.model_version) for d in audit.decisions()} == {("churn", "3")}


def test_uninstrument_restores_every_method(audit: Audit) -> None:
    inst = XGBoostInstrumentor()
    inst.instrument()
    try:
        clf = fitted(xgb.XGBClassifier(**PARAMS))
        wrapped = inst.wrapped
        before = originals(wrapped)
        assert {("XGBClassifier", "predict_proba"), ("XGBModel", "predict"), ("Booster", "predict"),
                ("Booster", "inplace_predict")} <= {(o.__name__, n) for o, n in wrapped}
    finally:
        inst.uninstrument()
    assert_restored(wrapped, before)
    clf.predict_proba(X[:2])
    clf.get_booster().predict(xgb.DMatrix(X[:2]))
    assert audit.decisions() == []
