"""Every shipped collector and Jaeger configuration passes the binaries' own `validate` command.

`validate` unmarshals the config, runs every component's Validate (the transform processor parses
its OTTL statements and compiles their regexes there) and checks the pipelines; it does not start
anything or bind ports. Jaeger v2 is a collector distribution, so it has the same command.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from integration_support import COLLECTOR_CONFIG, JAEGER_CONFIG, REPO, Binaries

pytestmark = pytest.mark.integration

OVERLAYS = sorted((REPO / "collector-config" / "overlays").glob("*.yaml"))


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
], ids=["defaults", "zstd", "no-metrics", "custom-delete-keys"])
def test_collector_config_validates(binaries: Binaries, env: dict[str, str]) -> None:
    result = _validate(binaries.collector, [COLLECTOR_CONFIG], env)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_collector_overlay_validates(binaries: Binaries, overlay: Path) -> None:
    result = _validate(binaries.collector, [COLLECTOR_CONFIG, overlay])
    assert result.returncode == 0, result.stdout


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
