"""An attacker who can write the audit files, as a test helper: every way the issue lists to tamper
with a store, applied to plain OTLP-JSON audit files (the embedded store's or the collector's).

``CASES`` maps a name to (tamper function, what ``verify`` must say). Each function gets the store's
:class:`AuditFiles` and an attacker's own signing key; the strongest ones recompute every later link
with the library's public hash function (:func:`rechain`), as the issue's attacker did.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind

from decisiontrail import record_decision, record_review
from decisiontrail.chain import chain_hash
from decisiontrail.checkpoints import Checkpoint, SignedNote
from decisiontrail.conventions import AUDIT_EVENTS, CHECKPOINT_EVENT, DECISION_EVENT, REVIEW_EVENT
from decisiontrail.conventions import CheckpointAttributes as C
from decisiontrail.conventions import DecisionAttributes as D
from decisiontrail.conventions import LifecycleAttributes as L
from decisiontrail.exporters.otlpjson import decode_attributes, encode_value
from decisiontrail.config import Configuration
from decisiontrail.recorder import get_recorder, set_recorder
from decisiontrail.signing import Signer


class Ev:
    """One stored audit event, editable in place."""

    def __init__(self, files: AuditFiles, span: dict[str, Any], raw: dict[str, Any]) -> None:
        self.files, self.span, self.raw = files, span, raw

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def attrs(self) -> dict[str, Any]:
        return decode_attributes(self.raw.get("attributes"))

    @property
    def seq(self) -> int:
        return int(self.attrs[D.CHAIN_SEQ])

    @property
    def chain(self) -> str:
        return str(self.attrs[D.CHAIN_ID])

    def set(self, key: str, value: Any) -> None:
        for kv in self.raw["attributes"]:
            if kv["key"] == key:
                kv["value"] = encode_value(value)
                return
        self.raw["attributes"].append({"key": key, "value": encode_value(value)})

    def remove(self) -> None:
        self.span["events"].remove(self.raw)

    def relink(self, prev: str) -> str:
        """Recompute this event's link as the library would, after ``prev``; returns its new hash."""
        self.set(D.CHAIN_PREV, prev)
        h = chain_hash(self.name, self.attrs, int(self.raw["timeUnixNano"]), self.span["traceId"], self.span["spanId"])
        self.set(D.CHAIN_HASH, h)
        return h


