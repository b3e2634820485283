"""Every shipped collector and Jaeger configuration passes the binaries' own `validate` command,
and the collector's audit path has the shape the no-loss argument relies on.

`validate` unmarshals the config, runs every component's Validate (the transform processor parses
its OTTL statements and compiles their regexes there) and checks the pipelines; it does not start
anything or bind ports. Jaeger v2 is a collector distribution, so it has the same command.
The structure tests read the YAML itself (with the overlays merged the way the collector merges
them: maps merged, lists replaced): what `validate` accepts but would lose decisions, e.g. a batch
processor in an audit pipeline or an audit queue without fsync.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from integration_support import COLLECTOR_CONFIG, JAEGER_CONFIG, REPO, Binaries

pytestmark = pytest.mark.integration

OVERLAYS = sorted((REPO / "collector-config" / "overlays").glob("*.yaml"))
AGENT_CONFIG = REPO / "collector-config" / "agent.yaml"
AGENT_LOADBALANCING = REPO / "collector-config" / "agent-loadbalancing.yaml"
GATEWAY_OVERLAY = REPO / "collector-config" / "gateway.yaml"
# The scale-out topology (docs/scale-out.md): each role is the list of files loaded, in order.
SCALE_OUT = {
    "agent-kafka": [AGENT_CONFIG],
    "agent-loadbalancing": [AGENT_CONFIG, AGENT_LOADBALANCING],
    "gateway-kafka": [COLLECTOR_CONFIG, GATEWAY_OVERLAY],
}


def _validate(binary: Path, configs: list[Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(binary), "validate", *(f"--config=file:{c}" for c in configs)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DT_", "JAEGER_"))}
    return subprocess.run(argv, cwd=REPO, env=clean | (env or {}), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


def test_there_is_something_to_validate() -> None:
    assert COLLECTOR_CONFIG.is_file() and JAEGER_CONFIG.is_file()
    assert OVERLAYS, "collector-config/overlays/ holds at least the debug overlay"


@pytest.mark.parametrize("env", [
    {},
    {"DT_AUDIT_COMPRESSION": "zstd"},
    {"DT_METRICS_LEVEL": "none"},
    {"DT_REDACT_DELETE_KEYS": "(?i)^(ssn|dob)$"},
    {"DT_QUEUE_DIR": "elsewhere/queue", "DT_AUDIT_QUEUE_DIR": "elsewhere/audit-queue",
     "DT_AUDIT_LOOPBACK_ENDPOINT": "127.0.0.1:24319"},
], ids=["defaults", "zstd", "no-metrics", "custom-delete-keys", "queue-dirs-and-loopback"])
def test_collector_config_validates(binaries: Binaries, env: dict[str, str]) -> None:
    result = _validate(binaries.collector, [COLLECTOR_CONFIG], env)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_collector_overlay_validates(binaries: Binaries, overlay: Path) -> None:
    result = _validate(binaries.collector, [COLLECTOR_CONFIG, overlay])
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("role", SCALE_OUT, ids=list(SCALE_OUT))
def test_scale_out_configs_validate(binaries: Binaries, role: str) -> None:
    result = _validate(binaries.collector, SCALE_OUT[role])
    assert result.returncode == 0, result.stdout
    several = _validate(binaries.collector, SCALE_OUT[role],
                        {"DT_KAFKA_BROKERS": "127.0.0.1:19092,127.0.0.1:29092",
                         "DT_GATEWAY_ENDPOINTS": "127.0.0.1:14317,127.0.0.1:24317"})
    assert several.returncode == 0, several.stdout


def test_scale_out_configs_open_with_their_role() -> None:
    for path in (AGENT_CONFIG, AGENT_LOADBALANCING, GATEWAY_OVERLAY):
        first = path.read_text().splitlines()[0]
        assert re.match(r"# (Agent|Gateway) .*(collector|variant)", first), f"{path.name}: {first}"


def test_collector_validate_catches_errors(binaries: Binaries, tmp_path: Path) -> None:
    """The check above means something: a broken OTTL regex and an unsupported option fail."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(COLLECTOR_CONFIG.read_text().replace("([.][A-Za-z0-9-]+)*", "([.][A-Za-z0-9-]+*", 1))
    result = _validate(binaries.collector, [broken])
    assert result.returncode != 0
    assert "regex" in result.stdout or "regexp" in result.stdout, result.stdout

    bad_compression = _validate(binaries.collector, [COLLECTOR_CONFIG], {"DT_AUDIT_COMPRESSION": "gzip"})
    assert bad_compression.returncode != 0
    assert "compression" in bad_compression.stdout


def test_jaeger_config_validates(binaries: Binaries) -> None:
    result = _validate(binaries.jaeger, [JAEGER_CONFIG])
    assert result.returncode == 0, result.stdout


def test_jaeger_validate_catches_errors(binaries: Binaries, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(JAEGER_CONFIG.read_text().replace("max_traces:", "max_tracez:", 1))
    result = _validate(binaries.jaeger, [broken])
    assert result.returncode != 0
    assert "max_tracez" in result.stdout, result.stdout


# ------------------------------------------------------------------------------------------ structure


def _merge(base: Any, overlay: Any) -> Any:
    """The collector's merge of several --config files: maps merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {k: _merge(base[k], v) if k in base else v for k, v in overlay.items()} | \
            {k: v for k, v in base.items() if k not in overlay}
    return overlay


def _load(*overlays: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    for o in overlays:
        config = _merge(config, yaml.safe_load(o.read_text()))
    return config


def _kind(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _default(value: str) -> str:
    """The default of a ``${env:VAR:-default}`` value (the value itself when it is a literal)."""
    m = re.fullmatch(r"\$\{env:\w+:-(.*)\}", value)
    return m.group(1) if m else value


@pytest.mark.parametrize("overlays", [[], *[[o] for o in OVERLAYS]], ids=["main", *[o.name for o in OVERLAYS]])
def test_audit_path_goes_through_an_fsynced_persistent_queue(overlays: list[Path]) -> None:
    """otlp -> traces/intake (redaction) -> forward/redacted -> traces/audit -> otlp/audit
    (persistent queue on an fsynced file_storage, retried forever, refusing rather than dropping when
    full) -> loopback -> traces/audit-write -> file/audit, and no batch processor on that path."""
    config = _load(*overlays)
    pipelines: dict[str, dict[str, list[str]]] = config["service"]["pipelines"]
    exporters, receivers, extensions = config["exporters"], config["receivers"], config["extensions"]

    # The writing side: the only pipeline that feeds file/audit, fed only by the loopback receiver.
    (write_name,) = [n for n, p in pipelines.items() if "file/audit" in p["exporters"]]
    write = pipelines[write_name]
    assert write["receivers"] == ["otlp/audit-loopback"], write
    assert write.get("processors", []) == [], "no processor between the audit queue and the file"
    assert write["exporters"] == ["file/audit"]
    loopback = receivers["otlp/audit-loopback"]["protocols"]
    assert set(loopback) == {"grpc"}, "the loopback receiver speaks gRPC only"
    loopback_endpoint = loopback["grpc"]["endpoint"]
    assert _default(loopback_endpoint).startswith("127.0.0.1:"), loopback_endpoint
    assert loopback["grpc"]["max_recv_msg_size_mib"] >= receivers["otlp"]["protocols"]["grpc"]["max_recv_msg_size_mib"]
    for name, p in pipelines.items():
        if name != write_name:
            assert "otlp/audit-loopback" not in p["receivers"], f"{name} must not receive the loopback traffic"

    # The intake side: every request through the memory limiter and the redaction, once, then
    # through the forward connector (synchronous: the audit pipeline's answer reaches the sender) to
    # the audit pipeline, which keeps the spans with decisions and puts them into the audit queue.
    audit = [n for n, p in pipelines.items() if "filter/audit" in p.get("processors", [])]
    assert audit == ["traces/audit"], audit
    audit_pipeline = pipelines["traces/audit"]
    assert audit_pipeline["receivers"] == ["forward/redacted"]
    assert audit_pipeline["processors"] == ["filter/audit"]
    assert "otlp/audit" in audit_pipeline["exporters"] and "file/audit" not in audit_pipeline["exporters"]
    feeding = [n for n, p in pipelines.items() if "forward/redacted" in p["exporters"]]
    assert feeding == ["traces/intake"], feeding
    intake = pipelines["traces/intake"]
    assert intake["receivers"] == ["otlp"] and intake["exporters"] == ["forward/redacted"]
    assert intake["processors"] == ["memory_limiter", "transform/redact"]
    assert list(config["connectors"]) == ["forward/redacted"], "a forward connector: no queue, no batching"
    for name in (write_name, "traces/intake", "traces/audit"):
        assert not [c for c in pipelines[name].get("processors", []) if _kind(c) == "batch"], \
            f"{name}: a batch processor acknowledges before the write"

    queue_exporter = exporters["otlp/audit"]
    assert queue_exporter["endpoint"] == loopback_endpoint, "otlp/audit must send to the loopback receiver"
    assert queue_exporter["tls"]["insecure"] is True
    q = queue_exporter["sending_queue"]
    assert q["enabled"] is True
    assert q["block_on_overflow"] is False, "a full queue must answer the sender at once (retryable error)"
    assert "batch" not in q and not q.get("wait_for_result")
    assert isinstance(q["queue_size"], int) and q["queue_size"] > 0 and q["num_consumers"] >= 1
    storage = q["storage"]
    assert _kind(storage) == "file_storage" and storage in config["service"]["extensions"]
    store = extensions[storage]
    assert store["fsync"] is True, "acknowledged means on disk"
    assert store.get("recreate", False) is False
    assert "${env:DT_AUDIT_QUEUE_DIR" in store["directory"]
    other_dirs = [e["directory"] for n, e in extensions.items() if _kind(n) == "file_storage" and n != storage]
    assert store["directory"] not in other_dirs, "the audit queue has a directory of its own"
    retry = queue_exporter["retry_on_failure"]
    assert retry["enabled"] is True and retry["max_elapsed_time"] in ("0s", 0), "retry while queued, never drop"


def test_builder_manifest_lists_exactly_the_components_used() -> None:
    """collector-config/builder-config.yaml builds what otelcol.yaml, its overlays and the scale-out
    configs use, nothing else."""
    manifest = yaml.safe_load((REPO / "collector-config" / "builder-config.yaml").read_text())
    used: dict[str, set[str]] = {k: set() for k in ("receivers", "processors", "connectors", "exporters", "extensions")}
    configs = [COLLECTOR_CONFIG, *OVERLAYS, AGENT_CONFIG, AGENT_LOADBALANCING, GATEWAY_OVERLAY]
    for config in (yaml.safe_load(c.read_text()) for c in configs):
        for section in used:
            used[section] |= {_kind(c) for c in config.get(section) or {}}
    # Module path -> component type: the last path element minus its kind suffix (otlpreceiver -> otlp,
    # filestorage -> file_storage, healthcheckextension -> health_check, memorylimiterprocessor -> memory_limiter).
    aliases = {"filestorage": "file_storage", "healthcheck": "health_check", "memorylimiter": "memory_limiter"}
    for section, suffix in (("receivers", "receiver"), ("processors", "processor"), ("connectors", "connector"),
                            ("exporters", "exporter"), ("extensions", "extension")):
        built = set()
        for entry in manifest.get(section) or []:
            name = entry["gomod"].split()[0].rsplit("/", 1)[1].removesuffix(suffix)
            built.add(aliases.get(name, name))
        assert built == used[section], f"{section}: built {sorted(built)}, used {sorted(used[section])}"


def _load_files(files: list[Path]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for f in files:
        config = _merge(config, yaml.safe_load(f.read_text()))
    return config


def _persistent_fsynced_queue(config: dict[str, Any], exporter: dict[str, Any]) -> None:
    q = exporter["sending_queue"]
    assert q["enabled"] is True and q["block_on_overflow"] is False and "batch" not in q
    store = config["extensions"][q["storage"]]
    assert store["fsync"] is True and store.get("recreate", False) is False
    assert q["storage"] in config["service"]["extensions"]
    retry = exporter["retry_on_failure"]
    assert retry["enabled"] is True and retry["max_elapsed_time"] in ("0s", 0), "retry while queued, never drop"


@pytest.mark.parametrize("role", ["agent-kafka", "agent-loadbalancing"])
def test_agent_acknowledges_only_what_is_in_its_fsynced_queue(role: str) -> None:
    """The agent: OTLP -> memory limiter -> exporters with persistent fsynced queues, no batch
    processor (it would acknowledge before the queue); the audit spans through filter/audit; Kafka
    acknowledged by all replicas, the traces topic keyed by trace id; the load balancer routing by
    trace id, its failures reaching the persistent queue, each span sent once."""
    config = _load_files(SCALE_OUT[role])
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces/audit", "traces"}
    assert pipelines["traces/audit"]["processors"] == ["memory_limiter", "filter/audit"]
    for pipeline in pipelines.values():
        assert pipeline["receivers"] == ["otlp"] and pipeline["processors"][0] == "memory_limiter"
        assert not [c for c in pipeline["processors"] if _kind(c) == "batch"]
        (name,) = pipeline["exporters"]
        _persistent_fsynced_queue(config, config["exporters"][name])
    if role == "agent-kafka":
        audit, traces = (config["exporters"][pipelines[p]["exporters"][0]] for p in ("traces/audit", "traces"))
        for exporter in (audit, traces):
            assert exporter["traces"]["encoding"] == "otlp_proto" and exporter["producer"]["required_acks"] == -1
        assert traces["partition_traces_by_id"] is True, "whole traces per partition, for trace-affine gateways"
        assert audit["partition_traces_by_id"] is False, "one message per request on the audit path"
        assert audit["traces"]["topic"] != traces["traces"]["topic"]
    else:
        assert {p["exporters"][0] for p in pipelines.values()} == {"loadbalancing"}
        exporter = config["exporters"]["loadbalancing"]
        assert exporter["routing_key"] == "traceID"
        backend = exporter["protocol"]["otlp"]
        assert backend["sending_queue"]["enabled"] is False and backend["retry_on_failure"]["enabled"] is False, \
            "a per-gateway in-memory queue would acknowledge before the persistent one"
        # each span once: the traces pipeline drops exactly what traces/audit keeps
        keep = config["processors"]["filter/audit"]["traces"]["span"]
        drop = config["processors"]["filter/not-audit"]["traces"]["span"]
        assert pipelines["traces"]["processors"] == ["memory_limiter", "filter/not-audit"]
        assert [c.replace("== nil and", "!= nil or").replace("== nil", "!= nil") for c in keep] == drop


def test_gateway_is_otelcol_reading_kafka_at_least_once() -> None:
    """The gateway overlay only swaps the intake: the audit topic into traces/intake (redacted, then
    forwarded to traces/audit) and the traces topic into traces/jaeger, which then redacts for
    itself; both with at-least-once marking; the rest exactly otelcol.yaml's."""
    base, gateway = _load(), _load_files(SCALE_OUT["gateway-kafka"])
    agent = _load_files(SCALE_OUT["agent-kafka"])["exporters"]
    intake = {"traces/intake": ("kafka/audit", "kafka/audit"), "traces/jaeger": ("kafka/traces", "kafka/traces")}
    for pipeline, (receiver, exporter) in intake.items():
        kafka = gateway["receivers"][receiver]
        assert gateway["service"]["pipelines"][pipeline]["receivers"] == [receiver]
        assert kafka["message_marking"] == {"after": True, "on_error": False}
        assert kafka["traces"]["encoding"] == "otlp_proto" and kafka["initial_offset"] == "earliest"
        assert kafka["error_backoff"]["enabled"] is True and kafka["error_backoff"]["max_elapsed_time"] in ("0s", 0), \
            "with a time limit a refused message stops its partition for good"
        assert kafka["traces"]["topic"] == agent[exporter]["traces"]["topic"] and kafka["brokers"] == agent[exporter]["brokers"]
    assert gateway["receivers"]["kafka/audit"]["group_id"] != gateway["receivers"]["kafka/traces"]["group_id"]
    jaeger = gateway["service"]["pipelines"]["traces/jaeger"]
    assert jaeger["processors"] == ["memory_limiter", "transform/redact", *base["service"]["pipelines"]["traces/jaeger"]["processors"]], \
        "the traces topic is not redacted upstream: the gateway's Jaeger pipeline does it"
    for name, pipeline in gateway["service"]["pipelines"].items():
        expected = base["service"]["pipelines"][name]
        changed = ("receivers", "processors") if name == "traces/jaeger" else ("receivers",)
        assert {k: v for k, v in pipeline.items() if k not in changed} == \
            {k: v for k, v in expected.items() if k not in changed}, name
    assert gateway["service"]["pipelines"]["traces/audit-write"] == base["service"]["pipelines"]["traces/audit-write"]
    assert gateway["exporters"] == base["exporters"] and gateway["extensions"] == base["extensions"]
