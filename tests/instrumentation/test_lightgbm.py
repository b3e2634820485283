"""LightGBMInstrumentor against the real LightGBM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from instrumentation_support import assert_restored, originals
from opentelemetry.instrumentation.utils import suppress_instrumentation

from decisiontrail.ids import offset_id
from decisiontrail.instrumentation.lightgbm import LightGBMInstrumentor

if TYPE_CHECKING:
    from instrumentation_support import Audit

rng = np.random.default_rng(5)
X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["income", "debt", "age"])
Y = np.where(X["income"] - X["debt"] > 0, "approve", "deny")
PARAMS = {"n_estimators": 5, "num_leaves": 4, "min_child_samples": 5, "verbose": -1, "n_jobs": 1}


@pytest.fixture
def lg(instrumented: Callable[..., Any]) -> LightGBMInstrumentor:
    return instrumented(LightGBMInstrumentor, model_version="lgb-1")


def fitted(model: Any, y: Any = Y) -> Any:
    with suppress_instrumentation():
        return model.fit(X, y)


def test_classifier_predict_calls_predict_proba_and_the_booster_but_records_once(audit: Audit, lg: Any) -> None:
    clf = fitted(lgb.LGBMClassifier(**PARAMS))
    labels = clf.predict(X.iloc[:5])
    decisions = audit.decisions()
    assert len(decisions) == 5
    assert [s.name for s in audit.spans()] == ["predict LGBMClassifier"]
    assert [d.label for d in decisions] == labels.tolist()
    assert decisions[0].input == pytest.approx(X.iloc[0].to_dict())
    assert decisions[4].decision_id == offset_id(decisions[0].decision_id, 4)
    assert {(d.model_version, d.attributes["model.framework"]) for d in decisions} == {("lgb-1", "lightgbm")}


def test_predict_proba_labels_with_the_classes(audit: Audit, lg: Any) -> None:
    clf = fitted(lgb.LGBMClassifier(**PARAMS))
    proba = clf.predict_proba(X.iloc[:4])
    decisions = audit.decisions()
    assert [d.label for d in decisions] == [clf.classes_[i] for i in proba.argmax(axis=1)]
    assert [d.score for d in decisions] == pytest.approx(proba.max(axis=1).tolist())


def test_raw_scores_are_recorded_without_label(audit: Audit, lg: Any) -> None:
    clf = fitted(lgb.LGBMClassifier(**PARAMS))
    raw = clf.predict(X.iloc[:3], raw_score=True)
    decisions = audit.decisions()
    assert [d.output for d in decisions] == pytest.approx(raw.tolist())
    assert all(d.label is None for d in decisions)


def test_booster_predict(audit: Audit, lg: Any, tmp_path: Path) -> None:
    reg = fitted(lgb.LGBMRegressor(**PARAMS), X["income"] * 3)
    booster = reg.booster_
    out = booster.predict(X.iloc[:4])
    decisions = audit.decisions()
    assert [d.model_name for d in decisions] == ["Booster"] * 4
    assert [d.output for d in decisions] == pytest.approx(out.tolist())


def test_a_booster_reading_a_file_is_one_decision(audit: Audit, lg: Any, tmp_path: Path) -> None:
    booster = fitted(lgb.LGBMRegressor(**PARAMS), X["income"]).booster_
    data = tmp_path / "rows.csv"
    X.iloc[:3].to_csv(data, index=False, header=False)
    booster.predict(str(data))
    (d,) = audit.decisions()
    assert d.input == {"data_file": str(data)} and len(d.output) == 3


@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")
def test_fit_is_not_a_decision(audit: Audit, lg: Any) -> None:
    lgb.LGBMClassifier(**PARAMS).fit(X, Y, eval_set=[(X, Y)])
    assert audit.decisions() == []


def test_uninstrument_restores_every_method(audit: Audit) -> None:
    inst = LightGBMInstrumentor()
    inst.instrument()
    try:
        clf = fitted(lgb.LGBMClassifier(**PARAMS))
        wrapped = inst.wrapped
        before = originals(wrapped)
        assert {("LGBMClassifier", "predict"), ("LGBMClassifier", "predict_proba"), ("LGBMModel", "predict"),
                ("Booster", "predict")} <= {(o.__name__, n) for o, n in wrapped}
    finally:
        inst.uninstrument()
    assert_restored(wrapped, before)
    clf.predict(X.iloc[:2])
    clf.booster_.predict(X.iloc[:2])
    assert audit.decisions() == []
