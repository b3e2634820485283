"""Filtering decisions: the logic behind ``decisiontrail query``."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .reader import DecisionRecord

__all__ = ["Query", "parse_time", "field_value", "TIME_FORMATS"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TIME_FORMATS = ("a time ago as a number and a unit s, m, h, d or w (30s, 15m, 2h, 7d, 1w), or an "
                "ISO 8601 date or time (2026-11-22, 2026-11-22T10:00:00Z; without a zone, UTC)")


def parse_time(text: str, now: _dt.datetime | None = None) -> int:
    """Unix nanoseconds of an ISO 8601 time (``2026-11-22T10:00:00Z``, naive = UTC) or of a time
    relative to now (``15m``, ``2h``, ``7d``, ``1w`` ago); ValueError naming :data:`TIME_FORMATS`."""
    m = _RELATIVE.match(text.strip())
    if m:
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return int((now.timestamp() - float(m.group(1)) * _UNITS[m.group(2)]) * 1e9)
    try:
        t = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; accepted: {TIME_FORMATS}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp() * 1e9)


def field_value(d: DecisionRecord, key: str) -> Any:
    """A field of a decision by name: a flat key of ``to_dict()`` (``label``, ``model_name``), an
    attribute (``decision.label``), or a path into the input or output (``input.income``)."""
    if key in d.attributes:
        return d.attributes[key]
    head, _, rest = key.partition(".")
    if head in ("input", "output") and rest:
        value: Any = d.input if head == "input" else d.output
        for part in rest.split("."):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value
    flat = d.to_dict()
    return flat.get(key)


def _same(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted in ("", "null", "None")
    if isinstance(value, bool):
        return wanted.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == wanted


@dataclass
class Query:
    model: str | None = None
    version: str | None = None
    label: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    trace_id: str | None = None
    decision_id: str | None = None
    where: Sequence[tuple[str, str]] = field(default_factory=list)
    limit: int | None = None
    # On the decision's lifecycle (store.lifecycle; None: no condition, and no join needed).
    effective_label: str | None = None
    reviewed: bool | None = None
    has_outcome: bool | None = None

    @property
    def needs_lifecycle(self) -> bool:
        return self.effective_label is not None or self.reviewed is not None or self.has_outcome is not None

    def matches(self, d: DecisionRecord) -> bool:
        if self.model is not None and d.model_name != self.model:
            return False
        if self.version is not None and d.model_version != self.version:
            return False
        if self.label is not None and not _same(d.label, self.label):
            return False
        if self.since_ns is not None and d.time_unix_nano < self.since_ns:
            return False
        if self.until_ns is not None and d.time_unix_nano > self.until_ns:
            return False
        if self.trace_id is not None and d.trace_id != self.trace_id.lower():
            return False
        if self.decision_id is not None and d.decision_id != self.decision_id:
            return False
        if self.needs_lifecycle:
            life = d.lifecycle
            if life is None:
                raise ValueError("lifecycle filters need the decisions joined with their records (LifecycleIndex.attach)")
            if self.effective_label is not None and not _same(life.effective_label(d.label), self.effective_label):
                return False
            if self.reviewed is not None and bool(life.reviews) != self.reviewed:
                return False
            if self.has_outcome is not None and bool(life.outcomes) != self.has_outcome:
                return False
        return all(_same(field_value(d, k), v) for k, v in self.where)

    def run(self, decisions: Iterable[DecisionRecord]) -> Iterator[DecisionRecord]:
        n = 0
        for d in decisions:
            if self.matches(d):
                yield d
                n += 1
                if self.limit is not None and n >= self.limit:
                    return
