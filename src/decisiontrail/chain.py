"""Tamper evidence: every audit event of a process is a link in a hash chain.

Audit events are those named in ``conventions.AUDIT_EVENTS``: decisions, outcomes and reviews; what
follows says "decision" for any of them.

Each decision carries ``decision.chain.id`` (one per recording process), ``decision.chain.seq``
(1, 2, 3 … without gaps), ``decision.chain.prev`` (the previous link's hash) and
``decision.chain.hash`` = sha256 of the canonical JSON of the decision's other attributes plus its
event timestamp (``decision.input`` is covered through ``decision.input.hash``, which
:func:`verify` checks against the stored input). Editing, deleting, inserting or reordering a stored
decision breaks the chain at that point, and :func:`verify` says where.

What a chain does not prove: that the *last* decisions exist (a cut tail looks like a shorter chain)
or anything about a writer who holds the process itself; anchor chain heads elsewhere for that.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from opentelemetry.sdk.trace import Event, ReadableSpan

from .conventions import AUDIT_EVENTS
from .conventions import DecisionAttributes as D
from .conventions import LifecycleAttributes as L
from .encoding import is_cut, sha256_hex
from .ids import new_decision_id

__all__ = ["HashChain", "ChainStage", "chain_hash", "verify", "ChainProblem"]

_EXCLUDED = (D.CHAIN_HASH, D.INPUT)
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def chain_hash(attributes: Mapping[str, Any], time_unix_nano: int) -> str:
    # A whole input is covered through its hash; a bounded summary is not what the hash is of, so
    # the summary itself is chained.
    cut = is_cut(attributes.get(D.TRUNCATED), "input")
    payload = {k: v for k, v in attributes.items() if k not in _EXCLUDED or (cut and k == D.INPUT)}
    payload["time_unix_nano"] = time_unix_nano
    return hashlib.sha256(_dumps(payload).encode("utf-8", "surrogatepass")).hexdigest()


class HashChain:
    """One chain; :meth:`link` is thread-safe and gives every decision its place."""

    def __init__(self, chain_id: str | None = None) -> None:
        self.chain_id = chain_id or new_decision_id()
        self._seq = 0
        self._prev = ""
        self._lock = threading.Lock()

    def link(self, attributes: dict[str, Any], time_unix_nano: int) -> None:
        """Add the chain attributes to ``attributes`` (in place)."""
        attributes[D.CHAIN_ID] = self.chain_id
        with self._lock:
            self._seq += 1
            attributes[D.CHAIN_SEQ] = self._seq
            attributes[D.CHAIN_PREV] = self._prev
            h = chain_hash(attributes, time_unix_nano)
            attributes[D.CHAIN_HASH] = h
            self._prev = h


class ChainStage:
    """Links decisions into the chain on the export thread, once per span, before the first export
    attempt (DecisionSpanProcessor's ``prepare``), so retries and the spool carry the same links and
    the recording thread pays nothing for them. It also fills ``decision.input.hash`` where the
    recorder left it to be computed from the stored (uncut) input."""

    def __init__(self, chain: HashChain | None) -> None:
        self.chain = chain

    def _needs_work(self, span: ReadableSpan) -> bool:
        return any(e.name in AUDIT_EVENTS and e.attributes is not None and D.CHAIN_HASH not in e.attributes
                   for e in span.events)

    def __call__(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        out = []
        for s in spans:
            if not s.events or not self._needs_work(s):
                out.append(s)
                continue
            events = []
            for e in s.events:
                if e.name in AUDIT_EVENTS and e.attributes is not None and D.CHAIN_HASH not in e.attributes:
                    attrs = dict(e.attributes)
                    if D.INPUT in attrs and D.INPUT_HASH not in attrs:
                        attrs[D.INPUT_HASH] = sha256_hex(str(attrs[D.INPUT]))
                    if self.chain is not None:
                        self.chain.link(attrs, e.timestamp)
                    e = Event(e.name, attrs, e.timestamp)
                events.append(e)
            out.append(ReadableSpan(
                name=s.name, context=s.context, parent=s.parent, resource=s.resource,
                attributes=s.attributes, events=tuple(events), links=s.links, kind=s.kind,
                status=s.status, start_time=s.start_time, end_time=s.end_time,
                instrumentation_scope=s.instrumentation_scope,
            ))
        return out


def _record_key(attributes: Mapping[str, Any]) -> Any:
    # An outcome or review carries the decision.id of the decision it refers to; its own id tells it apart.
    return attributes.get(L.RECORD_ID) or attributes.get(D.ID)


@dataclass(frozen=True)
class ChainProblem:
    chain_id: str
    seq: int | None
    decision_id: str | None
    problem: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "chain"
        return f"chain {self.chain_id} {where} ({self.decision_id or '-'}): {self.problem}"


def verify(records: Iterable[Mapping[str, Any]]) -> tuple[int, list[ChainProblem]]:
    """Check decision records (with ``attributes`` and ``time_unix_nano``) chain by chain.

    Returns the number of chained decisions checked and the problems found: a changed record, a
    missing or inserted one, a reordering, an input that does not match its hash. Replays of the same
    decision (same id and content) count once.
    """
    chains: dict[str, dict[int, Mapping[str, Any]]] = {}
    problems: list[ChainProblem] = []
    for r in records:
        a = r["attributes"]
        cid = a.get(D.CHAIN_ID)
        if cid is None:
            continue
        seq = int(a.get(D.CHAIN_SEQ, 0))
        seen = chains.setdefault(cid, {})
        if seq in seen and _record_key(seen[seq]["attributes"]) != _record_key(a):
            problems.append(ChainProblem(cid, seq, a.get(D.ID), "two different decisions claim this position"))
        seen.setdefault(seq, r)
    checked = 0
    for cid, by_seq in chains.items():
        prev_hash = ""
        expected = 1
        for seq in sorted(by_seq):
            r = by_seq[seq]
            a = r["attributes"]
            did = a.get(D.ID)
            checked += 1
            if seq != expected:
                problems.append(ChainProblem(cid, seq, did, f"missing decisions at seq {expected}..{seq - 1}"))
            elif a.get(D.CHAIN_PREV, "") != prev_hash:
                problems.append(ChainProblem(cid, seq, did, "previous-hash link broken (reordered or replaced)"))
            if chain_hash(a, int(r["time_unix_nano"])) != a.get(D.CHAIN_HASH):
                problems.append(ChainProblem(cid, seq, did, "content changed after it was recorded"))
            if not is_cut(a.get(D.TRUNCATED), "input") and D.INPUT in a and sha256_hex(a[D.INPUT]) != a.get(D.INPUT_HASH):
                problems.append(ChainProblem(cid, seq, did, "input does not match decision.input.hash"))
            prev_hash = a.get(D.CHAIN_HASH, "")
            expected = seq + 1
    return checked, problems
