"""DecisionSpanProcessor: the queue, the export thread and the lifecycle (the package docstring
says what it guarantees; exporting.py holds the export side)."""

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
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from .. import stats
from ..deadletter import DeadLetterFile
from ..losses import Ledger
from ..spool import Replayer, Spool
from ..threads import start_thread
from .counting import decision_count, compact
from .counting import decisions as _decisions
from .exporting import ExportSide
from .hooks import after_fork_in_child, die_of_sigterm, handle_sigterm, shutdown_at_exit

__all__ = ["DecisionSpanProcessor", "ON_FULL_POLICIES", "DURABILITY_MODES"]

_log = logging.getLogger("decisiontrail.processing")
ON_FULL_POLICIES = ("spool", "block", "drop")
DURABILITY_MODES = ("async", "sync")


class DecisionSpanProcessor(ExportSide, SpanProcessor):
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
        dead_letter_after_failures: int = 5,
        durability: str = "async",
        exporter_factory: Callable[[], SpanExporter] | None = None,
    ) -> None:
        on_full = on_full or ("spool" if spool is not None else "block")
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {ON_FULL_POLICIES}, not {on_full!r}")
        if on_full == "spool" and spool is None:
            raise ValueError('on_full="spool" needs a spool')
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, not {durability!r}")
        if durability == "sync" and spool is None:
            raise ValueError('durability="sync" needs a spool')
        self.durability = durability
        self.exporter_factory = exporter_factory  # a fresh exporter for a forked child
        self._inherited: list[SpanExporter] = []  # a parent's exporters, kept from the collector
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
        self._ahead: list[ReadableSpan] | None = None  # taken and linked while _in_flight's request is on its way
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
        self.dead_letter_after_failures = dead_letter_after_failures
        self.handoff = False  # a forked child that spools everything for its parent to deliver
        self._finished = False
        self._die_when_finished = False
        self.queue_full_events = 0  # decision spans that met a full queue (backpressure, spill or drop)
        self.replayer: Replayer | None = None
        if spool is not None:
            self.replayer = Replayer(spool, self._replay_batch, min_backoff=replay_min_backoff_millis / 1000,
                                     max_backoff=replay_max_backoff_millis / 1000, on_corrupt=self._corrupt)
            spool.on_problem = self.ledger.spool_error
            spool.on_lost = lambda n, why: self.ledger.lose(n, why, closing=self._closing)
        if hasattr(exporter, "idle") and hasattr(exporter, "prestage"):  # exporters/otlp.py
            exporter.idle = self._work_ahead  # the next batch is linked while a request is on its way
        self._start()
        ref = weakref.ref(self)
        # The SDK's provider shuts down at exit too, but not a provider the application made with
        # shutdown_on_exit=False; the queue must not vanish with the process either way. A forked
        # multiprocessing child leaves through os._exit (no atexit), after running its finalizers.
        self._atexit = functools.partial(shutdown_at_exit, ref)
        atexit.register(self._atexit)
        self._finalizer = multiprocessing.util.Finalize(None, shutdown_at_exit, args=(ref,), exitpriority=100)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(after_fork_in_child, ref))
        multiprocessing.util.register_after_fork(self, DecisionSpanProcessor._after_multiprocessing_fork)
        if multiprocessing.parent_process() is not None:  # configured inside a worker
            handle_sigterm(self)

    def _start(self) -> None:
        if self.replayer is not None and self.spool is not None and self.spool.pending():
            self.replayer.wake()  # left by an earlier process (or a crash): deliver it now
        self._worker = start_thread(self._run, "decisiontrail-export")

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
        self._in_flight = self._ahead = None
        self._flush_requested = self._stalled = False
        self._healthy, self._spool_retry_at, self._exporter_shut = True, 0.0, False
        if self.spool is not None and _over_grpc(self.exporter):
            # gRPC's core does not survive a fork while the parent's threads use it (a child that
            # calls it may abort or hang, whatever channel it uses): this child never calls gRPC.
            # Its batches go to the spool, which the parent's replayer (or the next process that
            # opens the spool) delivers.
            self.handoff = True
            self._inherited.append(self.exporter)
        elif self.exporter_factory is not None:
            # The parent's exporter may hold a lock or a channel that its threads were using at the
            # fork; never touch it here (not even to close it), make a new one.
            self._inherited.append(self.exporter)
            try:
                self.exporter = self.exporter_factory()
            except Exception as exc:  # keep the inherited one rather than none
                _log.error("decisiontrail: making a fresh exporter after fork failed: %r", exc)
            if hasattr(self.exporter, "idle") and hasattr(self.exporter, "prestage"):
                self.exporter.idle = self._work_ahead
        after_fork = getattr(self.prepare, "after_fork", None)
        if after_fork is not None:  # one chain per process: two would claim the same positions
            after_fork()
        if self.spool is not None:
            self.spool.after_fork()
        if self.dead_letters is not None:
            self.dead_letters.after_fork()
        if self.replayer is not None:
            self.replayer.after_fork()
        if self.handoff:
            self.replayer = None
        if not self._closing:
            self._start()
            handle_sigterm(self)

    def _after_multiprocessing_fork(self) -> None:
        # multiprocessing clears its finalizers in a new child; register ours again
        self._finalizer = multiprocessing.util.Finalize(None, shutdown_at_exit, args=(weakref.ref(self),),
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
        compact(span)
        if decisions and self.durability == "sync" and self._spool_sync(span, decisions):
            return
        with self._lock:
            q = self._queue
            if len(q) < self.max_queue_size and not self._closing:
                q.append(span)
                if len(q) == self.max_export_batch_size:
                    self._not_empty.notify()
                return
        self._overflow(span, decisions)

    def _spool_sync(self, span: ReadableSpan, decisions: int) -> bool:
        """``durability="sync"``: the span is in the spool (fsynced) before ``span.end()`` returns;
        the replayer delivers it. False (the span is queued as usual) when the spool cannot be
        written, or while shutting down."""
        if self._closing or not self._spool_usable():
            return False
        return self._spill([span], "durability=sync", hold=True)

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
    def _work_ahead(self) -> None:
        """The exporter's ``idle``: while the export thread's request is on its way, take the next
        batch (a full one, or what is left when flushing or closing), link it and have the exporter
        encode it. It counts as in flight from here on (force_flush and shutdown see it)."""
        if threading.current_thread() is not self._worker or self.handoff:
            return  # the replayer's deliveries, or a forked child's
        with self._lock:
            if self._ahead is not None or self._in_flight is None or not self._queue:
                return
            if len(self._queue) < self.max_export_batch_size and not (self._flush_requested or self._closing):
                return
            n = min(len(self._queue), self.max_export_batch_size)
            batch = self._ahead = [self._queue.popleft() for _ in range(n)]
            self._not_full.notify_all()
        if self.prepare is not None:
            try:
                batch = self.prepare(batch)
            except Exception as exc:  # export unlinked rather than lose the batch
                _log.error("decisiontrail: preparing a batch for export failed: %r", exc)
        with self._lock:
            if self._ahead is None:  # shutdown took it over
                return
            self._ahead = batch
        prestage = getattr(self.exporter, "prestage", None)
        if prestage is not None:
            prestage(batch)

    def _run(self) -> None:
        while True:
            with self._lock:
                ahead, self._ahead = self._ahead, None
                if ahead is not None:  # taken and linked while the last request was on its way
                    self._in_flight = ahead
            if ahead is not None:
                self._export(ahead, prepared=True)
                continue
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
                    if self.handoff and self.spool is not None:  # idle: let the parent replay it
                        self.spool.roll(older_than=self.spool.max_segment_age)
                    continue
                n = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = batch
                self._not_full.notify_all()
            self._export(batch, prepared=False)

    def _export(self, batch: list[ReadableSpan], prepared: bool) -> None:
        """Link (unless ``prepared``) and deliver the in-flight batch."""
        if self.prepare is not None and not prepared:
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
                if not self._queue and self._ahead is None:
                    self._flush_requested = False
                    self._idle.notify_all()

    # -- lifecycle -----------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every span ended so far is exported or spooled."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if self._shutdown:
                return True
            self._flush_requested = True
            self._not_empty.notify()
            while self._queue or self._in_flight is not None or self._ahead is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
                if self._queue and not self._flush_requested:
                    self._flush_requested = True
                    self._not_empty.notify()
        # Exporters that do not implement force_flush return None: that is not a failure.
        if self.handoff:
            return True
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
            if self._worker.is_alive() and (self._in_flight is not None or self._ahead is not None):
                # the export thread is stuck in the exporter for good
                rest[:0] = (self._in_flight or []) + (self._ahead or [])
                self._in_flight = self._ahead = None
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
        self._finished = True
        if self._die_when_finished:  # SIGTERM came while this shutdown ran: die of it now
            die_of_sigterm()

    def _shutdown_exporter(self) -> None:
        if not self._exporter_shut:
            self._exporter_shut = True
            if not self.handoff:  # a handoff child's exporter is the parent's: never touched
                self.exporter.shutdown()


def _over_grpc(exporter: SpanExporter) -> bool:
    """The exporter, or one it wraps (``.exporter``: the anchoring exporter), talks gRPC."""
    for _ in range(4):
        if "grpc" in type(exporter).__module__:
            return True
        inner = getattr(exporter, "exporter", None)
        if not isinstance(inner, SpanExporter):
            return False
        exporter = inner
    return False
