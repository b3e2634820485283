"""Processes and helpers of the integration tests, shared by conftest.py and the test modules.

(A module of its own, not conftest.py: test modules import from it, and ``import conftest`` is
ambiguous when tests/unit and tests/integration both have one.)
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-binaries.sh"
BIN_DIR = REPO / ".cache" / "bin"
COLLECTOR_CONFIG = REPO / "collector-config" / "otelcol.yaml"
JAEGER_CONFIG = REPO / "collector-config" / "jaeger.yaml"
HEALTH_TIMEOUT = 30.0
LOG_TAIL = 12_000  # characters of a process log shown in an error or a failed test's report

_T = TypeVar("_T")


_reserved_ports: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now, never handed out twice in this test session."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _reserved_ports:
            _reserved_ports.add(port)
            return port
    raise RuntimeError("no free port found")


def wait_until(predicate: Callable[[], _T], timeout: float = 30.0, interval: float = 0.1,
               message: str | Callable[[], str] = "condition") -> _T:
    """Call ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, ValueError, KeyError, AssertionError) as exc:  # not ready yet
            last_exc = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            suffix = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}{suffix}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP error statuses are returned, connection errors raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class ProcessStartError(RuntimeError):
    """A binary exited or did not become healthy; the message holds its output."""


# ------------------------------------------------------------------------------------------- processes


@dataclass
class ManagedProcess:
    """A binary run with its own environment, working directory and log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    log_path: Path
    health_url: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def output(self, tail: int | None = None) -> str:
        """The captured stdout+stderr of every start so far (the last ``tail`` characters)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return text[-tail:] if tail else text

    def start(self, timeout: float = HEALTH_TIMEOUT) -> None:
        """Start the binary and wait until ``health_url`` answers 200."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ProcessStartError(f"{self.name} exited with status {rc} before it became healthy; "
                                        f"output:\n{self.output(LOG_TAIL)}")
            try:
                status, body = http_get(self.health_url, timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        self.kill()
        raise ProcessStartError(f"{self.name} not healthy at {self.health_url} after {timeout:.0f} s "
                                f"(last: {last}); output:\n{self.output(LOG_TAIL)}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful shutdown: queues persisted, files closed), SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL: the crash case, nothing is flushed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode

    def restart(self, timeout: float = HEALTH_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)


@dataclass
class JaegerProcess(ManagedProcess):
    """Jaeger v2 with in-memory storage (collector-config/jaeger.yaml)."""

    otlp_grpc_address: str = ""   # "127.0.0.1:PORT", what an OTLP exporter's endpoint setting takes
    otlp_grpc_endpoint: str = ""  # "http://127.0.0.1:PORT"
    otlp_http_endpoint: str = ""  # "http://127.0.0.1:PORT" (traces: + "/v1/traces")
    query_url: str = ""           # "http://127.0.0.1:PORT": UI, /api/traces, /api/v3/...

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace object of GET /api/traces/{id} (``data[0]``), or None while Jaeger does not have it."""
        status, body = http_get(f"{self.query_url}/api/traces/{trace_id}")
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"Jaeger answered {status}: {body[:500]!r}")
        data = json.loads(body).get("data") or []
        return data[0] if data else None


@dataclass
class CollectorProcess(ManagedProcess):
    """otelcol-decisiontrail with collector-config/otelcol.yaml (plus overlays)."""

    otlp_grpc_address: str = ""   # "127.0.0.1:PORT"
    otlp_grpc_endpoint: str = ""  # "http://127.0.0.1:PORT"
    otlp_http_endpoint: str = ""  # "http://127.0.0.1:PORT"
    audit_dir: Path = Path()
    queue_dir: Path = Path()       # file_storage/queue: otlp/jaeger's persistent queue
    audit_queue_dir: Path = Path()  # file_storage/audit: the audit queue (acknowledged, not yet written)
    audit_loopback_address: str = ""  # "127.0.0.1:PORT": otlp/audit -> otlp/audit-loopback inside the collector
    metrics_url: str = ""         # the collector's own Prometheus metrics
    jaeger_otlp_address: str = ""  # where otlp/jaeger sends
    jaeger: JaegerProcess | None = None

    @property
    def otlp_http_traces_url(self) -> str:
        return f"{self.otlp_http_endpoint}/v1/traces"

    @property
    def audit_file(self) -> Path:
        """The live audit file (rotated backups sit next to it)."""
        return self.audit_dir / "decisions.json"

    def audit_queue_files(self) -> list[Path]:
        """The bbolt file(s) of the audit queue (one per exporter using file_storage/audit)."""
        if not self.audit_queue_dir.is_dir():
            return []
        return sorted(f for f in self.audit_queue_dir.iterdir() if f.is_file() and not f.name.startswith("tempdb"))

    def metric(self, name: str, **labels: str) -> float | None:
        """A value of the collector's own Prometheus metrics (``name`` as exposed, e.g.
        ``otelcol_exporter_queue_size``): the sum of the samples whose labels include ``labels``
        (e.g. both transports of a receiver); None if there is none."""
        status, body = http_get(self.metrics_url)
        if status != 200:
            raise AssertionError(f"metrics endpoint answered {status}")
        values = []
        for line in body.decode().splitlines():
            if line.startswith((name + "{", name + " ")):
                head, _, value = line.rpartition(" ")
                if all(f'{k}="{v}"' in head for k, v in labels.items()):
                    values.append(float(value))
        return sum(values) if values else None

    @property
    def jaeger_query_url(self) -> str | None:
        return self.jaeger.query_url if self.jaeger is not None else None

    def audit_messages(self) -> list[dict[str, Any]]:
        """Every ExportTraceServiceRequest in the (uncompressed) audit files, oldest file first.
        A torn last line (the writer was killed mid-write) is skipped."""
        if not self.audit_dir.is_dir():
            return []
        files = sorted(self.audit_dir.glob("decisions*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        out: list[dict[str, Any]] = []
        for f in files:
            for line in f.read_bytes().splitlines():
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        return out

    def audit_spans(self) -> list[dict[str, Any]]:
        """Every span of the audit files as its OTLP JSON dict, with the enclosing ``resource`` and
        ``scope`` added under those keys."""
        spans = []
        for msg in self.audit_messages():
            for rs in msg.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        spans.append({**s, "resource": rs.get("resource", {}), "scope": ss.get("scope", {})})
        return spans


@dataclass(frozen=True)
class Binaries:
    collector: Path
    jaeger: Path
