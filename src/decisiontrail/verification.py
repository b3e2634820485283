"""Verifying a store: hash chains, signed checkpoints and anchors, over any source of audit records.

:func:`verify_records` takes an iterable of :class:`AuditEvent` (one per stored audit event, as
recorded: its name, attributes, time, trace id and span id) and, optionally, the verifying keys and
the anchored checkpoint notes. It does not care where the records come from: the files
(:func:`audit_events` over ``store.reader.iter_spans``), or a warehouse that kept them.

For each chain it proves, in this order:

- every position 1..last is held by exactly one record, each linked to the one before and hashing to
  its ``decision.chain.hash`` (nothing edited, deleted, inserted, reordered, or moved to another
  trace or span); a decision's input matches ``decision.input.hash``;
- every checkpoint is a well-formed note that signs the hash the chain really has at its seq, its
  decision count, and the previous checkpoint's hash; with keys, that a given key signed it;
- a chain is *closed* when its last record is a closed checkpoint, else *open since* its last
  checkpoint (what came after is not signed: a process killed, or still running);
- with anchors, that every anchored checkpoint is in the store (a removed chain, a cut tail).

Replays (the same record twice: at-least-once delivery) count once.
"""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .chain import chain_hash
from .checkpoints import Checkpoint, NoteError, SignedNote
from .conventions import AUDIT_EVENTS, CHECKPOINT_EVENT, DECISION_EVENT
from .conventions import CheckpointAttributes as C
from .conventions import DecisionAttributes as D
from .encoding import is_cut, sha256_hex
from .exporters.otlpjson import decode_attributes
from .ids import offset_id
from .signing import Verifier
from .store.reader import SpanRecord

__all__ = ["AuditEvent", "Problem", "ChainSummary", "Report", "audit_events", "verify_records"]


@dataclass(frozen=True)
class AuditEvent:
    name: str
    attributes: Mapping[str, Any]
    time_unix_nano: int
    trace_id: str
    span_id: str
    service_name: str | None = None

    @property
    def is_record(self) -> bool:
        """An outcome or review (a lifecycle record): an audit event that is neither a decision nor
        a checkpoint."""
        return self.name not in (DECISION_EVENT, CHECKPOINT_EVENT)

    @property
    def rows(self) -> int:
        """Decisions this event holds (a packed batch event holds several)."""
        if self.name != DECISION_EVENT:
            return 0
        n = self.attributes.get(D.BATCH_COUNT)
        return int(n) if isinstance(n, int) else 1


def audit_events(spans: Iterable[SpanRecord]) -> Iterator[AuditEvent]:
    """The audit events of stored spans (store.reader.iter_spans)."""
    for s in spans:
        for ev in s.events:
            name = ev.get("name")
            if name in AUDIT_EVENTS:
                yield AuditEvent(str(name), decode_attributes(ev.get("attributes")), int(ev.get("timeUnixNano", 0)),
                                 s.trace_id, s.span_id, s.service_name)


@dataclass(frozen=True)
class Problem:
    chain_id: str | None
    seq: int | None
    what: str
    record_id: str | None = None

    def __str__(self) -> str:
        where = "store" if self.chain_id is None else f"chain {self.chain_id}"
        if self.seq is not None:
            where += f" seq {self.seq}"
        if self.record_id:
            where += f" (decision {self.record_id})"
        return f"{where}: {self.what}"