class AuditFiles:
    """Every plain audit file under ``root``, parsed; :meth:`save` writes them back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = {p: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
                      for p in sorted(root.rglob("*.json*")) if p.is_file()}

    def spans(self) -> list[dict[str, Any]]:
        return [s for msgs in self.files.values() for m in msgs for rs in m.get("resourceSpans", [])
                for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]

    def events(self) -> list[Ev]:
        out = [Ev(self, s, e) for s in self.spans() for e in s.get("events", [])
               if e.get("name") in AUDIT_EVENTS]
        seen: set[tuple[str, int]] = set()
        unique = []
        for e in sorted(out, key=lambda e: (e.chain, e.seq)):
            if (e.chain, e.seq) not in seen:  # a replayed copy is left alone
                seen.add((e.chain, e.seq))
                unique.append(e)
        return unique

    def chains(self) -> list[str]:
        """Chain ids, oldest first."""
        first: dict[str, int] = {}
        for e in self.events():
            first[e.chain] = min(first.get(e.chain, 1 << 64), int(e.raw["timeUnixNano"]))
        return sorted(first, key=first.__getitem__)

    def chain(self, chain_id: str | None = None) -> list[Ev]:
        chain_id = chain_id or self.chains()[0]
        return [e for e in self.events() if e.chain == chain_id]

    def decision(self, seq: int, chain_id: str | None = None) -> Ev:
        return next(e for e in self.chain(chain_id) if e.seq == seq)

    def save(self) -> None:
        for path, msgs in self.files.items():
            path.write_text("".join(json.dumps(m) + "\n" for m in msgs))


def rechain(files: AuditFiles, chain_id: str, signer: Signer | None = None, keep_signatures: bool = False,
            notes: bool = True) -> None:
    """Renumber and relink a whole chain with the public hash function, rewriting its checkpoints'
    heads, counts and previous-checkpoint hashes (unless not ``notes``): signed with ``signer``, or
    keeping the old signatures."""
    prev, prev_digest, decisions = "", "", 0
    for i, e in enumerate(sorted(files.chain(chain_id), key=lambda e: e.seq), 1):
        if e.name == CHECKPOINT_EVENT and notes:
            old = SignedNote.parse(e.attrs[C.NOTE])
            cp = dataclasses.replace(Checkpoint.parse(old.text), seq=i - 1, head=prev, decisions=decisions,
                                     prev=prev_digest)
            note = SignedNote(cp.text(), old.signatures) if keep_signatures else \
                SignedNote.create(cp.text(), [signer] if signer is not None else [])
            e.set(C.NOTE, note.render())
            prev_digest = cp.digest()
        elif e.name == DECISION_EVENT:
            n = e.attrs.get(D.BATCH_COUNT)
            decisions += int(n) if n is not None else 1
        e.set(D.CHAIN_SEQ, i)
        prev = e.relink(prev)


def _decisions(files: AuditFiles) -> list[Ev]:
    return [e for e in files.chain() if e.name == DECISION_EVENT and D.BATCH_COUNT not in e.attrs]


def edit(files: AuditFiles, attacker: Signer) -> None:
    _decisions(files)[2].set(D.LABEL, "tampered")


def edit_review(files: AuditFiles, attacker: Signer) -> None:
    """A human override softened: the review's label put back to the model's."""
    review = next(e for e in files.events() if e.name == REVIEW_EVENT)
    review.set(L.REVIEW_LABEL, "0")


def delete(files: AuditFiles, attacker: Signer) -> None:
    _decisions(files)[2].remove()


def insert(files: AuditFiles, attacker: Signer) -> None:
    """A forged decision slipped in after the third, every later link recomputed."""
    victim = _decisions(files)[2]
    forged = json.loads(json.dumps(victim.raw))
    victim.span["events"].append(forged)
    ev = Ev(files, victim.span, forged)
    ev.set(D.ID, "01a00000-0000-7000-8000-000000000000")
    for e in files.chain():
        if e.seq > victim.seq:
            e.set(D.CHAIN_SEQ, e.seq + 1)
    ev.set(D.CHAIN_SEQ, victim.seq + 1)
    rechain(files, victim.chain, notes=False)


def reorder(files: AuditFiles, attacker: Signer) -> None:
    """Two decisions trade places in the chain (their positions swapped, each keeping its own link)."""
    a, b = _decisions(files)[2:4]
    sa, sb = a.seq, b.seq
    a.set(D.CHAIN_SEQ, sb)
    b.set(D.CHAIN_SEQ, sa)


def move(files: AuditFiles, attacker: Signer) -> None:
    """Two decisions swapped between their requests (traces and spans)."""
    a, b = _decisions(files)[2:4]
    assert a.span["traceId"] != b.span["traceId"]
    ia, ib = a.span["events"].index(a.raw), b.span["events"].index(b.raw)
    a.span["events"][ia], b.span["events"][ib] = b.raw, a.raw


def cut_tail(files: AuditFiles, attacker: Signer) -> None:
    """Everything after the first checkpoint of the first chain removed: what is left looks like an
    open chain whose process was killed."""
    chain = files.chain()
    first_cp = next(e.seq for e in chain if e.name == CHECKPOINT_EVENT)
    for e in chain:
        if e.seq > first_cp:
            e.remove()


def remove_chain(files: AuditFiles, attacker: Signer) -> None:
    for e in files.chain(files.chains()[-1]):
        e.remove()


def forge_resigned(files: AuditFiles, attacker: Signer) -> None:
    """An edited label, every link and checkpoint recomputed and signed with the attacker's own key."""
    edit(files, attacker)
    rechain(files, files.chains()[0], signer=attacker)


