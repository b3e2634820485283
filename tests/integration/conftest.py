"""Fixtures for integration tests: the real collector and Jaeger binaries as subprocesses.

``binaries`` (session) builds them once with scripts/build-binaries.sh and fails the run if that
fails. ``jaeger`` and ``collector`` start one process each on free 127.0.0.1 ports with their own
directories under ``tmp_path``, wait until the health endpoint answers 200 and stop them at teardown.
``jaeger_factory`` / ``collector_factory`` start more, or ones with other settings (extra env, no
Jaeger, another base config such as agent.yaml, overlays). ``kafka_broker`` is a real Kafka broker
(KRaft, from the jars scripts/fetch-kafka.sh resolves) shared by the tests of a module. Every collector is a :class:`CollectorProcess`; fault tests use ``kill()`` (SIGKILL)
and ``start()`` again: ports and directories stay the same. When a test fails, the tail of each
process's log is added to its report.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from integration_support import (
    BIN_DIR,
    BUILD_SCRIPT,
    COLLECTOR_CONFIG,
    JAEGER_CONFIG,
    LOG_TAIL,
    REPO,
    Binaries,
    CollectorProcess,
    JaegerProcess,
    ManagedProcess,
    free_port,
    wait_until,
)

import decisiontrail
from decisiontrail import stats
from decisiontrail.config import Configuration
from decisiontrail.recorder import set_recorder
from kafka_support import FETCH_SCRIPT, KafkaBroker, new_broker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """Builds (or finds up to date) both binaries; a failed build fails the tests, it never skips them."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        pytest.fail(f"scripts/build-binaries.sh failed with status {result.returncode}:\n{result.stdout}",
                    pytrace=False)
    bins = Binaries(collector=BIN_DIR / "otelcol-decisiontrail", jaeger=BIN_DIR / "jaeger")
    for b in (bins.collector, bins.jaeger):
        if not os.access(b, os.X_OK):
            pytest.fail(f"scripts/build-binaries.sh succeeded but {b} is missing:\n{result.stdout}", pytrace=False)
    return bins


