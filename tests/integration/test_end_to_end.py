"""decisiontrail → OTLP (gRPC and HTTP) → the real collector → audit files and Jaeger, read back
with the package's own reader and CLI."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from integration_support import CollectorProcess, wait_until
from opentelemetry.trace import SpanKind

import decisiontrail
from decisiontrail import audited, record_decision
from decisiontrail.conventions import DECISION_EVENT
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.store import iter_decisions


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(params=["grpc", "http/protobuf"])
def sent(request: pytest.FixtureRequest, collector: CollectorProcess) -> Iterator[dict]:  # type: ignore[type-arg]
    """Decisions recorded over one OTLP protocol inside request spans, flushed to the collector."""
    protocol = request.param
    endpoint = collector.otlp_grpc_endpoint if protocol == "grpc" else collector.otlp_http_endpoint
    cfg = decisiontrail.configure(endpoint=endpoint, protocol=protocol, service_name="e2e-loans",
                                  set_global=False, redact_keys=["ssn"])
    tracer = cfg.tracer_provider.get_tracer("e2e")

    @audited(model_name="loan-audited", model_version="7", label=lambda r: r["decision"])
    def decide(application: dict) -> dict:  # type: ignore[type-arg]
        return {"decision": "approve" if application["income"] > 50_000 else "deny"}

    ids, traces = [], {}
    try:
        for i in range(10):
            with tracer.start_as_current_span("POST /loans", kind=SpanKind.SERVER) as req:
                with tracer.start_as_current_span("SELECT applicant"):
                    pass
                did = record_decision("loan", {"income": 40_000 + 2_000 * i, "ssn": "123-45-6789"},
                                      {"approved": i % 2 == 0}, version="2", label=str(i % 2 == 0), score=i / 10)
                audited_id = decide({"income": 40_000 + 2_000 * i})
                traces[did] = format(req.get_span_context().trace_id, "032x")
                ids.append(did)
        with tracer.start_as_current_span("POST /batch"):
            first = get_recorder().record_batch("loan-batch", np.arange(600.0).reshape(300, 2), np.arange(300) % 2)
        assert cfg.force_flush(), "the OTLP export did not finish"
        yield {"collector": collector, "ids": ids, "traces": traces, "batch_first": first, "protocol": protocol}
    finally:
        cfg.shutdown()
        set_recorder(None)
    assert audited_id


def test_every_decision_arrives_exactly_once_with_its_attributes(sent: dict) -> None:  # type: ignore[type-arg]
    collector: CollectorProcess = sent["collector"]
    expected = 10 + 10 + 300  # record_decision, @audited, one batch of 300 rows
    got = wait_until(lambda: (d := list(iter_decisions(collector.audit_dir, dedup=False))) and len(d) >= expected and d,
                     timeout=30, message="all decisions in the audit files")
    counts = collections.Counter(d.decision_id for d in got)
    assert len(counts) == expected and set(counts.values()) == {1}
    by_id = {d.decision_id: d for d in got}
    for did in sent["ids"]:
        d = by_id[did]
        assert (d.model_name, d.model_version, d.service_name) == ("loan", "2", "e2e-loans")
        assert d.trace_id == sent["traces"][did]
        assert d.input["ssn"] == "[REDACTED]" and "123-45-6789" not in json.dumps(d.attributes)
    assert sum(d.model_name == "loan-batch" for d in got) == 300
    assert by_id[sent["batch_first"]].batch_index == 0
    # Only spans with decisions are in the audit store: the database span went to Jaeger alone.
    names = {s["name"] for s in collector.audit_spans()}
    assert "SELECT applicant" not in names and {"POST /loans", "predict loan-audited", "POST /batch"} <= names


def test_the_cli_reads_and_verifies_the_collector_files(sent: dict) -> None:  # type: ignore[type-arg]
    collector: CollectorProcess = sent["collector"]
    wait_until(lambda: len(list(iter_decisions(collector.audit_dir))) >= 320, timeout=30, message="decisions")
    q = cli("query", "--data", str(collector.audit_dir), "--model", "loan", "--format", "jsonl")
    assert q.returncode == 0, q.stderr
    rows = [json.loads(line) for line in q.stdout.splitlines()]
    assert sorted(r["decision_id"] for r in rows) == sorted(sent["ids"])
    v = cli("verify", "--data", str(collector.audit_dir))
    assert v.returncode == 0 and "1 chain(s), 320 decisions, 0 problem(s)" in v.stdout, v.stdout


def test_jaeger_has_the_request_trace_with_the_decision_event(sent: dict) -> None:  # type: ignore[type-arg]
    collector: CollectorProcess = sent["collector"]
    did = sent["ids"][3]
    trace_id = sent["traces"][did]
    trace = wait_until(lambda: (t := collector.jaeger.get_trace(trace_id)) and len(t["spans"]) >= 3 and t,  # type: ignore[union-attr]
                       timeout=30, message="the trace in Jaeger")
    names = {s["operationName"] for s in trace["spans"]}
    assert {"POST /loans", "SELECT applicant", "predict loan-audited"} <= names
    fields = [f for s in trace["spans"] for log in s.get("logs", []) for f in log["fields"]]
    assert {"key": "decision.id", "type": "string", "value": did} in fields
    assert any(f.get("value") == DECISION_EVENT for f in fields)

    shown = cli("show", did, "--jaeger", collector.jaeger_query_url)  # type: ignore[arg-type]
    assert shown.returncode == 0, shown.stderr
    assert f'"decision_id": "{did}"' in shown.stdout
    assert "- POST /loans" in shown.stdout and "SELECT applicant" in shown.stdout
