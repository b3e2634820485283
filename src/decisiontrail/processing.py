"""DecisionSpanProcessor: a batching span processor that never loses a decision silently.

Differences from the SDK's BatchSpanProcessor, which evicts spans when its queue is full and drops
batches whose export fails:

- a span carrying decisions (``decision.count`` > 0) is never evicted: when the queue is full the
  recording thread waits (bounded by ``block_timeout_millis``) for the export thread to make room;
- a failed export of decision spans is retried with exponential backoff until it succeeds, the
  processor shuts down, or ``max_export_attempts`` is reached;
- what still cannot be exported is handed to ``on_undeliverable`` (the spool plugs in there) or,
  without one, counted in ``stats`` (``lost``) and logged with the running count;
- spans without decisions keep the SDK's behaviour (dropped when full), counted in ``spans_dropped``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import stats
from .conventions import SpanAttributes as S

__all__ = ["DecisionSpanProcessor", "decision_count"]

_log = logging.getLogger(__name__)


def decision_count(span: ReadableSpan) -> int:
    attrs = span.attributes
    return int(attrs.get(S.DECISION_COUNT, 0)) if attrs else 0


class DecisionSpanProcessor(SpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 20480,
        max_export_batch_size: int = 512,
        schedule_delay_millis: float = 500,
        block_timeout_millis: float = 10_000,
        max_export_attempts: int = 6,
        on_undeliverable: Callable[[Sequence[ReadableSpan], str], bool] | None = None,
        prepare: Callable[[list[ReadableSpan]], list[ReadableSpan]] | None = None,
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay = schedule_delay_millis / 1000
        self.block_timeout = block_timeout_millis / 1000
        self.max_export_attempts = max_export_attempts
        self.on_undeliverable = on_undeliverable
        self.prepare = prepare  # applied once per batch on the export thread (chain.ChainStage)
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._flush_requested = False
        self._shutdown = False
        self._worker = threading.Thread(target=self._run, name="decisiontrail-export", daemon=True)
        self._worker.start()

    # -- producer side -----------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        decisions = decision_count(span)
        with self._lock:
            if self._shutdown:
                self._undeliverable([span], "processor is shut down")
                return
            if len(self._queue) >= self.max_queue_size:
                if not decisions:
                    stats.add("spans_dropped")
                    return
                # Backpressure: a decision waits for room rather than being evicted.
                deadline = time.monotonic() + self.block_timeout
                while len(self._queue) >= self.max_queue_size and not self._shutdown:
                    self._not_empty.notify()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._not_full.wait(remaining):
                        break
                if len(self._queue) >= self.max_queue_size or self._shutdown:
                    self._undeliverable([span], "export queue full")
                    return
            self._queue.append(span)
            if len(self._queue) >= self.max_export_batch_size:
                self._not_empty.notify()

    # -- export side -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._shutdown and not self._flush_requested:
                    self._not_empty.wait(self.schedule_delay)
                if (len(self._queue) < self.max_export_batch_size and not self._flush_requested
                        and not self._shutdown):
                    self._not_empty.wait_for(
                        lambda: len(self._queue) >= self.max_export_batch_size or self._shutdown
                        or self._flush_requested, self.schedule_delay)
                if not self._queue:
                    self._flush_requested = False
                    self._idle.notify_all()
                    if self._shutdown:
                        return
                    continue
                n = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
                self._not_full.notify_all()
            if self.prepare is not None:
                try:
                    batch = self.prepare(batch)
                except Exception as exc:  # export unlinked rather than lose the batch
                    _log.error("decisiontrail: preparing a batch for export failed: %r", exc)
            try:
                self._export(batch)
            finally:
                with self._lock:
                    self._in_flight = 0
                    if not self._queue:
                        self._flush_requested = False
                        self._idle.notify_all()

    def _export(self, batch: list[ReadableSpan]) -> None:
        decisions = sum(decision_count(s) for s in batch)
        delay = 0.1
        for attempt in range(1, self.max_export_attempts + 1):
            try:
                result = self.exporter.export(batch)
            except Exception as exc:  # an exporter bug must not kill the export thread
                _log.warning("decisiontrail: exporter raised %r", exc)
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                if decisions:
                    stats.add("exported", decisions)
                return
            if not decisions or self._shutdown or attempt == self.max_export_attempts:
                break
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        audit = [s for s in batch if decision_count(s)]
        if len(audit) < len(batch):
            stats.add("spans_dropped", len(batch) - len(audit))
        if audit:
            self._undeliverable(audit, "export failed")

    def _undeliverable(self, spans: Sequence[ReadableSpan], why: str) -> None:
        decisions = sum(decision_count(s) for s in spans)
        if self.on_undeliverable is not None:
            try:
                if self.on_undeliverable(spans, why):
                    stats.add("spooled", decisions)
                    return
            except Exception as exc:
                _log.error("decisiontrail: spooling %d decisions failed: %r", decisions, exc)
        if decisions:
            stats.add("lost", decisions)
            _log.error("decisiontrail: %d decisions lost (%s); %d lost in this process so far",
                       decisions, why, stats.snapshot()["lost"])

    # -- lifecycle ---------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            self._flush_requested = True
            self._not_empty.notify()
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
                if self._queue and not self._flush_requested:
                    self._flush_requested = True
                    self._not_empty.notify()
        return self.exporter.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
        self.force_flush()
        with self._lock:
            self._shutdown = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        self._worker.join(timeout=30)
        self.exporter.shutdown()
