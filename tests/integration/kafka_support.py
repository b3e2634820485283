"""A real Apache Kafka broker (KRaft mode, one node that is broker and controller) for the scale-out
tests, run with Java from the jars scripts/fetch-kafka.sh resolved from Maven Central.

``KafkaBroker`` is a :class:`ManagedProcess`: ``start()`` formats its log directory the first time
(``kafka.tools.StorageTool format``), starts ``java -cp 'jars/*' kafka.Kafka server.properties`` on
its two loopback ports and waits for the log line that says the server is up; ``stop()`` (SIGTERM),
``kill()`` (SIGKILL) and ``start()`` again keep its ports, data and cluster id, so a restarted
broker has every message and committed offset it had.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from integration_support import LOG_TAIL, REPO, ManagedProcess, ProcessStartError, free_port

__all__ = ["KAFKA_DIR", "FETCH_SCRIPT", "KafkaBroker", "new_broker"]

FETCH_SCRIPT = REPO / "scripts" / "fetch-kafka.sh"
KAFKA_DIR = REPO / ".cache" / "kafka"  # link to the per-user cache: jars/, stamp
START_TIMEOUT = 90.0
STARTED = "Kafka Server started"  # kafka.server.KafkaRaftServer, once broker and controller serve


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what ``random-uuid`` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class KafkaBroker(ManagedProcess):
    """One KRaft node on 127.0.0.1: ``port`` for clients, ``controller_port`` for the quorum."""

    port: int = 0
    controller_port: int = 0
    cluster_id: str = ""
    java: str = "java"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def classpath(self) -> str:
        return str(KAFKA_DIR / "jars" / "*")

    @property
    def properties(self) -> Path:
        return self.workdir / "server.properties"

    def _write_properties(self) -> None:
        # One node, replication factor 1 everywhere (the internal offsets topic included), no delay
        # before the first consumer-group rebalance, topics created explicitly (create_topic), and
        # messages as large as the agents may produce (agent.yaml's DT_KAFKA_MAX_MESSAGE_BYTES).
        self.properties.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.workdir / 'data'}",
            "auto.create.topics.enable=false",
            "num.partitions=2",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "message.max.bytes=16777216",
            "replica.fetch.max.bytes=16777216",
            "",
        ]))

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (self.workdir / "data" / "meta.properties").exists():
            self._write_properties()
            fmt = subprocess.run([self.java, "-cp", self.classpath, "kafka.tools.StorageTool", "format",
                                  f"--cluster-id={self.cluster_id}",  # one joined argument: an id may start with "-"
                                  "--config", str(self.properties)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            if fmt.returncode != 0:
                raise ProcessStartError(f"formatting the KRaft storage failed:\n{fmt.stdout[-LOG_TAIL:]}")
        super().start(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        """Kafka has no HTTP health endpoint: wait for its "started" line in this start's log."""
        assert self.proc is not None
        marker = f"===== start #{self.starts}:"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ProcessStartError(f"{self.name} exited with status {rc} before it started; "
                                        f"output:\n{self.output(LOG_TAIL)}")
            if STARTED in self.output().rpartition(marker)[2]:
                return
            time.sleep(0.2)
        self.kill()
        raise ProcessStartError(f"{self.name} did not start in {timeout:.0f} s; output:\n{self.output(LOG_TAIL)}")

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create ``topic`` (replication factor 1) with the broker's own tool."""
        result = subprocess.run(
            [self.java, "-cp", self.classpath, "org.apache.kafka.tools.TopicCommand",
             "--bootstrap-server", self.bootstrap, "--create", "--topic", topic,
             "--partitions", str(partitions), "--replication-factor", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if result.returncode != 0 or f"Created topic {topic}" not in result.stdout:
            raise AssertionError(f"creating topic {topic} failed:\n{result.stdout[-LOG_TAIL:]}")

    def group_partitions(self, group: str) -> list[int]:
        """How many partitions each member of consumer ``group`` owns now (sorted; [] while it has
        no members)."""
        result = subprocess.run(
            [self.java, "-cp", self.classpath, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
             "--bootstrap-server", self.bootstrap, "--describe", "--group", group, "--members"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        rows = [line.split() for line in result.stdout.splitlines()]
        header = next((r for r in rows if r[:2] == ["GROUP", "CONSUMER-ID"]), None)
        if header is None:
            return []
        column = header.index("#PARTITIONS")
        return sorted(int(r[column]) for r in rows[rows.index(header) + 1:] if len(r) == len(header))


def new_broker(workdir: Path, log_path: Path, env: dict[str, str]) -> KafkaBroker:
    """A broker on two fresh loopback ports, its data in ``workdir`` (not started)."""
    # 512 MiB of heap is plenty for a test broker; the JVM default would be a quarter of the RAM.
    jvm = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
           "-Dorg.slf4j.simpleLogger.defaultLogLevel=info", "-Dorg.slf4j.simpleLogger.showDateTime=true",
           "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"]
    broker = KafkaBroker(name="kafka", argv=[], env=env, workdir=workdir, log_path=log_path, health_url="",
                         port=free_port(), controller_port=free_port(), cluster_id=_cluster_id())
    broker.argv = [broker.java, *jvm, "-cp", broker.classpath, "kafka.Kafka", str(broker.properties)]
    return broker
