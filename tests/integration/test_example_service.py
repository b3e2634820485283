"""The example loan service, unmodified, under ``opentelemetry-instrument``: every decision id it
returns is in the real collector's audit files with the response's trace id, and the trace is in Jaeger;
outcomes and reviews posted to it land in the same audit files, chained, and read back joined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from integration_support import REPO, CollectorProcess, ManagedProcess, free_port, wait_until

from decisiontrail.store.lifecycle import LifecycleRecord, iter_records
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
        "DECISIONTRAIL_FLASK_SUBJECT": "json:applicant_id|header:X-Applicant-Id",
        "DECISIONTRAIL_FLASK_KEYS": "loan_id=header:X-Loan-Id",
        "PORT": str(port),  # HOST left to its default: 127.0.0.1
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


def post(service: ManagedProcess, body: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
    url = service.health_url.replace("/health", "/loans")
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        payload = json.loads(resp.read())
        ids = resp.headers.get("decision-id", "")
        assert resp.headers.get("decision-count") == str(len(payload["decisions"])), service.output(4000)
    return Answer([i.strip() for i in ids.split(",") if i.strip()], payload["trace_id"], payload["decisions"])


def test_every_returned_decision_is_audited_with_its_trace(service: ManagedProcess,
                                                           collector: CollectorProcess) -> None:
    # The first is the README's curl request; the subject and loan id come from the request (zero code).
    answers = [post(service, a, {"X-Applicant-Id": f"A-{i}", "X-Loan-Id": f"L-{i}"})
               for i, a in enumerate(APPLICATIONS)]
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
        app_index = row if len(answer.decision_ids) > 1 else answers.index(answer)
        assert d.input == APPLICATIONS[app_index]
        # Probabilities named by class, full precision; the score is the probability of the label.
        assert set(d.output) == {"approve", "deny"} and d.score == d.output[d.label] >= 0.5
        assert round(d.output["approve"], 4) == answer.decisions[row]["approval_probability"]
        if len(answer.decision_ids) == 1:
            assert d.attributes["enduser.id"] == f"A-{app_index}"
            assert d.attributes["decision.key.loan_id"] == f"L-{app_index}"
        else:
            assert "enduser.id" not in d.attributes
        # Linked into the hash chain: exported by decisiontrail's processor, not the SDK's BatchSpanProcessor.
        assert isinstance(d.attributes.get("decision.chain.seq"), int), d.attributes

    cli = [sys.executable, "-m", "decisiontrail.cli"]
    verify = subprocess.run([*cli, "verify", "--data", str(collector.audit_dir)], capture_output=True, text=True)
    assert verify.returncode == 0 and "6 decisions" in verify.stdout and " 0 problem(s)" in verify.stdout, verify.stdout
    assert not any("decision.collector.redacted" in d.attributes for d in found.values())
    mine = subprocess.run([*cli, "query", "--data", str(collector.audit_dir), "--subject", "A-0", "--format", "jsonl"],
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                               if k != "DECISIONTRAIL_HASH_SECRET"})
    assert [json.loads(line)["decision_id"] for line in mine.stdout.splitlines()] == answers[0].decision_ids

    assert collector.jaeger is not None
    for answer in answers:
        trace = wait_until(lambda a=answer: (t := collector.jaeger.get_trace(a.trace_id))  # type: ignore[union-attr]
                           and len(t["spans"]) >= 2 and t, timeout=30, message=f"trace {answer.trace_id} in Jaeger")
        names = {s["operationName"] for s in trace["spans"]}
        assert {"POST /loans", "predict loan-approval"} <= names
        predict = next(s for s in trace["spans"] if s["operationName"] == "predict loan-approval")
        logged = {f["value"] for log in predict["logs"] for f in log["fields"] if f["key"] == "decision.id"}
        assert answer.decision_ids[0] in logged


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (Linux /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_no_decision_header_without_decisions_and_loopback_only_by_default(service: ManagedProcess) -> None:
    with urllib.request.urlopen(service.health_url, timeout=10) as resp:
        assert resp.status == 200 and resp.headers.get("decision-id") is None
    port = int(service.health_url.split(":")[2].split("/")[0])
    assert _listening_addresses(port) == {"0100007F"}  # HOST unset: 127.0.0.1, not 0.0.0.0 or ::


def call(service: ManagedProcess, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(service.health_url.replace("/health", path), data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_outcomes_and_reviews_over_http_reach_the_audit_files_chained(service: ManagedProcess,
                                                                      collector: CollectorProcess) -> None:
    answer = post(service, {"applications": APPLICATIONS[1:]})
    first, second = answer.decision_ids
    model_label = answer.decisions[0]["decision"]
    new_label = "deny" if model_label == "approve" else "approve"
    status, reviewed = call(service, f"/decisions/{first}/review",
                            {"action": "override", "label": new_label, "rationale": "income checked by phone",
                             "reviewer": "mallory"},  # a reviewer in the body is not who reviewed
                            {"X-Reviewer": "u-4711"})
    assert status == 201 and reviewed["decision_id"] == first, reviewed
    status, observed = call(service, f"/decisions/{first}/outcome",
                            {"outcome": "repaid", "source": "core-banking", "trace_id": answer.trace_id,
                             "span_id": "00f067aa0ba902b7"})
    assert status == 201, observed
    status, unknown = call(service, "/decisions/not-from-here/review", {"action": "annotate"}, {"X-Reviewer": "u-1"})
    assert status == 201
    # Bad calls: a clear answer, nothing recorded.
    assert call(service, f"/decisions/{second}/review", {"action": "confirm"})[0] == 401
    status, error = call(service, f"/decisions/{second}/review", {"action": "approve"}, {"X-Reviewer": "u-4711"})
    assert status == 400 and "must be one of confirm, override, escalate, annotate" in error["error"]
    assert call(service, f"/decisions/{second}/outcome", {"source": "x"})[0] == 400

    wanted = {reviewed["record_id"], observed["record_id"], unknown["record_id"]}

    def records() -> dict[str, LifecycleRecord] | None:
        found = {r.record_id: r for r in iter_records(collector.audit_dir)} if collector.audit_dir.is_dir() else {}
        return found if wanted <= set(found) else None

    found = wait_until(records, timeout=30, message=lambda: f"the records in the audit files; service log:\n"
                                                            f"{service.output(4000)}")
    assert len(found) == 3  # the bad calls recorded nothing
    review, outcome = found[reviewed["record_id"]], found[observed["record_id"]]
    assert review.decision_id == first and review.attributes["decision.review.reviewer"] == "u-4711"
    assert review.service_name == "loan-service" and isinstance(review.attributes["decision.chain.seq"], int)
    assert outcome.links == [(answer.trace_id, "00f067aa0ba902b7")]
    assert review.trace_id != answer.trace_id  # the review's own request trace, linked or not

    def joined() -> dict[str, Any] | None:
        p = cli("query", "--data", str(collector.audit_dir), "--format", "jsonl", "--reviewed")
        rows = [json.loads(line) for line in p.stdout.splitlines()]
        return rows[0] if rows and rows[0]["outcome"] == "repaid" else None

    row = wait_until(joined, timeout=30, message="the joined decision")
    assert row["decision_id"] == first and row["label"] == model_label and row["effective_label"] == new_label
    assert [r["rationale"] for r in row["reviews"]] == ["income checked by phone"]
    show = cli("show", "not-from-here", "--data", str(collector.audit_dir))
    assert "refers to a decision not found here" in show.stdout and "by u-1: annotate" in show.stdout
    decision = next(d for d in iter_decisions(collector.audit_dir) if d.decision_id == first)
    assert "decision.collector.redacted" not in decision.attributes, decision.attributes
    verify = cli("verify", "--data", str(collector.audit_dir))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "3 outcome/review records" in verify.stdout and ", 0 problem(s)" in verify.stdout
    # Someone who can write the audit files softens the review: verify says which record changed.
    text = collector.audit_file.read_text()
    assert "income checked by phone" in text  # (twice if the collector's queue replayed the request)
    collector.audit_file.write_text(text.replace("income checked by phone", "income not checked"))
    verify = cli("verify", "--data", str(collector.audit_dir))
    assert verify.returncode == 1 and f"(decision {first}): changed after it was recorded" in verify.stdout, verify.stdout
