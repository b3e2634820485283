"""Outcomes and reviews: recorded on their own audit spans, kept, chained, redacted, joined on read."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import decisiontrail
from decisiontrail import InvalidRecordError, record_decision, record_outcome, record_review, stats
from decisiontrail.chain import verify
from decisiontrail.conventions import OUTCOME_EVENT, REVIEW_EVENT
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.conventions import LifecycleAttributes as L
from decisiontrail.conventions import SpanAttributes as S
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.ids import offset_id
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.store.lifecycle import LifecycleIndex, iter_records
from decisiontrail.store.reader import iter_decisions, iter_spans

if TYPE_CHECKING:
    from tests.unit.conftest import Store


def chain_views(path: Path) -> list[dict[str, Any]]:
    views = {id(d.attributes): d.chain_view() for d in iter_decisions(path)}
    views |= {id(r.attributes): r.chain_view() for r in iter_records(path)}
    return list(views.values())


def test_records_go_on_their_own_audit_span_linked_to_the_decision(store: Store) -> None:
    with store.tracer.start_as_current_span("POST /decisions/x/review") as request:
        did = record_decision("loan", {"income": 52000}, {"decision": "deny"}, label="deny")
        rid = record_review(did, reviewer="alice", action="override", label="approve", rationale="income verified",
                            trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331")
    oid = record_outcome(did, "repaid", observed_at="2027-06-01T00:00:00Z", source="core-banking")
    spans = {s.name: s for s in store.spans()}
    review, outcome = spans["record review"], spans["record outcome"]
    assert review.parent_span_id == format(request.get_span_context().span_id, "016x")
    assert review.links == [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]
    assert outcome.links == []  # the decision's span context was not given
    for span, name, record_id in ((review, REVIEW_EVENT, rid), (outcome, OUTCOME_EVENT, oid)):
        assert span.attributes[S.AUDIT_RECORDS] == 1 and span.attributes[S.DECISION_AUDIT] is True
        assert S.DECISION_COUNT not in span.attributes  # not a decision
        [event] = span.events
        assert event["name"] == name
    records = {r.record_id: r for r in iter_records(store.path)}
    assert records[rid].decision_id == did and records[oid].decision_id == did
    assert records[rid].to_dict() | {"timestamp": None} == {
        "record_id": rid, "timestamp": None, "reviewer": "alice", "action": "override", "label": "approve",
        "output": None, "rationale": "income verified"}
    assert records[oid].attributes[L.OUTCOME_OBSERVED_AT] == "2027-06-01T00:00:00.000000Z"
    assert records[oid].outcome == "repaid" and records[oid].attributes[L.OUTCOME_SOURCE] == "core-banking"
    assert [d.decision_id for d in iter_decisions(store.path)] == [did]  # records are not decisions
    # Every record is a link of the process's hash chain (in the order the spans ended).
    [decision] = iter_decisions(store.path)
    seqs = [r.attributes[D.CHAIN_SEQ] for r in (records[rid], records[oid], decision)]
    assert sorted(seqs) == [1, 2, 3]
    assert verify(chain_views(store.path)) == (3, [])


@pytest.mark.parametrize("call, message", [
    (lambda: record_review("d", reviewer=None, action="confirm"), "needs a reviewer"),  # type: ignore[arg-type]
    (lambda: record_review("d", reviewer="  ", action="confirm"), "needs a reviewer"),
    (lambda: record_review("d", reviewer="alice", action="approve"), "must be one of confirm, override"),
    (lambda: record_review("d", reviewer="alice", action="override"), "needs the label or the output"),
    (lambda: record_review(42, reviewer="alice", action="confirm"), "must be a string"),  # type: ignore[arg-type]
    (lambda: record_outcome(None, "repaid"), "must be a string"),  # type: ignore[arg-type]
    (lambda: record_outcome("", "repaid"), "empty"),
    (lambda: record_outcome("d", "repaid", observed_at="yesterday"), "observed_at"),
    (lambda: record_outcome("d", "repaid", trace_id="ab" * 16), "both trace_id and span_id"),
    (lambda: record_outcome("d", "repaid", trace_id="zz", span_id="1"), "hex"),
])
def test_misuse_raises_a_typed_error_and_records_nothing(store: Store, call: Any, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert stats.snapshot()["recorded"] == 0


def test_misuse_raises_whatever_fail_closed_says(tmp_path: Path) -> None:
    cfg = decisiontrail.configure(path=tmp_path, set_global=False, fail_closed=False)
    try:
        with pytest.raises(InvalidRecordError):
            record_review("d", reviewer="alice", action="reject")
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_redaction_applies_to_records_as_to_decisions(tmp_path: Path) -> None:
    cfg = decisiontrail.configure(path=tmp_path, set_global=False, redact_keys=["ssn"],
                                  hash_keys=["reviewer"], hash_secret="k")
    try:
        record_outcome("d1", {"status": "default", "ssn": "123-45-6789"})
        record_review("d1", reviewer="alice@bank.example", action="override", output={"ssn": "1", "x": 2})
        cfg.force_flush()
    finally:
        cfg.shutdown()
        set_recorder(None)
    outcome, review = sorted(iter_records(tmp_path), key=lambda r: r.kind)
    assert outcome.outcome == {"status": "default", "ssn": "[REDACTED]"}
    assert outcome.attributes[D.REDACTED] == ["outcome.ssn"]
    assert review.output == {"ssn": "[REDACTED]", "x": 2}
    assert review.attributes[L.REVIEW_REVIEWER].startswith("hmac-sha256:")
    assert "alice" not in json.dumps(review.attributes)
    assert review.attributes[D.REDACTED] == ["reviewer", "output.ssn"]


def test_long_fields_are_bounded_and_said_so(store: Store) -> None:
    record_review("d1", reviewer="alice", action="override", rationale="x" * 20000,
                  output={"decision": "approve", "essay": "y" * 20000})
    record_outcome("d1", {"status": "repaid", "ledger": list(range(5000))}, attributes={"case.note": "z" * 20000})
    store.cfg.force_flush()
    review, outcome = sorted(iter_records(store.path), key=lambda r: r.kind, reverse=True)
    limit = get_recorder().settings.max_chars
    assert len(review.attributes[L.REVIEW_RATIONALE]) <= limit
    assert review.output["decision"] == "approve" and review.output["essay"]["$truncated"] == "str"
    assert review.attributes[L.REVIEW_OUTPUT_HASH].startswith("sha256:")
    assert review.attributes[D.TRUNCATED] == ["output.essay", L.REVIEW_RATIONALE]
    assert outcome.outcome["status"] == "repaid" and outcome.outcome["ledger"]["$truncated"] == "list"
    assert outcome.attributes[L.OUTCOME_HASH].startswith("sha256:") and D.ERROR not in outcome.attributes
    assert len(outcome.attributes["case.note"]) <= limit
    assert outcome.attributes[D.TRUNCATED] == ["outcome.ledger", "case.note"]
    assert verify(chain_views(store.path)) == (2, [])


class Flaky(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.file = FileSpanExporter(path)
        self.down = True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE if self.down else self.file.export(spans)


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[tuple[Flaky, decisiontrail.Configuration]]:
    stats.reset()
    exporter = Flaky(tmp_path / "store")
    cfg = decisiontrail.configure(exporter=exporter, set_global=False, sampler=ALWAYS_OFF,
                                  spool_dir=tmp_path / "spool",
                                  processor_options={"schedule_delay_millis": 20, "replay_min_backoff_millis": 20,
                                                     "replay_max_backoff_millis": 100})
    yield exporter, cfg
    cfg.shutdown()
    set_recorder(None)


def test_records_are_never_sampled_out_and_survive_an_outage_through_the_spool(
        flaky: tuple[Flaky, decisiontrail.Configuration], tmp_path: Path) -> None:
    exporter, cfg = flaky
    did = record_decision("loan", {"income": 1}, "deny", label="deny")
    ids = [record_review(did, reviewer="alice", action="escalate") for _ in range(3)]
    ids.append(record_outcome(did, "default"))
    assert cfg.force_flush()
    assert stats.snapshot()["spooled"] == 5 and stats.snapshot()["lost"] == 0  # sampler said no; kept anyway
    exporter.down = False
    assert cfg.drain(10_000)
    assert sorted(r.record_id for r in iter_records(tmp_path / "store")) == sorted(ids)
    assert verify(chain_views(tmp_path / "store")) == (5, [])


def test_the_join_append_only_effective_label_latest_outcome(store: Store) -> None:
    did = record_decision("loan", {"income": 1}, "deny", label="deny")
    other = record_decision("loan", {"income": 2}, "approve", label="approve")
    record_review(did, reviewer="alice", action="override", label="approve", rationale="verified")
    record_review(did, reviewer="bob", action="confirm")  # a confirm does not change the effective label
    record_review(did, reviewer="carol", action="override", label="refer")
    record_outcome(did, "repaid")
    record_outcome(did, "defaulted")
    store.cfg.force_flush()
    index = LifecycleIndex.read(store.path)
    rows = {d.decision_id: d.to_dict() for d in index.attach(iter_decisions(store.path))}
    one = rows[did]
    assert one["label"] == "deny" and one["effective_label"] == "refer" and one["outcome"] == "defaulted"
    assert [(r["reviewer"], r["action"]) for r in one["reviews"]] == [
        ("alice", "override"), ("bob", "confirm"), ("carol", "override")]
    assert rows[other]["effective_label"] == "approve"
    assert rows[other]["outcome"] is None and rows[other]["reviews"] == []
    # The decision is unchanged in the store: nothing is edited in place.
    assert [d.label for d in iter_decisions(store.path) if d.decision_id == did] == ["deny"]


def test_a_row_of_a_packed_batch_is_reviewed_by_its_own_id(store: Store) -> None:
    first = get_recorder().record_batch("m", [[1, 2], [3, 4], [5, 6]], [0, 1, 0], labels=["0", "1", "0"])
    record_review(offset_id(first, 1), reviewer="alice", action="override", label="0")
    store.cfg.force_flush()
    index = LifecycleIndex.read(store.path)
    labels = [d.to_dict()["effective_label"] for d in index.attach(iter_decisions(store.path))]
    assert labels == ["0", "0", "0"]


def test_the_cheap_pass_reads_only_lines_with_records(store: Store) -> None:
    for i in range(20):
        record_decision("m", {"i": i}, i)
    store.cfg.force_flush()  # one export (one line) of decisions, then one with the outcome
    record_outcome("nowhere", 1)
    store.cfg.force_flush()
    assert len([s for s in iter_spans(store.path, contains=(b'"model.decision.outcome"',))]) == 1


def test_a_jaeger_trace_with_only_a_review_of_the_decision_is_not_its_trace() -> None:
    from decisiontrail.store.jaeger import _has_decision

    def trace(event: str) -> dict[str, Any]:
        return {"spans": [{"logs": [{"fields": [{"key": "event", "value": event},
                                                {"key": D.ID, "value": "d1"}]}]}]}

    assert not _has_decision(trace(REVIEW_EVENT), "d1")
    assert _has_decision(trace("model.decision"), "d1")
