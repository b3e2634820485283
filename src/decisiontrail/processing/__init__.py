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

from .counting import decision_count
from .processor import DURABILITY_MODES, ON_FULL_POLICIES, DecisionSpanProcessor

__all__ = ["DecisionSpanProcessor", "decision_count", "ON_FULL_POLICIES", "DURABILITY_MODES"]
