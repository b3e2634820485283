"""``decisiontrail demo``: a loan-approval model audited on the embedded default (no collector).

Trains a scikit-learn logistic regression on synthetic applications, then serves N applications,
each inside a request span ``POST /loans`` and a ``using_subject`` scope (the applicant), as a
``decisiontrail.decision`` block around a predict that returns the decision, its probability,
per-feature contributions and adverse-action reason codes. ``decision.score`` is the probability of the decided label (the
conventions' definition): the approval probability of an approval, one minus it of a denial. The
applicant id is hashed (keyed) and the national id redacted before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind

from .config import configure
from .recorder import decision
from .subjects import using_subject

__all__ = ["run_demo", "DemoResult", "FEATURES"]

FEATURES = ("income", "debt_ratio", "credit_history_years", "loan_amount", "late_payments")
MODEL_NAME = "loan-approval"
MODEL_VERSION = "1.0.0"


@dataclass
class DemoResult:
    out: Path
    decisions: int
    decision_ids: list[str]
    trace_ids: list[str]


def _applications(n: int, seed: int) -> tuple[Any, Any, list[dict[str, Any]]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.8, 0.5, n).round(0)
    debt_ratio = rng.beta(2, 5, n).round(3)
    history = rng.integers(0, 30, n)
    amount = rng.lognormal(9.5, 0.6, n).round(0)
    late = rng.poisson(0.8, n)
    x = np.column_stack([income, debt_ratio, history, amount, late]).astype(float)
    logit = 0.00004 * income - 6 * debt_ratio + 0.08 * history - 0.00003 * amount - 0.7 * late + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    apps = [
        {"applicant_id": f"A-{seed}-{i:06d}", "national_id": f"{rng.integers(100, 999)}-{i % 100:02d}-{i:04d}",
         **{f: (int(v) if f in ("credit_history_years", "late_payments") else float(v)) for f, v in zip(FEATURES, row)}}
        for i, row in enumerate(x)
    ]
    return x, y, apps


def train(seed: int = 7) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, _ = _applications(4000, seed)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


def run_demo(out: str | Path = "decisiontrail-data", n: int = 200, seed: int = 11, *,
             signing_key: str | Path | None = None, anchors: str | Path | None = None) -> DemoResult:
    """Record ``n`` demo decisions into ``out``; with ``signing_key`` / ``anchors``, signed
    checkpoints (every 50 decisions, so a short demo has several) copied to the anchor store."""
    import numpy as np

    model = train()
    scaler, clf = model[0], model[-1]
    cfg = configure(path=out, service_name="loan-service-demo", hash_keys=["applicant_id"],
                    redact_keys=["national_id"], hash_secret="demo-only-secret", model_version=MODEL_VERSION,
                    signing_key=signing_key, anchors=anchors,
                    checkpoint_every=50 if signing_key or anchors else None)
    tracer = cfg.tracer_provider.get_tracer("decisiontrail.demo")

    def decide(application: dict[str, Any]) -> dict[str, Any]:
        row = np.array([[application[f] for f in FEATURES]], dtype=float)
        p = float(model.predict_proba(row)[0, 1])
        contrib = dict(zip(FEATURES, (scaler.transform(row)[0] * clf.coef_[0]).round(4).tolist()))
        worst = sorted((c, f) for f, c in contrib.items() if c < 0)[:2]
        approved = p >= 0.5
        return {"decision": "approve" if approved else "deny", "approval_probability": p,
                "probability": p if approved else 1 - p,
                "contributions": contrib, "reason_codes": [] if approved else [f for _, f in worst]}

    _, _, apps = _applications(n, seed)
    ids: list[str] = []
    traces: list[str] = []
    for app in apps:
        with tracer.start_as_current_span("POST /loans", kind=SpanKind.SERVER,
                                          attributes={"http.request.method": "POST", "url.path": "/loans"}) as span, \
                using_subject(app["applicant_id"], loan_id=f"L-{app['applicant_id'][2:]}"), \
                decision(MODEL_NAME, app, version=MODEL_VERSION) as d:
            r = decide(app)
            d.output, d.label, d.score = r, r["decision"], r["probability"]
            d.explanation, d.reason_codes = {"contributions": r["contributions"]}, r["reason_codes"]
        if d.decision_id:
            ids.append(d.decision_id)
        traces.append(format(span.get_span_context().trace_id, "032x"))
    cfg.shutdown()
    return DemoResult(Path(out), len(apps), ids, traces)


