"""Scale-out throughput: decisions/s through agent -> Kafka -> 2 gateways into the audit files,
against the single-collector path, in one run.

    python benchmarks/bench_scaleout.py [--n 20000] [--producers 2] [--rounds 1]

Builds (cached) the collector, resolves (cached) the Kafka jars and starts everything on free
loopback ports in a temporary directory, as the integration tests do (their process helpers in
tests/integration are reused): a Kafka broker (KRaft, a topic of 2 partitions), an agent
(agent.yaml: audit spans to an audit topic, all spans keyed by trace id to a traces topic, each of 2
partitions), two gateways (otelcol.yaml + gateway.yaml) and, for comparison, one collector
(otelcol.yaml). Each round runs ``--producers`` processes that record n decisions between them, as
fast as they go, each decision in a request span of its own (one trace each: one message each on the
traces topic, the least favourable case), first to the single collector, then to the agent.

Per path: decisions/s end to end (from "go" until the last decision is readable in the audit
files); for the scale-out path also when the producers had every decision acknowledged (by the
agent, i.e. in its persistent queue) and when the agent had produced every audit span to Kafka (its
``otelcol_exporter_sent_spans{exporter="kafka/audit"}`` metric), so the stage that holds the others back shows; and the CPU
seconds each process spent per 1000 decisions (from /proc), which say where the work goes on a
machine whose cores are all in use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from integration_support import ManagedProcess, free_port, http_get, wait_until  # noqa: E402
from kafka_support import FETCH_SCRIPT, KafkaBroker, new_broker  # noqa: E402

from decisiontrail.store import iter_decisions  # noqa: E402

BIN = REPO / ".cache" / "bin" / "otelcol-decisiontrail"
CONFIGS = REPO / "collector-config"
TICK = 0.2

PRODUCER = textwrap.dedent("""
    import json, sys, time
    import decisiontrail
    from decisiontrail import record_decision

    n, name = int(sys.argv[1]), sys.argv[2]
    cfg = decisiontrail.configure(service_name=name)  # OTLP endpoint and spool from the environment
    tracer = cfg.tracer_provider.get_tracer("bench")
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    for i in range(n):
        with tracer.start_as_current_span("POST /score"):
            record_decision("bench", {"i": i, "income": 52000, "debt_ratio": 0.31}, {"p": 0.1},
                            label="approve", score=0.1)
    assert cfg.drain(600_000)
    print("drained", flush=True)
    cfg.shutdown()