@dataclass
class ChainSummary:
    chain_id: str
    service_name: str | None
    decisions: int
    first_seq: int
    last_seq: int
    records: int = 0                      # outcomes and reviews
    checkpoints: int = 0
    last_checkpoint_seq: int = 0          # seq of the last checkpoint event (0: none)
    last_checkpoint_time: int | None = None
    key_ids: list[str] = field(default_factory=list)
    closed: bool = False
    signed: bool = False                  # every checkpoint carries a signature

    @property
    def state(self) -> str:
        return "closed" if self.closed else f"open since seq {self.last_checkpoint_seq}"

    def __str__(self) -> str:
        if self.last_checkpoint_time is not None:
            t = _dt.datetime.fromtimestamp(self.last_checkpoint_time / 1e9, tz=_dt.timezone.utc)
            cp = f"last checkpoint seq {self.last_checkpoint_seq} at {t.isoformat(timespec='seconds')}"
        else:
            cp = "no checkpoint"
        keys = f"key {','.join(self.key_ids)}" if self.key_ids else ("signed, keys not checked" if self.signed
                                                                        else "unsigned")
        records = f"{self.records} outcome/review records, " if self.records else ""
        return (f"chain {self.chain_id} ({self.service_name or 'unknown service'}): {self.decisions} decisions, "
                f"{records}seq {self.first_seq}..{self.last_seq}, {cp}, {keys}, {self.state}")


