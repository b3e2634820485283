"""Outcomes and reviews read back from the audit files, joined to their decisions by decision id.

A :class:`LifecycleRecord` is one ``model.decision.outcome`` or ``model.decision.review`` event;
records are deduplicated by ``decision.record.id`` (replays leave one each) and never counted as
decisions. :class:`LifecycleIndex` groups them by the ``decision.id`` they refer to; a
:class:`Lifecycle` is what one decision gathered after it was made:

- ``effective_label``: the label of the latest override that gives one, else the model's own label
  (a confirm, an escalation or an annotation does not change it; the decision's ``label`` never
  changes);
- ``outcome``: the value of the latest outcome recorded, else None;
- ``reviews``: every review, oldest first.

"Latest" is by record time (the event's timestamp), then record id: a later record supersedes an
earlier one, which stays in the store.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..conventions import OUTCOME_EVENT, REVIEW_EVENT
from ..conventions import DecisionAttributes as D
from ..conventions import LifecycleAttributes as L
from ..exporters.otlpjson import decode_attributes
from .reader import DecisionRecord, ReadStats, SpanRecord, _iso, iter_spans
from .reader import _maybe_json as _json

__all__ = ["LifecycleRecord", "Lifecycle", "LifecycleIndex", "records_of", "iter_records", "NOT_FOUND_HERE"]

NOT_FOUND_HERE = "refers to a decision not found here"
_KINDS = {OUTCOME_EVENT: "outcome", REVIEW_EVENT: "review"}
# Only lines naming a lifecycle event are parsed: a second pass over a store costs a byte search.
_MARKERS = tuple(f'"{name}"'.encode() for name in _KINDS)
_OWN = frozenset({D.ID, L.RECORD_ID, L.OUTCOME_VALUE, L.OUTCOME_OBSERVED_AT, L.OUTCOME_SOURCE,
                  L.REVIEW_REVIEWER, L.REVIEW_ACTION, L.REVIEW_LABEL, L.REVIEW_OUTPUT, L.REVIEW_RATIONALE})


@dataclass
class LifecycleRecord:
    kind: str  # "outcome" or "review"
    record_id: str
    decision_id: str
    time_unix_nano: int
    attributes: dict[str, Any]
    trace_id: str = ""
    span_id: str = ""
    service_name: str | None = None
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def timestamp(self) -> str:
        return _iso(self.time_unix_nano)

    @property
    def order(self) -> tuple[int, str]:
        return self.time_unix_nano, self.record_id

    def get(self, key: str) -> Any:
        return self.attributes.get(key)

    @property
    def outcome(self) -> Any:
        return _json(self.attributes.get(L.OUTCOME_VALUE))

    @property
    def output(self) -> Any:
        return _json(self.attributes.get(L.REVIEW_OUTPUT))

    def to_dict(self) -> dict[str, Any]:
        """The flat form: in ``reviews`` of ``query --format jsonl``, and in ``show``."""
        a = self.attributes
        out: dict[str, Any] = {"record_id": self.record_id, "timestamp": self.timestamp}
        if self.kind == "review":
            out.update(reviewer=a.get(L.REVIEW_REVIEWER), action=a.get(L.REVIEW_ACTION),
                       label=a.get(L.REVIEW_LABEL), output=self.output, rationale=a.get(L.REVIEW_RATIONALE))
        else:
            out.update(outcome=self.outcome, observed_at=a.get(L.OUTCOME_OBSERVED_AT), source=a.get(L.OUTCOME_SOURCE))
        out.update({k: v for k, v in a.items() if k not in _OWN and not k.startswith("decision.chain.")})
        return out

    def chain_view(self) -> dict[str, Any]:
        """What the hash chain covers of this record's event (chain.verify)."""
        return {"name": OUTCOME_EVENT if self.kind == "outcome" else REVIEW_EVENT, "attributes": self.attributes,
                "time_unix_nano": self.time_unix_nano, "trace_id": self.trace_id, "span_id": self.span_id}


def records_of(span: SpanRecord) -> Iterator[LifecycleRecord]:
    for ev in span.events:
        kind = _KINDS.get(ev.get("name", ""))
        if kind is None:
            continue
        attrs = decode_attributes(ev.get("attributes"))
        yield LifecycleRecord(kind=kind, record_id=str(attrs.get(L.RECORD_ID, "")),
                              decision_id=str(attrs.get(D.ID, "")), time_unix_nano=int(ev.get("timeUnixNano", 0)),
                              attributes=attrs, trace_id=span.trace_id, span_id=span.span_id,
                              service_name=span.service_name, links=span.links)


def iter_records(path: str | Path | Sequence[str | Path], stats: ReadStats | None = None,
                 dedup: bool = True) -> Iterator[LifecycleRecord]:
    """Every outcome and review under ``path``, in file order, each record id once (with ``dedup``)."""
    stats = stats if stats is not None else ReadStats()
    seen: set[str] = set()
    for span in iter_spans(path, stats, contains=_MARKERS):
        for r in records_of(span):
            if dedup:
                if r.record_id in seen:
                    stats.duplicates += 1
                    continue
                seen.add(r.record_id)
            yield r


@dataclass
class Lifecycle:
    decision_id: str
    reviews: list[LifecycleRecord] = field(default_factory=list)
    outcomes: list[LifecycleRecord] = field(default_factory=list)

    def add(self, r: LifecycleRecord) -> None:
        bisect.insort(self.reviews if r.kind == "review" else self.outcomes, r, key=lambda x: x.order)

    def effective_label(self, model_label: Any) -> Any:
        for r in reversed(self.reviews):
            if r.get(L.REVIEW_ACTION) == "override" and r.get(L.REVIEW_LABEL) is not None:
                return r.get(L.REVIEW_LABEL)
        return model_label

    @property
    def outcome(self) -> Any:
        return self.outcomes[-1].outcome if self.outcomes else None

    @property
    def overridden(self) -> bool:
        return any(r.get(L.REVIEW_ACTION) == "override" for r in self.reviews)

    def flat(self, model_label: Any) -> dict[str, Any]:
        return {"effective_label": self.effective_label(model_label), "outcome": self.outcome,
                "reviews": [r.to_dict() for r in self.reviews]}


class LifecycleIndex:
    """Outcomes and reviews by the decision id they refer to."""

    def __init__(self, records: Iterable[LifecycleRecord] = ()) -> None:
        self.by_decision: dict[str, Lifecycle] = {}
        for r in records:
            self.add(r)

    @classmethod
    def read(cls, path: str | Path | Sequence[str | Path], stats: ReadStats | None = None) -> LifecycleIndex:
        return cls(iter_records(path, stats))

    def add(self, r: LifecycleRecord) -> None:
        life = self.by_decision.get(r.decision_id)
        if life is None:
            life = self.by_decision[r.decision_id] = Lifecycle(r.decision_id)
        life.add(r)

    def of(self, decision_id: str) -> Lifecycle:
        return self.by_decision.get(decision_id) or Lifecycle(decision_id)

    def attach(self, decisions: Iterable[DecisionRecord]) -> Iterator[DecisionRecord]:
        """The decisions, each with its ``lifecycle`` set (empty when nothing was recorded about it)."""
        for d in decisions:
            d.lifecycle = self.of(d.decision_id)
            yield d

    def __len__(self) -> int:
        return sum(len(life.reviews) + len(life.outcomes) for life in self.by_decision.values())
