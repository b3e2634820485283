"""The scale-out topology with the real binaries on loopback: producing processes -> one agent
collector (agent.yaml) -> a real Kafka broker (KRaft; audit and traces topics of 2 partitions) -> two gateway
collectors (otelcol.yaml + gateway.yaml) -> their audit files; and the variant without Kafka, the
agent load-balancing straight to two plain collectors (agent-loadbalancing.yaml).

Each scenario runs 2 producer processes that record decisions at a steady pace (each decision in a
request span of its own, so in a trace of its own) while something fails: a gateway SIGKILLed and
restarted, the broker SIGKILLed and restarted, the agent SIGKILLed (with acknowledged spans only
in its persistent queue) and restarted, one of two load-balanced gateways killed. Then every decision
id the producers recorded must be in the union of the gateways' audit files after dedup, nothing
else, and ``decisiontrail verify`` over all gateways' directories must find every chain intact
(each producer's chain is split across the gateways by trace id). The broker is started once for the
module; each test has its own topics and consumer groups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from integration_support import REPO, CollectorProcess, JaegerProcess, wait_until
from kafka_support import KafkaBroker

from decisiontrail.store.reader import ReadStats, iter_decisions

AGENT_CONFIG = REPO / "collector-config" / "agent.yaml"
AGENT_LOADBALANCING = REPO / "collector-config" / "agent-loadbalancing.yaml"
GATEWAY_OVERLAY = REPO / "collector-config" / "gateway.yaml"
PARTITIONS = 2
PER_PRODUCER = 1500   # decisions per producing process, 2 processes per scenario
RATE = 300.0          # decisions/s per producer: a run lasts about 5 s, faults land mid-run

PRODUCER = textwrap.dedent("""
    import json, sys, time
    import decisiontrail
    from decisiontrail import record_decision, stats

    n, rate, ids_path, name = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
    cfg = decisiontrail.configure(service_name=name)  # OTLP endpoint and spool from the environment
    tracer = cfg.tracer_provider.get_tracer("producer")
    ids = []
    t0 = time.monotonic()
    for i in range(n):
        with tracer.start_as_current_span("POST /score"):  # a trace per decision: spread over partitions
            ids.append(record_decision("credit", {"applicant": i, "income": 1000 + i}, i % 2,
                                       label="deny" if i % 2 else "approve", score=(i % 100) / 100))
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    with open(ids_path, "w") as f:
        f.write("\\n".join(ids))
    drained = cfg.drain(240_000)
    print("stats", json.dumps(stats.snapshot() | {"drained": drained}), flush=True)
    cfg.shutdown()
""")


@dataclass
class Producers:
    """The producing processes of one scenario, started together."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    id_files: list[Path] = field(default_factory=list)

    def wait(self) -> list[str]:
        """Wait for every producer to record, drain (spool included) and exit; all their decision ids."""
        ids: list[str] = []
        for proc, id_file in zip(self.procs, self.id_files):
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out
            (line,) = [x for x in out.splitlines() if x.startswith("stats ")]
            counters = json.loads(line.split(" ", 1)[1])
            assert counters["drained"] and counters["lost"] == 0 and counters["unrecorded"] == 0, counters
            assert counters["recorded"] == PER_PRODUCER, counters
            ids += id_file.read_text().split()
        assert len(ids) == len(set(ids)) == len(self.procs) * PER_PRODUCER
        return ids


