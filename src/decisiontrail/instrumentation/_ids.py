"""The ids of the decisions a block of code made, for the caller (the Flask ``decision-id`` header)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..ids import offset_id

__all__ = ["DecisionIds", "collect_decisions", "publish"]


@dataclass
class DecisionIds:
    """The decisions made within a :func:`collect_decisions` scope, as (first id, rows) ranges."""

    ranges: list[tuple[str, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(n for _, n in self.ranges)

    def ids(self, limit: int | None = None) -> list[str]:
        """Every id in order (row ``i`` of a batch is ``offset_id(first, i)``), at most ``limit``."""
        out: list[str] = []
        for first, n in self.ranges:
            for i in range(n):
                if limit is not None and len(out) >= limit:
                    return out
                out.append(offset_id(first, i))
        return out


_collector: contextvars.ContextVar[DecisionIds | None] = contextvars.ContextVar(
    "decisiontrail_decision_ids", default=None)


@contextmanager
def collect_decisions() -> Iterator[DecisionIds]:
    """Collect the ids of the decisions instrumented calls make in this block (this thread or task):
    what a web framework hook returns to the caller. Scopes nest; each sees only its own block."""
    ids = DecisionIds()
    token = _collector.set(ids)
    try:
        yield ids
    finally:
        _collector.reset(token)


def publish(first: str, n: int) -> None:
    ids = _collector.get()
    if ids is not None:
        ids.ranges.append((first, n))
