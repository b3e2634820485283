"""SklearnInstrumentor against the real scikit-learn."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.ensemble import (
    AdaBoostClassifier,
    IsolationForest,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_predict, cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

import decisiontrail
from decisiontrail import RecordingError, register_model, stats
from decisiontrail import models as models_module
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.ids import offset_id
from decisiontrail.instrumentation import collect_decisions
from decisiontrail.instrumentation.sklearn import SklearnInstrumentor, sklearn_modules
from decisiontrail.recorder import Recorder, set_recorder
from decisiontrail.store.reader import iter_decisions

from instrumentation_support import assert_restored, originals

if TYPE_CHECKING:
    from instrumentation_support import Audit

rng = np.random.default_rng(7)
X = rng.normal(size=(200, 4))
Y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "approve", "deny")
Y3 = np.digitize(X[:, 0], [-0.5, 0.5])


@pytest.fixture
def sk(instrumented: Callable[..., Any]) -> SklearnInstrumentor:
    return instrumented(SklearnInstrumentor)


def fitted(model: Any, y: Any = Y) -> Any:
    with suppress_instrumentation():
        return model.fit(X, y)


def test_predict_proba_records_one_decision_per_row_with_label_and_score(audit: Audit, sk: Any) -> None:
    pipe = fitted(make_pipeline(StandardScaler(), LogisticRegression()))
    proba = pipe.predict_proba(X[:5])
    decisions = audit.decisions()
    assert len(decisions) == 5
    (span,) = audit.spans()
    assert span.name == "predict Pipeline" and span.attributes[S.DECISION_COUNT] == 5
    first = decisions[0].decision_id
    for i, d in enumerate(decisions):
        assert d.decision_id == offset_id(first, i)
        assert (d.batch_index, d.attributes["decision.batch.size"]) == (i, 5)
        assert d.input == pytest.approx(X[i].tolist())
        # Probabilities named by class; the score is the probability of the recorded label.
        assert d.output == pytest.approx(dict(zip(pipe.classes_.tolist(), proba[i].tolist())))
        assert d.label == pipe.classes_[proba[i].argmax()]
        assert d.score == pytest.approx(proba[i].max()) == pytest.approx(d.output[d.label])
        assert (d.model_name, d.attributes["model.framework"]) == ("Pipeline", "sklearn")
        assert d.attributes["model.artifact.hash"].startswith("sha256:")


def test_predict_on_a_classifier_labels_each_row_with_its_class(audit: Audit, sk: Any) -> None:
    clf = fitted(LogisticRegression())
    out = clf.predict(X[:7])
    decisions = audit.decisions()
    assert [d.label for d in decisions] == out.tolist()
    assert [d.output for d in decisions] == out.tolist()
    assert all(d.score is None for d in decisions)


def test_a_regressor_has_outputs_and_no_label(audit: Audit, sk: Any) -> None:
    reg = fitted(LinearRegression(), X[:, 0] * 2.0)
    out = reg.predict(X[:3])
    decisions = audit.decisions()
    assert [d.output for d in decisions] == pytest.approx(out.tolist())
    assert all(d.label is None for d in decisions)


def test_dataframe_rows_keep_their_column_names(audit: Audit, sk: Any) -> None:
    df = pd.DataFrame(X, columns=["income", "debt", "age", "tenure"])
    with suppress_instrumentation():
        clf = LogisticRegression().fit(df, Y)
    clf.predict(df.iloc[:2])
    d0, d1 = audit.decisions()
    assert d0.input == pytest.approx(dict(zip(df.columns, X[0])))
    assert set(d1.input) == {"income", "debt", "age", "tenure"}


def test_sparse_rows_are_recorded_without_densifying(audit: Audit, sk: Any) -> None:
    from scipy import sparse

    wide = sparse.random(50, 100_000, density=0.0002, format="lil", random_state=1)
    wide[0, 7] = 2.5
    wide = wide.tocsr()
    with suppress_instrumentation():
        clf = LogisticRegression().fit(wide, np.arange(50) % 2)
    clf.predict(wide[:3])
    d0 = audit.decisions()[0]
    assert d0.input["7"] == 2.5 and len(d0.input) == wide[0].nnz


def test_huge_rows_are_recorded_as_digests(audit: Audit, sk: Any) -> None:
    import hashlib

    images = rng.normal(size=(4, 64 * 80))  # 5120 values a row: above LARGE_ROW_ELEMENTS
    with suppress_instrumentation():
        clf = LogisticRegression().fit(images, [0, 1, 0, 1])
    clf.predict(images)
    d0 = audit.decisions()[0]
    digest = hashlib.sha256(np.ascontiguousarray(images[0]).tobytes()).hexdigest()
    assert d0.input == {"$ndarray": {"shape": [5120], "dtype": "float64", "sha256": "sha256:" + digest}}


NESTED: dict[str, Callable[[], Any]] = {
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    "voting-soft": lambda: VotingClassifier([("lr", LogisticRegression()), ("dt", DecisionTreeClassifier())],
                                            voting="soft"),
    "calibrated": lambda: CalibratedClassifierCV(LinearSVC(), cv=3),
    "one-vs-rest": lambda: OneVsRestClassifier(LogisticRegression()),
    "grid-search": lambda: GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3),
    "stacking": lambda: StackingClassifier([("lr", LogisticRegression()), ("dt", DecisionTreeClassifier())], cv=3),
    "forest-threads": lambda: RandomForestClassifier(n_estimators=8, n_jobs=2, random_state=0),
}


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
@pytest.mark.parametrize("kind", sorted(NESTED))
def test_nested_estimators_record_once_at_the_outermost_call(audit: Audit, sk: Any, kind: str, method: str) -> None:
    model = NESTED[kind]()
    model.fit(X, Y3)  # fitting (and the predictions it makes inside) is not a decision
    assert audit.decisions() == []
    result = getattr(model, method)(X[:30])
    decisions = audit.decisions()
    assert len(decisions) == 30
    assert {d.model_name for d in decisions} == {type(model).__name__}
    assert len({d.decision_id for d in decisions}) == 30
    assert [s.name for s in audit.spans()] == [f"predict {type(model).__name__}"]
    expected = result if method == "predict" else model.classes_[result.argmax(axis=1)]
    assert [d.label for d in decisions] == [str(v) for v in expected]


def test_evaluation_is_not_a_decision(audit: Audit, sk: Any) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression())
    cross_val_score(model, X, Y, cv=3)
    cross_val_predict(model, X, Y, cv=3, method="predict_proba")
    fitted(model).score(X, Y)
    assert audit.decisions() == []


def test_methods_of_a_mixin_outside_sklearn_base_are_covered(audit: Audit, sk: Any) -> None:
    qda = fitted(QuadraticDiscriminantAnalysis())  # predict lives in DiscriminantAnalysisPredictionMixin
    qda.predict(X[:4])
    assert len(audit.decisions()) == 4


def test_staged_predictions_are_not_decisions(audit: Audit, sk: Any) -> None:
    ada = fitted(AdaBoostClassifier(n_estimators=5))
    stages = list(ada.staged_predict_proba(X[:4]))  # runs each stage's estimators lazily
    assert len(stages) == 5 and audit.decisions() == []


def test_outlier_detector_scores(audit: Audit, sk: Any) -> None:
    iso = fitted(IsolationForest(n_estimators=10, random_state=0), None)
    labels = iso.predict(X[:4])  # calls decision_function -> score_samples inside
    scores = iso.score_samples(X[:4])
    decisions = audit.decisions()
    assert len(decisions) == 8
    assert [d.label for d in decisions[:4]] == [str(v) for v in labels]
    assert [d.score for d in decisions[4:]] == pytest.approx(scores.tolist())


def test_a_large_batch_loses_no_row_to_the_span_event_limit(tmp_path: Path, clean_env: None, sk: Any) -> None:
    cfg = decisiontrail.configure(path=tmp_path / "store", set_global=False)
    try:
        n = 40_000
        big = rng.normal(size=(n, 4))
        clf = fitted(LogisticRegression())
        out = clf.predict(big)
        assert cfg.force_flush()
        decisions = list(iter_decisions(tmp_path / "store"))
    finally:
        cfg.shutdown()
        set_recorder(None)
    assert len(decisions) == n
    assert len({d.decision_id for d in decisions}) == n
    assert sorted(d.batch_index for d in decisions) == list(range(n))  # type: ignore[type-var]
    assert {d.attributes["decision.batch.size"] for d in decisions} == {n}
    by_row = {d.batch_index: d for d in decisions}
    assert by_row[n - 1].label == out[n - 1] and by_row[n - 1].input == pytest.approx(big[n - 1].tolist())
    first = by_row[0].decision_id
    assert by_row[n - 1].decision_id == offset_id(first, n - 1)
    spans = collections.Counter(d.span_id for d in decisions)
    assert len(spans) > 1 and max(spans.values()) <= 64 * 256  # spread over continuation spans
    assert len({d.trace_id for d in decisions}) == 1


def test_model_name_and_version(audit: Audit, instrumented: Callable[..., Any],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    instrumented(SklearnInstrumentor, model_name=lambda m: f"loan-{type(m).__name__.lower()}", model_version="7")
    a, b = fitted(LogisticRegression()), fitted(LogisticRegression())
    register_model(b, name="credit", version="2024-06")
    a.predict(X[:1])
    b.predict(X[:1])
    da, db = audit.decisions()
    assert (da.model_name, da.model_version) == ("loan-logisticregression", "7")
    assert (db.model_name, db.model_version) == ("credit", "2024-06")


def test_name_and_version_from_the_environment(tmp_path: Path, clean_env: None, instrumented: Callable[..., Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONTRAIL_MODEL_VERSION", "env-3")
    monkeypatch.setenv("DECISIONTRAIL_MODEL_NAME", "scorer")
    instrumented(SklearnInstrumentor)  # the name is read when instrumenting, the version when configuring
    cfg = decisiontrail.configure(path=tmp_path, set_global=False)
    try:
        fitted(LogisticRegression()).predict(X[:1])
        assert cfg.force_flush()
        (d,) = iter_decisions(tmp_path)
    finally:
        cfg.shutdown()
        set_recorder(None)
    assert (d.model_name, d.model_version) == ("scorer", "env-3")


def test_the_artifact_is_hashed_once_per_model_object(audit: Audit, sk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = models_module.artifact_hash
    monkeypatch.setattr(models_module, "artifact_hash", lambda m: calls.append(m) or real(m))
    clf = fitted(LogisticRegression())
    for _ in range(5):
        clf.predict(X[:3])
    assert len(calls) == 1
    assert len({d.attributes["model.artifact.hash"] for d in audit.decisions()}) == 1


def test_a_telemetry_failure_never_breaks_the_prediction(audit: Audit, sk: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clf = fitted(LogisticRegression())
    expected = clf.predict_proba(X[:3])
    audit.clear()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter on fire")

    monkeypatch.setattr(Recorder, "record_batch", broken)
    before = stats.snapshot()["recording_errors"]
    np.testing.assert_array_equal(clf.predict_proba(X[:3]), expected)
    assert stats.snapshot()["recording_errors"] == before + 1
    monkeypatch.setattr(Recorder, "start_span", broken)
    np.testing.assert_array_equal(clf.predict_proba(X[:3]), expected)
    assert stats.snapshot()["recording_errors"] == before + 2


def test_fail_closed_raises_instead_of_predicting_unaudited(tmp_path: Path, clean_env: None, sk: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = decisiontrail.configure(exporter=InMemorySpanExporter(), set_global=False, fail_closed=True)
    try:
        clf = fitted(LogisticRegression())
        monkeypatch.setattr(Recorder, "record_batch", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
        with pytest.raises(RecordingError):
            clf.predict(X[:2])
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_the_libraries_own_exceptions_propagate_untouched(audit: Audit, sk: Any) -> None:
    with pytest.raises(NotFittedError):
        LogisticRegression().predict(X[:2])
    clf = fitted(LogisticRegression())
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.ones((2, 9)))
    assert audit.decisions() == []
    errors = [s for s in audit.spans() if s.status.status_code == StatusCode.ERROR]
    assert len(errors) == 2 and all(s.events[0].name == "exception" for s in errors)


def test_suppressed_instrumentation_records_nothing(audit: Audit, sk: Any) -> None:
    clf = fitted(LogisticRegression())
    with suppress_instrumentation():
        clf.predict(X[:3])
    assert audit.decisions() == []


def test_the_applications_own_tracer_provider(clean_env: None, sk: Any) -> None:
    """An application with its own provider and spans: decisions join its request traces."""
    app_spans = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(app_spans))
    audit_spans = InMemorySpanExporter()
    cfg = decisiontrail.configure(tracer_provider=app_provider, exporter=audit_spans, set_global=False)
    try:
        clf = fitted(make_pipeline(StandardScaler(), LogisticRegression()))
        tracer = app_provider.get_tracer("app")
        with tracer.start_as_current_span("POST /score") as request:
            clf.predict(X[:3])
        assert cfg.force_flush()
        trace_id = request.get_span_context().trace_id
        predict = [s for s in app_spans.get_finished_spans() if s.name == "predict Pipeline"]
        assert len(predict) == 1 and predict[0].parent.span_id == request.get_span_context().span_id
        audited = [s for s in audit_spans.get_finished_spans() if s.name == "predict Pipeline"]
        assert audited and audited[0].context.trace_id == trace_id
        assert audited[0].attributes[S.DECISION_COUNT] == 3
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_decision_ids_are_collected_for_the_caller(audit: Audit, sk: Any) -> None:
    clf = fitted(LogisticRegression())
    with collect_decisions() as made:
        clf.predict(X[:3])
        clf.predict_proba(X[:2])
    ids = made.ids()
    assert made.count == 5 and len(set(ids)) == 5
    assert sorted(ids) == sorted(d.decision_id for d in audit.decisions())


def test_uninstrument_restores_every_method_and_records_nothing(audit: Audit) -> None:
    inst = SklearnInstrumentor()
    inst.instrument()
    try:
        regressor_pipe = fitted(make_pipeline(StandardScaler(), LinearRegression()), X[:, 0])
        assert not hasattr(regressor_pipe, "predict_proba")  # available_if still decides
        clf = fitted(RandomForestClassifier(n_estimators=4, n_jobs=2))
        clf.predict(X[:2])
        wrapped = inst.wrapped
        before = originals(wrapped)
        assert {("Pipeline", "predict_proba"), ("LinearClassifierMixin", "predict"), ("Parallel", "__call__"),
                ("_BaseScorer", "__call__")} <= {(getattr(o, "__name__", ""), n) for o, n in wrapped}
    finally:
        inst.uninstrument()
    assert_restored(wrapped, before)
    assert not hasattr(regressor_pipe, "predict_proba")
    audit.clear()
    clf.predict(X[:2])
    fitted(make_pipeline(StandardScaler(), LogisticRegression())).predict_proba(X[:2])
    assert audit.decisions() == []
    assert inst.wrapped == []


def test_instrumenting_imports_nothing_and_lists_modules_from_files() -> None:
    names = sklearn_modules()
    assert "sklearn.pipeline" in names and "sklearn.linear_model._base" in names
    assert not any(".tests" in n for n in names)


def test_bad_options_raise_type_error() -> None:
    with pytest.raises(TypeError):
        SklearnInstrumentor().instrument(model_name=3)
    with pytest.raises(TypeError):
        SklearnInstrumentor().instrument(tracer_provider=TracerProvider())
    assert not SklearnInstrumentor().is_instrumented_by_opentelemetry


def test_scores_are_the_score_of_the_recorded_label(audit: Audit, sk: Any) -> None:
    """decision.score (docs/semantic-conventions.md): a binary margin counts in favour of the label it
    chose; log-probabilities are named by class and scored as the label's probability."""
    clf = fitted(LogisticRegression())
    margin = clf.decision_function(X[:6])
    log_proba = clf.predict_log_proba(X[:6])
    decisions = audit.decisions()
    for i, d in enumerate(decisions[:6]):
        assert d.label == clf.classes_[int(margin[i] > 0)]
        assert d.score == pytest.approx(abs(margin[i])) and d.score >= 0
    for i, d in enumerate(decisions[6:]):
        assert d.output == pytest.approx(dict(zip(clf.classes_.tolist(), log_proba[i].tolist())))
        assert d.score == pytest.approx(np.exp(d.output[d.label])) and d.score >= 0.5
