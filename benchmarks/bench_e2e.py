"""End-to-end throughput: decisions/s from one process, over OTLP, to the collector's audit files.

    python benchmarks/bench_e2e.py [--n 20000] [--protocol grpc|http/protobuf|http/json]

Starts the built collector (scripts/build-binaries.sh) with collector-config/otelcol.yaml on free
ports and a temporary directory, records n decisions with ``record_decision`` inside request spans,
and measures from the first decision until the last one is readable in the audit files (polled every
50 ms by counting decision events; the reader confirms the count once they are all there).

Also reported: the CPU time per decision of this process (recording and export threads, until the
collector acknowledged everything: the polling is left out) and of the collector (all its threads,
Linux /proc, until the decisions are readable), and the ceiling they put on the rate of
a machine with this many cores, were both processes to keep every core busy: cores / (the two summed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import decisiontrail
from decisiontrail.store import iter_decisions

from _collector import running_collector  # benchmarks/_collector.py


def readable(audit_dir: Path, n: int) -> int:
    """Decisions readable in the audit files. A cheap count of decision events first (parsing every
    file on each poll would compete with the collector for the CPU); the reader once they are all there."""
    if not audit_dir.is_dir():
        return 0
    events = sum(p.read_bytes().count(b'"name":"model.decision"') for p in audit_dir.iterdir() if p.is_file())
    return sum(1 for _ in iter_decisions(audit_dir)) if events >= n else min(events, n - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--protocol", default="grpc", choices=("grpc", "http/protobuf", "http/json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    with running_collector(work) as collector:
        endpoint = collector.grpc_endpoint if args.protocol == "grpc" else collector.http_endpoint
        cfg = decisiontrail.configure(endpoint=endpoint, protocol=args.protocol, set_global=False,
                                      spool_dir=work / "spool")  # the default no-loss path
        tracer = cfg.tracer_provider.get_tracer("bench")
        t0, p0, c0 = time.perf_counter(), time.process_time(), collector.cpu_seconds()
        for i in range(args.n):
            with tracer.start_as_current_span("POST /score"):
                decisiontrail.record_decision("bench", {"i": i, "x": 0.5}, {"p": 0.1}, label="ok", score=0.1)
        produced = time.perf_counter() - t0
        cfg.force_flush()
        acknowledged, own = time.perf_counter() - t0, (time.process_time() - p0) / args.n  # before the polling
        while (stored := readable(collector.audit_dir, args.n)) < args.n:
            if time.perf_counter() - t0 > 600:
                sys.exit(f"decisions did not all arrive: {stored} of {args.n}")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        theirs = (collector.cpu_seconds() - c0) / args.n
        cfg.shutdown()
        cores = os.cpu_count() or 1
        print(f"{args.protocol}: {args.n} decisions, {stored} stored; recording {args.n / produced:,.0f}/s, "
              f"acknowledged by the collector {args.n / acknowledged:,.0f}/s, "
              f"end to end (until readable in the audit files) {args.n / total:,.0f}/s")
        print(f"CPU per decision: this process {own * 1e6:.1f} µs, the collector {theirs * 1e6:.1f} µs; "
              f"ceiling on {cores} cores: {cores / (own + theirs):,.0f}/s")


if __name__ == "__main__":
    main()
