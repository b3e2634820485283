"""Static checks of docker-compose.yml (no Docker needed): it parses, every image is pinned to the
version in collector-config/versions.env, every bind-mounted host path exists in the repository and
the endpoints the services are told to use fit together."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
VERSIONS = REPO / "collector-config" / "versions.env"

# image repository -> variable of versions.env that pins it
IMAGE_PINS = {
    "otel/opentelemetry-collector-contrib": "OTELCOL_IMAGE_VERSION",
    "jaegertracing/jaeger": "JAEGER_IMAGE_VERSION",
    "busybox": "BUSYBOX_IMAGE_VERSION",
    "apache/kafka": "KAFKA_IMAGE_VERSION",
}
SCALE_OUT = "scale-out"  # the profile of the agent -> Kafka -> gateways topology


def _versions() -> dict[str, str]:
    out = {}
    for line in VERSIONS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(type, source, target) of each volume entry, short or long syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            kind, source, target = v["type"], v.get("source", ""), v["target"]
        out.append((kind, source, target))
    return out


def test_services_present(compose: dict[str, Any]) -> None:
    assert {"collector", "jaeger", "loan-service"} <= set(compose["services"])
    default = {n for n, s in compose["services"].items() if not s.get("profiles")}
    assert default == {"collector-data-init", "collector", "jaeger", "loan-service"}, \
        "plain `docker compose up` starts the single-collector stack only"


def test_images_pinned_to_versions_env(compose: dict[str, Any]) -> None:
    versions = _versions()
    for name, service in compose["services"].items():
        if "build" in service:
            continue  # built here: test_built_services_come_from_examples
        image = service.get("image")
        assert image, f"service {name} has no image"
        repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image} has no tag"
        assert "@" not in image or re.fullmatch(r".+@sha256:[0-9a-f]{64}", image)
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a release (x.y.z)"
        assert repo in IMAGE_PINS, f"{name}: add {repo} to versions.env and IMAGE_PINS"
        assert versions.get(IMAGE_PINS[repo]) == tag, \
            f"{name}: {image} but versions.env says {IMAGE_PINS[repo]}={versions.get(IMAGE_PINS[repo])}"


def test_mounted_host_paths_exist_and_volumes_declared(compose: dict[str, Any]) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in compose["services"].items():
        for kind, source, target in _mounts(service):
            assert PurePosixPath(target).is_absolute(), f"{name}: mount target {target} must be absolute"
            if kind == "bind":
                assert not source.startswith(("/", "~")), f"{name}: {source} is a path of one machine"
                assert (REPO / source).exists(), f"{name}: mounted {source} does not exist in the repository"
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path maps to through a bind mount."""
    p = PurePosixPath(container_path)
    for kind, source, target in _mounts(service):
        if kind == "bind" and (p == PurePosixPath(target) or PurePosixPath(target) in p.parents):
            return REPO / source / p.relative_to(target)
    return None


def test_config_files_come_from_collector_config(compose: dict[str, Any]) -> None:
    """The containers load the very files the native binaries and the tests use."""
    expected = {"collector": "otelcol.yaml", "jaeger": "jaeger.yaml"}
    for name, config_name in expected.items():
        service = compose["services"][name]
        configs = [a.split("=", 1)[1] for a in service["command"] if a.startswith("--config=")]
        assert configs, f"{name}: no --config in command"
        for c in configs:
            host = _host_path(service, c.removeprefix("file:"))
            assert host is not None and host.is_file(), f"{name}: {c} is not a mounted repository file"
            assert host.resolve().parent.is_relative_to((REPO / "collector-config").resolve())
        assert _host_path(service, configs[0].removeprefix("file:")) == REPO / "collector-config" / config_name


