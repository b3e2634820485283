"""Loan approval over HTTP: a scikit-learn model behind Flask, its decisions audited with no
decisiontrail code, and what happens to them later recorded through decisiontrail's API.

Run it under ``opentelemetry-instrument`` (see README.md): OpenTelemetry's Flask instrumentation
opens a span per request, decisiontrail's scikit-learn instrumentation records every
``predict_proba`` row as a ``model.decision`` event under it, and decisiontrail's Flask
instrumentation answers with the ids of the decisions in a ``decision-id`` response header. The
service reads its trace id from the OpenTelemetry API and returns it with the decisions.

    POST /loans   {"income": 52000, "debt_ratio": 0.31, "credit_history_years": 7,
                   "loan_amount": 15000, "late_payments": 1}
                  or {"applications": [{...}, {...}]}
    -> 200 {"decisions": [{"decision": "approve", "approval_probability": 0.81}], "trace_id": "..."}
       decision-id: <one id per application>
    POST /decisions/<decision id>/outcome   {"outcome": "repaid", "observed_at": "2027-06-01T00:00:00Z",
                                             "source": "core-banking"}
    POST /decisions/<decision id>/review    {"action": "override", "label": "approve",
                                             "rationale": "income verified by phone"}
                  the reviewer is the value of the ``X-Reviewer`` header (``REVIEWER_HEADER`` names
                  another, e.g. the user header an authenticating proxy in front sets), never the body
    -> 201 {"record_id": "...", "decision_id": "..."}; 400 on a bad call, 401 without a reviewer.
       Both also take "trace_id" and "span_id" of the decision's span, to link the record to it.
    GET  /health  -> 200 "ok"

The model is loaded from ``LOAN_MODEL_PATH`` (default: loan_model.joblib next to this file); when
the file is missing it is trained on synthetic applications and saved there. ``HOST`` and ``PORT``
say where to listen (default 127.0.0.1:8000: this machine only; the container image sets
``HOST=0.0.0.0``).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import decisiontrail
import joblib
import numpy as np
import pandas as pd
from flask import Flask, request
from opentelemetry import trace
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["income", "debt_ratio", "credit_history_years", "loan_amount", "late_payments"]
REVIEWER_HEADER = os.environ.get("REVIEWER_HEADER", "X-Reviewer")
MODEL_PATH = Path(os.environ.get("LOAN_MODEL_PATH") or Path(__file__).with_name("loan_model.joblib"))


def synthetic_applications(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "income": rng.lognormal(10.8, 0.5, n).round(-2),
        "debt_ratio": rng.beta(2, 5, n).round(3),
        "credit_history_years": rng.integers(0, 30, n),
        "loan_amount": rng.lognormal(9.5, 0.6, n).round(-2),
        "late_payments": rng.poisson(0.8, n),
    })
    risk = (1.5 * frame.debt_ratio + 0.25 * frame.late_payments + frame.loan_amount / frame.income
            - 0.04 * frame.credit_history_years + rng.normal(0, 0.2, n))
    return frame, np.where(risk < 0.9, "approve", "deny")


def train() -> Pipeline:
    frame, labels = synthetic_applications(5000)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)


def load_model(path: Path = MODEL_PATH) -> Pipeline:
    if path.exists():
        model: Pipeline = joblib.load(path)  # a file this service wrote: never load untrusted pickles
        return model
    model = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    joblib.dump(model, partial)
    partial.replace(path)
    return model


app = Flask(__name__)
model = load_model()


@app.post("/loans")
def decide() -> Any:
    body = request.get_json(silent=True)
    applications = body.get("applications", [body]) if isinstance(body, dict) else None
    if not applications or not all(isinstance(a, dict) and set(FEATURES) <= set(a) for a in applications):
        return {"error": f"send an application with {FEATURES}, or {{'applications': [...]}}"}, 400
    frame = pd.DataFrame([{f: a[f] for f in FEATURES} for a in applications], columns=FEATURES)
    proba = model.predict_proba(frame)  # one decision per application
    approve = list(model.classes_).index("approve")
    # The audit trail has every probability by class name at full precision; the answer rounds.
    decisions = [{"decision": str(model.classes_[row.argmax()]), "approval_probability": round(float(row[approve]), 4)}
                 for row in proba]
    trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    return {"decisions": decisions, "trace_id": trace_id}


def _record(decision_id: str, call: Any) -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {"error": "send a JSON object"}, 400
    try:
        record_id = call(body, {k: body[k] for k in ("trace_id", "span_id") if k in body})
    except (decisiontrail.InvalidRecordError, KeyError) as exc:
        return {"error": str(exc) if not isinstance(exc, KeyError) else f"missing {exc}"}, 400
    return {"record_id": record_id, "decision_id": decision_id}, 201


@app.post("/decisions/<decision_id>/outcome")
def outcome(decision_id: str) -> Any:
    return _record(decision_id, lambda body, link: decisiontrail.record_outcome(
        decision_id, body["outcome"], observed_at=body.get("observed_at"), source=body.get("source"), **link))


@app.post("/decisions/<decision_id>/review")
def review(decision_id: str) -> Any:
    reviewer = request.headers.get(REVIEWER_HEADER, "").strip()
    if not reviewer:
        return {"error": f"the {REVIEWER_HEADER} header names the reviewer"}, 401
    return _record(decision_id, lambda body, link: decisiontrail.record_review(
        decision_id, reviewer=reviewer, action=body.get("action"), label=body.get("label"),
        output=body.get("output"), rationale=body.get("rationale"), **link))


@app.get("/health")
def health() -> str:
    return "ok"


def main() -> None:
    # SIGTERM (docker stop, the tests) exits normally, so the OpenTelemetry SDK flushes at exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")), threaded=True)


if __name__ == "__main__":
    main()