""")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its waited-for children) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / 100.0  # clock ticks (USER_HZ = 100)


@dataclass
class Stack:
    work: Path
    procs: dict[str, ManagedProcess] = field(default_factory=dict)

    def collector(self, name: str, configs: list[Path], env: dict[str, str]) -> tuple[ManagedProcess, dict[str, str]]:
        grpc, http, health, metrics, loopback = (free_port() for _ in range(5))
        workdir = self.work / name
        full = {"DT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}", "DT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
                "DT_HEALTH_ENDPOINT": f"127.0.0.1:{health}", "DT_METRICS_PORT": str(metrics),
                "DT_AUDIT_DIR": str(workdir / "audit"), "DT_QUEUE_DIR": str(workdir / "queue"),
                "DT_AGENT_QUEUE_DIR": str(workdir / "agent-queue"),
                "DT_AUDIT_LOOPBACK_ENDPOINT": f"127.0.0.1:{loopback}",
                "DT_JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{free_port()}"} | env
        p = ManagedProcess(name=name, argv=[str(BIN), *(f"--config=file:{c}" for c in configs)],
                           env=_clean_env() | full, workdir=workdir, log_path=self.work / f"{name}.log",
                           health_url=f"http://127.0.0.1:{health}/")
        p.start()
        self.procs[name] = p
        return p, full

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop(30)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DT_", "DECISIONTRAIL_"))}


def metric(port: str, name: str, **labels: str) -> float:
    _, body = http_get(f"http://127.0.0.1:{port}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rpartition(" ")[2])
    return total


def stored(dirs: list[Path]) -> int:
    present = [d for d in dirs if d.is_dir()]
    return len({d.decision_id for d in iter_decisions(present)}) if present else 0


@dataclass
class Result:
    path: str
    n: int
    end_to_end: float
    acknowledged: float
    in_kafka: float | None
    cpu: dict[str, float]

    def line(self) -> str:
        rates = f"end to end {self.n / self.end_to_end:,.0f}/s, acknowledged {self.n / self.acknowledged:,.0f}/s"
        if self.in_kafka is not None:
            rates += f", in Kafka {self.n / self.in_kafka:,.0f}/s"
        cpu = ", ".join(f"{k} {v / self.n * 1000:.2f}" for k, v in self.cpu.items())
        return f"{self.path:<34} {rates}\n{'':<34} CPU s per 1000 decisions: {cpu}"


def run_path(path: str, endpoint: str, n: int, producers: int, dirs: list[Path], watched: dict[str, int],
             work: Path, agent_metrics_port: str | None = None) -> Result:
    share = n // producers
    env = _clean_env() | {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    procs = []
    for i in range(producers):
        spool = work / f"spool-{uuid.uuid4().hex[:6]}"
        procs.append(subprocess.Popen([sys.executable, "-c", PRODUCER, str(share), f"bench-{i}"],
                                      env=env | {"DECISIONTRAIL_SPOOL_DIR": str(spool)},
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    producer_cpu = {p.pid: cpu_seconds(p.pid) for p in procs}
    sent0 = metric(agent_metrics_port, "otelcol_exporter_sent_spans", exporter="kafka/audit") if agent_metrics_port else 0.0
    total = share * producers
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    acked = in_kafka = None
    drained: set[int] = set()
    last_cpu = dict(producer_cpu)
    while True:
        for p in procs:
            if p.pid not in drained:
                try:
                    last_cpu[p.pid] = cpu_seconds(p.pid)
                except OSError:
                    pass
        if acked is None and all(p.poll() is not None for p in procs):
            acked = time.perf_counter() - t0
        if agent_metrics_port and in_kafka is None and \
                metric(agent_metrics_port, "otelcol_exporter_sent_spans", exporter="kafka/audit") - sent0 >= total:
            in_kafka = time.perf_counter() - t0
        if stored(dirs) >= total and acked is not None and (in_kafka is not None or not agent_metrics_port):
            break
        if time.perf_counter() - t0 > 900:
            sys.exit(f"{path}: only {stored(dirs)} of {total} decisions arrived")
        time.sleep(TICK)
    end = time.perf_counter() - t0
    for p in procs:
        assert p.wait(60) == 0
    cpu = {"producers": sum(last_cpu[pid] - producer_cpu[pid] for pid in producer_cpu)}
    cpu |= {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
    return Result(path, total, end, acked, in_kafka, cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    subprocess.run(["bash", str(REPO / "scripts" / "build-binaries.sh")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["bash", str(FETCH_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    stack = Stack(work)
    broker: KafkaBroker = new_broker(work / "broker", work / "kafka.log", _clean_env())
    try:
        broker.start()
        group = "bench-gateways"
        kafka = {"DT_KAFKA_BROKERS": broker.bootstrap, "DT_KAFKA_AUDIT_TOPIC": "bench_audit",
                 "DT_KAFKA_TRACES_TOPIC": "bench_traces", "DT_KAFKA_GROUP": group}
        for topic in ("bench_audit", "bench_traces"):
            broker.create_topic(topic, 2)
        single, single_env = stack.collector("single", [CONFIGS / "otelcol.yaml"], {})
        gateways = [stack.collector(f"gateway-{i}", [CONFIGS / "otelcol.yaml", CONFIGS / "gateway.yaml"], kafka)
                    for i in (1, 2)]
        wait_until(lambda: broker.group_partitions(group) == [1, 1], timeout=120, message="both gateways assigned")
        agent, agent_env = stack.collector("agent", [CONFIGS / "agent.yaml"], kafka)
        assert single.pid and agent.pid and broker.pid
        results: dict[str, list[Result]] = {"single": [], "scale-out": []}
        for r in range(args.rounds):
            results["single"].append(run_path(
                "single collector", f"http://{single_env['DT_OTLP_GRPC_ENDPOINT']}", args.n,
                args.producers, [Path(single_env["DT_AUDIT_DIR"])], {"collector": single.pid}, work))
            results["scale-out"].append(run_path(
                "agent -> Kafka -> 2 gateways", f"http://{agent_env['DT_OTLP_GRPC_ENDPOINT']}", args.n,
                args.producers, [Path(e["DT_AUDIT_DIR"]) for _, e in gateways],
                {"agent": agent.pid, "kafka": broker.pid} | {g.name: g.pid for g, _ in gateways if g.pid},
                work, agent_env["DT_METRICS_PORT"]))
        for rs in results.values():
            for res in rs:
                print(res.line())
        single_rate = statistics.median(r.n / r.end_to_end for r in results["single"])
        scale_rate = statistics.median(r.n / r.end_to_end for r in results["scale-out"])
        print(f"scale-out / single, end to end: {scale_rate / single_rate:.2f}x "
              f"({args.producers} producer processes, {args.n} decisions per path and round, "
              f"{args.rounds} round(s); shared machine: compare ratios, not absolute rates)")
    finally:
        stack.stop()
        broker.stop(30)


if __name__ == "__main__":
    main()
