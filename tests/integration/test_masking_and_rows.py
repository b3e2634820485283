"""What an auditor reads back through the real collector: masking that never alters a number and
acts on JSON strings only (so realistic outputs still verify), private JSON keys masked, and every
row of a packed batch found through Jaeger."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from integration_support import CollectorProcess, JaegerProcess
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

import decisiontrail
from decisiontrail.config import Configuration
from decisiontrail.ids import offset_id
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.store.reader import iter_decisions

pytestmark = pytest.mark.integration

README_REQUEST = {"income": 52000, "debt_ratio": 0.31, "credit_history_years": 7, "loan_amount": 15000,
                  "late_payments": 1}
# Full-precision probabilities whose digits hold a card-like run (0.[2698161884810314], 0.[4111...]).
TRIGGERS = [0.7301838115189686, 0.2698161884810314, 0.4111111111111111, 0.5500000000000004]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "decisiontrail.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def recording(collector: CollectorProcess, tmp_path: Path) -> Iterator[Configuration]:
    cfg = decisiontrail.configure(endpoint=collector.otlp_grpc_endpoint, service_name="masking",
                                  set_global=False, spool_dir=tmp_path / "spool")
    try:
        yield cfg
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_full_precision_outputs_pass_the_collector_untouched_and_verify(
        collector: CollectorProcess, recording: Configuration, wait_for: Callable[..., Any]) -> None:
    rng = np.random.default_rng(14)
    p = rng.random(2000)
    proba = np.column_stack([p, 1 - p])
    sent: dict[str, Any] = {}
    for q in TRIGGERS:
        did = decisiontrail.record_decision("loan", README_REQUEST, {"approve": q, "deny": 1 - q},
                                            label="approve" if q >= 0.5 else "deny", score=max(q, 1 - q))
        sent[did] = {"approve": q, "deny": 1 - q}
    first = get_recorder().record_batch("loan-batch", rng.random((2000, 3)), proba,
                                        labels=np.where(p >= 0.5, "a", "b"), scores=np.maximum(p, 1 - p))
    assert recording.force_flush()
    total = len(TRIGGERS) + 2000
    got = wait_for(lambda: (d := {r.decision_id: r for r in iter_decisions(collector.audit_dir)})
                   and len(d) == total and d, timeout=60, message="every decision in the audit files")
    for did, output in sent.items():
        assert got[did].output == output and got[did].input == README_REQUEST
    for i in (0, 1, 999, 1999):
        assert got[offset_id(first, i)].output == proba[i].tolist()
    assert not [d for d in got.values() if "decision.collector.redacted" in d.attributes]
    v = cli("verify", "--data", str(collector.audit_dir))
    assert v.returncode == 0 and " 0 problem(s)" in v.stdout, v.stdout


def test_strings_and_private_keys_are_masked_numbers_never(collector_factory: Callable[..., CollectorProcess],
                                                          wait_for: Callable[..., Any]) -> None:
    collector = collector_factory(jaeger=None, env={"DT_REDACT_JSON_KEYS": "ssn|dob"})
    decision_id = str(uuid.uuid4())
    raw = {"ssn": "123-45-6789", "dob": 19800101, "ref": 4111111111111111, "p": 0.2698161884810314,
           "note": "card 5500-0000-0000-0004 ok, and 4111 1111 1111 1111", "quoted": "\"378282246310005\"",
           "mail": "write to alice@example.com", "tag": "a4111111111111111"}
    provider = TracerProvider(resource=Resource.create({"service.name": "masking-raw"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.otlp_grpc_endpoint,
                                                                     insecure=True)))
    with provider.get_tracer("decisiontrail").start_as_current_span("predict") as span:
        span.set_attribute("decision.count", 1)
        span.add_event("model.decision", {"model.name": "m", "decision.id": decision_id,
                                          "decision.input": json.dumps(raw, separators=(",", ":")),
                                          "decision.output": "[0.2698161884810314,0.7301838115189686]"})
    provider.shutdown()
    (d,) = wait_for(lambda: [r for r in iter_decisions(collector.audit_dir) if r.decision_id == decision_id],
                    timeout=30, message="the decision in the audit file")
    assert d.input == {"ssn": "[REDACTED]", "dob": "[REDACTED]", "ref": 4111111111111111, "p": 0.2698161884810314,
                       "note": "card [REDACTED] ok, and [REDACTED]", "quoted": "\"[REDACTED]\"",
                       "mail": "write to [REDACTED]", "tag": "a4111111111111111"}
    assert d.output == [0.2698161884810314, 0.7301838115189686]
    assert d.attributes["decision.collector.redacted"] == ["decision.input"]


def test_show_finds_every_row_of_a_packed_batch_in_jaeger(collector: CollectorProcess, jaeger: JaegerProcess,
                                                         recording: Configuration,
                                                         wait_for: Callable[..., Any]) -> None:
    tracer = recording.tracer_provider.get_tracer("rows")
    with tracer.start_as_current_span("POST /loans"):
        first = get_recorder().record_batch("loan-batch", [[1.0], [2.0], [3.0]], ["a", "b", "c"],
                                            labels=["a", "b", "c"])
    assert recording.force_flush()
    third = offset_id(first, 2)
    wait_for(lambda: cli("show", first, "--jaeger", jaeger.query_url).returncode == 0, timeout=30,
             message="the batch's trace in Jaeger")
    shown = cli("show", third, "--jaeger", jaeger.query_url)
    assert shown.returncode == 0, shown.stderr
    assert f'"decision_id": "{third}"' in shown.stdout and '"label": "c"' in shown.stdout
    assert f'"decision_id": "{first}"' not in shown.stdout
    assert "- POST /loans" in shown.stdout and "[3 decisions]" in shown.stdout  # one packed event, 3 rows


def test_each_kind_of_private_value_is_masked_alone_in_any_json_attribute(
        collector_factory: Callable[..., CollectorProcess], wait_for: Callable[..., Any]) -> None:
    """The masking statements run only on decisions where a cheap check finds something to mask
    (collector-config/otelcol.yaml): a card, an e-mail or a private key, alone in one attribute with
    the others clean, is still masked."""
    collector = collector_factory(jaeger=None, env={"DT_REDACT_JSON_KEYS": "ssn"})
    clean = '{"p":0.4111111111111111,"n":7}'
    cases = {  # attribute -> (stored, expected)
        "decision.explanation": ('{"why":"paid with 4111-1111-1111-1111."}', {"why": "paid with [REDACTED]."}),
        "decision.output": ('{"to":"bob@example.org"}', {"to": "[REDACTED]"}),
        "decision.input": ('{"SSN":"123-45-6789","p":0.2698161884810314}', {"SSN": "[REDACTED]",
                                                                           "p": 0.2698161884810314}),
    }
    ids = {name: str(uuid.uuid4()) for name in cases}
    provider = TracerProvider(resource=Resource.create({"service.name": "masking-alone"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.otlp_grpc_endpoint,
                                                                     insecure=True)))
    for name, (stored, _) in cases.items():
        attrs = {"model.name": "m", "decision.id": ids[name], "decision.input": clean, "decision.output": clean,
                 "decision.explanation": clean, name: stored}
        with provider.get_tracer("decisiontrail").start_as_current_span("predict") as span:
            span.set_attribute("decision.count", 1)
            span.add_event("model.decision", attrs)
    provider.shutdown()
    got = wait_for(lambda: (d := {r.decision_id: r for r in iter_decisions(collector.audit_dir)})
                   and len(d) == len(cases) and d, timeout=30, message="the decisions in the audit file")
    for name, (_, expected) in cases.items():
        d = got[ids[name]]
        assert d.attributes["decision.collector.redacted"] == [name]
        field = {"decision.input": d.input, "decision.output": d.output,
                 "decision.explanation": d.attributes["decision.explanation"]}
        value = field[name]
        assert (json.loads(value) if isinstance(value, str) else value) == expected
        for other in set(field) - {name}:
            v = field[other]
            assert (json.loads(v) if isinstance(v, str) else v) == json.loads(clean)
