from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

import decisiontrail
from decisiontrail import ConfigurationError, record_decision
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.exporters.otlp_grpc import FastOTLPGrpcExporter
from decisiontrail.exporters.otlp_http import FastOTLPHttpExporter
from decisiontrail.recorder import set_recorder
from decisiontrail.sampling import AuditSampler
from decisiontrail.store import iter_decisions


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "DECISIONTRAIL_PATH", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(var, raising=False)
    made = []
    yield made
    for cfg in made:
        cfg.shutdown()
    set_recorder(None)


def test_embedded_default_writes_to_the_given_path(tmp_path: Path, clean_env) -> None:  # type: ignore[no-untyped-def]
    cfg = decisiontrail.configure(path=tmp_path / "d", set_global=False)
    clean_env.append(cfg)
    assert isinstance(cfg.exporter, FileSpanExporter) and cfg.destination == str(tmp_path / "d")
    did = record_decision("m", 1, 2)
    cfg.force_flush()
    assert [d.decision_id for d in iter_decisions(tmp_path / "d")] == [did]


def test_default_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DECISIONTRAIL_PATH", str(tmp_path / "env"))
    cfg = decisiontrail.configure(set_global=False)
    clean_env.append(cfg)
    assert cfg.destination == str(tmp_path / "env")


def test_otlp_endpoint_from_standard_environment(monkeypatch: pytest.MonkeyPatch, clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scoring")
    cfg = decisiontrail.configure(set_global=False)
    clean_env.append(cfg)
    assert isinstance(cfg.exporter, FastOTLPGrpcExporter) and cfg.destination == "http://127.0.0.1:4317"
    assert cfg.exporter.transport.target == "127.0.0.1:4317" and cfg.exporter.transport.insecure
    assert cfg.tracer_provider.resource.attributes["service.name"] == "scoring"
    assert isinstance(cfg.tracer_provider.sampler, AuditSampler)


def test_http_protocol_appends_the_traces_path(monkeypatch: pytest.MonkeyPatch, clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    cfg = decisiontrail.configure(endpoint="http://127.0.0.1:4318", set_global=False)
    clean_env.append(cfg)
    assert isinstance(cfg.exporter, FastOTLPHttpExporter) and cfg.exporter.endpoint == "http://127.0.0.1:4318/v1/traces"


def test_exporter_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=s3cret,x-tenant=a%20b")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    monkeypatch.setenv("DECISIONTRAIL_MAX_REQUEST_BYTES", "500000")
    cfg = decisiontrail.configure(endpoint="http://127.0.0.1:4318", protocol="http/json", set_global=False)
    clean_env.append(cfg)
    exporter = cfg.exporter
    assert isinstance(exporter, FastOTLPHttpExporter) and exporter.max_request_bytes == 500_000
    assert exporter.timeout == 3.0 and exporter.transport.headers["api-key"] == "s3cret"
    assert exporter.transport.headers["x-tenant"] == "a b"
    assert exporter.transport.content_type == "application/json"
    cfg2 = decisiontrail.configure(endpoint="http://127.0.0.1:4317", max_request_bytes=4096, set_global=False)
    clean_env.append(cfg2)
    assert cfg2.exporter.max_request_bytes == 4096  # type: ignore[attr-defined]


def test_the_sdk_exporters_on_request(monkeypatch: pytest.MonkeyPatch, clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DECISIONTRAIL_EXPORTER", "sdk")
    cfg = decisiontrail.configure(endpoint="http://127.0.0.1:4317", set_global=False)
    clean_env.append(cfg)
    assert isinstance(cfg.exporter, GrpcExporter)
    cfg = decisiontrail.configure(endpoint="http://127.0.0.1:4318", protocol="http/protobuf", set_global=False)
    clean_env.append(cfg)
    assert isinstance(cfg.exporter, HttpExporter)


def test_bad_arguments_raise(clean_env) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="protocol"):
        decisiontrail.configure(endpoint="http://x:1", protocol="carrier-pigeon", set_global=False)
    with pytest.raises(ConfigurationError, match="max_chars"):
        decisiontrail.configure(max_chars=3, set_global=False)
    assert issubclass(ConfigurationError, ValueError)


def test_bad_environment_values_warn_and_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture, clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DECISIONTRAIL_MAX_CHARS", "lots")
    monkeypatch.setenv("DECISIONTRAIL_FAIL_CLOSED", "perhaps")
    with caplog.at_level(logging.WARNING):
        cfg = decisiontrail.configure(path=tmp_path, set_global=False)
    clean_env.append(cfg)
    assert cfg.recorder.settings.max_chars == 8192 and cfg.recorder.settings.fail_closed is False
    assert "DECISIONTRAIL_MAX_CHARS" in caplog.text and "DECISIONTRAIL_FAIL_CLOSED" in caplog.text


def test_decisions_survive_a_sampler_that_drops_every_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            clean_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    cfg = decisiontrail.configure(path=tmp_path, set_global=False)
    clean_env.append(cfg)
    with cfg.tracer_provider.get_tracer("t").start_as_current_span("request") as req:
        assert not req.is_recording()
        did = record_decision("m", 1, 2)
    cfg.force_flush()
    (d,) = iter_decisions(tmp_path)
    assert d.decision_id == did and d.trace_id == format(req.get_span_context().trace_id, "032x")


def test_gc_freeze_moves_the_heap_out_of_later_collections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    gc.unfreeze()
    try:
        cfg = decisiontrail.configure(path=tmp_path / "a", set_global=False)
        cfg.shutdown()
        assert gc.get_freeze_count() == 0  # not by default
        cfg = decisiontrail.configure(path=tmp_path / "b", set_global=False, gc_freeze=True)
        cfg.shutdown()
        assert gc.get_freeze_count() > 1000  # the modules, the SDK, this test's objects
        gc.unfreeze()
        monkeypatch.setenv("DECISIONTRAIL_GC_FREEZE", "1")
        cfg = decisiontrail.configure(path=tmp_path / "c", set_global=False)
        cfg.shutdown()
        assert gc.get_freeze_count() > 1000
        gc.unfreeze()
        cfg = decisiontrail.configure(path=tmp_path / "d", set_global=False, gc_freeze=False)  # the argument wins
        cfg.shutdown()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
