"""A burst of decisions to the real collector: throughput, producer cost and losses, in one run.

    python benchmarks/bench_no_loss.py [--n 50000] [--rounds 2]

Starts the built collector (scripts/build-binaries.sh) on free ports in a temporary directory.
Each decision is one single-row scikit-learn ``predict`` followed by ``record_decision``, as fast as
the loop goes (faster than a Python OTLP exporter sends). Variants, each with its own provider and
``service.name`` so the audit files tell them apart, run interleaved, ``--rounds`` times each:

  predict only            no recording: the model's own cost per call
  stock BSP (defaults)    the SDK's BatchSpanProcessor as shipped (queue 2048, batch 512, 5 s delay)
                          behind AuditSampler; no hash chain (it has no export-side stage)
  no-loss off             DecisionSpanProcessor with on_full="drop" and no spool: lossy, counted
  no-loss on              DecisionSpanProcessor as configure() sets it up: backpressure, spool
  no-loss signed          the same with signed checkpoints (Ed25519, every 1000 decisions, the
                          default) appended to an anchor store: what tamper evidence costs
  no-loss sync            no-loss on with durability="sync": each decision fsynced to the spool
                          before record_decision returns, delivered by the replay thread (its
                          "flush" waits for the spool to be delivered: drain())
  embedded default        configure() without an endpoint: the same processor writing the local
                          OTLP-JSON files (fsynced per batch), no collector
  no-loss on (native)     no-loss on and embedded default with the optional native accelerator on
  embedded (native)       (native/: DECISIONTRAIL_NATIVE=1, the hash chain and the encoders in Rust)
  record (no export)      the floors: decisiontrail's recording call on a provider with no span
  raw span (no export)    processor (nothing queued, chained or sent), and a raw OpenTelemetry span +
                          add_event with the same attributes (the input and output as canonical JSON)
                          on a stock provider with no processor. What a decision costs next to
                          predict before any export work: no exporter, however fast, goes below it

Per variant (median over rounds): the producer's time per decision (the loop, i.e. what inference
pays, backpressure included), its overhead over "predict only", decisions recorded per second (and
that rate over the predict-only rate: "rate/predict") and
decisions *delivered* per second (found in the collector's audit files, over the time from the first
decision until the processor had flushed), and the decisions missing from the audit files.
(For the recording cost alone, without export, see bench_recorder.py.)
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from sklearn.linear_model import LogisticRegression

import decisiontrail
from decisiontrail import stats
from decisiontrail.encoding import canonical_json, sha256_hex
from decisiontrail.ids import new_decision_id
from decisiontrail.recorder import Recorder, RecorderSettings, record_decision, set_recorder
from decisiontrail.sampling import AuditSampler
from decisiontrail.signing import keygen
from decisiontrail.store import iter_decisions

from _collector import running_collector  # benchmarks/_collector.py

VARIANTS = ("predict only", "stock BSP (defaults)", "no-loss off", "no-loss on", "no-loss signed", "no-loss sync",
            "embedded default", "no-loss on (native)", "embedded (native)", "record (no export)",
            "raw span (no export)")
NO_EXPORT = ("record (no export)", "raw span (no export)")


def raw_step(clf: LogisticRegression, rows: list[np.ndarray], service: str) -> Callable[[int], None]:
    """One decision as raw OpenTelemetry: a span and an event with a decision's attributes, on a stock
    provider with no span processor."""
    tracer = TracerProvider(resource=Resource.create({"service.name": service}),
                            shutdown_on_exit=False).get_tracer("bench")

    def step(i: int) -> None:
        x = rows[i & 255]
        with tracer.start_as_current_span("predict credit") as span:
            label = int(clf.predict(x)[0])
            text = canonical_json(x)
            span.add_event("model.decision", {
                "model.name": "credit", "decision.id": new_decision_id(), "decision.input": text,
                "decision.input.hash": sha256_hex(text), "decision.output": canonical_json(label),
                "decision.label": str(label)})
    return step


def setup(variant: str, service: str, endpoint: str, spool: Path) -> tuple[Callable[[], bool], Callable[[], None]]:
    """Install the recorder of ``variant``; return (flush, close)."""
    os.environ["DECISIONTRAIL_NATIVE"] = "1" if variant.endswith(" (native)") else ""  # configure() reads it
    if variant.endswith(" (native)"):
        variant = {"no-loss on (native)": "no-loss on", "embedded (native)": "embedded default"}[variant]
    if variant in NO_EXPORT:  # the raw variant installs nothing: its loop is raw_step's
        provider = TracerProvider(resource=Resource.create({"service.name": service}),
                                  sampler=AuditSampler(ParentBased(ALWAYS_ON)), shutdown_on_exit=False)
        set_recorder(Recorder(RecorderSettings(), tracer_provider=provider))
        return (lambda: True), provider.shutdown
    if variant == "no-loss signed":
        keys = spool.parent / "keys"
        if not keys.is_dir():
            keygen(keys)
        cfg = decisiontrail.configure(endpoint=endpoint, service_name=service, set_global=False, spool_dir=spool,
                                      signing_key=keys / "decisiontrail.key", anchors=spool.parent / "anchors")
        return (lambda: cfg.force_flush(600_000)), cfg.shutdown
    if variant == "stock BSP (defaults)":
        provider = TracerProvider(resource=Resource.create({"service.name": service}),
                                  sampler=AuditSampler(ParentBased(ALWAYS_ON)), shutdown_on_exit=False)
        bsp = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
        provider.add_span_processor(bsp)
        set_recorder(Recorder(RecorderSettings(), tracer_provider=provider))
        return (lambda: bsp.force_flush(600_000)), provider.shutdown
    if variant == "no-loss sync":
        cfg = decisiontrail.configure(endpoint=endpoint, service_name=service, set_global=False, spool_dir=spool,
                                      durability="sync")
        return (lambda: cfg.drain(600_000)), cfg.shutdown
    if variant == "embedded default":
        cfg = decisiontrail.configure(path=spool.parent / f"embedded-{service}", service_name=service,
                                      set_global=False)
        return (lambda: cfg.force_flush(600_000)), cfg.shutdown
    lossy = variant == "no-loss off"
    cfg = decisiontrail.configure(endpoint=endpoint, service_name=service, set_global=False,
                                  spool_dir=False if lossy else spool, on_full="drop" if lossy else None)
    return (lambda: cfg.force_flush(600_000)), cfg.shutdown


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset to run ('predict only' is always run)")
    args = ap.parse_args()
    args.variants = tuple(v for v in VARIANTS if v == "predict only" or v in args.variants.split(","))
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # BSP warns once per dropped span
    logging.getLogger("decisiontrail").setLevel(logging.CRITICAL)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 4))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    rows = [X[i:i + 1] for i in range(256)]
    work = Path(tempfile.mkdtemp(prefix="bench-no-loss-"))
    with running_collector(work) as collector:
        run(args, clf, rows, work, collector.grpc_endpoint, collector.audit_dir)


def settled_count(audit_dir: Path) -> Counter[str]:
    """Decisions per service in the audit files, once the collector's queue has written everything:
    an acknowledged batch is in its persistent queue and reaches the files a moment later."""
    last: Counter[str] | None = None
    while True:
        now: Counter[str] = Counter(d.service_name for d in iter_decisions(audit_dir)) \
            if audit_dir.is_dir() else Counter()
        if now == last:
            return now
        last = now
        time.sleep(2.0)


def run(args: argparse.Namespace, clf: LogisticRegression, rows: list[np.ndarray], work: Path, endpoint: str,
        audit_dir: Path) -> None:
    variants = args.variants
    producer: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}  # this process's CPU (all threads) per decision
    elapsed: dict[str, float] = {}  # service -> seconds from first decision to flushed
    sent: Counter[str] = Counter()
    spooled: Counter[str] = Counter()
    services: dict[str, str] = {}
    try:
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate: no fixed position
            for variant in order:
                if variant == "predict only":
                    t0 = time.perf_counter()
                    for i in range(args.n):
                        int(clf.predict(rows[i & 255])[0])
                    producer[variant].append((time.perf_counter() - t0) / args.n * 1e6)
                    continue
                service = f"bench-{variants.index(variant)}-{r}"
                services[service] = variant
                stats.reset()
                flush, close = setup(variant, service, endpoint, work / f"spool-{r}-{variants.index(variant)}")
                t0, c0 = time.perf_counter(), time.process_time()
                if variant == "raw span (no export)":
                    step = raw_step(clf, rows, service)
                    t0, c0 = time.perf_counter(), time.process_time()
                    for i in range(args.n):
                        step(i)
                else:
                    for i in range(args.n):
                        record_decision("credit", rows[i & 255], int(clf.predict(rows[i & 255])[0]))
                produced = time.perf_counter() - t0
                flush()
                total = time.perf_counter() - t0
                cpu[variant].append((time.process_time() - c0) / args.n * 1e6)
                close()
                spooled[variant] += stats.snapshot()["spooled"]
                sent[variant] += args.n
                producer[variant].append(produced / args.n * 1e6)
                elapsed[service] = total
        per_service = settled_count(audit_dir)
        for service, variant in services.items():
            if variant in ("embedded default", "embedded (native)"):
                per_service[service] = sum(1 for _ in iter_decisions(work / f"embedded-{service}"))
    finally:
        set_recorder(None)

    stored: Counter[str] = Counter()
    delivered: dict[str, list[float]] = {v: [] for v in variants}
    for service, variant in services.items():
        if variant in NO_EXPORT:
            continue
        stored[variant] += per_service[service]
        delivered[variant].append(per_service[service] / elapsed[service])
    base = statistics.median(producer["predict only"])
    rate = {v: 1e6 / statistics.median(producer[v]) for v in variants}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, n={args.n} decisions per burst, "
          f"{args.rounds} rounds interleaved, medians; collector: real binary, OTLP gRPC")
    head = (f"{'variant':22} {'µs/decision':>11} {'overhead µs':>11} {'recorded/s':>10} {'delivered/s':>11} "
            f"{'sent':>8} {'stored':>8} {'lost':>8} {'lost %':>7} {'spooled':>8}")
    head += f" {'rate/predict':>12}"
    print(head)
    print("-" * len(head))
    for v in variants:
        p = statistics.median(producer[v])
        if v == "predict only":
            print(f"{v:22} {p:11.1f} {'-':>11} {1e6 / p:10,.0f} {'-':>11} {'-':>8} {'-':>8} {'-':>8} {'-':>7} "
                  f"{'-':>8}")
            continue
        if v in NO_EXPORT:
            print(f"{v:22} {p:11.1f} {p - base:11.1f} {1e6 / p:10,.0f} {'-':>11} {'-':>8} {'-':>8} {'-':>8} "
                  f"{'-':>7} {'-':>8} {rate[v] / rate['predict only']:12.2f}")
            continue
        lost = sent[v] - stored[v]
        print(f"{v:22} {p:11.1f} {p - base:11.1f} {1e6 / p:10,.0f} {statistics.median(delivered[v]):11,.0f} "
              f"{sent[v]:8d} {stored[v]:8d} {lost:8d} {100 * lost / sent[v]:6.1f}% {spooled[v]:8d} "
              f"{rate[v] / rate['predict only']:12.2f}")
    if "no-loss on" in producer and "no-loss signed" in producer:
        on, signed = producer["no-loss on"], producer["no-loss signed"]
        paired = [b / a - 1 for a, b in zip(on, signed)]  # the two ran next to each other in each round
        c_on, c_signed = statistics.median(cpu["no-loss on"]), statistics.median(cpu["no-loss signed"])
        print(f"process CPU per decision (recording + export threads, to flushed): no-loss on {c_on:.1f} µs, "
              f"signed {c_signed:.1f} µs: {100 * (c_signed / c_on - 1):+.1f} %")
        print(f"signing (checkpoints + anchors) adds {100 * (statistics.median(signed) / statistics.median(on) - 1):+.1f} % "
              f"to the producer cost of no-loss on (medians; per round: "
              f"{', '.join(f'{100 * x:+.1f} %' for x in paired)})")


if __name__ == "__main__":
    main()
