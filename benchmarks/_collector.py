"""The built collector as a process on free local ports, for the benchmarks (the tests have their
own, richer harness in tests/integration/integration_support.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Collector:
    grpc_endpoint: str  # http://127.0.0.1:<port>, as OTLP exporters take it
    http_endpoint: str
    audit_dir: Path
    pid: int = 0

    def cpu_seconds(self) -> float:
        """The collector process's CPU time so far (user + system, all its threads; Linux /proc)."""
        fields = (Path("/proc") / str(self.pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_collector(work: Path) -> Iterator[Collector]:
    """Build (cached) and start ``otelcol-decisiontrail`` with collector-config/otelcol.yaml, its data
    under ``work``; wait until healthy; terminate it on exit."""
    subprocess.run(["bash", str(REPO / "scripts" / "build-binaries.sh")], check=True, stdout=subprocess.DEVNULL)
    grpc, http, health = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DT_"))} | {
        "DT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}", "DT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "DT_HEALTH_ENDPOINT": f"127.0.0.1:{health}", "DT_AUDIT_DIR": str(work / "audit"),
        "DT_QUEUE_DIR": str(work / "queue"), "DT_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "DT_AUDIT_LOOPBACK_ENDPOINT": f"127.0.0.1:{free_port()}",
        "DT_METRICS_LEVEL": "none",
    }
    with open(work / "collector.log", "wb") as log:
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
                    if time.monotonic() > deadline or proc.poll() is not None:
                        sys.exit(f"the collector did not become healthy; see {work / 'collector.log'}")
                    time.sleep(0.1)
            yield Collector(f"http://127.0.0.1:{grpc}", f"http://127.0.0.1:{http}", work / "audit", proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
