"""Latency a request thread sees while the export thread works at full load, in one run.

    python benchmarks/bench_latency.py [--spans 30000] [--samples 2000]

Starts the built collector (scripts/build-binaries.sh). For each exporter (the SDK's OTLP gRPC
exporter, decisiontrail's, and decisiontrail's with the optional native accelerator on), decision
spans recorded beforehand are handed to the no-loss processor all at once (a queue big enough for
all of them), so that its export thread (chain, encoding, transport) works flat out with no recording competing. Meanwhile a "request" thread does what a
service thread does: it sleeps 1 ms (waiting on its socket), wakes and runs ~100 µs of Python.
Its latency is from the moment it should wake to the end of its work; the same loop measured with
the export thread idle is the baseline. Reported: p50 / p99 / p99.9 / max latency, idle and under export,
and the p99 and p99.9 *added* latency (loaded - idle, at each). The target is <= 1 ms: the export thread must
never hold the GIL for long stretches. Also reported per variant: the garbage collector's pauses
while exporting (collections, the longest, in which generation), the usual suspect of a max far
above the p99; on a shared 2-core machine the OS not running the thread is the other.

Where the kernel reports it (Linux: /proc/thread-self/schedstat), each sample's run-queue wait is
measured too: the time the request thread was runnable but not running (both cores taken, by the
export thread and the collector here). The GIL cannot cause that wait (a thread waiting for the GIL
sleeps), so "p99 added, GIL" is the p99 of (latency - run-queue wait), loaded minus idle: what the
export thread's holding of the GIL adds, apart from the CPU the machine lacks.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import decisiontrail
from decisiontrail.recorder import set_recorder

from _collector import running_collector  # benchmarks/_collector.py


class Capture(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def make_spans(n: int) -> list[ReadableSpan]:
    """Finished, unchained decision spans, as the recording thread hands them to the processor."""
    capture = Capture()
    cfg = decisiontrail.configure(exporter=capture, set_global=False, spool_dir=False, chain=False,
                                  processor_options={"max_queue_size": n + 1})
    for i in range(n):
        decisiontrail.record_decision("credit", {"income": 52000 + i, "debt_ratio": 0.31, "years": 7},
                                      {"p": 0.81}, label="approve", score=0.81)
    cfg.force_flush(600_000)
    cfg.shutdown()
    set_recorder(None)
    return capture.spans


def work() -> int:
    x = 0
    for i in range(1500):  # ~100 µs of bytecode
        x += i * i
    return x


class Sample(float):
    """A sample's latency (seconds), with ``queued``: its run-queue wait (seconds, 0.0 if unknown)."""
    queued = 0.0


def _run_queue_reader() -> "Callable[[], float] | None":
    """Seconds this thread has waited on a run queue so far (schedstat's 2nd field), or None."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None

    def read() -> float:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9
    return read


def request_thread(samples: int, out: list[float], stop: threading.Event) -> None:
    perf = time.perf_counter
    queued = _run_queue_reader()
    for _ in range(samples):
        if stop.is_set():
            return
        q0 = queued() if queued else 0.0
        target = perf() + 0.001
        time.sleep(0.001)
        work()
        sample = Sample(perf() - target)
        if queued:
            sample.queued = queued() - q0
        out.append(sample)


def measure(samples: int, busy: threading.Event | None) -> list[float]:
    out: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=request_thread, args=(samples, out, stop))
    t.start()
    if busy is not None:
        busy.wait()  # the export thread finished: stop measuring
        stop.set()
    t.join()
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e6


class GcPauses:
    """The garbage collector's pauses while installed: (seconds, generation) of each collection."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._start, info["generation"]))

    def __str__(self) -> str:
        if not self.pauses:
            return "no collections"
        worst = max(self.pauses)
        return (f"{len(self.pauses)} collections ({sum(1 for _, g in self.pauses if g == 2)} of generation 2), "
                f"longest {worst[0] * 1e3:.1f} ms (generation {worst[1]})")


def loaded(variant: str, spans: list[ReadableSpan], samples: int, endpoint: str, work_dir: Path) -> list[float]:
    os.environ["DECISIONTRAIL_EXPORTER"] = "sdk" if variant.startswith("SDK") else ""
    os.environ["DECISIONTRAIL_NATIVE"] = "1" if variant.endswith("native") else ""  # configure() reads it
    cfg = decisiontrail.configure(endpoint=endpoint, set_global=False, spool_dir=work_dir / variant.replace(" ", "-"),
                                  processor_options={"max_queue_size": len(spans) + 1,
                                                     "schedule_delay_millis": 60_000})
    p = cfg.processor
    done = threading.Event()
    for s in spans[:2048]:  # warm up the channel and the caches
        p.on_end(s)
    cfg.force_flush(600_000)
    with p._lock:  # hand everything over at once
        p._queue.extend(spans)
        p._flush_requested = True
        p._not_empty.notify()

    def watch() -> None:
        cfg.force_flush(600_000)
        done.set()
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    threading.Thread(target=watch, daemon=True).start()
    t0 = time.perf_counter()
    got = measure(samples, done)
    elapsed = time.perf_counter() - t0
    done.wait()
    gc.callbacks.remove(gc_pauses)
    cfg.shutdown()
    print(f"  {variant}: exported {len(spans)} spans in {elapsed:.2f} s while measuring ({len(got)} samples); "
          f"GC: {gc_pauses}")
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=30_000)
    ap.add_argument("--samples", type=int, default=100_000)
    args = ap.parse_args()
    spans = make_spans(args.spans)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    results: dict[str, list[float]] = {}
    with running_collector(work_dir) as collector:
        idle = measure(2000, None)
        for variant in ("SDK OTLP exporter", "decisiontrail exporter", "decisiontrail, native"):
            results[variant] = loaded(variant, spans, args.samples, collector.grpc_endpoint, work_dir)
        idle += measure(2000, None)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, switch interval "
          f"{sys.getswitchinterval() * 1e3:.0f} ms; request: sleep 1 ms + ~100 µs of work; latency in µs")
    print(f"{'':26}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'p99 added':>11}{'p99.9 added':>13}"
          f"{'p99 added, GIL':>16}{'top 1% queued':>15}")
    off_queue = {v: [float(x) - getattr(x, "queued", 0.0) for x in got] for v, got in {"idle": idle, **results}.items()}
    print(f"{'idle':26}{pct(idle, .5):9.0f}{pct(idle, .99):9.0f}{pct(idle, .999):9.0f}{max(idle) * 1e6:9.0f}"
          f"{'-':>11}{'-':>13}{'-':>16}{queued_share(idle):14.0f}%")
    for v, got in results.items():
        print(f"{v:26}{pct(got, .5):9.0f}{pct(got, .99):9.0f}{pct(got, .999):9.0f}{max(got) * 1e6:9.0f}"
              f"{pct(got, .99) - pct(idle, .99):11.0f}{pct(got, .999) - pct(idle, .999):13.0f}"
              f"{pct(off_queue[v], .99) - pct(off_queue['idle'], .99):16.0f}{queued_share(got):14.0f}%")
    print("p99 added, GIL: the p99 of latency minus run-queue wait, loaded minus idle; top 1% queued: the share "
          "of the slowest 1% samples' latency spent runnable but not running (the OS, not the GIL)")


def queued_share(samples: list[float]) -> float:
    """Of the slowest 1% samples' total latency, the percentage spent on a run queue."""
    top = sorted(samples, reverse=True)[:max(1, len(samples) // 100)]
    return 100 * sum(getattr(x, "queued", 0.0) for x in top) / max(sum(top), 1e-12)


if __name__ == "__main__":
    main()
