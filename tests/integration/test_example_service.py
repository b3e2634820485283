"""The example loan service, unmodified, under ``opentelemetry-instrument``: every decision id it
returns is in the real collector's audit files with the response's trace id, and the trace is in Jaeger."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from integration_support import REPO, CollectorProcess, ManagedProcess, free_port, wait_until

from decisiontrail.store.reader import DecisionRecord, iter_decisions

APP = REPO / "examples" / "loan_service" / "app.py"
APPLICATIONS = [
    {"income": 52000, "debt_ratio": 0.31, "credit_history_years": 7, "loan_amount": 15000, "late_payments": 1},
    {"income": 21000, "debt_ratio": 0.62, "credit_history_years": 1, "loan_amount": 30000, "late_payments": 4},
    {"income": 98000, "debt_ratio": 0.12, "credit_history_years": 15, "loan_amount": 8000, "late_payments": 0},
]


@dataclass
class Answer:
    decision_ids: list[str]
    trace_id: str
    decisions: list[dict[str, Any]]


@pytest.fixture
def service(collector: CollectorProcess, tmp_path: Path) -> Iterator[ManagedProcess]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DECISIONTRAIL_"))} | {
        "OTEL_SERVICE_NAME": "loan-service",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_grpc_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, so the test polls briefly
        "OTEL_PYTHON_CONFIGURATOR": "decisiontrail",  # the no-loss processor and the audit sampler
        "DECISIONTRAIL_SPOOL_DIR": str(tmp_path / "spool"),
        "DECISIONTRAIL_MODEL_NAME": "loan-approval",
        "DECISIONTRAIL_MODEL_VERSION": "1",
        "LOAN_MODEL_PATH": str(tmp_path / "model" / "loan_model.joblib"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    proc = ManagedProcess(
        name="loan-service",
        argv=[str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(APP)],
        env=env, workdir=tmp_path / "service", log_path=tmp_path / "service.log",
        health_url=f"http://127.0.0.1:{port}/health",
    )
    proc.start(timeout=90)
    try:
        yield proc
    finally:
        proc.stop()


def post(service: ManagedProcess, body: dict[str, Any]) -> Answer:
    url = service.health_url.replace("/health", "/loans")
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        payload = json.loads(resp.read())
        ids = resp.headers.get("decision-id", "")
        assert resp.headers.get("decision-count") == str(len(payload["decisions"])), service.output(4000)
    return Answer([i.strip() for i in ids.split(",") if i.strip()], payload["trace_id"], payload["decisions"])


def test_every_returned_decision_is_audited_with_its_trace(service: ManagedProcess,
                                                           collector: CollectorProcess) -> None:
    answers = [post(service, a) for a in APPLICATIONS]
    answers.append(post(service, {"applications": APPLICATIONS}))
    assert [len(a.decision_ids) for a in answers] == [1, 1, 1, 3]
    expected = {i: a for a in answers for i in a.decision_ids}
    assert len(expected) == 6 and len({a.trace_id for a in answers}) == 4

    def audited() -> dict[str, DecisionRecord] | None:
        found = {d.decision_id: d for d in iter_decisions(collector.audit_dir) if d.decision_id in expected} \
            if collector.audit_dir.is_dir() else {}
        return found if len(found) == len(expected) else None

    found = wait_until(audited, timeout=30, message=lambda: f"the decisions in the audit files; service log:\n"
                                                            f"{service.output(4000)}")
    for did, answer in expected.items():
        d = found[did]
        assert d.trace_id == answer.trace_id
        assert (d.model_name, d.model_version, d.service_name) == ("loan-approval", "1", "loan-service")
        assert d.span_name == "predict loan-approval"
        row = answer.decision_ids.index(did)
        assert d.label == answer.decisions[row]["decision"]
        assert d.input == APPLICATIONS[row if len(answer.decision_ids) > 1 else answers.index(answer)]
        # Linked into the hash chain: exported by decisiontrail's processor, not the SDK's BatchSpanProcessor.
        assert isinstance(d.attributes.get("decision.chain.seq"), int), d.attributes

    assert collector.jaeger is not None
    for answer in answers:
        trace = wait_until(lambda a=answer: (t := collector.jaeger.get_trace(a.trace_id))  # type: ignore[union-attr]
                           and len(t["spans"]) >= 2 and t, timeout=30, message=f"trace {answer.trace_id} in Jaeger")
        names = {s["operationName"] for s in trace["spans"]}
        assert {"POST /loans", "predict loan-approval"} <= names
        predict = next(s for s in trace["spans"] if s["operationName"] == "predict loan-approval")
        logged = {f["value"] for log in predict["logs"] for f in log["fields"] if f["key"] == "decision.id"}
        assert answer.decision_ids[0] in logged


def test_a_request_without_decisions_has_no_decision_header(service: ManagedProcess) -> None:
    with urllib.request.urlopen(service.health_url, timeout=10) as resp:
        assert resp.status == 200 and resp.headers.get("decision-id") is None