@pytest.fixture
def producers(tmp_path: Path) -> Iterator[Callable[[CollectorProcess], Producers]]:
    started: list[Producers] = []

    def start(agent: CollectorProcess, count: int = 2) -> Producers:
        group = Producers()
        for n in range(count):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DECISIONTRAIL_"))} | {
                "OTEL_EXPORTER_OTLP_ENDPOINT": agent.otlp_grpc_endpoint,
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "10",
                "DECISIONTRAIL_SPOOL_DIR": str(tmp_path / f"spool-{n}"),
            }
            id_file = tmp_path / f"ids-{n}"
            group.procs.append(subprocess.Popen(
                [sys.executable, "-c", PRODUCER, str(PER_PRODUCER), str(RATE), str(id_file), f"producer-{n}"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            group.id_files.append(id_file)
        started.append(group)
        return group

    yield start
    for group in started:
        for proc in group.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@dataclass
class Topology:
    agent: CollectorProcess
    gateways: list[CollectorProcess]
    broker: KafkaBroker | None = None
    group: str = ""

    @property
    def audit_dirs(self) -> list[Path]:
        return [g.audit_dir for g in self.gateways]


def _topics_and_group() -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"audit-{suffix}", f"traces-{suffix}", f"gateways-{suffix}"


@pytest.fixture
def kafka_topology(collector_factory: Callable[..., CollectorProcess], kafka_broker: KafkaBroker,
                   tmp_path: Path) -> Callable[..., Topology]:
    """``kafka_topology(gateways=2, jaeger=None)``: fresh audit and traces topics of 2 partitions each,
    the gateways in one consumer group per topic (each owning an audit partition before anything is
    produced) and one agent."""

    def make(gateways: int = 2, jaeger: JaegerProcess | None = None) -> Topology:
        audit, traces, group = _topics_and_group()
        for topic in (audit, traces):
            kafka_broker.create_topic(topic, PARTITIONS)
        kafka = {"DT_KAFKA_BROKERS": kafka_broker.bootstrap, "DT_KAFKA_AUDIT_TOPIC": audit,
                 "DT_KAFKA_TRACES_TOPIC": traces}
        gws = [collector_factory(jaeger=jaeger, overlays=[GATEWAY_OVERLAY],
                                 env=kafka | {"DT_KAFKA_GROUP": group, "DT_KAFKA_SESSION_TIMEOUT": "6s"})
               for _ in range(gateways)]
        wait_until(lambda: kafka_broker.group_partitions(group) == [1] * gateways if gateways == PARTITIONS
                   else sum(kafka_broker.group_partitions(group)) == PARTITIONS, timeout=60,
                   message=f"the {gateways} gateways sharing the {PARTITIONS} partitions")
        agent = collector_factory(config=AGENT_CONFIG, env=kafka | {"DT_AGENT_QUEUE_DIR": str(tmp_path / "agent-queue")})
        return Topology(agent=agent, gateways=gws, broker=kafka_broker, group=group)

    return make


def assert_every_decision_once(topology: Topology, sent: list[str], scenario: str) -> ReadStats:
    """Every sent decision in the union of the gateways' audit files (after dedup), nothing else, and
    every chain intact across the gateways."""
    wanted = set(sent)

    def written() -> list[Path]:
        # A gateway's audit directory exists once it has written something. After a broker restart one
        # gateway can rejoin the group late, its peer having taken both partitions meanwhile: it may
        # then hold nothing, which loses nothing (the union is what is asserted).
        return [p for p in topology.audit_dirs if p.is_dir()]

    wait_until(lambda: wanted <= {d.decision_id for d in iter_decisions(written())},
               timeout=120, message=lambda: f"[{scenario}] every sent decision in the gateways' audit files "
               f"({len(wanted - {d.decision_id for d in iter_decisions(written())})} missing)")
    dirs = written()
    read = ReadStats()
    stored = [d.decision_id for d in iter_decisions(dirs, read)]
    assert len(stored) == len(set(stored)), "the reader keeps one record per decision id"
    assert set(stored) == wanted, f"{len(set(stored) - wanted)} decisions nobody sent"
    per_gateway = [len({d.decision_id for d in iter_decisions(p)}) if p.is_dir() else 0 for p in topology.audit_dirs]
    verify = subprocess.run([sys.executable, "-m", "decisiontrail.cli", "verify",
                             *(a for p in dirs for a in ("--data", str(p)))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout
    assert f"{len(wanted)} decisions" in verify.stdout and " 0 problem(s)" in verify.stdout, verify.stdout
    print(f"\n[{scenario}] sent {len(sent)}, stored {len(stored)} unique (per gateway {per_gateway}), "
          f"duplicates removed {read.duplicates}; verify: {verify.stdout.strip().splitlines()[-1]}")
    return read


class Faults(threading.Thread):
    """``Faults(seconds, *steps)``: runs ``steps`` one after the other, ``seconds`` after it is
    created, while the run goes on; ``join_all()`` waits for them and raises what a step raised."""

    def __init__(self, seconds: float, *steps: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.seconds, self.steps = seconds, steps
        self.errors: list[BaseException] = []
        self.start()

    def run(self) -> None:
        time.sleep(self.seconds)
        try:
            for step in self.steps:
                step()
        except BaseException as exc:
            self.errors.append(exc)

    def join_all(self) -> None:
        self.join(300)
        assert not self.is_alive(), "the fault sequence did not finish"
        if self.errors:
            raise self.errors[0]


# ---------------------------------------------------------------------------------------- scenarios


def test_two_producers_one_agent_kafka_two_gateways(kafka_topology, producers, jaeger: JaegerProcess) -> None:  # type: ignore[no-untyped-def]
    topology = kafka_topology(jaeger=jaeger)
    sent = producers(topology.agent).wait()
    assert_every_decision_once(topology, sent, "2 producers -> agent -> kafka -> 2 gateways")
    # Partitioned by trace id and one partition per gateway: both gateways wrote part of the trail.
    assert all(any(iter_decisions(p)) for p in topology.audit_dirs), "a gateway got nothing"
    # The traces pipeline still reaches Jaeger from the gateways.
    some = next(iter_decisions(topology.audit_dirs))
    wait_until(lambda: jaeger.get_trace(some.trace_id), timeout=30, message="a decision's trace in Jaeger")


def test_gateway_sigkilled_mid_run_and_restarted(kafka_topology, producers) -> None:  # type: ignore[no-untyped-def]
    topology = kafka_topology()
    victim = topology.gateways[1]
    run = producers(topology.agent)
    fault = Faults(2.0, victim.kill, lambda: time.sleep(3.0), victim.start)
    sent = run.wait()
    fault.join_all()
    assert victim.starts == 2
    assert_every_decision_once(topology, sent, "gateway SIGKILL + restart")


def test_broker_restarted_mid_run(kafka_topology, producers) -> None:  # type: ignore[no-untyped-def]
    topology = kafka_topology()
    broker = topology.broker
    assert broker is not None
    starts = broker.starts
    run = producers(topology.agent)
    fault = Faults(1.5, broker.kill, lambda: time.sleep(4.0), broker.start)
    sent = run.wait()
    fault.join_all()
    assert broker.starts == starts + 1
    assert_every_decision_once(topology, sent, "broker SIGKILL + restart")


def test_agent_sigkilled_with_spans_only_in_its_queue_and_restarted(kafka_topology, producers) -> None:  # type: ignore[no-untyped-def]
    """The broker is down first, so the agent acknowledges spans it cannot produce: they exist only
    in its persistent queue when it is SIGKILLed. After the restart (broker back) they are produced."""
    topology = kafka_topology()
    agent, broker = topology.agent, topology.broker
    assert broker is not None
    queued: list[float] = []

    def queue_holds_spans() -> None:
        queued.append(wait_until(lambda: (agent.metric("otelcol_exporter_queue_size", exporter="kafka/audit") or 0) > 0,
                                 timeout=30, message="acknowledged spans waiting in the agent's queue"))

    run = producers(agent)
    fault = Faults(1.0, broker.stop, queue_holds_spans, agent.kill, lambda: time.sleep(1.0),
                  broker.start, agent.start)
    sent = run.wait()
    fault.join_all()
    assert agent.starts == 2 and queued and queued[0] > 0
    assert_every_decision_once(topology, sent, "agent SIGKILL with a full queue + restart")


def test_loadbalancing_agent_with_one_of_two_gateways_killed(collector_factory, producers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gateways = [collector_factory(jaeger=None) for _ in range(2)]  # otelcol.yaml: OTLP from the load balancer
    agent = collector_factory(config=AGENT_CONFIG, overlays=[AGENT_LOADBALANCING], env={
        "DT_AGENT_QUEUE_DIR": str(tmp_path / "agent-queue"),
        "DT_GATEWAY_ENDPOINTS": ",".join(g.otlp_grpc_address for g in gateways)})
    topology = Topology(agent=agent, gateways=gateways)
    victim = gateways[1]
    run = producers(agent)
    fault = Faults(2.0, victim.kill, lambda: time.sleep(3.0), victim.start)
    sent = run.wait()
    fault.join_all()
    assert victim.starts == 2
    assert_every_decision_once(topology, sent, "loadbalancing, 1 of 2 gateways SIGKILL + restart")
    assert all(any(iter_decisions(p)) for p in topology.audit_dirs), "routing by trace id uses both gateways"
