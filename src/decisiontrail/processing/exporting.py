"""The export side of DecisionSpanProcessor: one attempt read span by span (delivered, retry,
rejected), the spool when an attempt fails, the dead-letter file for what is rejected for good, and
the replayer's export, which splits a batch that keeps failing to find the spans that fail."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from .. import stats
from ..deadletter import DeadLetterFile
from ..exporters.delivery import Delivery, deliver_with
from ..losses import Ledger
from ..spool import Record, Replayer, Segment, Spool
from .counting import decision_count
from .counting import decisions as _decisions

__all__ = ["ExportSide", "SPOOL_RETRY_SECONDS"]

_log = logging.getLogger("decisiontrail.processing")
SPOOL_RETRY_SECONDS = 1.0  # after a failed spool write, batches are held in memory this long before the next try


class ExportSide:
    """Mixed into DecisionSpanProcessor (processor.py), which sets these attributes."""

    exporter: SpanExporter
    spool: Spool | None
    replayer: Replayer | None
    dead_letters: DeadLetterFile | None
    ledger: Ledger
    prepare: Callable[[list[ReadableSpan]], list[ReadableSpan]] | None
    on_full: str
    max_export_attempts: int
    dead_letter_after_failures: int
    _lock: threading.Lock
    _export_lock: threading.Lock
    _in_flight: list[ReadableSpan] | None
    _healthy: bool
    _closing: bool
    _shutdown: bool
    _spool_retry_at: float
    _spool_problem: str
    handoff: bool

    def _attempt(self, batch: list[ReadableSpan]) -> Delivery:
        """One export attempt, span by span (exporters/delivery.py); an exporter that raises is a
        failed attempt: every span is to be retried."""
        with self._export_lock:
            try:
                return deliver_with(self.exporter, batch)
            except Exception as exc:  # an exporter bug must not kill the export thread
                _log.warning("decisiontrail: exporter raised %r", exc)
                return Delivery(retry=list(batch))

    def _settle(self, result: Delivery) -> list[ReadableSpan]:
        """Count what was delivered, dead-letter what was rejected for good; return the spans to retry."""
        if result.delivered:
            n = _decisions(result.delivered)
            if n:
                stats.add("exported", n)
            self._mark_up()
        if result.rejected:
            self._dead_letter(result.rejected)
        return result.retry

    def _mark_up(self) -> None:
        if not self._healthy:
            self._healthy = True
            _log.warning("decisiontrail: export works again; replaying the spool")
        if self.replayer is not None:
            self.replayer.exporter_worked()

    def _mark_down(self) -> None:
        if self._healthy:
            self._healthy = False
            where = self.spool.directory if self.spool is not None else "memory"
            _log.warning("decisiontrail: export failed; decisions go to the spool at %s until the "
                         "exporter accepts them again", where)

    def _owned(self, batch: list[ReadableSpan]) -> bool:
        """False when shutdown took the in-flight batch over (it spooled it itself)."""
        with self._lock:
            return self._in_flight is batch

    def _deliver(self, batch: list[ReadableSpan]) -> None:
        """Export ``batch``; what is to be retried goes to the spool, or, without a usable spool,
        is retried from memory with backoff (``on_full="drop"`` without a spool: up to
        ``max_export_attempts``, then counted lost)."""
        if self.handoff:  # a forked child of a gRPC process: the spool is its way out (processor.py)
            while not self._spill(batch, "handed to the parent through the spool", prepared=True,
                                  hold=not self._shutdown):
                if self._shutdown or not self._owned(batch):
                    return
                time.sleep(SPOOL_RETRY_SECONDS)
            return
        if self.spool is not None and not self._healthy and self._spool_usable():
            # The exporter is down: straight to the spool, the replayer probes the exporter.
            if self._spill(batch, "export failed", prepared=True, hold=True):
                return
        delay, attempt = 0.1, 0
        while True:
            attempt += 1
            retry = self._settle(self._attempt(batch))
            if not retry:
                return
            audit = [s for s in retry if decision_count(s)]
            if len(audit) < len(retry):
                stats.add("spans_dropped", len(retry) - len(audit))  # as the SDK would
            if not audit or not self._owned(batch):
                return
            with self._lock:
                self._in_flight = batch = audit
            self._mark_down()
            if self.spool is not None and self._spool_usable():
                if self._spill(batch, "export failed", prepared=True, hold=True):
                    return
                # The spool cannot be written: keep the batch in memory and try the exporter again
                # (the queue fills and producers wait), so a recovered exporter is seen at once.
            elif self.spool is None and self.on_full == "drop" and attempt >= self.max_export_attempts:
                self._spill(batch, f"export failed {attempt} times", prepared=True)  # no spool: lost
                return
            if self._shutdown:
                self._spill(batch, f"export failed {attempt} times before shutdown", prepared=True)
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _replay_batch(self, spans: list[ReadableSpan], strikes: int = 0) -> bool:
        """The Replayer's export: True when nothing of the batch is left to retry. A batch that was
        partly delivered puts its remainder back in the spool as a batch of its own. ``strikes``:
        how often this batch failed while other batches were delivered (spool/replay.py)."""
        if strikes and len(spans) > 1:
            return self._isolate(spans, strikes)
        retry = self._settle(self._attempt(spans))
        if not retry:
            return True
        self._healthy = False
        if strikes >= self.dead_letter_after_failures:
            self._dead_letter([(s, f"export failed {strikes + 1} times while the exporter accepted other "
                                   "batches") for s in retry])
            return True
        if len(retry) == len(spans):
            return False
        return self._respool(spans, retry, 0)

    def _isolate(self, spans: list[ReadableSpan], strikes: int) -> bool:
        """A batch that keeps failing while others are delivered: split it to find the spans that
        fail, deliver the rest, and dead-letter a single span once it failed
        ``dead_letter_after_failures`` times that way; the other failing parts go back to the spool
        with their strikes."""
        failing = self._bisect(spans)
        if failing is None:
            return False  # nothing delivered: the exporter may be down; no verdict
        for group, evidence in failing:
            total = strikes + evidence
            if len(group) == 1 and total >= self.dead_letter_after_failures:
                self._dead_letter([(group[0], f"export failed {total} times while the exporter accepted "
                                              "other batches")])
            elif not self._respool(spans, group, evidence):
                return False
        return True

    def _bisect(self, spans: list[ReadableSpan]) -> list[tuple[list[ReadableSpan], int]] | None:
        """Send both halves of ``spans``; of a half that fails while the other is delivered, both of
        its halves, and so on. Returns the failing parts with the number of times each failed next
        to a delivered part, or None when both halves failed (no verdict)."""
        mid = len(spans) // 2
        failed = [r for r in (self._settle(self._attempt(h)) for h in (spans[:mid], spans[mid:])) if r]
        if not failed:
            return []
        if len(failed) == 2:
            return None
        (group,) = failed
        deeper = self._bisect(group) if len(group) > 1 else None
        if deeper is None:
            return [(group, 1)]
        return [(g, e + 1) for g, e in deeper]

    def _respool(self, parent: list[ReadableSpan], part: list[ReadableSpan], evidence: int) -> bool:
        if not self._spill(part, "part of a replayed batch failed", prepared=True, hold=True):
            return False
        if self.replayer is not None:
            self.replayer.inherit_strikes(parent, part, evidence)
        return True

    def _corrupt(self, segment: Segment, record: Record) -> None:
        """A damaged spool record: kept aside, counted, logged, never replayed (spool/records.py)."""
        try:
            where = str(segment.keep_aside(record).name)
        except OSError as exc:
            where = f"nowhere (keeping it aside failed: {exc!r})"
        self.ledger.corrupt(1, record.decisions, f"line {record.line + 1} of {segment.path.name}: "
                                                  f"{record.problem}; kept in {where}")

    def _dead_letter(self, rejected: list[tuple[ReadableSpan, str]]) -> None:
        """Spans that will never be delivered: to the dead-letter file, counted, logged, never retried."""
        by_reason: dict[str, list[ReadableSpan]] = {}
        for span, why in rejected:
            if decision_count(span):
                by_reason.setdefault(why, []).append(span)
            else:
                stats.add("spans_dropped")
        for why, spans in by_reason.items():
            decisions = _decisions(spans)
            if self.dead_letters is None:
                self.ledger.lose(decisions, f"rejected for good ({why}), and there is no dead-letter directory",
                                 closing=self._closing)
                continue
            try:
                self.dead_letters.write(spans, why, decision_count)
            except OSError as exc:
                self.ledger.lose(decisions, f"rejected for good ({why}), and writing the dead-letter file "
                                 f"failed: {exc!r}", closing=self._closing)
                continue
            self.ledger.dead_lettered(decisions, why, self.dead_letters.path)

    # -- spool and loss ------------------------------------------------------------------------
    def _spool_usable(self) -> bool:
        return self.spool is not None and time.monotonic() >= self._spool_retry_at

    def _spill(self, spans: Sequence[ReadableSpan], why: str, *, producer: bool = False,
               prepared: bool = False, hold: bool = False) -> bool:
        """Write the decision spans of ``spans`` to the spool. When that fails: with ``hold`` the
        caller keeps them (False is returned, nothing is counted), otherwise they are counted lost."""
        audit = [s for s in spans if decision_count(s)]
        if len(audit) < len(spans):
            stats.add("spans_dropped", len(spans) - len(audit))
        if not audit:
            return True
        decisions = _decisions(audit)
        if self.spool is None:
            self._lose(decisions, f"{why}, and there is no spool", producer=producer)
            return False
        if self.prepare is not None and not prepared:
            try:  # the chain links belong to this process: add them before the spans leave it
                audit = self.prepare(audit)
            except Exception as exc:
                _log.error("decisiontrail: preparing a batch for the spool failed: %r", exc)
        try:
            self.spool.append(audit, decisions)
        except Exception as exc:
            self._spool_retry_at = time.monotonic() + SPOOL_RETRY_SECONDS
            self._spool_problem = repr(exc)
            self.ledger.spool_error(f"writing {decisions} decisions to {self.spool.directory} failed: {exc!r}")
            if hold:
                return False
            self._lose(decisions, f"{why}, and writing the spool failed: {exc!r}", producer=producer)
            return False
        self._spool_retry_at = 0.0
        stats.add("spooled", decisions)
        if self.replayer is not None:
            self.replayer.wake()
        return True

    def _lose(self, decisions: int, why: str, *, producer: bool = False) -> None:
        self.ledger.lose(decisions, why, producer=producer, closing=self._closing)
