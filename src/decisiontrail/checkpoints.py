"""Signed checkpoints of a hash chain, in the signed-note form transparency logs use (C2SP).

A checkpoint says "chain C had reached seq N with head hash H, holding D decisions, at time T; the
previous checkpoint of this chain was P; the chain is open (or closed)". Its text::

    decisiontrail.checkpoint/v1
    chain 01a205c6-cba7-7000-8000-5fa592937aab
    seq 1000
    head 9c1f…
    decisions 1000
    prev 4e7a…          (sha256 of the previous checkpoint's text; "-" for the first)
    time 1764577485123456789
    state open

then an empty line and one signature line per key, ``— decisiontrail <base64(key id ‖ signature)>``
(the signature is over the text above the empty line). A note without signature lines is an
unsigned checkpoint (a chain with anchors but no key). The checkpoint is itself an event of the chain
(``decision.checkpoint``, at seq N+1, linked to H), so removing one breaks the chain as well as the
checkpoints' own chain.

:class:`Checkpointer` decides when one is due (every ``every`` decisions or ``seconds`` seconds,
whichever first) and writes the notes; chain.ChainStage calls it on the export thread.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Sequence

from .signing import KEY_NAME, Signer, Verifier

__all__ = ["Checkpoint", "Checkpointer", "SignedNote", "NoteError", "ORIGIN", "DEFAULT_EVERY", "DEFAULT_SECONDS"]

ORIGIN = "decisiontrail.checkpoint/v1"
DEFAULT_EVERY = 1000
DEFAULT_SECONDS = 60.0
_DASH = "\u2014"


class NoteError(ValueError):
    """A checkpoint note that does not parse."""


@dataclass(frozen=True)
class Checkpoint:
    chain_id: str
    seq: int            # the last event the checkpoint covers (the checkpoint event itself is seq + 1)
    head: str           # decision.chain.hash of that event ("" for an empty chain)
    decisions: int      # decisions (rows) in events 1..seq
    prev: str           # sha256 of the previous checkpoint's text, "" for the first
    time_unix_nano: int
    closed: bool

    def text(self) -> str:
        return (f"{ORIGIN}\nchain {self.chain_id}\nseq {self.seq}\nhead {self.head or '-'}\n"
                f"decisions {self.decisions}\nprev {self.prev or '-'}\ntime {self.time_unix_nano}\n"
                f"state {'closed' if self.closed else 'open'}\n")

    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) != 9 or lines[0] != ORIGIN or lines[8] != "":
            raise NoteError("not a decisiontrail checkpoint")
        fields = {}
        for line, name in zip(lines[1:8], ("chain", "seq", "head", "decisions", "prev", "time", "state")):
            key, _, value = line.partition(" ")
            if key != name or not value:
                raise NoteError(f"line {name!r} missing")
            fields[name] = value
        if fields["state"] not in ("open", "closed"):
            raise NoteError("state is neither open nor closed")
        try:
            return cls(fields["chain"], int(fields["seq"]), "" if fields["head"] == "-" else fields["head"],
                       int(fields["decisions"]), "" if fields["prev"] == "-" else fields["prev"],
                       int(fields["time"]), fields["state"] == "closed")
        except ValueError as exc:
            raise NoteError(str(exc)) from exc


@dataclass(frozen=True)
class SignedNote:
    """A note's text and its signatures ((key id, signature) pairs)."""

    text: str
    signatures: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def create(cls, text: str, signers: Sequence[Signer]) -> SignedNote:
        return cls(text, tuple((s.key_id, s.sign(text.encode())) for s in signers))

    def render(self) -> str:
        sigs = "".join(f"{_DASH} {KEY_NAME} {base64.b64encode(k + s).decode()}\n" for k, s in self.signatures)
        return f"{self.text}\n{sigs}"

    @classmethod
    def parse(cls, note: str) -> SignedNote:
        text, sep, rest = note.partition("\n\n")
        if not sep:
            raise NoteError("no empty line after the checkpoint text")
        sigs = []
        for line in rest.split("\n"):
            if not line:
                continue
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != _DASH:
                raise NoteError(f"malformed signature line {line[:60]!r}")
            try:
                raw = base64.b64decode(parts[2], validate=True)
            except ValueError as exc:
                raise NoteError("signature is not base64") from exc
            if len(raw) < 5:
                raise NoteError("signature too short")
            sigs.append((raw[:4], raw[4:]))
        return cls(text + "\n", tuple(sigs))

    def check(self, verifiers: dict[bytes, Verifier]) -> tuple[str | None, str | None]:
        """(key id that verified, None) or (None, what is wrong) against the given keys."""
        if not self.signatures:
            return None, "the checkpoint is not signed"
        unknown = []
        for key_id, sig in self.signatures:
            v = verifiers.get(key_id)
            if v is None:
                unknown.append(key_id.hex())
            elif v.verify(self.text.encode(), sig):
                return key_id.hex(), None
            else:
                return None, f"bad signature for key {key_id.hex()} (the checkpoint was changed or forged)"
        return None, f"signed by key {', '.join(unknown)}, which is not among the given keys (a forgery, or a key not given)"


class Checkpointer:
    """When a checkpoint is due, and its note. Not thread-safe: chain.ChainStage calls it under its lock."""

    def __init__(self, signer: Signer | None, every: int = DEFAULT_EVERY, seconds: float = DEFAULT_SECONDS) -> None:
        self.signer = signer
        self.every = every
        self.seconds = seconds
        self.reset()

    def reset(self) -> None:
        """A new chain (a forked child): no checkpoint yet."""
        self.prev = ""
        self.decisions = 0
        self.pending = 0          # audit events linked since the last checkpoint
        self.pending_decisions = 0
        self.last = time.monotonic()
        self.made = 0             # notes written
        self.closed = False       # the last note closed the chain

    def count(self, decisions: int) -> None:
        self.pending += 1
        self.decisions += decisions
        self.pending_decisions += decisions

    def due(self) -> bool:
        return self.pending > 0 and (self.pending_decisions >= self.every
                                     or time.monotonic() - self.last >= self.seconds)

    def seconds_until_due(self) -> float | None:
        """None when nothing is pending (no checkpoint needed), else how long until one is."""
        if not self.pending:
            return None
        return max(0.0, self.last + self.seconds - time.monotonic())

    def note(self, chain_id: str, seq: int, head: str, closed: bool) -> str:
        """The signed note of a checkpoint of the chain head ``(seq, head)``; it starts a new interval."""
        cp = Checkpoint(chain_id, seq, head, self.decisions, self.prev, time.time_ns(), closed)
        self.prev = cp.digest()
        self.pending = self.pending_decisions = 0
        self.last = time.monotonic()
        self.made += 1
        self.closed = closed
        return SignedNote.create(cp.text(), [self.signer] if self.signer is not None else []).render()
