"""The ``opentelemetry-instrument`` configurator: audit sampler, no-loss processor, embedded fallback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from decisiontrail.recorder import recording as recorder_module
from decisiontrail.autoconfig import ProcessorFactory
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.recorder import Recorder
from decisiontrail.store.reader import iter_decisions

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

SCRIPT = textwrap.dedent("""
    import json, sys
    from opentelemetry import trace
    from decisiontrail import record_decision

    tracer = trace.get_tracer("app")
    ids = []
    for i in range(40):
        with tracer.start_as_current_span("POST /score"):
            ids.append(record_decision("credit", {"i": i}, i % 2, version="3"))
    provider = trace.get_tracer_provider()
    open(sys.argv[1], "w").write(json.dumps({"ids": ids, "sampler": type(provider.sampler).__name__,
                      "processors": [type(p).__name__ for p in provider._active_span_processor._span_processors]}))
""")


def run_instrumented(tmp_path: Path, **env: str) -> dict[str, object]:
    import json

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DECISIONTRAIL_"))}
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    result = tmp_path / "result.json"
    out = subprocess.run([str(INSTRUMENT), sys.executable, str(script), str(result)], env=clean | env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(result.read_text()), stderr=out.stderr)


def test_zero_code_process_keeps_unsampled_decisions_in_the_embedded_store(tmp_path: Path) -> None:
    result = run_instrumented(
        tmp_path, OTEL_PYTHON_CONFIGURATOR="decisiontrail", OTEL_TRACES_SAMPLER="always_off",
        OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
        DECISIONTRAIL_PATH=str(tmp_path / "store"))
    assert result["sampler"] == "AuditSampler"
    assert result["processors"] == ["DecisionSpanProcessor"]
    assert "no traces exporter configured" in str(result["stderr"])
    stored = {d.decision_id: d for d in iter_decisions(tmp_path / "store")}
    assert set(stored) == set(result["ids"])  # type: ignore[arg-type]
    assert sorted(d.attributes["decision.chain.seq"] for d in stored.values()) == list(range(1, 41))
    assert {d.model_version for d in stored.values()} == {"3"}


def test_with_the_stock_configurator_the_stock_processor_is_used_and_a_warning_says_so(tmp_path: Path) -> None:
    result = run_instrumented(
        tmp_path, OTEL_PYTHON_CONFIGURATOR="configurator", OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    assert "DecisionSpanProcessor" not in result["processors"]  # type: ignore[operator]
    assert "OTEL_PYTHON_CONFIGURATOR=decisiontrail" in str(result["stderr"])


def test_each_exporter_gets_its_own_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONTRAIL_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")
    factory = ProcessorFactory()
    first, second = factory(FileSpanExporter(tmp_path / "a")), factory(InMemorySpanExporter())
    try:
        assert first.spool is not None and second.spool is not None
        assert first.spool.directory == tmp_path / "spool"
        assert second.spool.directory == tmp_path / "spool" / "InMemorySpanExporter"
        assert first.max_export_batch_size == second.max_export_batch_size == 64
        assert first.prepare is not None and first.prepare is not second.prepare  # a chain per exporter
    finally:
        first.shutdown()
        second.shutdown()


@pytest.mark.parametrize("choice", ["", "sdk"])
def test_the_sdk_otlp_exporters_become_decisiontrails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       choice: str) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    from decisiontrail.exporters.otlp_grpc import FastOTLPGrpcExporter
    from decisiontrail.exporters.otlp_http import FastOTLPHttpExporter

    monkeypatch.setenv("DECISIONTRAIL_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("DECISIONTRAIL_EXPORTER", choice)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4999")
    factory = ProcessorFactory()
    grpc, http = factory(Grpc()), factory(Http())
    try:
        if choice == "sdk":
            assert isinstance(grpc.exporter, Grpc) and isinstance(http.exporter, Http)
        else:
            assert isinstance(grpc.exporter, FastOTLPGrpcExporter) and grpc.exporter.transport.target == "127.0.0.1:4999"
            assert isinstance(http.exporter, FastOTLPHttpExporter)
            assert http.exporter.endpoint == "http://127.0.0.1:4999/v1/traces"
        assert http.spool is not None and http.spool.directory == tmp_path / "spool" / "OTLPSpanExporter"
    finally:
        grpc.shutdown()
        http.shutdown()


def test_a_provider_without_the_no_loss_processor_is_reported_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(recorder_module, "_warned_provider", False)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    with caplog.at_level(logging.WARNING, logger="decisiontrail.recorder"):
        Recorder(tracer_provider=provider)
        Recorder(tracer_provider=provider)
    assert [r.message.count("no DecisionSpanProcessor") for r in caplog.records] == [1]
    provider.shutdown()


def test_zero_code_process_signs_and_anchors_its_checkpoints(tmp_path: Path) -> None:
    from decisiontrail.cli import main
    from decisiontrail.signing import keygen

    files, key_id = keygen(tmp_path / "keys")
    run_instrumented(
        tmp_path, OTEL_PYTHON_CONFIGURATOR="decisiontrail", OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", DECISIONTRAIL_PATH=str(tmp_path / "store"),
        DECISIONTRAIL_SIGNING_KEY=str(files[0]), DECISIONTRAIL_ANCHORS=str(tmp_path / "anchors"),
        DECISIONTRAIL_CHECKPOINT_EVERY="10")
    assert main(["verify", "--data", str(tmp_path / "store"), "--public-key", str(files[1]),
                 "--anchors", str(tmp_path / "anchors")]) == 0
    assert len(list((tmp_path / "anchors").rglob("*.note"))) >= 1
