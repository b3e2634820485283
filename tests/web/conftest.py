"""A small audit store for the page tests: ordinary decisions in request traces, and one whose
input is hostile markup."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import decisiontrail
from decisiontrail.recorder import set_recorder

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@dataclass
class WebStore:
    path: Path
    ids: list[str]
    hostile_id: str


def make_store(path: Path, n: int = 12, signing_key: Path | None = None) -> WebStore:
    cfg = decisiontrail.configure(path=path, set_global=False, service_name="loan-service", signing_key=signing_key)
    tracer = cfg.tracer_provider.get_tracer("tests.web")
    ids = []
    for i in range(n):
        with tracer.start_as_current_span("POST /loans"):
            with tracer.start_as_current_span("load features"):
                pass
            with tracer.start_as_current_span("predict loan-approval"):
                ids.append(decisiontrail.record_decision(
                    "loan-approval", inputs={"income": 40000 + 1000 * i, "applicant": f"a{i}"},
                    output={"approval_probability": i / n}, label="approve" if i % 3 else "deny",
                    score=i / n, version="1.4.2", reason_codes=["debt_ratio"] if i % 3 == 0 else None))
    with tracer.start_as_current_span("POST /loans"):
        hostile_id = decisiontrail.record_decision("loan-approval", inputs={"note": HOSTILE}, output=HOSTILE,
                                                   label=HOSTILE, score=0.5, version="1.4.2")
    assert cfg.drain(10_000)
    cfg.shutdown()
    set_recorder(None)
    return WebStore(path, ids, hostile_id)


@pytest.fixture
def web_store(tmp_path: Path) -> Iterator[WebStore]:
    yield make_store(tmp_path / "store")