def _base_env() -> dict[str, str]:
    """The test's environment without anything that would redirect the binaries."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "DT_", "JAEGER_", "DECISIONTRAIL_"))}


_PROCS = pytest.StashKey[list[ManagedProcess]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report shows the tail of every process log it started."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for p in item.stash.get(_PROCS, []):
            report.sections.append((f"{p.name} log (tail)", p.output(LOG_TAIL)))
    return report


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """:func:`wait_until` for tests: ``wait_for(predicate, timeout=30, message="...")``."""
    return wait_until


@pytest.fixture
def jaeger_factory(binaries: Binaries, tmp_path: Path, request: pytest.FixtureRequest
                   ) -> Iterator[Callable[..., JaegerProcess]]:
    """``jaeger_factory(env=None, start=True)`` -> a :class:`JaegerProcess` on fresh ports."""
    started: list[JaegerProcess] = []

    def make(env: Mapping[str, str] | None = None, start: bool = True) -> JaegerProcess:
        n = len(started) + 1
        grpc, http, query, query_grpc, health = (free_port() for _ in range(5))
        workdir = tmp_path / f"jaeger-{n}"
        proc_env = _base_env() | {
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{query}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{query_grpc}",
            "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "JAEGER_METRICS_LEVEL": "none",
        } | dict(env or {})
        j = JaegerProcess(
            name=f"jaeger-{n}",
            argv=[str(binaries.jaeger), f"--config=file:{JAEGER_CONFIG}"],
            env=proc_env, workdir=workdir, log_path=tmp_path / f"jaeger-{n}.log",
            health_url=f"http://127.0.0.1:{health}/status",
            otlp_grpc_address=f"127.0.0.1:{grpc}", otlp_grpc_endpoint=f"http://127.0.0.1:{grpc}",
            otlp_http_endpoint=f"http://127.0.0.1:{http}", query_url=f"http://127.0.0.1:{query}",
        )
        started.append(j)
        request.node.stash.setdefault(_PROCS, []).append(j)
        if start:
            j.start()
        return j

    yield make
    for j in started:
        j.stop()


@pytest.fixture
def jaeger(jaeger_factory: Callable[..., JaegerProcess]) -> JaegerProcess:
    """A running Jaeger (in-memory storage) of this test alone."""
    return jaeger_factory()


@pytest.fixture
def collector_factory(binaries: Binaries, tmp_path: Path, request: pytest.FixtureRequest,
                      jaeger_factory: Callable[..., JaegerProcess]) -> Iterator[Callable[..., CollectorProcess]]:
    """``collector_factory(jaeger=None, env=None, overlays=(), start=True)`` -> a :class:`CollectorProcess`.

    ``jaeger``: a :class:`JaegerProcess` to send to, or None for an address where nothing listens
    (Jaeger down: batches wait in the persistent queue). ``config``: the base file (otelcol.yaml, or
    agent.yaml for an agent, whose queue is then set with ``DT_AGENT_QUEUE_DIR`` in ``env``). ``env`` overrides any variable (e.g.
    ``DT_AUDIT_COMPRESSION``); ``overlays`` are extra config files merged after otelcol.yaml
    (relative to the repository, or absolute, e.g. one a test wrote to ``tmp_path``). Each collector
    gets its own ports, including the internal audit loopback hop (``DT_AUDIT_LOOPBACK_ENDPOINT``),
    and its own directories; its audit queue is ``queue_dir / "audit"`` unless ``env`` sets
    ``DT_AUDIT_QUEUE_DIR`` (``env`` may also move ``DT_AUDIT_DIR`` / ``DT_QUEUE_DIR``).
    Collectors stop before any Jaeger of the test (this fixture depends on ``jaeger_factory``), so
    their shutdown can still flush to Jaeger.
    """
    started: list[CollectorProcess] = []

    def make(jaeger: JaegerProcess | None = None, env: Mapping[str, str] | None = None,
             overlays: Sequence[str | Path] = (), start: bool = True,
             config: Path = COLLECTOR_CONFIG) -> CollectorProcess:
        n = len(started) + 1
        grpc, http, health, metrics, loopback = (free_port() for _ in range(5))
        jaeger_address = jaeger.otlp_grpc_address if jaeger is not None else f"127.0.0.1:{free_port()}"
        workdir = tmp_path / f"collector-{n}"
        audit_dir, queue_dir = workdir / "audit", workdir / "queue"
        proc_env = _base_env() | {
            "DT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "DT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "DT_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "DT_METRICS_HOST": "127.0.0.1",
            "DT_METRICS_PORT": str(metrics),
            "DT_AUDIT_DIR": str(audit_dir),
            "DT_QUEUE_DIR": str(queue_dir),
            # DT_AUDIT_QUEUE_DIR is left to its default, queue_dir / "audit" (unless ``env`` sets it)
            "DT_AUDIT_LOOPBACK_ENDPOINT": f"127.0.0.1:{loopback}",
            "DT_JAEGER_OTLP_ENDPOINT": jaeger_address,
        } | dict(env or {})
        audit_dir, queue_dir = Path(proc_env["DT_AUDIT_DIR"]), Path(proc_env["DT_QUEUE_DIR"])  # as ``env`` set them
        audit_queue_dir = Path(proc_env.get("DT_AUDIT_QUEUE_DIR") or queue_dir / "audit")
        argv = [str(binaries.collector), f"--config=file:{config}"]
        argv += [f"--config=file:{Path(o) if Path(o).is_absolute() else REPO / o}" for o in overlays]
        c = CollectorProcess(
            name=f"collector-{n}", argv=argv, env=proc_env, workdir=workdir,
            log_path=tmp_path / f"collector-{n}.log", health_url=f"http://127.0.0.1:{health}/",
            otlp_grpc_address=f"127.0.0.1:{grpc}", otlp_grpc_endpoint=f"http://127.0.0.1:{grpc}",
            otlp_http_endpoint=f"http://127.0.0.1:{http}", audit_dir=audit_dir, queue_dir=queue_dir,
            audit_queue_dir=audit_queue_dir, audit_loopback_address=proc_env["DT_AUDIT_LOOPBACK_ENDPOINT"],
            metrics_url=f"http://127.0.0.1:{metrics}/metrics", jaeger_otlp_address=jaeger_address,
            jaeger=jaeger,
        )
        started.append(c)
        request.node.stash.setdefault(_PROCS, []).append(c)
        if start:
            c.start()
        return c

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def collector(collector_factory: Callable[..., CollectorProcess], jaeger: JaegerProcess) -> CollectorProcess:
    """A running collector of this test alone, sending to the ``jaeger`` fixture."""
    return collector_factory(jaeger=jaeger)


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               request: pytest.FixtureRequest) -> Iterator[Callable[..., Configuration]]:
    """``configured(endpoint, **configure_kwargs)``: decisiontrail configured (not as the global
    provider) against ``endpoint`` (a URL, or a collector for its OTLP gRPC endpoint), its spool in
    ``tmp_path/spool`` unless ``spool_dir`` says otherwise, the replay's backoff short (the test
    module's ``REPLAY_BACKOFF_MILLIS``, else 200 ms to 1 s; ``processor_options`` win) and the
    service named after the test module. The environment's OTEL_/DECISIONTRAIL_ settings are
    removed and the counters zeroed first; every configuration is shut down after the test."""
    for var in [v for v in os.environ if v.startswith(("OTEL_", "DECISIONTRAIL_"))]:
        monkeypatch.delenv(var)
    low, high = getattr(request.module, "REPLAY_BACKOFF_MILLIS", (200, 1000))
    service = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    made: list[Configuration] = []

    def make(endpoint: str | CollectorProcess, **kwargs: Any) -> Configuration:
        if isinstance(endpoint, CollectorProcess):
            endpoint = endpoint.otlp_grpc_endpoint
        options = {"replay_min_backoff_millis": low, "replay_max_backoff_millis": high} | kwargs.pop(
            "processor_options", {})
        cfg = decisiontrail.configure(endpoint=endpoint, spool_dir=kwargs.pop("spool_dir", tmp_path / "spool"),
                                      service_name=service, set_global=False, processor_options=options,
                                      **kwargs)
        made.append(cfg)
        return cfg

    stats.reset()
    yield make
    for cfg in made:
        cfg.shutdown()
    set_recorder(None)


@pytest.fixture(scope="session")
def kafka_jars() -> None:
    """Resolves (or finds cached) the broker's jars; a failure fails the tests, it never skips them."""
    result = subprocess.run(["bash", str(FETCH_SCRIPT)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        pytest.fail(f"scripts/fetch-kafka.sh failed with status {result.returncode}:\n{result.stdout}", pytrace=False)


@pytest.fixture(scope="module")
def kafka_broker_of_module(kafka_jars: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    work = tmp_path_factory.mktemp("kafka")
    broker = new_broker(work / "broker", work / "kafka.log", _base_env())
    broker.start()
    yield broker
    broker.stop(timeout=30)


@pytest.fixture
def kafka_broker(kafka_broker_of_module: KafkaBroker, request: pytest.FixtureRequest) -> KafkaBroker:
    """The module's broker, running (a test that stopped it has it started again); tests keep apart
    by topic and consumer group. Its log tail joins a failed test's report."""
    if not kafka_broker_of_module.running:
        kafka_broker_of_module.start()
    request.node.stash.setdefault(_PROCS, []).append(kafka_broker_of_module)
    return kafka_broker_of_module
