"""What a processor did not deliver, and who hears of it: counted, logged with the count, reported.

Every decision that will not reach the exporter is counted here once, in the process-wide ``stats``
(``lost``, ``dead_lettered``; ``spool_corrupt`` counts spool records) and in the processor's own
:class:`Ledger`, which ``drain()`` and ``health()`` read: after any of these, ``drain()`` returns
False for good and ``health()["undelivered"]`` says what and why. Log lines are rate-limited to one
a second per kind, each with the running total; the last one is written at shutdown.

Fail-closed (``fail_closed=True``): a loss on the recording thread raises DecisionLostError there
(the caller of :meth:`Ledger.lose` passes ``producer=True``). A loss found later, on the export or
replay thread (a rejected batch, a corrupt spool record, a spool that cannot be written at exit), is
queued here, and the next recording call of any fail-closed recorder raises DecisionLostError
naming it (:func:`raise_pending`): nobody else could hear of it.
"""

from __future__ import annotations

import logging
import threading
import time

from . import stats
from .errors import DecisionLostError

__all__ = ["Ledger", "raise_pending", "pending"]

_log = logging.getLogger("decisiontrail.processing")
_LOG_INTERVAL = 1.0  # seconds between two log lines of one kind; every loss is counted at once

_pending_lock = threading.Lock()
_pending: list[str] = []
_has_pending = False  # read without the lock on the recording thread


def pending() -> list[str]:
    """The export-side losses not yet raised to a fail-closed recorder (oldest first)."""
    with _pending_lock:
        return list(_pending)


def raise_pending() -> None:
    """Raise DecisionLostError naming the export-side losses since the last raise, if any."""
    global _has_pending
    if not _has_pending:
        return
    with _pending_lock:
        found, _pending[:] = list(_pending), []
        _has_pending = False
    if found:
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise DecisionLostError("decisions were not delivered after they were recorded: "
                                + "; ".join(found[:5]) + more)


def _notify(message: str) -> None:
    global _has_pending
    with _pending_lock:
        if len(_pending) < 1000:
            _pending.append(message)
        _has_pending = True


class Ledger:
    """One processor's account of what it could not deliver."""

    KINDS = ("lost", "dead_lettered", "spool_corrupt")

    def __init__(self, fail_closed: bool = False) -> None:
        self.fail_closed = fail_closed
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.spool_errors = 0
        self.last: dict[str, str] = {}  # kind -> the latest reason
        self._lock = threading.Lock()
        self._unlogged = dict.fromkeys(self.KINDS, 0)
        self._last_log = dict.fromkeys(self.KINDS, 0.0)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.KINDS, 0)
        self._unlogged = dict.fromkeys(self.KINDS, 0)
        self.last = {}
        self.spool_errors = 0

    @property
    def clean(self) -> bool:
        """True while nothing was lost, dead-lettered or found corrupt."""
        return not any(self.counts.values())

    def report(self) -> dict[str, object]:
        with self._lock:
            return {**self.counts, "spool_errors": self.spool_errors, "reasons": dict(self.last)}

    def lose(self, decisions: int, why: str, *, producer: bool = False, closing: bool = False) -> None:
        """Decisions gone for good. On the recording thread (``producer``) fail-closed raises here."""
        self._account("lost", decisions, why, closing)
        if self.fail_closed:
            message = f"{decisions} decision(s) lost: {why}"
            if producer:
                raise DecisionLostError(message)
            _notify(message)

    def dead_lettered(self, decisions: int, why: str, where: object) -> None:
        self._account("dead_lettered", decisions, f"{why}; kept in {where}", False)
        if self.fail_closed:
            _notify(f"{decisions} decision(s) rejected for good and dead-lettered in {where}: {why}")

    def corrupt(self, records: int, decisions: int | None, why: str) -> None:
        """Spool records that failed their checksum or shape check (kept aside, not replayed)."""
        stats.add("spool_corrupt", records)
        if decisions:
            stats.add("lost", decisions)
        with self._lock:
            self.counts["spool_corrupt"] += records
            if decisions:
                self.counts["lost"] += decisions
            self.last["spool_corrupt"] = why
        n = f"{decisions}" if decisions is not None else "an unknown number of"
        _log.error("decisiontrail: %d spool record(s) with %s decision(s) are corrupt and were not replayed "
                   "(%s); %d corrupt record(s) so far", records, n, why, self.counts["spool_corrupt"])
        if self.fail_closed:
            _notify(f"{records} corrupt spool record(s) ({n} decisions): {why}")

    def spool_error(self, why: str) -> None:
        """A spool write failed or its directory vanished: counted and logged, not (yet) a loss."""
        stats.add("spool_errors")
        with self._lock:
            self.spool_errors += 1
            self.last["spool_errors"] = why
        _log.error("decisiontrail: spool problem: %s (%d so far)", why, self.spool_errors)

    def _account(self, kind: str, decisions: int, why: str, closing: bool) -> None:
        stats.add(kind, decisions)
        now = time.monotonic()
        with self._lock:
            self.counts[kind] += decisions
            self.last[kind] = why
            self._unlogged[kind] += decisions
            if now - self._last_log[kind] >= _LOG_INTERVAL or closing:
                n, self._unlogged[kind], self._last_log[kind] = self._unlogged[kind], 0, now
            else:
                n = 0
        if n:
            verb = "lost" if kind == "lost" else "dead-lettered"
            _log.error("decisiontrail: %d decisions %s (%s); %d %s in this process so far",
                       n, verb, why, stats.snapshot()[kind], verb)

    def log_held_back(self) -> None:
        """Log the counts the rate limit held back (at shutdown)."""
        with self._lock:
            held = {k: n for k, n in self._unlogged.items() if n}
            for k in held:
                self._unlogged[k] = 0
        for kind, n in held.items():
            verb = "lost" if kind == "lost" else "dead-lettered"
            _log.error("decisiontrail: %d more decisions %s; %d %s in this process so far",
                       n, verb, stats.snapshot()[kind], verb)
