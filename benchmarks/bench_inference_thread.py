"""Where the inference thread's time goes in a no-loss burst, per decision, in one run.

    python benchmarks/bench_inference_thread.py [--n 20000] [--rounds 2] [--variants embedded,grpc,...]

Each decision is one single-row scikit-learn ``predict`` then ``record_decision`` (as in
bench_no_loss.py), as fast as the loop goes, on the embedded default (``embedded``) or over OTLP gRPC
to the real collector (``grpc``, started on free ports); for comparison, ``discard`` is the same
with an exporter that discards (the export thread all but idle: what running next to a real predict
costs the recording call), and ``record only`` the recording call alone in a loop, without predict,
discarded (the hot-cache cost that bench_recorder.py measures). A ``+freeze`` suffix runs the same with
``configure(gc_freeze=True)``; ``+nogc`` with the garbage collector disabled during the burst (a
diagnostic: what the collections cost, all in). Variants run interleaved, ``--rounds`` times, after a
``predict only`` loop each round. Per decision (medians over rounds):

  wall          the loop's wall time (what inference pays)
  predict CPU   the inference thread's CPU time inside predict (time.thread_time; a collection that
                predict's allocations trigger is counted here, and so is cache pressure)
  record CPU    the same inside record_decision (span, encoding, on_end)
  GIL wait      wall - the inference thread's CPU - backpressure: runnable, not running (the export
                thread holds the GIL, or the OS runs something else)
  backpressure  waiting for room in a full queue (inside on_end)
  gc here       the garbage collector's time in collections the inference thread ran (gc.callbacks)
  gc export     the same on the other threads (they hold the GIL meanwhile)
  export CPU    decisiontrail's threads' CPU time during the loop
  gen2          full collections during the loop

and, once, the objects the collector tracks per queued decision (what every collection walks while
the queue holds the span). On a shared machine the wall columns swell with the neighbours; compare
columns of one run.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sklearn.linear_model import LogisticRegression

import decisiontrail
from decisiontrail import stats
from decisiontrail.recorder import record_decision, set_recorder

from _collector import running_collector  # benchmarks/_collector.py

COLUMNS = ("wall", "predict CPU", "record CPU", "GIL wait", "backpressure", "gc here", "gc export", "export CPU",
           "gen2")


class GcClock:
    """Time in collections, split by the thread that ran them."""

    def __init__(self) -> None:
        self.main = threading.get_ident()
        self.here = self.other = 0.0
        self.full = 0
        self._t0 = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        dt = time.perf_counter() - self._t0
        if threading.get_ident() == self.main:
            self.here += dt
        else:
            self.other += dt
        self.full += info["generation"] == 2

    def reset(self) -> None:
        self.here = self.other = 0.0
        self.full = 0


def threads_cpu() -> float:
    total = 0.0
    for t in threading.enumerate():
        if t.name.startswith("decisiontrail") and t.ident is not None:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except (OSError, AttributeError):  # the thread ended meanwhile
                pass
    return total


def burst(n: int, clf: LogisticRegression, rows: list[np.ndarray], record: bool,
          predict: bool = True) -> tuple[float, float, float]:
    """Seconds of wall, and of the thread's CPU in predict and in the recording call."""
    perf, cpu = time.perf_counter, time.thread_time
    in_predict = in_record = 0.0
    w0 = perf()
    for i in range(n):
        c0 = cpu()
        y = int(clf.predict(rows[i & 255])[0]) if predict else 1
        c1 = cpu()
        if record:
            record_decision("credit", rows[i & 255], y)
        in_predict += c1 - c0
        in_record += cpu() - c1
    return perf() - w0, in_predict, in_record


