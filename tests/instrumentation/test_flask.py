"""FlaskDecisionIdInstrumentor with the real Flask and OpenTelemetry's Flask instrumentation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import flask
import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sklearn.linear_model import LogisticRegression

from decisiontrail.instrumentation.flask import FlaskDecisionIdInstrumentor
from decisiontrail.instrumentation.sklearn import SklearnInstrumentor
from instrumentation_support import assert_restored, originals

if TYPE_CHECKING:
    from instrumentation_support import Audit

rng = np.random.default_rng(2)
X = rng.normal(size=(100, 3))
with suppress_instrumentation():
    MODEL = LogisticRegression().fit(X, np.where(X[:, 0] > 0, "approve", "deny"))


def make_app() -> flask.Flask:
    """An application with no decisiontrail code: the trace id comes from the OpenTelemetry API."""
    app = flask.Flask("loans")

    @app.post("/score")
    def score() -> Any:
        rows = flask.request.get_json()["rows"]
        labels = MODEL.predict(np.asarray(rows)).tolist()
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        return {"labels": labels, "trace_id": trace_id}

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


@pytest.fixture
def client(audit: Audit, instrumented: Callable[..., Any]) -> Iterator[Any]:
    instrumented(SklearnInstrumentor)
    instrumented(FlaskDecisionIdInstrumentor, max_ids=10)
    app = make_app()
    FlaskInstrumentor().instrument_app(app, tracer_provider=audit.cfg.tracer_provider)
    yield app.test_client()
    FlaskInstrumentor().uninstrument_app(app)


def test_the_response_names_the_decisions_of_its_request(audit: Audit, client: Any) -> None:
    r = client.post("/score", json={"rows": X[:3].tolist()})
    assert r.status_code == 200
    ids = r.headers["decision-id"].split(", ")
    assert len(ids) == 3 and r.headers["decision-count"] == "3"
    by_id = {d.decision_id: d for d in audit.decisions()}
    assert [by_id[i].label for i in ids] == r.get_json()["labels"]
    assert {by_id[i].trace_id for i in ids} == {r.get_json()["trace_id"]}
    server = [s for s in audit.spans() if s.kind == trace.SpanKind.SERVER]
    assert len(server) == 1 and format(server[0].context.trace_id, "032x") == r.get_json()["trace_id"]


def test_requests_without_decisions_get_no_header(client: Any) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and "decision-id" not in r.headers and "decision-count" not in r.headers


def test_many_decisions_list_the_first_ids_and_count_them_all(audit: Audit, client: Any) -> None:
    r = client.post("/score", json={"rows": X.tolist()})
    ids = r.headers["decision-id"].split(", ")
    assert len(ids) == 10 and r.headers["decision-count"] == "100"
    decisions = {d.decision_id: d for d in audit.decisions()}
    assert len(decisions) == 100 and [decisions[i].batch_index for i in ids] == list(range(10))


def test_each_request_sees_only_its_own_decisions(client: Any) -> None:
    first = client.post("/score", json={"rows": X[:2].tolist()}).headers["decision-id"].split(", ")
    second = client.post("/score", json={"rows": X[:1].tolist()}).headers["decision-id"].split(", ")
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)


def test_uninstrument_restores_wsgi_app(audit: Audit, instrumented: Callable[..., Any]) -> None:
    instrumented(SklearnInstrumentor)
    inst = FlaskDecisionIdInstrumentor()
    inst.instrument()
    try:
        wrapped = inst.wrapped
        before = originals(wrapped)
        assert [(o.__name__, n) for o, n in wrapped] == [("Flask", "wsgi_app")]
    finally:
        inst.uninstrument()
    assert_restored(wrapped, before)
    r = make_app().test_client().post("/score", json={"rows": X[:1].tolist()})
    assert r.status_code == 200 and "decision-id" not in r.headers


def test_request_fields_and_headers_become_subject_and_keys(audit: Audit, instrumented: Callable[..., Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Zero code: DECISIONTRAIL_FLASK_SUBJECT / _KEYS map the request to enduser.id and decision.key.*."""
    monkeypatch.setenv("DECISIONTRAIL_FLASK_SUBJECT", "json:applicant.id|header:X-Applicant-Id")
    monkeypatch.setenv("DECISIONTRAIL_FLASK_KEYS", "loan_id=json:loan_id,order_id=header:X-Order-Id,page=query:p")
    instrumented(SklearnInstrumentor)
    instrumented(FlaskDecisionIdInstrumentor)
    app = make_app()
    client = app.test_client()
    r = client.post("/score?p=4", json={"rows": X[:2].tolist(), "applicant": {"id": "A-7"}, "loan_id": 31},
                    headers={"X-Order-Id": "O-1"})
    assert r.status_code == 200
    by_id = {d.decision_id: d for d in audit.decisions()}
    for did in r.headers["decision-id"].split(", "):
        a = by_id[did].attributes
        assert (a["enduser.id"], a["decision.key.loan_id"], a["decision.key.order_id"], a["decision.key.page"]) == \
            ("A-7", "31", "O-1", "4")
    r2 = client.post("/score", json={"rows": X[:1].tolist()}, headers={"X-Applicant-Id": "A-8"})
    (did,) = r2.headers["decision-id"].split(", ")
    a = {d.decision_id: d for d in audit.decisions()}[did].attributes
    assert a["enduser.id"] == "A-8" and not any(k.startswith("decision.key.") for k in a)


def test_a_bad_mapping_argument_raises_and_a_bad_variable_is_ignored(instrumented: Callable[..., Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="KIND:NAME"):
        FlaskDecisionIdInstrumentor().instrument(subject="applicant_id")
    FlaskDecisionIdInstrumentor().uninstrument()
    monkeypatch.setenv("DECISIONTRAIL_FLASK_SUBJECT", "cookie:sid")
    inst = instrumented(FlaskDecisionIdInstrumentor)
    assert not inst._state.mapping
