"""DecisionSpanProcessor: a batching span processor that never loses a decision silently.

Where the SDK's BatchSpanProcessor evicts spans when its queue is full and drops batches whose
export fails, this processor keeps every span carrying decisions (``decision.count`` > 0):

- queue full, policy ``on_full``:
  ``"spool"`` (default with a spool): the recording thread waits up to ``block_timeout_millis`` for
  room; if the export thread made none (it is stuck), the oldest queued batch plus this span go to
  the spool (one fsync for up to a batch) and later spans spill at once until the export thread
  moves again. ``"block"``: wait for room as long as it takes (inference slows to the exporter's
  pace). ``"drop"``, the only lossy choice: drop the decision, count it in ``stats`` ``lost`` and log.
- each export attempt is read span by span (exporters/delivery.py): delivered spans count as
  exported; spans rejected for good go to the dead-letter file (deadletter.py), counted and logged,
  never retried; spans to retry (collector unreachable, batch refused for now): the decision spans go
  to the spool and the processor stops trying the exporter for new batches, which go straight to
  the spool; the :class:`~decisiontrail.spool.Replayer` retries the spool with backoff and, on its
  first success, the processor exports directly again. While the spool cannot be written, batches
  are held in memory and retried (producers wait on the full queue) rather than lost. Without a
  spool, a failed batch is retried with backoff until it succeeds (``"block"``), or given up and
  counted after ``max_export_attempts`` (``"drop"``).
- shutdown (also at interpreter exit through ``atexit``, and at the ``os._exit`` of a forked
  multiprocessing child through its finalizers): the queue is exported (the spool too while the
  exporter works), or spooled when the exporter is down or ``shutdown_timeout_millis`` passed; the
  spool is replayed by the next process that opens it. A forked child restarts the threads.
- unrecoverable (no spool, or the spool cannot be written at shutdown): counted in ``lost`` and
  logged (losses.py). With ``fail_closed`` a decision that cannot be queued or spooled raises
  DecisionLostError on the recording thread (from ``span.end()``) instead, and a loss on the export
  side is raised by the next recording call.

Spans without decisions keep the SDK's behaviour: dropped when the queue is full or their export
failed, counted in ``spans_dropped``. A span with decisions is exported even when the trace was not
sampled (a RECORD_ONLY sampler): its decisions are on it.

The recording thread's cost (``on_end``) is one attribute lookup, one uncontended lock and a deque
append; everything else happens on the export thread, or on the recording thread only when the
queue is full.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import multiprocessing.util
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from . import stats
from .conventions import SpanAttributes as S
from .deadletter import DeadLetterFile
from .exporters.delivery import Delivery, deliver_with
from .losses import Ledger
from .spool import Replayer, Spool

__all__ = ["DecisionSpanProcessor", "decision_count", "ON_FULL_POLICIES"]

_log = logging.getLogger(__name__)
ON_FULL_POLICIES = ("spool", "block", "drop")
_SPOOL_RETRY_SECONDS = 1.0  # after a failed spool write, batches are held in memory this long before the next try


def decision_count(span: ReadableSpan) -> int:
    """Audit records on the span: its decisions (``decision.count``) plus its other audit records
    (``decision.audit.records``: outcomes, reviews, checkpoints). Every span with one is kept."""
    # The SDK's span keeps its attributes in a BoundedAttributes whose plain dict ``_dict`` reads
    # without the lock and the generic Mapping.get that ``span.attributes`` goes through: on_end runs
    # for every span the application ends.
    attrs = getattr(getattr(span, "_attributes", None), "_dict", None)
    if attrs is None:
        attrs = span.attributes or {}
    n = attrs.get(S.DECISION_COUNT)
    r = attrs.get(S.AUDIT_RECORDS)
    return (n if isinstance(n, int) else 0) + (r if isinstance(r, int) else 0)


def _decisions(spans: Sequence[ReadableSpan]) -> int:
    return sum(decision_count(s) for s in spans)


class DecisionSpanProcessor(SpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter,
        *,
        spool: Spool | None = None,
        on_full: str | None = None,
        max_queue_size: int = 20480,
        max_export_batch_size: int = 512,
        schedule_delay_millis: float = 500,
        block_timeout_millis: float = 1000,
        max_export_attempts: int = 6,
        shutdown_timeout_millis: float = 10_000,
        replay_min_backoff_millis: float = 500,
        replay_max_backoff_millis: float = 5000,
        fail_closed: bool = False,
        prepare: Callable[[list[ReadableSpan]], list[ReadableSpan]] | None = None,
        dead_letter_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        on_full = on_full or ("spool" if spool is not None else "block")
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {ON_FULL_POLICIES}, not {on_full!r}")
        if on_full == "spool" and spool is None:
            raise ValueError('on_full="spool" needs a spool')
        self.exporter = exporter
        self.spool = spool
        self.on_full = on_full
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay = schedule_delay_millis / 1000
        self.block_timeout = block_timeout_millis / 1000
        self.max_export_attempts = max_export_attempts
        self.shutdown_timeout = shutdown_timeout_millis / 1000
        self.fail_closed = fail_closed
        self.prepare = prepare  # applied once per batch on the export thread (chain.ChainStage)
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._in_flight: list[ReadableSpan] | None = None
        self._flush_requested = False
        self._closing = False   # shutdown began: export what is queued, then stop
        self._shutdown = False  # the export thread is gone: late spans go to the spool
        self._stalled = False   # a producer waited block_timeout in vain: spill without waiting
        self._healthy = True    # False while exports fail: batches go straight to the spool
        self._exporter_shut = False
        self._export_lock = threading.Lock()  # the export and replay threads share the exporter
        self._spool_retry_at = 0.0  # a spool write failed: hold batches in memory until then
        self._spool_problem = ""
        self.ledger = Ledger(fail_closed)
        if dead_letter_dir is None and spool is not None:
            dead_letter_dir = spool.directory / "dead-letter"
        self.dead_letters = DeadLetterFile(dead_letter_dir) if dead_letter_dir is not None else None
        self.queue_full_events = 0  # decision spans that met a full queue (backpressure, spill or drop)
        self.replayer: Replayer | None = None
        if spool is not None:
            self.replayer = Replayer(spool, self._replay_batch, min_backoff=replay_min_backoff_millis / 1000,
                                     max_backoff=replay_max_backoff_millis / 1000)
        self._start()
        ref = weakref.ref(self)
        # The SDK's provider shuts down at exit too, but not a provider the application made with
        # shutdown_on_exit=False; the queue must not vanish with the process either way. A forked
        # multiprocessing child leaves through os._exit (no atexit), after running its finalizers.
        self._atexit = functools.partial(_shutdown_at_exit, ref)
        atexit.register(self._atexit)
        self._finalizer = multiprocessing.util.Finalize(None, _shutdown_at_exit, args=(ref,), exitpriority=100)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(_after_fork_in_child, ref))
        multiprocessing.util.register_after_fork(self, DecisionSpanProcessor._after_multiprocessing_fork)

    def _start(self) -> None:
        if self.replayer is not None and self.spool is not None and self.spool.pending():
            self.replayer.wake()  # left by an earlier process (or a crash): deliver it now
        self._worker = threading.Thread(target=self._run, name="decisiontrail-export", daemon=True)
        self._worker.start()

    def _after_fork(self) -> None:
        """In a forked child (a pre-forking server, a multiprocessing worker): the parent's threads
        did not come along and its queue is the parent's to deliver; start afresh."""
        self._queue = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._export_lock = threading.Lock()
        self.ledger.after_fork()
        self._in_flight = None
        self._flush_requested = self._stalled = False
        after_fork = getattr(self.prepare, "after_fork", None)
        if after_fork is not None:  # one chain per process: two would claim the same positions
            after_fork()
        if self.spool is not None:
            self.spool.after_fork()
        if self.dead_letters is not None:
            self.dead_letters.after_fork()
        if self.replayer is not None:
            self.replayer.after_fork()
        if not self._closing:
            self._start()

    def _after_multiprocessing_fork(self) -> None:
        # multiprocessing clears its finalizers in a new child; register ours again
        self._finalizer = multiprocessing.util.Finalize(None, _shutdown_at_exit, args=(weakref.ref(self),),
                                                        exitpriority=100)

    @property
    def healthy(self) -> bool:
        """False while the exporter is failing and new batches go to the spool."""
        return self._healthy

    def health(self) -> dict[str, object]:
        """For a health check: ``exporting`` (the exporter works), ``spool_pending`` (segments on
        disk), ``spool_writable`` (the last write worked), ``delivered_all`` (nothing was lost,
        dead-lettered or found corrupt since this processor started) and ``undelivered``: the
        counts and latest reason of each (``lost``, ``dead_lettered``, ``spool_corrupt``,
        ``spool_errors``)."""
        return {
            "exporting": self._healthy,
            "spool_pending": len(self.spool.segments()) if self.spool is not None else 0,
            "spool_writable": self._spool_retry_at == 0.0,
            "delivered_all": self.ledger.clean,
            "undelivered": self.ledger.report(),
        }

    # -- producer side (the recording thread) --------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        decisions = decision_count(span)
        if not decisions and not span.context.trace_flags.sampled:
            return
        with self._lock:
            q = self._queue
            if len(q) < self.max_queue_size and not self._closing:
                q.append(span)
                if len(q) == self.max_export_batch_size:
                    self._not_empty.notify()
                return
        self._overflow(span, decisions)

    def _overflow(self, span: ReadableSpan, decisions: int) -> None:
        """The queue is full, or the processor is shutting down."""
        if not decisions:
            stats.add("spans_dropped")
            return
        self.queue_full_events += 1
        if self._closing:
            self._spill([span], "the processor is shut down", producer=True)
            return
        if self.on_full == "drop":
            self._lose(decisions, 'export queue full (on_full="drop")', producer=True)
            return
        if self.on_full == "block" or not self._spool_usable():
            # Backpressure: inference waits for the exporter. Also while the spool cannot be written
            # (waiting loses nothing, spilling would), except that a fail-closed recorder gets
            # DecisionLostError after block_timeout_millis instead of a wait without end.
            limit = self.block_timeout if self.on_full != "block" and self.fail_closed else None
            with self._lock:
                if self._wait_for_room(limit):
                    self._queue.append(span)
                    return
                closing = self._closing
            if closing:
                self._spill([span], "the processor is shut down", producer=True)
            else:
                self._lose(decisions, f"export queue full, and writing the spool failed: {self._spool_problem}",
                           producer=True)
            return
        stalled_now = False
        with self._lock:
            if not self._stalled:
                if self._wait_for_room(self.block_timeout):
                    self._queue.append(span)
                    return
                if not self._closing:
                    self._stalled = stalled_now = True
            # Spill the oldest batch with this span: one fsync for up to a batch of decisions, and
            # room for the producers that come next.
            n = min(len(self._queue), self.max_export_batch_size - 1)
            spill = [self._queue.popleft() for _ in range(n)]
            spill.append(span)
            self._not_full.notify_all()
        if stalled_now:  # logged outside the lock: a logging handler may itself record telemetry
            _log.warning("decisiontrail: the export queue stayed full for %.1f s; spilling decisions to "
                         "the spool until the exporter catches up", self.block_timeout)
        if self._spill(spill, "export queue full", producer=True, hold=True):
            return
        with self._lock:  # the spool cannot be written: back to the head of the queue, in order
            if not self._closing:
                self._queue.extendleft(reversed(spill))
                return
        self._lose(_decisions(spill), f"export queue full, and writing the spool failed: {self._spool_problem}",
                   producer=True)

    def _wait_for_room(self, limit: float | None) -> bool:
        """With the lock held: wait until the queue has room (True), up to ``limit`` seconds, or
        until shutdown began (False)."""
        deadline = None if limit is None else time.monotonic() + limit
        while len(self._queue) >= self.max_queue_size and not self._closing:
            self._not_empty.notify()
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._not_full.wait(remaining)
        return not self._closing

    # -- export side ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._closing and not self._flush_requested:
                    self._not_empty.wait(self.schedule_delay)
                if (len(self._queue) < self.max_export_batch_size and not self._flush_requested
                        and not self._closing):
                    self._not_empty.wait_for(
                        lambda: len(self._queue) >= self.max_export_batch_size or self._closing
                        or self._flush_requested, self.schedule_delay)
                if not self._queue:
                    self._flush_requested = False
                    self._idle.notify_all()
                    if self._closing:
                        return
                    continue
                n = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = batch
                self._not_full.notify_all()
            if self.prepare is not None:
                try:
                    batch = self.prepare(batch)
                except Exception as exc:  # export unlinked rather than lose the batch
                    _log.error("decisiontrail: preparing a batch for export failed: %r", exc)
            with self._lock:
                if self._in_flight is not None:
                    self._in_flight = batch
            try:
                self._deliver(batch)
            except Exception as exc:  # pragma: no cover - a bug here must not stop the export thread
                _log.error("decisiontrail: delivering a batch failed: %r", exc)
            finally:
                with self._lock:
                    self._in_flight = None
                    self._stalled = False
                    if not self._queue:
                        self._flush_requested = False
                        self._idle.notify_all()

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

    def _replay_batch(self, spans: list[ReadableSpan]) -> bool:
        """The Replayer's export: True when nothing of the batch is left to retry. A batch that was
        partly delivered puts its remainder back in the spool as a batch of its own."""
        retry = self._settle(self._attempt(spans))
        if not retry:
            return True
        self._healthy = False
        if len(retry) == len(spans):
            return False
        return self._spill(retry, "part of a replayed batch failed", prepared=True, hold=True)

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
            self._spool_retry_at = time.monotonic() + _SPOOL_RETRY_SECONDS
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

    # -- lifecycle -----------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every span ended so far is exported or spooled."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if self._shutdown:
                return True
            self._flush_requested = True
            self._not_empty.notify()
            while self._queue or self._in_flight is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
                if self._queue and not self._flush_requested:
                    self._flush_requested = True
                    self._not_empty.notify()
        # Exporters that do not implement force_flush return None: that is not a failure.
        return self.exporter.force_flush(max(0, int((deadline - time.monotonic()) * 1000))) is not False

    def drain(self, timeout_millis: int = 30000) -> bool:
        """force_flush, then wait until the spool holds nothing this process can replay: True when
        every decision so far was exported (tests, health checks, a graceful stop). False on
        timeout, and for good once anything was lost, dead-lettered or found corrupt in the spool
        (``health()["undelivered"]`` says what and why)."""
        deadline = time.monotonic() + timeout_millis / 1000
        drained = self.force_flush(timeout_millis) and self._drain_spool(deadline, give_up_when_down=False)
        return drained and self.ledger.clean

    def _drain_spool(self, deadline: float, give_up_when_down: bool) -> bool:
        if self.replayer is None:
            return True
        self.replayer.wake()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (give_up_when_down and not self._healthy):
                return False
            if self.replayer.wait_idle(min(remaining, 0.2)):
                return True

    def shutdown(self) -> None:
        with self._lock:
            closing = self._closing
        if not closing:
            # The chain's closing checkpoint is queued behind everything ended before shutdown.
            for span in getattr(self.prepare, "closing_spans", list)():
                self.on_end(span)
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        atexit.unregister(self._atexit)
        self._finalizer.cancel()
        deadline = time.monotonic() + self.shutdown_timeout
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            # The exporter hangs (an unreachable collector, its retries). Shutting it down makes the
            # OTLP exporters give up their retries; the export thread then spools what is left.
            _log.warning("decisiontrail: export did not finish within %.0f s of shutdown; spooling the rest",
                         self.shutdown_timeout)
            if self.replayer is not None:
                self.replayer.stop(timeout=0)
            self._shutdown_exporter()
            self._worker.join(min(5.0, max(1.0, self.shutdown_timeout)))
        elif self._healthy and self.spool is not None and self.spool.pending():
            # While the exporter works, deliver the spool too (a short-lived process may never start
            # again); what is left at the deadline waits on disk for the next process.
            self._drain_spool(deadline, give_up_when_down=True)
        with self._lock:
            self._shutdown = True
            rest = list(self._queue)
            self._queue.clear()
            if self._worker.is_alive() and self._in_flight is not None:
                rest[:0] = self._in_flight  # the export thread is stuck in the exporter for good
                self._in_flight = None
        if rest:  # prepare (the chain) is idempotent: spans the export thread linked keep their links
            self._spill(rest, "export did not finish before shutdown")
        if self.replayer is not None:
            self.replayer.stop(timeout=2.0)
        if self.spool is not None:
            self.spool.close()
        if self.dead_letters is not None:
            self.dead_letters.close()
        self._shutdown_exporter()
        self.ledger.log_held_back()

    def _shutdown_exporter(self) -> None:
        if not self._exporter_shut:
            self._exporter_shut = True
            self.exporter.shutdown()


def _after_fork_in_child(ref: weakref.ReferenceType[DecisionSpanProcessor]) -> None:
    processor = ref()
    if processor is not None:
        processor._after_fork()


def _shutdown_at_exit(ref: weakref.ReferenceType[DecisionSpanProcessor]) -> None:
    processor = ref()
    if processor is not None:
        processor.shutdown()