@dataclass
class Report:
    chains: list[ChainSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    not_proven: list[str] = field(default_factory=list)
    decisions: int = 0
    records: int = 0    # outcomes and reviews
    orphans: int = 0    # outcomes and reviews that refer to a decision not in the store
    events: int = 0     # chained audit events (replays once)
    unchained: int = 0  # audit events without chain attributes

    @property
    def ok(self) -> bool:
        return not self.problems


def _dedup(events: Iterable[AuditEvent], report: Report) -> dict[str, dict[int, AuditEvent]]:
    chains: dict[str, dict[int, AuditEvent]] = defaultdict(dict)
    for e in events:
        cid = e.attributes.get(D.CHAIN_ID)
        seq = e.attributes.get(D.CHAIN_SEQ)
        if not isinstance(cid, str) or not isinstance(seq, int):
            report.unchained += 1
            report.decisions += e.rows
            if e.name == DECISION_EVENT:
                report.problems.append(Problem(None, None, "a decision without a chain: not covered by any "
                                               "checkpoint (inserted, or recorded outside decisiontrail's "
                                               "processor)", str(e.attributes.get(D.ID, "")) or None))
            continue
        seen = chains[cid].get(seq)
        if seen is None:
            chains[cid][seq] = e
        elif seen != e:
            same_id = seen.attributes.get(D.ID) == e.attributes.get(D.ID)
            report.problems.append(Problem(cid, seq, "two different records claim this position"
                                           + (" (the same decision id, changed content)" if same_id else ""),
                                           str(e.attributes.get(D.ID) or "") or None))
    return chains


def _check_links(cid: str, by_seq: dict[int, AuditEvent], problems: list[Problem]) -> None:
    prev_hash, expected = "", 1
    for seq in sorted(by_seq):
        e = by_seq[seq]
        a = e.attributes
        did = str(a.get(D.ID) or "") or None
        if seq < 1:
            problems.append(Problem(cid, seq, "not a valid chain position", did))
        elif seq != expected:
            problems.append(Problem(cid, seq, f"records at seq {expected}..{seq - 1} are missing (deleted)", did))
        elif a.get(D.CHAIN_PREV, "") != prev_hash:
            problems.append(Problem(cid, seq, "the link to the previous record is broken (reordered, replaced "
                                    "or inserted)", did))
        if chain_hash(e.name, a, e.time_unix_nano, e.trace_id, e.span_id) != a.get(D.CHAIN_HASH):
            problems.append(Problem(cid, seq, "changed after it was recorded: its content or time, or the trace "
                                    "or span it is on (moved to another request)", did))
        if (e.name == DECISION_EVENT and not is_cut(a.get(D.TRUNCATED), "input") and D.INPUT in a
                and sha256_hex(str(a[D.INPUT])) != a.get(D.INPUT_HASH)):
            problems.append(Problem(cid, seq, "the input does not match decision.input.hash", did))
        prev_hash = str(a.get(D.CHAIN_HASH, ""))
        expected = seq + 1


def _check_checkpoints(cid: str, by_seq: dict[int, AuditEvent], summary: ChainSummary,
                       verifiers: Mapping[bytes, Verifier] | None, problems: list[Problem]
                       ) -> dict[int, str]:
    """Checks every checkpoint of the chain; returns {checkpoint seq: note text} of those found."""
    found: dict[int, str] = {}
    prev_digest, decisions, signed_all = "", 0, True
    last_checkpoint: Checkpoint | None = None
    keys: set[str] = set()
    for seq in sorted(by_seq):
        e = by_seq[seq]
        if e.name != CHECKPOINT_EVENT:
            decisions += e.rows
            continue
        note = e.attributes.get(C.NOTE)
        try:
            signed = SignedNote.parse(str(note))
            cp = Checkpoint.parse(signed.text)
        except NoteError as exc:
            problems.append(Problem(cid, seq, f"a checkpoint that does not parse ({exc})"))
            continue
        found[seq] = signed.text
        head = by_seq.get(cp.seq)
        if cp.chain_id != cid or cp.seq != seq - 1:
            problems.append(Problem(cid, seq, f"a checkpoint of chain {cp.chain_id} seq {cp.seq} placed at this "
                                    "position"))
        elif head is not None and head.attributes.get(D.CHAIN_HASH) != cp.head:
            problems.append(Problem(cid, seq, f"the checkpoint signs head {cp.head[:16]}… for seq {cp.seq}, but the "
                                    "chain has another there: the records before it were rewritten"))
        if cp.prev != prev_digest:
            problems.append(Problem(cid, seq, "the checkpoint does not follow the previous checkpoint of this "
                                    "chain (a checkpoint removed, replaced or inserted)"))
        if cp.decisions != decisions:
            problems.append(Problem(cid, seq, f"the checkpoint signs {cp.decisions} decisions up to seq {cp.seq}; "
                                    f"the store holds {decisions}"))
        signed_all = signed_all and bool(signed.signatures)
        if verifiers is not None:
            key_id, error = signed.check(dict(verifiers))
            if error is not None:
                problems.append(Problem(cid, seq, error))
            elif key_id is not None:
                keys.add(key_id)
        prev_digest = cp.digest()
        last_checkpoint = cp
        summary.checkpoints += 1
        summary.last_checkpoint_seq = seq
        summary.last_checkpoint_time = cp.time_unix_nano
    summary.key_ids = sorted(keys)
    summary.signed = signed_all and summary.checkpoints > 0
    last = max(by_seq)
    if last_checkpoint is not None and last_checkpoint.closed:
        if summary.last_checkpoint_seq == last:
            summary.closed = True
        else:
            problems.append(Problem(cid, summary.last_checkpoint_seq + 1,
                                    f"records at seq {summary.last_checkpoint_seq + 1}..{last} come after the chain "
                                    "was closed (appended)"))
    return found


def _check_anchors(anchors: Iterable[tuple[str, str]], chains: Mapping[str, dict[int, AuditEvent]],
                   notes: Mapping[str, dict[int, str]], verifiers: Mapping[bytes, Verifier] | None,
                   problems: list[Problem]) -> None:
    missing: dict[str, list[Checkpoint]] = defaultdict(list)
    for where, text in anchors:
        try:
            signed = SignedNote.parse(text)
            cp = Checkpoint.parse(signed.text)
        except NoteError as exc:
            problems.append(Problem(None, None, f"anchor {where} does not parse ({exc})"))
            continue
        if verifiers is not None:
            _, error = signed.check(dict(verifiers))
            if error is not None:
                problems.append(Problem(cp.chain_id, cp.seq + 1, f"anchor {where}: {error}"))
        if cp.chain_id not in chains:
            missing[cp.chain_id].append(cp)
            continue
        stored = notes.get(cp.chain_id, {}).get(cp.seq + 1)
        last = max(chains[cp.chain_id])
        if stored is None and last <= cp.seq:
            problems.append(Problem(cp.chain_id, cp.seq + 1, f"the anchors hold a checkpoint at seq {cp.seq + 1} "
                                    f"({'closed' if cp.closed else 'open'}) but the store's chain ends at seq {last}: "
                                    "its tail was cut"))
        elif stored is None:
            problems.append(Problem(cp.chain_id, cp.seq + 1, "the anchored checkpoint at this seq is not in the store"))
        elif stored != signed.text:
            problems.append(Problem(cp.chain_id, cp.seq + 1, "the checkpoint in the store differs from its anchor"))
    for cid, cps in sorted(missing.items()):
        top = max(cps, key=lambda c: c.seq)
        problems.append(Problem(cid, None, f"the whole chain is missing from the store: the anchors hold {len(cps)} "
                                f"checkpoint(s) of it, up to seq {top.seq + 1} with {top.decisions} decisions"))


def verify_records(events: Iterable[AuditEvent], verifiers: Mapping[bytes, Verifier] | None = None,
                   anchors: Iterable[tuple[str, str]] | None = None) -> Report:
    """Verify every chain in ``events``; ``verifiers`` by key id (None: signatures not checked),
    ``anchors`` as (where, note text) pairs (None: no anchor store)."""
    report = Report()
    chains = _dedup(events, report)
    notes: dict[str, dict[int, str]] = {}
    for cid, by_seq in sorted(chains.items()):
        rows = sum(e.rows for e in by_seq.values())
        records = sum(e.is_record for e in by_seq.values())
        report.decisions += rows
        report.records += records
        report.events += len(by_seq)
        first = by_seq[min(by_seq)]
        summary = ChainSummary(cid, first.service_name, rows, min(by_seq), max(by_seq), records)
        _check_links(cid, by_seq, report.problems)
        notes[cid] = _check_checkpoints(cid, by_seq, summary, verifiers, report.problems)
        report.chains.append(summary)
    if anchors is not None:
        _check_anchors(anchors, chains, notes, verifiers, report.problems)
    report.orphans = _orphans(e for by_seq in chains.values() for e in by_seq.values())
    if not chains and not report.unchained and not report.problems:
        report.problems.append(Problem(None, None, "nothing to verify: the store holds no audit records"))
    elif not chains and not report.problems:
        report.problems.append(Problem(None, None, "nothing to verify: no record carries a chain"))
    _not_proven(report, verifiers is not None, anchors is not None)
    return report


def _orphans(events: Iterable[AuditEvent]) -> int:
    """Outcomes and reviews whose decision is not among the store's decisions (recorded anyway)."""
    decided: set[str] = set()
    referred: list[str] = []
    for e in events:
        did = str(e.attributes.get(D.ID, ""))
        if e.name == DECISION_EVENT:
            decided.update(offset_id(did, i) if i else did for i in range(e.rows))
        elif e.is_record:
            referred.append(did)
    return sum(r not in decided for r in referred)


def _not_proven(report: Report, keys: bool, anchors: bool) -> None:
    n = report.not_proven
    if not report.chains:
        return
    if not any(c.checkpoints for c in report.chains):
        n.append("no chain has a checkpoint (recorded without a signing key or anchors): the chains show "
                 "accidental damage and naive edits, but a writer of the files could rewrite a chain and "
                 "recompute its links, or cut it, unseen")
    elif not keys:
        n.append("signatures not checked (no --public-key): a writer of the files could have rewritten a "
                 "chain together with its checkpoints")
    if not anchors:
        n.append("no --anchors: a chain removed whole, or cut back to an earlier checkpoint, would not show")
    open_chains = [c for c in report.chains if not c.closed]
    if open_chains:
        n.append(f"{len(open_chains)} chain(s) open (a process still running, or killed): their records after "
                 "the last checkpoint are not signed, so they could have been cut or appended")