def forge_old_signatures(files: AuditFiles, attacker: Signer) -> None:
    """An edited label, every link and checkpoint recomputed, the old signature lines kept."""
    edit(files, attacker)
    rechain(files, files.chains()[0], keep_signatures=True)


def bad_signature(files: AuditFiles, attacker: Signer) -> None:
    cp = next(e for e in files.chain() if e.name == CHECKPOINT_EVENT)
    note = cp.attrs[C.NOTE]
    sig = re.search(r"— decisiontrail (\S+)\n", note)
    assert sig is not None
    b64 = sig.group(1)
    flipped = b64[:10] + ("A" if b64[10] != "A" else "B") + b64[11:]
    cp.set(C.NOTE, note.replace(b64, flipped))


def delete_checkpoint(files: AuditFiles, attacker: Signer) -> None:
    next(e for e in files.chain() if e.name == CHECKPOINT_EVENT).remove()


def append_after_close(files: AuditFiles, attacker: Signer) -> None:
    """A forged decision appended after the closing checkpoint, correctly linked."""
    chain = files.chain()
    last, victim = chain[-1], _decisions(files)[0]
    forged = json.loads(json.dumps(victim.raw))
    victim.span["events"].append(forged)
    ev = Ev(files, victim.span, forged)
    ev.set(D.ID, "01a00000-0000-7000-8000-0000000000ff")
    ev.set(D.CHAIN_SEQ, last.seq + 1)
    ev.relink(last.attrs[D.CHAIN_HASH])


# name -> (tamper, a regular expression verify's output must match)
CASES: dict[str, tuple[Callable[[AuditFiles, Signer], None], str]] = {
    "edited decision": (edit, r"seq \d+ \(decision \S+\): changed after it was recorded"),
    "edited review": (edit_review, r"seq \d+ \(decision \S+\): changed after it was recorded"),
    "deleted decision": (delete, r"seq \d+ .*are missing \(deleted\)"),
    "inserted decision": (insert, r"checkpoint of chain \S+ seq \d+ placed at this position"),
    "reordered decisions": (reorder, r"link to the previous record is broken"),
    "decision moved to another request": (move, r"moved to another request"),
    "cut tail": (cut_tail, r"the anchors hold a checkpoint at seq \d+ \(closed\) but the store's chain ends at "
                           r"seq \d+: its tail was cut"),
    "chain removed": (remove_chain, r"the whole chain is missing from the store"),
    "forgery re-signed with another key": (forge_resigned, r"signed by key [0-9a-f]{8}, which is not among the "
                                                           r"given keys"),
    "forgery with the old signatures": (forge_old_signatures, r"bad signature for key [0-9a-f]{8}"),
    "bad signature": (bad_signature, r"bad signature for key [0-9a-f]{8}"),
    "deleted checkpoint": (delete_checkpoint, r"are missing \(deleted\)"),
    "appended after close": (append_after_close, r"come after the chain was closed"),
}


def write_chain(cfg: Configuration, n: int) -> None:
    """One process's chain through ``cfg``: ``n`` decisions in request spans, an override review of
    the sixth, flushes every 4 decisions (so checkpoints every 8 fall mid-chain), one packed batch of
    3 rows, then a clean shutdown (a closed checkpoint)."""
    tracer = cfg.tracer_provider.get_tracer("tests")
    try:
        for i in range(n):
            with tracer.start_as_current_span("POST /loans", kind=SpanKind.SERVER):
                did = record_decision("m", {"i": i}, {"out": i % 2}, label=str(i % 2), score=i / 100)
            if i == 5:
                record_review(did, reviewer="alice", action="override", label="1", rationale="checked")
            if i % 4 == 3:
                assert cfg.force_flush()
        get_recorder().record_batch("m", [[1, 2], [3, 4], [5, 6]], [0, 1, 0])
    finally:
        cfg.shutdown()
        set_recorder(None)
