"""The integrity verdict of one decision, for its page.

Whether a record is intact is a property of its whole chain (every link up to it, the checkpoint
that signs it), so the server verifies the store once in the background (``verification``, the same
proof as ``decisiontrail verify``), again after each review it records, and answers each page from
that result: the decision's chain position, the first checkpoint after it (which signs it), that
checkpoint's key id when keys were given, the chain's problems, or what is not proven.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..checkpoints import NoteError, SignedNote
from ..conventions import CHECKPOINT_EVENT
from ..conventions import CheckpointAttributes as C
from ..conventions import DecisionAttributes as D
from ..signing import Verifier
from ..store.protocol import DecisionStore
from ..store.reader import DecisionRecord
from ..verification import Report, audit_events, verify_records

__all__ = ["Verdict", "IntegrityIndex"]


@dataclass
class Verdict:
    state: str  # "verifying", "intact", "tampered", "unchained", "unverified" (the check failed to run)
    chain_id: str = ""
    seq: int | None = None
    checkpoint_seq: int | None = None  # the first checkpoint after the decision: it signs it
    key_id: str | None = None
    lines: list[str] = field(default_factory=list)  # problems, or what is not proven


class IntegrityIndex:
    def __init__(self, open_store: Callable[[], DecisionStore], verifiers: Mapping[bytes, Verifier] | None = None,
                 anchors: list[tuple[str, str]] | None = None) -> None:
        self._open = open_store
        self.verifiers = dict(verifiers) if verifiers is not None else None
        self.anchors = anchors
        self._lock = threading.Lock()
        self._report: Report | None = None
        self._checkpoints: dict[str, list[tuple[int, str]]] = {}  # chain id -> [(seq, note)] by seq
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._again = False

    def refresh(self) -> None:
        """Verify the store again in the background (one run at a time; a request during a run
        starts another after it)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._thread = threading.Thread(target=self._run, name="decisiontrail-serve-verify", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self._report is not None or self._error is not None

    def _run(self) -> None:
        while True:
            try:
                events = list(audit_events(self._open().audit_spans()))
                report = verify_records(events, self.verifiers, self.anchors)
                checkpoints: dict[str, list[tuple[int, str]]] = {}
                for e in events:
                    if e.name == CHECKPOINT_EVENT:
                        checkpoints.setdefault(str(e.attributes.get(D.CHAIN_ID, "")), []).append(
                            (int(e.attributes.get(D.CHAIN_SEQ, 0)), str(e.attributes.get(C.NOTE, ""))))
                for cps in checkpoints.values():
                    cps.sort()
                with self._lock:
                    self._report, self._checkpoints, self._error = report, checkpoints, None
            except Exception as exc:  # a page must still render: say that the check did not run
                with self._lock:
                    self._error = f"the store could not be verified: {exc!r}"
            with self._lock:
                if not self._again:
                    return
                self._again = False

    def verdict(self, d: DecisionRecord) -> Verdict:
        cid = str(d.attributes.get(D.CHAIN_ID) or "")
        seq = d.attributes.get(D.CHAIN_SEQ)
        if not cid or not isinstance(seq, int):
            return Verdict("unchained", lines=["this decision carries no hash chain: it was recorded without "
                                               "decisiontrail's processor, so nothing about it can be proven"])
        with self._lock:
            report, checkpoints, error = self._report, self._checkpoints.get(cid, []), self._error
        if error is not None:
            return Verdict("unverified", cid, seq, lines=[error])
        if report is None:
            return Verdict("verifying", cid, seq, lines=["the store is being verified; reload in a moment"])
        problems = [str(p) for p in report.problems if p.chain_id == cid or p.chain_id is None]
        after = next(((s, note) for s, note in checkpoints if s > seq), None)
        v = Verdict("tampered" if problems else "intact", cid, seq, lines=problems[:20])
        if after is not None:
            v.checkpoint_seq = after[0]
            if self.verifiers is not None:
                try:
                    v.key_id, _ = SignedNote.parse(after[1]).check(dict(self.verifiers))
                except NoteError:
                    pass
        if not problems:
            if after is None:
                v.lines.append("not signed yet: no checkpoint after this decision (its process is still running, "
                               "or was killed before its next checkpoint)")
            elif self.verifiers is None:
                v.lines.append("signatures not checked: start serve with --public-key to prove who signed")
            if self.anchors is None:
                v.lines.append("no --anchors: a chain removed whole, or cut back, would not show")
        return v
