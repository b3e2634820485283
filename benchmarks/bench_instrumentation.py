"""Cost of the auto-instrumentation, in one process and one run, interleaved.

    python benchmarks/bench_instrumentation.py [--rows 10000] [--rounds 7] [--profile]

(a) batch: added cost per row of a 10,000-row ``predict_proba`` of a scikit-learn
    LogisticRegression (5 features), instrumented vs not (target: <= 2 us/row), on two inputs:
    tabular values as applications hold them (amounts, ratios with 2 decimals, counts) and random
    normal floats (17 significant digits each, the worst case: formatting a float as JSON text
    costs ~0.08 us for ``52000.0`` and ~0.33 us for ``-0.6273849182736451``);
(b) single row: one-row predict of scikit-learn (LogisticRegression.predict_proba), XGBoost and
    LightGBM (XGBClassifier / LGBMClassifier.predict_proba) and ONNX Runtime (InferenceSession.run
    of the same LogisticRegression converted by skl2onnx), instrumented vs the library alone.

Each round runs every variant in turn (instrument() / uninstrument() between them, outside the
timings); the report gives each variant's median over rounds. decisiontrail is configured with an
exporter that discards, so the figures are the recording thread's cost (the hash chain and export
run on the export thread, which shares the machine's cores). ``--profile`` adds a cProfile of the
instrumented batch predict.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import decisiontrail
from decisiontrail.instrumentation.lightgbm import LightGBMInstrumentor
from decisiontrail.instrumentation.onnxruntime import OnnxRuntimeInstrumentor
from decisiontrail.instrumentation.sklearn import SklearnInstrumentor
from decisiontrail.instrumentation.xgboost import XGBoostInstrumentor

warnings.filterwarnings("ignore")


class DiscardExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def build_models(rng: np.random.Generator) -> dict[str, Any]:
    import lightgbm as lgb
    import onnxruntime as ort
    import xgboost as xgb
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X = rng.normal(size=(2000, 5))
    y = (X[:, 0] + X[:, 1] * 0.5 > 0).astype(int)
    lr = LogisticRegression().fit(X, y)
    xg = xgb.XGBClassifier(n_estimators=50, max_depth=4, n_jobs=1).fit(X, y)
    lg = lgb.LGBMClassifier(n_estimators=50, num_leaves=15, verbose=-1, n_jobs=1).fit(X, y)
    onx = to_onnx(lr, X[:1].astype(np.float32), options={id(lr): {"zipmap": False}})
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return {"lr": lr, "xgb": xg, "lgb": lg, "onnx": sess}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch-calls", type=int, default=10)
    ap.add_argument("--single-calls", type=int, default=1000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    models = build_models(rng)
    batches = {
        "tabular": np.column_stack([
            rng.integers(20, 200, args.rows) * 1000.0, rng.random(args.rows).round(2),
            rng.integers(0, 30, args.rows), rng.integers(1, 50, args.rows) * 500.0, rng.poisson(1, args.rows)]),
        "random": rng.normal(size=(args.rows, 5)),
    }
    one = batches["random"][:1]
    one32 = one.astype(np.float32)
    cfg = decisiontrail.configure(exporter=DiscardExporter(), set_global=False)
    instrumentors = [SklearnInstrumentor(), XGBoostInstrumentor(), LightGBMInstrumentor(), OnnxRuntimeInstrumentor()]

    batch_fns: dict[str, Callable[[], Any]] = {
        name: (lambda b=b: models["lr"].predict_proba(b)) for name, b in batches.items()}
    singles: dict[str, Callable[[], Any]] = {
        "sklearn LogisticRegression.predict_proba": lambda: models["lr"].predict_proba(one),
        "xgboost XGBClassifier.predict_proba": lambda: models["xgb"].predict_proba(one),
        "lightgbm LGBMClassifier.predict_proba": lambda: models["lgb"].predict_proba(one),
        "onnxruntime InferenceSession.run": lambda: models["onnx"].run(None, {"X": one32}),
    }
    times: dict[tuple[str, bool], list[float]] = {}

    def switch(on: bool) -> None:
        for inst in instrumentors:
            if on and not inst.is_instrumented_by_opentelemetry:
                inst.instrument()
            elif not on and inst.is_instrumented_by_opentelemetry:
                inst.uninstrument()

    def run(instrumented: bool) -> None:
        switch(instrumented)
        for fn in [*batch_fns.values(), *singles.values()]:
            fn()  # warm up (identity and artifact hash are resolved once per model object)
        cfg.force_flush()
        for name, fn in batch_fns.items():
            times.setdefault((name, instrumented), []).append(per_call(fn, args.batch_calls))
            cfg.force_flush()  # the export thread catches up between variants, not during one
        for name, fn in singles.items():
            times.setdefault((name, instrumented), []).append(per_call(fn, args.single_calls))
            cfg.force_flush()

    for r in range(args.rounds):
        for instrumented in ((False, True) if r % 2 == 0 else (True, False)):
            run(instrumented)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"(a) batch predict_proba of {args.rows} rows, LogisticRegression, median of {args.rounds} rounds")
    for name in batch_fns:
        base, inst_t = med[(name, False)], med[(name, True)]
        per_row = (inst_t - base) / args.rows * 1e6
        print(f"    {name:<8} uninstrumented {base * 1e3:7.2f} ms   audited {inst_t * 1e3:7.2f} ms   "
              f"added {per_row:5.2f} us/row (target <= 2: {'met' if per_row <= 2 else 'NOT met'})")
    print()
    print(f"(b) single-row predict, median of {args.rounds} rounds x {args.single_calls} calls")
    print(f"    {'call':<42} {'library':>10} {'audited':>10} {'added':>10} {'ratio':>7}")
    for name in singles:
        b, i = med[(name, False)], med[(name, True)]
        print(f"    {name:<42} {b * 1e6:8.1f}us {i * 1e6:8.1f}us {(i - b) * 1e6:8.1f}us {i / b:6.2f}x")

    if args.profile:
        switch(True)
        for name, fn in batch_fns.items():
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.batch_calls):
                fn()
            prof.disable()
            print(f"\ncProfile of the audited {name} batch predict, {args.batch_calls} calls")
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        switch(False)
    cfg.shutdown()


if __name__ == "__main__":
    main()
