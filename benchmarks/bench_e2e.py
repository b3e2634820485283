"""End-to-end throughput: decisions/s from one process, over OTLP, to the collector's audit files.

    python benchmarks/bench_e2e.py [--n 20000] [--protocol grpc|http/protobuf]

Starts the built collector (scripts/build-binaries.sh) with collector-config/otelcol.yaml on free
ports and a temporary directory, records n decisions with ``record_decision`` inside request spans,
and measures from the first decision until the last one is readable in the audit files.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import decisiontrail
from decisiontrail.store import iter_decisions

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--protocol", default="grpc", choices=("grpc", "http/protobuf"))
    args = ap.parse_args()
    subprocess.run(["bash", str(REPO / "scripts" / "build-binaries.sh")], check=True, stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp())
    grpc, http, health = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DT_"))} | {
        "DT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}", "DT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "DT_HEALTH_ENDPOINT": f"127.0.0.1:{health}", "DT_AUDIT_DIR": str(work / "audit"),
        "DT_QUEUE_DIR": str(work / "queue"), "DT_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "DT_METRICS_LEVEL": "none",
    }
    log = open(work / "collector.log", "wb")
    proc = subprocess.Popen([str(REPO / ".cache" / "bin" / "otelcol-decisiontrail"),
                             f"--config=file:{REPO / 'collector-config' / 'otelcol.yaml'}"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("collector did not become healthy")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{grpc if args.protocol == 'grpc' else http}"
        cfg = decisiontrail.configure(endpoint=endpoint, protocol=args.protocol, set_global=False)
        tracer = cfg.tracer_provider.get_tracer("bench")
        t0 = time.perf_counter()
        for i in range(args.n):
            with tracer.start_as_current_span("POST /score"):
                decisiontrail.record_decision("bench", {"i": i, "x": 0.5}, {"p": 0.1}, label="ok", score=0.1)
        produced = time.perf_counter() - t0
        cfg.force_flush()
        while sum(1 for _ in iter_decisions(work / "audit")) < args.n:
            if time.perf_counter() - t0 > 600:
                sys.exit("decisions did not all arrive")
            time.sleep(0.2)
        total = time.perf_counter() - t0
        cfg.shutdown()
        stored = sum(1 for _ in iter_decisions(work / "audit"))
        print(f"{args.protocol}: {args.n} decisions, {stored} stored; recording {args.n / produced:,.0f}/s, "
              f"end to end (until readable in the audit files) {args.n / total:,.0f}/s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
