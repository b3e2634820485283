"""Where a decision's cost goes on the no-loss path, per decision, in one run: SDK exporter vs ours.

    python benchmarks/bench_profile.py [--n 20000] [--rounds 2] [--embedded] [--native]

Starts the built collector (scripts/build-binaries.sh) and records ``--n`` decisions (a single-row
scikit-learn ``predict`` then ``record_decision``, as fast as the loop goes) on the default no-loss
path (DecisionSpanProcessor, chain, spool) over OTLP gRPC, once with the SDK's OTLP exporter
(``DECISIONTRAIL_EXPORTER=sdk``: "before") and once with decisiontrail's (exporters/otlp.py:
"after"), interleaved ``--rounds`` times; ``--embedded`` adds the embedded file exporter, ``--native``
the same with the optional native accelerator on (native/, ``DECISIONTRAIL_NATIVE=1``). Per decision:

  µs/decision   the inference loop's wall time (predict + recording), what inference pays
  recording     the recording call, without on_end (wall: its GIL waits included)
  on_end        DecisionSpanProcessor.on_end (queue append), without backpressure
  backpressure  waiting for room in a full queue (the exporter's pace), inside on_end
  GIL wait      the inference thread runnable but not running (predict and recording): its wall
                time - its CPU time - backpressure
  chain         ChainStage (input hash, hash chain) on the export thread: its CPU time. (Its wall
                time is no measure: the stage gives the GIL up between chunks of spans, and the
                inference thread then runs for up to the switch interval before it comes back.)
  encoding      building the request, CPU time: ours, the bytes; the SDK's, encode_spans (its
                serialisation, ~1.4 µs per span, happens in the RPC and counts as transport)
  transport     the rest of the export call (wall): the RPC, waiting for the collector's answer,
                and waiting for the GIL after each pause of the encoding; over gRPC it also holds
                the next batch's chain work, done while the request is on its way
  export CPU    the export thread's CPU time (chain + encoding + the CPU part of the transport)
  pauses        of that, the export thread's CPU in its GIL hand-overs (pacing.pause, inside
                chain and encoding), and how many per 1000 decisions (pauses/1k)
  export GC     of that, the export thread's CPU in the garbage collector (inside chain and encoding)
  recording CPU the inference thread's CPU time minus that of predict alone (measured first)

On a loaded machine the wall-clock columns swell with the time the OS does not run the process;
the two CPU columns are the steadier measure of the work itself.

The hooks add well under a microsecond per decision. Absolute figures on a shared machine are noisy:
compare the columns and the two rows of one run.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

import decisiontrail
from decisiontrail import pacing, stats
from decisiontrail.recorder import record_decision, set_recorder

from _collector import running_collector  # benchmarks/_collector.py

COLUMNS = ("recording", "on_end", "backpressure", "GIL wait", "chain", "encoding", "transport", "export CPU",
           "pauses", "export GC", "recording CPU", "pauses/1k")


class Clock:
    """Seconds accumulated by wrapped callables (wall, or the calling thread's CPU time)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {c: 0.0 for c in COLUMNS}
        self.total["encoding wall"] = 0.0
        self.undo: Callable[[], Any] = lambda: None

    def wrap(self, column: str, fn: Callable[..., Any], cpu: bool = False) -> Callable[..., Any]:
        total = self.total
        perf = time.thread_time if cpu else time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                total[column] += perf() - t0
        return timed


def on_export_thread() -> bool:
    return threading.current_thread().name == "decisiontrail-export"


def instrument(cfg: Any, clock: Clock) -> None:
    total = clock.total
    pause = pacing.pause

    def counted_pause() -> None:
        if not on_export_thread():
            return pause()
        t0 = time.thread_time()
        pause()
        total["pauses"] += time.thread_time() - t0
        total["pauses/1k"] += 1e-3  # reported as a count per 1000 decisions
    pacing.pause = counted_pause
    started = [0.0]

    def gc_cpu(phase: str, info: dict[str, int]) -> None:
        if on_export_thread():
            if phase == "start":
                started[0] = time.thread_time()
            else:
                total["export GC"] += time.thread_time() - started[0]
    gc.callbacks.append(gc_cpu)
    clock.undo = lambda: (setattr(pacing, "pause", pause), gc.callbacks.remove(gc_cpu))
    p = cfg.processor
    p.on_end = clock.wrap("on_end", p.on_end)
    p._overflow = clock.wrap("backpressure", p._overflow)
    if p.prepare is not None:
        p.prepare = clock.wrap("chain", p.prepare, cpu=True)
    exporter = p.exporter

    def encoding(target: Any, name: str) -> None:
        fn = getattr(target, name)
        setattr(target, name, clock.wrap("encoding wall", clock.wrap("encoding", fn, cpu=True)))

    if getattr(exporter, "encoder", None) is not None:  # ours: encoding is _encode (chunked) + encoder.group,
        encoding(exporter, "_encode")                    # and prestage (the next batch, while a request
        encoding(exporter.encoder, "group")              # is on its way)
        if hasattr(exporter, "prestage"):
            encoding(exporter, "prestage")
        exporter.deliver = clock.wrap("transport", exporter.deliver)
    elif hasattr(exporter, "_translate_data"):  # the SDK's gRPC exporter
        encoding(exporter, "_translate_data")
        exporter.export = clock.wrap("transport", exporter.export)
    else:  # the embedded file exporter: encoding is its encoder
        encoding(exporter, "_encode")
        exporter.export = clock.wrap("transport", exporter.export)


def export_thread_cpu() -> float:
    for t in threading.enumerate():
        if t.name == "decisiontrail-export" and t.ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except (OSError, AttributeError):
                return 0.0
    return 0.0


def predict_cpu(n: int, clf: LogisticRegression, rows: list[np.ndarray]) -> float:
    t0 = time.thread_time()
    for i in range(n):
        int(clf.predict(rows[i & 255])[0])
    return (time.thread_time() - t0) / n * 1e6


def one(variant: str, n: int, clf: LogisticRegression, rows: list[np.ndarray], work: Path, endpoint: str,
        r: int, predict_us: float) -> dict[str, float]:
    os.environ["DECISIONTRAIL_EXPORTER"] = "sdk" if variant == "before (SDK exporter)" else ""
    os.environ["DECISIONTRAIL_NATIVE"] = "1" if "native" in variant else ""  # configure() reads it
    tag = variant.split()[0] + ("-native" if "native" in variant else "")
    kwargs: dict[str, Any] = {"path": work / f"{tag}-{r}"} if variant.startswith("embedded") else {"endpoint": endpoint}
    cfg = decisiontrail.configure(service_name=f"profile-{r}", set_global=False, spool_dir=work / f"spool-{tag}-{r}",
                                  **kwargs)
    clock = Clock()
    instrument(cfg, clock)
    stats.reset()
    cpu0 = export_thread_cpu()
    wall0, thread0 = time.perf_counter(), time.thread_time()
    predict_total = 0.0
    perf = time.perf_counter
    for i in range(n):
        t0 = perf()
        int(clf.predict(rows[i & 255])[0])
        t1 = perf()
        record_decision("credit", rows[i & 255], 1)
        predict_total += t1 - t0
    wall, thread = time.perf_counter() - wall0, time.thread_time() - thread0
    cfg.force_flush(600_000)
    cpu = export_thread_cpu() - cpu0
    cfg.shutdown()
    clock.undo()
    set_recorder(None)
    t = clock.total
    out = {c: v / n * 1e6 for c, v in t.items()}
    recording_wall = wall - predict_total
    out["GIL wait"] = max(0.0, (wall - thread - t["backpressure"]) / n * 1e6)
    out["recording"] = max(0.0, (recording_wall - t["on_end"]) / n * 1e6)
    out["on_end"] = max(0.0, (t["on_end"] - t["backpressure"]) / n * 1e6)  # _overflow runs inside on_end
    out["transport"] = max(0.0, out["transport"] - out["encoding wall"])
    out["export CPU"] = cpu / n * 1e6
    out["recording CPU"] = max(0.0, thread / n * 1e6 - predict_us)
    out["µs/decision"] = wall / n * 1e6
    out["lost"] = stats.snapshot()["lost"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--embedded", action="store_true")
    ap.add_argument("--native", action="store_true",
                    help="add the same with the native accelerator on (native/: DECISIONTRAIL_NATIVE=1)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 4))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    rows = [X[i:i + 1] for i in range(256)]
    variants = ["before (SDK exporter)", "after (decisiontrail)"] + (["embedded"] if args.embedded else [])
    if args.native:
        variants += ["after, native"] + (["embedded, native"] if args.embedded else [])
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with running_collector(work) as collector:
        for r in range(args.rounds):
            predict_us = predict_cpu(args.n, clf, rows)
            for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                results[v].append(one(v, args.n, clf, rows, work, collector.grpc_endpoint, r, predict_us))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, n={args.n} decisions x {args.rounds} rounds, "
          f"medians, µs per decision; collector: real binary, OTLP gRPC")
    cols = ("µs/decision", *COLUMNS, "lost")
    print(f"{'variant':24}" + "".join(f"{c:>14}" for c in cols))
    for v, rows_ in results.items():
        print(f"{v:24}" + "".join(f"{statistics.median(x[c] for x in rows_):14.1f}" for c in cols))


if __name__ == "__main__":
    main()
