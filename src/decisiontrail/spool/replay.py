"""The replayer: sends spooled records again, until each is delivered, dead-lettered or kept aside.

It runs on its own daemon thread, started by the first :meth:`Replayer.wake`. A pass claims the
oldest segment no live process holds, sends each of its records not yet done through ``export``
(True: nothing of it is left to retry) and deletes the segment once every record is done.

It cannot be starved:

- a record that fails does not stop the pass: the next record is tried. Two failures in a row mean
  the exporter is down: the pass stops and the thread waits ``min_backoff``, doubling up to
  ``max_backoff``. A segment that failed is tried again after every other segment was.
- a record that fails again after other exports succeeded since its last failure gets a *strike*
  (``export`` gets the count: the processor then splits the batch to find the spans that fail, and
  dead-letters a span with enough strikes). Strikes are kept per batch (its first span and its
  length), so they follow the spans of a batch the processor put back into the spool. While the
  exporter is down nothing succeeds, so nothing gets a strike.
- the segment being written is closed after ``Spool.max_segment_age`` seconds, and by the
  replayer when nothing else is left, so it is replayed too.
- a damaged record (records.py) is handed to ``on_corrupt`` (the processor keeps it aside, counts and
  logs it); the records before and after it are replayed.

Done records of a segment are remembered in memory: a segment interrupted half-way is sent whole
again by the next process, and the reader deduplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan

from ..threads import start_thread
from .records import Record
from .segments import Segment, Spool

__all__ = ["Replayer"]

_log = logging.getLogger(__name__)


def _key(spans: list[ReadableSpan]) -> tuple[int, int]:
    return (spans[0].context.span_id if spans and spans[0].context else 0, len(spans))


class Replayer:
    """Sends spooled batches through ``export(spans, strikes) -> bool`` until the spool is empty."""

    def __init__(self, spool: Spool, export: Callable[..., bool], *,
                 min_backoff: float = 0.5, max_backoff: float = 5.0, poll_interval: float = 5.0,
                 on_corrupt: Callable[[Segment, Record], None] | None = None) -> None:
        self.spool = spool
        self.export = export
        self.on_corrupt = on_corrupt or _keep_aside
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self._cond = threading.Condition()
        self._requested = 0   # bumped by every wake()
        self._idle_gen = -1   # the last wake() generation after which nothing was left to claim
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[Path, int] = {}
        self._done: dict[Path, set[int]] = {}  # records of a segment already done by this process
        self._strikes: dict[tuple[int, int], int] = {}
        self._successes = 0  # exports that succeeded (here and sent directly)
        self._seen: dict[tuple[int, int], int] = {}  # batch -> _successes at its last failure
        self._failed_in_a_row = 0
        self.replayed_batches = 0

    def wake(self) -> None:
        """Ask for a pass over the spool (after something was written to it)."""
        with self._cond:
            if self._stop.is_set():
                return
            self._requested += 1
            if self._thread is None:
                try:
                    thread = start_thread(self._run, "decisiontrail-replay")
                except RuntimeError:  # interpreter shutdown: what is spooled waits for the next process
                    return
                self._thread = thread
            self._cond.notify_all()

    def exporter_worked(self) -> None:
        """An export succeeded (here or sent directly by the processor)."""
        self._successes += 1
        self._failed_in_a_row = 0

    def _failed(self, key: tuple[int, int]) -> None:
        last = self._seen.get(key)
        if last is not None and self._successes > last:
            self._strikes[key] = self._strikes.get(key, 0) + 1
        self._seen[key] = self._successes

    def strikes(self, spans: list[ReadableSpan]) -> int:
        return self._strikes.get(_key(spans), 0)

    def inherit_strikes(self, parent: list[ReadableSpan], child: list[ReadableSpan], extra: int = 0) -> None:
        """``child`` (part of ``parent``) goes back to the spool: it keeps the parent's strikes."""
        n = self._strikes.get(_key(parent), 0) + extra
        if n:
            self._strikes[_key(child)] = n
        self._seen[_key(child)] = self._successes

    def wait_idle(self, timeout: float) -> bool:
        """True once a pass that began after this call found nothing left it could claim."""
        with self._cond:
            if self._thread is None:
                return True
            target = self._requested
            return self._cond.wait_for(lambda: self._idle_gen >= target or self._stop.is_set(), timeout)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and timeout > 0:
            thread.join(timeout)

    def after_fork(self) -> None:
        """In a forked child: the thread did not come along; start from scratch on the next wake()."""
        self._cond = threading.Condition()
        self._requested, self._idle_gen = 0, -1
        self._thread = None
        self._failures.clear()
        self._done.clear()
        self._strikes.clear()
        self._seen.clear()
        self._successes = self._failed_in_a_row = 0

    def _run(self) -> None:
        backoff = self.min_backoff
        tried: set[Path] = set()  # segments that failed in this round
        while not self._stop.is_set():
            with self._cond:
                gen = self._requested
            try:
                self.spool.check()
                self.spool.roll(older_than=self.spool.max_segment_age)
                seg = self.spool.claim(order=lambda p: (self._failures.get(p, 0), p.name), exclude=tried)
            except Exception as exc:  # pragma: no cover - a bug here must not stop the replay thread
                _log.error("decisiontrail: looking at the spool failed: %r", exc)
                seg = None
            if seg is None and self.spool.roll():  # our own segment had data: replay it too
                continue
            if seg is None and tried:  # everything left failed this round: wait, then again
                tried.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if seg is None:
                with self._cond:  # held by other live processes, or none at all: look again later
                    self._idle_gen = gen  # (forked children and other processes add segments)
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._requested != gen or self._stop.is_set(),
                                        self.poll_interval)
                continue
            try:
                done = self._replay(seg)
            except Exception as exc:  # pragma: no cover - an exporter bug: try again later
                _log.error("decisiontrail: replaying %s failed: %r", seg.path.name, exc)
                done = False
            if done:
                self._failures.pop(seg.path, None)
                self._done.pop(seg.path, None)
                seg.delete()
                backoff = self.min_backoff
                continue
            if seg.vanished and self._rescue(seg):
                continue
            seg.release()
            self._failures[seg.path] = self._failures.get(seg.path, 0) + 1
            tried.add(seg.path)
            if self._failed_in_a_row >= 2:  # the exporter is down: back off before the next segment
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _rescue(self, seg: Segment) -> bool:
        """``seg`` was deleted (with its directory) while we held it: write the records not yet
        done to the spool again, through the descriptor still open. False if that fails."""
        done = self._done.get(seg.path, set())
        try:
            for rec in seg.records(done):
                if rec.intact:
                    self.spool.append(rec.spans, rec.decisions or 0)
        except OSError as exc:
            _log.error("decisiontrail: cannot write %s again after its directory vanished: %r", seg.path.name, exc)
            return False
        _log.warning("decisiontrail: spool file %s vanished while being replayed; its records were written "
                     "to the spool again", seg.path.name)
        self._done.pop(seg.path, None)
        self._failures.pop(seg.path, None)
        self.spool.forget(seg.path)
        seg.release()
        return True

    def _replay(self, seg: Segment) -> bool:
        """One pass over ``seg``; True when every record in it is done."""
        done = self._done.setdefault(seg.path, set())
        complete = True
        for rec in seg.records(done):
            if self._stop.is_set():
                return False
            if not rec.intact:
                self.on_corrupt(seg, rec)
                done.add(rec.line)
                continue
            key = _key(rec.spans)
            if self.export(rec.spans, self._strikes.get(key, 0)):
                done.add(rec.line)
                self._strikes.pop(key, None)
                self._seen.pop(key, None)
                self.replayed_batches += 1
                self.exporter_worked()
                continue
            complete = False
            self._failed(key)
            self._failed_in_a_row += 1
            if self._failed_in_a_row >= 2:  # two in a row: the exporter is down
                return False
        return complete


def _keep_aside(seg: Segment, rec: Record) -> None:
    target = seg.keep_aside(rec)
    _log.error("decisiontrail: line %d of spool file %s is damaged (%s); kept in %s, not replayed",
               rec.line + 1, seg.path.name, rec.problem, target.name)