def test_endpoints_fit_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    col, jae = services["collector"]["environment"], services["jaeger"]["environment"]
    internal = {"DT_JAEGER_OTLP_ENDPOINT", "DT_AUDIT_LOOPBACK_ENDPOINT"}  # where the collector sends/loops
    for env in (col, jae):
        for key, value in env.items():
            if key.endswith("_ENDPOINT") and key not in internal:
                assert str(value).startswith("0.0.0.0:"), f"{key}={value}: must listen on all interfaces"
    # The audit queue's loopback hop stays inside the container (default 127.0.0.1:14319), unpublished.
    loopback = str(col.get("DT_AUDIT_LOOPBACK_ENDPOINT", "127.0.0.1:14319"))
    assert loopback.startswith("127.0.0.1:"), f"DT_AUDIT_LOOPBACK_ENDPOINT={loopback} must stay on loopback"
    assert not any(str(p).rsplit(":", 1)[-1] == loopback.rpartition(":")[2] for p in services["collector"]["ports"])
    host, _, port = col["DT_JAEGER_OTLP_ENDPOINT"].rpartition(":")
    assert host == "jaeger" and host in services
    assert jae["JAEGER_OTLP_GRPC_ENDPOINT"].rpartition(":")[2] == port
    published = {str(p).rsplit(":", 1)[-1] for p in services["collector"]["ports"]}
    assert {col["DT_OTLP_GRPC_ENDPOINT"].rpartition(":")[2], col["DT_OTLP_HTTP_ENDPOINT"].rpartition(":")[2]} <= published
    assert any(str(p).endswith(":16686") for p in services["jaeger"]["ports"])
    for var in ("DT_AUDIT_DIR", "DT_AUDIT_QUEUE_DIR", "DT_QUEUE_DIR"):
        directory = PurePosixPath(col[var])
        assert any(kind == "volume" and (PurePosixPath(t) in directory.parents or PurePosixPath(t) == directory)
                   for kind, _, t in _mounts(services["collector"])), f"{var}: must be on a named volume"


def test_init_container_prepares_the_collector_directories(compose: dict[str, Any]) -> None:
    """The one-shot init container creates every directory the collector writes (audit files, both
    queues) on the shared volume and hands them to the collector's uid."""
    init, col = compose["services"]["collector-data-init"], compose["services"]["collector"]
    (script,) = [a for a in init["command"] if "mkdir" in a]
    (mount,) = [t for kind, src, t in _mounts(col) if kind == "volume"]
    (init_mount,) = [t for kind, src, t in _mounts(init) if kind == "volume"]
    for var in ("DT_AUDIT_DIR", "DT_AUDIT_QUEUE_DIR", "DT_QUEUE_DIR"):
        relative = PurePosixPath(col["environment"][var]).relative_to(mount)
        assert str(PurePosixPath(init_mount) / relative) in script, f"{var}: not created by the init container"
    assert "chown -R 10001:10001" in script


def test_ports_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for p in service.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"{name}: {p} would be reachable from the network"