def one(variant: str, args: argparse.Namespace, clf: LogisticRegression, rows: list[np.ndarray], work: Path,
        endpoint: str, clock: GcClock, r: int) -> dict[str, float]:
    base, _, mode = variant.partition("+")
    n = args.n
    if base == "predict only":
        clock.reset()
        wall, pc, rc = burst(n, clf, rows, record=False)
        return {"wall": wall / n * 1e6, "predict CPU": pc / n * 1e6, "gc here": clock.here / n * 1e6}
    where: dict[str, Any] = ({"path": work / f"embedded-{variant}-{r}"} if base == "embedded"
                             else {"endpoint": endpoint, "spool_dir": work / f"spool-{variant}-{r}"} if base == "grpc"
                             else {"exporter": _Discard(), "spool_dir": False})
    if mode == "freeze":
        where["gc_freeze"] = True
    cfg = decisiontrail.configure(service_name=f"inference-{r}", set_global=False, **where)
    waited = [0.0]
    overflow = cfg.processor._overflow

    def timed_overflow(*a: Any) -> None:
        t0 = time.perf_counter()
        try:
            overflow(*a)
        finally:
            waited[0] += time.perf_counter() - t0

    cfg.processor._overflow = timed_overflow  # type: ignore[method-assign]
    stats.reset()
    if mode == "nogc":
        gc.disable()
    clock.reset()
    e0 = threads_cpu()
    try:
        wall, pc, rc = burst(n, clf, rows, record=True, predict=base != "record only")
    finally:
        gc.enable()
    e1 = threads_cpu()
    here, other, full = clock.here, clock.other, clock.full
    cfg.force_flush(600_000)
    cfg.shutdown()
    set_recorder(None)
    if mode == "freeze":
        gc.unfreeze()  # the next variant starts from the same heap
    if stats.snapshot()["lost"]:
        sys.exit(f"{variant}: {stats.snapshot()['lost']} decisions lost")
    return {"wall": wall / n * 1e6, "predict CPU": pc / n * 1e6, "record CPU": rc / n * 1e6,
            "GIL wait": max(0.0, (wall - pc - rc - waited[0]) / n * 1e6), "backpressure": waited[0] / n * 1e6,
            "gc here": here / n * 1e6, "gc export": other / n * 1e6, "export CPU": (e1 - e0) / n * 1e6,
            "gen2": float(full)}


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Held(SpanExporter):
    """Holds the export thread in its first export until released: the queue keeps what follows."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait()
        return SpanExportResult.SUCCESS


def tracked_per_queued_decision(row: np.ndarray, k: int = 2000) -> float:
    held = _Held()
    cfg = decisiontrail.configure(exporter=held, set_global=False, spool_dir=False,
                                  processor_options={"max_queue_size": 4 * k})
    try:
        for _ in range(cfg.processor.max_export_batch_size):  # the first batch goes to the held export
            record_decision("credit", row, 1)
        deadline = time.monotonic() + 10
        while cfg.processor._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        gc.collect()
        before = {id(o) for o in gc.get_objects()}
        for _ in range(k):
            record_decision("credit", row, 1)
        gc.collect()
        return sum(1 for o in gc.get_objects() if id(o) not in before) / k  # what came and stayed
    finally:
        held.release.set()
        cfg.shutdown()
        set_recorder(None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default="record only,discard,embedded,embedded+freeze,embedded+nogc,grpc,grpc+freeze")
    args = ap.parse_args()
    variants = ["predict only", *args.variants.split(",")]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 4))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    rows = [X[i:i + 1] for i in range(256)]
    tracked = tracked_per_queued_decision(rows[0])
    clock = GcClock()
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    with running_collector(work) as collector:
        for r in range(args.rounds):
            results["predict only"].append(one("predict only", args, clf, rows, work, "", clock, r))
            rest = variants[1:]
            for v in rest[r % len(rest):] + rest[:r % len(rest)]:
                results[v].append(one(v, args, clf, rows, work, collector.grpc_endpoint, clock, r))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, n={args.n} decisions x {args.rounds} rounds, "
          f"medians, µs per decision (gen2: count); {gc.get_count()} gc counts, thresholds {gc.get_threshold()}")
    print(f"objects tracked by the garbage collector per queued decision: {tracked:.2f}")
    print(f"{'variant':16}" + "".join(f"{c:>13}" for c in COLUMNS))
    base = statistics.median(x["predict CPU"] for x in results["predict only"])
    for v, runs in results.items():
        cells = "".join(f"{statistics.median(x.get(c, 0.0) for x in runs):13.1f}" for c in COLUMNS)
        print(f"{v:16}{cells}")
    print(f"(predict only's CPU in predict: {base:.1f} µs; a variant's predict CPU above it is what the "
          f"burst costs predict itself)")


if __name__ == "__main__":
    main()
