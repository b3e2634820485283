"""The native OTLP JSON encoder (native/src/json.rs) on the embedded default's files, OTLP/HTTP JSON
to the real collector and the spool: with the accelerator on, what is stored is what the Python path
stores, byte for byte, and the reader and ``verify`` read it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import decisiontrail_native  # scripts/test.sh installs it: its absence fails here, never skips
import pytest
from integration_support import CollectorProcess
from opentelemetry.sdk.trace import ReadableSpan
from test_fast_exporter import recorded_spans, stored_by_span

import decisiontrail
from decisiontrail.exporters import otlpjson
from decisiontrail.exporters.factory import otlp_exporter
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.native import use_native
from decisiontrail.recorder import set_recorder
from decisiontrail.spool import Spool
from decisiontrail.store import iter_decisions

DECISIONS = 40 + 50 + 300  # in recorded_spans


@pytest.fixture(scope="module")
def spans(tmp_path_factory: pytest.TempPathFactory) -> list[ReadableSpan]:
    use_native(False)
    return recorded_spans(tmp_path_factory.mktemp("record"))


@pytest.fixture
def native_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the spans the native encoder writes (encoders made after this fixture)."""
    calls = [0]
    for name in ("json_span_text", "json_span_bytes"):
        fn = getattr(decisiontrail_native, name)

        def counted(span: ReadableSpan, wire_flags: bool, fn: Any = fn) -> Any:
            out = fn(span, wire_flags)
            calls[0] += out is not None
            return out
        monkeypatch.setattr(decisiontrail_native, name, counted)
    monkeypatch.setattr(otlpjson, "_native_encoder", [])  # the shared writer is made again, counted
    yield calls
    use_native(None)
    set_recorder(None)


def verify(directory: Path) -> None:
    v = subprocess.run([sys.executable, "-m", "decisiontrail.cli", "verify", "--data", str(directory)],
                       capture_output=True, text=True, timeout=120)
    assert v.returncode == 0 and "0 problem(s)" in v.stdout, v.stdout + v.stderr


def write_files(directory: Path, spans: list[ReadableSpan], native: bool) -> bytes:
    use_native(native)
    exporter = FileSpanExporter(directory)
    for i in range(0, len(spans), 64):
        exporter.export(spans[i:i + 64])
    exporter.shutdown()
    return exporter.path.read_bytes()


def test_the_embedded_default_stores_what_the_python_path_stores(spans: list[ReadableSpan], tmp_path: Path,
                                                                  native_calls: list[int]) -> None:
    python = write_files(tmp_path / "python", spans, native=False)
    assert native_calls[0] == 0
    native = write_files(tmp_path / "native", spans, native=True)
    assert native_calls[0] == len(spans) and native == python
    assert len(list(iter_decisions(tmp_path / "native"))) == DECISIONS
    verify(tmp_path / "native")

    # and configure(path=...) end to end, chain and all, with the accelerator on
    cfg = decisiontrail.configure(path=tmp_path / "store", service_name="native-json", set_global=False,
                                  native=True)
    ids = [decisiontrail.record_decision("loan", {"i": i, "name": "Zoë ✓ \u2028\n"}, {"p": i / 3}, score=i / 7)
           for i in range(200)]
    assert cfg.drain(60_000)
    cfg.shutdown()
    assert native_calls[0] > len(spans)
    assert sorted(d.decision_id for d in iter_decisions(tmp_path / "store")) == sorted(ids)
    verify(tmp_path / "store")


def test_otlp_http_json_stores_what_the_python_path_stores(spans: list[ReadableSpan], native_calls: list[int],
                                                           collector_factory: Callable[..., CollectorProcess]) -> None:
    collector = collector_factory(jaeger=None)
    for native in (False, True):  # the Python path's copies first, so each pair is (Python, native)
        use_native(native)
        exporter = otlp_exporter("http/json", collector.otlp_http_endpoint, max_request_bytes=64 * 1024)
        assert exporter.encoder.native is native  # type: ignore[attr-defined]
        delivery = exporter.deliver(spans)  # type: ignore[attr-defined]
        exporter.shutdown()
        assert delivery.ok and len(delivery.delivered) == len(spans)
        stored_by_span(collector, len(spans) * (1 + native))
    assert native_calls[0] == len(spans)
    by_span = stored_by_span(collector, 2 * len(spans))
    assert len(by_span) == len(spans)
    for span_id, (from_python, from_native) in by_span.items():
        assert from_native == from_python, span_id
    verify(collector.audit_dir)


def test_a_spool_record_written_natively_replays(spans: list[ReadableSpan], tmp_path: Path, native_calls: list[int],
                                                 collector_factory: Callable[..., CollectorProcess],
                                                 configured: Callable[..., Any]) -> None:
    lines = {}
    for native in (False, True):
        use_native(native)
        spool = Spool(tmp_path / f"spool-{native}")
        spool.append(spans, decisions=DECISIONS)
        spool.close()
        (segment,) = spool.directory.glob("*.spool")
        lines[native] = segment.read_bytes()
    assert native_calls[0] == len(spans) and lines[True] == lines[False]

    collector = collector_factory(jaeger=None)
    cfg = configured(collector, spool_dir=tmp_path / "spool-True", native=True)  # the next process replays it
    assert cfg.drain(60_000)
    assert cfg.spool is not None and cfg.spool.segments() == []
    stored_by_span(collector, len(spans))
    assert len(list(iter_decisions(collector.audit_dir))) == DECISIONS
    verify(collector.audit_dir)