def test_built_services_come_from_examples(compose: dict[str, Any]) -> None:
    """A service built here is an example of the repository, from a pinned base image, sending to the
    collector of the stack with decisiontrail's no-loss configurator and its spool on a volume."""
    built = {n: s for n, s in compose["services"].items() if "build" in s}
    assert set(built) == {"loan-service"}
    service = built["loan-service"]
    dockerfile = REPO / service["build"]["context"] / service["build"]["dockerfile"]
    assert dockerfile.is_file() and dockerfile.parent.is_relative_to(REPO / "examples")
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M)
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), f"{base}: base image not pinned to a release"
    env = service["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].removeprefix("http://").rpartition(":")[0] == "collector"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].rpartition(":")[2] == \
        compose["services"]["collector"]["environment"]["DT_OTLP_GRPC_ENDPOINT"].rpartition(":")[2]
    assert env["OTEL_PYTHON_CONFIGURATOR"] == "decisiontrail"
    assert any(kind == "volume" and target == env["DECISIONTRAIL_SPOOL_DIR"] for kind, _, target in _mounts(service))


# ------------------------------------------------------------------------------- profile scale-out


def _scale_out(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if SCALE_OUT in (s.get("profiles") or [])}


def _configs(service: dict[str, Any]) -> list[Path | None]:
    return [_host_path(service, a.split("=", 1)[1]) for a in service["command"] if a.startswith("--config=")]


def test_scale_out_profile_has_the_topology(compose: dict[str, Any]) -> None:
    """A broker, the topic made once, one agent on agent.yaml and gateways on otelcol.yaml +
    gateway.yaml, all loading the repository's files; no more gateways than partitions."""
    services = _scale_out(compose)
    cc = REPO / "collector-config"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert _configs(services["agent"]) == [cc / "agent.yaml"]
    gateways = {n: s for n, s in services.items() if n.startswith("gateway-")}
    assert len(gateways) >= 2
    for name, gw in gateways.items():
        assert _configs(gw) == [cc / "otelcol.yaml", cc / "gateway.yaml"], name
    init = " ".join(services["kafka-init"]["command"]).split()
    partitions = int(init[init.index("--partitions") + 1])
    assert len(gateways) <= partitions, "a gateway without a partition would idle"
    assert services["agent"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_scale_out_endpoints_fit_together(compose: dict[str, Any]) -> None:
    services = _scale_out(compose)
    kafka = services["kafka"]["environment"]
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split("//", 1)[1]
    assert advertised.rpartition(":")[0] == "kafka", "clients reach the broker by its service name"
    assert advertised.rpartition(":")[2] in kafka["KAFKA_LISTENERS"]
    init = " ".join(services["kafka-init"]["command"]).split()
    topics = [t.rstrip(";") for t in init[init.index("topic") + 2:init.index("do")]]  # for topic in A B; do
    assert init[init.index("--topic") + 1] == "$$topic", "compose turns $$ into $ for the shell"
    assert init[init.index("--bootstrap-server") + 1] == advertised
    gateways = [s for n, s in services.items() if n.startswith("gateway-")]
    for service in [services["agent"], *gateways]:
        env = service["environment"]
        assert env["DT_KAFKA_BROKERS"] == advertised
        assert [env["DT_KAFKA_AUDIT_TOPIC"], env["DT_KAFKA_TRACES_TOPIC"]] == topics
    for gw in gateways:
        env = gw["environment"]
        assert env["DT_JAEGER_OTLP_ENDPOINT"].rpartition(":")[0] == "jaeger"
        assert env["DT_KAFKA_GROUP"] == gateways[0]["environment"]["DT_KAFKA_GROUP"], "one consumer group"
    # The load-balancing variant's list names the gateways on their OTLP port.
    lb = services["agent"]["environment"]["DT_GATEWAY_ENDPOINTS"].split(",")
    assert sorted(e.rpartition(":")[0] for e in lb) == sorted(n for n in services if n.startswith("gateway-"))
    assert all(e.rpartition(":")[2] == gateways[0]["environment"]["DT_OTLP_GRPC_ENDPOINT"].rpartition(":")[2]
               for e in lb)
    assert int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) >= 16777216, "agent.yaml produces messages up to 16 MiB"


def test_scale_out_state_on_named_volumes_prepared_by_init(compose: dict[str, Any]) -> None:
    """Each collector's queue (and each gateway's audit files) on a volume of its own, created and
    handed to the collector's uid by the init container, as for the single collector."""
    services = _scale_out(compose)
    (script,) = [a for a in services["scale-out-data-init"]["command"] if "mkdir" in a]
    init_mounts = {src: t for kind, src, t in _mounts(services["scale-out-data-init"]) if kind == "volume"}
    seen: set[str] = set()
    for name, service in services.items():
        if not name.startswith(("agent", "gateway-")):
            continue
        (volume, mount) = [(src, t) for kind, src, t in _mounts(service) if kind == "volume"][0]
        assert volume not in seen, f"{name} shares its volume {volume}"
        seen.add(volume)
        variables = ["DT_AGENT_QUEUE_DIR"] if name == "agent" else ["DT_AUDIT_DIR", "DT_AUDIT_QUEUE_DIR", "DT_QUEUE_DIR"]
        for var in variables:
            relative = PurePosixPath(service["environment"][var]).relative_to(mount)
            assert str(PurePosixPath(init_mounts[volume]) / relative) in script, f"{name} {var}: not created"
        assert f"{init_mounts[volume]}" in script.split("chown -R 10001:10001", 1)[1].split("&&")[0]
    assert services["kafka"]["volumes"][0].split(":")[0] in init_mounts
