"""Per-decision cost of recording, in one process and one run, interleaved.

    python benchmarks/bench_recorder.py [--n 20000] [--rounds 7] [--profile b]

(s) the baseline: raw OpenTelemetry under the stock SDK set-up: a TracerProvider with the SDK's
    BatchSpanProcessor, start a span, add_event with equivalent (pre-encoded) attributes, end it;
(a) the same raw span + add_event under decisiontrail's provider and DecisionSpanProcessor;
(b) ``@audited`` on a trivial predict (opens its own span, encodes, hashes, chains);
(c) ``record_decision`` onto an existing recording span (the request's; each request span, opened
    outside the timing, takes 50 decisions, well under the SDK's 128 events per span);
(d) one JSON line through ``logging`` to a file: what a list-of-dicts logger does;
(e) encoding only, a typical 10-field input, as the recorder does it (``FieldEncoder``);
(f) encoding only, the same input through the encoder before structure-aware bounding
    (``canonical_json``, unchanged code, then the cut at ``max_chars``): (e)/(f) is the bounding's cost;
(g) ``record_outcome`` of a past decision (its own ``record outcome`` span, linked to the decision's);
(h) ``record_review`` (an override with a label and a rationale, on its own linked span).

The OTel variants other than (s) share one TracerProvider and the DecisionSpanProcessor; every
exporter discards, so the figures are the producer's cost. Each round runs every variant for n
decisions in turn; the report gives each variant's median over rounds, the part of it spent in the
garbage collector (``gc.callbacks``: the spans a queue holds are traversed by every full
collection, so a no-loss queue that holds the whole round costs more here than the stock BSP, which
holds at most 2048 spans and drops the rest) and its ratio to (s) and (a). ``--profile b`` then runs
variant (b) under cProfile and prints where its time goes (functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import decisiontrail
from decisiontrail.encoding import DEFAULT_MAX_CHARS, FieldEncoder, canonical_json, sha256_hex

INPUT = {"income": 52000.0, "debt_ratio": 0.31, "credit_history_years": 7, "loan_amount": 15000.0,
         "late_payments": 1}
OUTPUT = {"decision": "approve", "approval_probability": 0.81}
TEN_FIELDS = {**INPUT, "employment": "salaried", "age": 41, "zip": "94110", "has_mortgage": False,
              "requested_term_months": 36}


class DiscardExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--profile", metavar="LETTER", help="profile one variant (a letter, e.g. b) after the rounds")
    ap.add_argument("--variants", metavar="LETTERS", default="sabcdefgh",
                    help="the variants to run, by letter (default: all; (s) and (a) always run)")
    args = ap.parse_args()

    # The stock BatchSpanProcessor logs each span it drops from a full queue: not the cost measured.
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)
    cfg = decisiontrail.configure(exporter=DiscardExporter(), set_global=False)
    tracer = cfg.tracer_provider.get_tracer("bench")
    raw_attrs = {
        "model.name": "loan", "model.version": "1", "decision.id": "01a205c7-c981-7000-8000-7302bf9a90cb",
        "decision.input": canonical_json(INPUT), "decision.input.hash": sha256_hex(canonical_json(INPUT)),
        "decision.output": canonical_json(OUTPUT), "decision.label": "approve", "decision.score": 0.81,
    }

    stock_provider = TracerProvider(shutdown_on_exit=False)
    stock_bsp = BatchSpanProcessor(DiscardExporter())
    stock_provider.add_span_processor(stock_bsp)
    stock_tracer = stock_provider.get_tracer("bench")

    def stock() -> None:
        with stock_tracer.start_as_current_span("predict loan") as span:
            span.add_event("model.decision", raw_attrs)

    def raw() -> None:
        with tracer.start_as_current_span("predict loan") as span:
            span.add_event("model.decision", raw_attrs)

    @decisiontrail.audited(model_name="loan", model_version="1", label=lambda r: r["decision"],
                           score=lambda r: r["approval_probability"])
    def predict(x: dict) -> dict:
        return OUTPUT

    def audited() -> None:
        predict(INPUT)

    def onto_span() -> None:
        decisiontrail.record_decision("loan", INPUT, OUTPUT, version="1", label="approve", score=0.81)

    logdir = tempfile.mkdtemp()
    logger = logging.getLogger("bench.decisions")
    logger.propagate = False
    handler = logging.FileHandler(os.path.join(logdir, "decisions.log"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    past = decisiontrail.record_decision("loan", INPUT, OUTPUT, version="1", label="approve", score=0.81)
    link = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}

    def outcome() -> None:
        decisiontrail.record_outcome(past, "repaid", source="core-banking", **link)

    def review() -> None:
        decisiontrail.record_review(past, reviewer="u-4711", action="override", label="deny",
                                    rationale="income not verified", **link)

    def log_line() -> None:
        logger.info(json.dumps({"model": "loan", "version": "1", "input": INPUT, "output": OUTPUT,
                                "timestamp": time.time()}))

    in_gc = [0.0, 0.0]  # seconds in collections, start of the current one

    def collecting(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            in_gc[1] = time.perf_counter()
        else:
            in_gc[0] += time.perf_counter() - in_gc[1]

    gc.callbacks.append(collecting)

    def timed(fn: Callable[[], None], n: int, around: object = None) -> tuple[float, float]:
        in_gc[0] = 0.0
        if around is not None:
            per_span = 50
            spans = [tracer.start_span("POST /loans") for _ in range(-(-n // per_span))]
            t0 = time.perf_counter()
            for span in spans:
                with trace.use_span(span, end_on_exit=False):
                    for _ in range(per_span):
                        fn()
            dt = time.perf_counter() - t0
            n = len(spans) * per_span
            for span in spans:
                span.end()
        else:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            dt = time.perf_counter() - t0
        spent_in_gc = in_gc[0]
        cfg.force_flush()
        stock_bsp.force_flush()
        return dt / n * 1e6, spent_in_gc / n * 1e6

    fields = FieldEncoder(DEFAULT_MAX_CHARS).encode

    def encode_after() -> None:
        fields(TEN_FIELDS, "input")

    def encode_before() -> None:
        text = canonical_json(TEN_FIELDS)
        if len(text) > DEFAULT_MAX_CHARS:
            sha256_hex(text)
            text = text[:DEFAULT_MAX_CHARS]

    variants = {"(s) raw span + add_event, stock BSP": (stock, None), "(a) raw span + add_event": (raw, None),
                "(b) @audited": (audited, None),
                "(c) record_decision onto span": (onto_span, True), "(d) logging JSON line": (log_line, None),
                "(e) encode 10 fields (bounded)": (encode_after, None),
                "(f) encode 10 fields (before)": (encode_before, None),
                "(g) record_outcome": (outcome, None), "(h) record_review": (review, None)}
    variants = {k: v for k, v in variants.items() if k[1] in args.variants + "sa"}
    results: dict[str, list[float]] = {k: [] for k in variants}
    gc_share: dict[str, list[float]] = {k: [] for k in variants}
    for name, (fn, around) in variants.items():  # warm-up
        timed(fn, 1000, around)
    for _ in range(args.rounds):
        for name, (fn, around) in variants.items():
            per_record, in_collections = timed(fn, args.n, around)
            results[name].append(per_record)
            gc_share[name].append(in_collections)
    stock_base = statistics.median(results["(s) raw span + add_event, stock BSP"])
    base = statistics.median(results["(a) raw span + add_event"])
    print(f"python {sys.version.split()[0]}, n={args.n} x {args.rounds} rounds, medians")
    print(f"{'variant':38} {'µs/record':>12} {'of it in gc':>12} {'ratio to (s)':>13} {'ratio to (a)':>13}")
    for name, values in results.items():
        m = statistics.median(values)
        print(f"{name:38} {m:12.2f} {statistics.median(gc_share[name]):12.2f} {m / stock_base:13.2f} "
              f"{m / base:13.2f}")
    if args.profile:
        (name,) = [k for k in variants if k.startswith(f"({args.profile})")]
        fn, around = variants[name]
        profile = cProfile.Profile()

        def loop() -> None:  # the variant's calls only (timed() also flushes, and opens request spans)
            for _ in range(args.n):
                fn()

        if around is not None:
            profile.runcall(timed, fn, args.n, around)
        else:
            profile.runcall(loop)
        cfg.force_flush()
        print(f"\n{name} under cProfile (n={args.n}; the profiler inflates small calls):")
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    cfg.shutdown()
    stock_provider.shutdown()


if __name__ == "__main__":
    main()
