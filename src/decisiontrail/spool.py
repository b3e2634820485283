"""The local write-ahead spool: decision spans that are not delivered yet, on disk until they are.

DecisionSpanProcessor writes here what it cannot hand to the exporter now (the export queue stayed
full, the collector is unreachable or refused a batch, the process is exiting), and a
:class:`Replayer` thread sends it again, with backoff, until the exporter accepts it.

Format and layout (``docs/no-loss.md``): a directory of segment files named
``<UTC nanoseconds>-<pid>-<n>.spool``, oldest first by name. Each line is one OTLP JSON
``ExportTraceServiceRequest``, the same lines the embedded file exporter and the collector's file
exporter write (exporters/otlpjson.py); the ``.spool`` suffix keeps the audit reader, which reads
``*.json``/``*.jsonl`` recursively, from taking pending data for delivered data. A line is written
and fsynced before its decisions count as spooled. A segment is deleted only after every line was
exported successfully; a crash in between replays it again (the reader deduplicates by decision id).

Several processes may share one directory: a process holds an exclusive ``flock`` on the segment it
is writing and on the one it is replaying, so a live writer's segment is never replayed by another
process, and a dead process's segments (its locks are gone) are replayed by whichever process claims
them first. Without ``fcntl`` (Windows) give each process its own directory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan

from .exporters.otlpjson import spans_from_otlp_json, spans_to_otlp_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "Segment", "Replayer", "SUFFIX"]

_log = logging.getLogger(__name__)
SUFFIX = ".spool"
BAD_SUFFIX = ".spool.bad"


def _lock(fd: int, blocking: bool) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class Segment:
    """A spool file claimed (locked) by this process for replay. ``release`` or ``delete`` it."""

    def __init__(self, path: Path, f: IO[bytes]) -> None:
        self.path = path
        self._f = f

    def batches(self, start: int = 0) -> Iterator[tuple[int, list[ReadableSpan]]]:
        """(line number, spans) of each complete line from ``start`` on.

        A last line without its newline is the torn write of a crashed process: its spans never
        counted as spooled, so it is skipped with a warning. A damaged line elsewhere raises
        ValueError, and the segment is kept aside (see :meth:`Replayer`) rather than deleted.
        """
        self._f.seek(0)
        for n, raw in enumerate(self._f):
            if n < start:
                continue
            if not raw.endswith(b"\n"):
                _log.warning("decisiontrail: skipping a torn last line in spool file %s", self.path.name)
                return
            if not raw.strip():
                continue
            try:
                spans = spans_from_otlp_json(raw)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {n + 1} of {self.path.name} is not OTLP JSON: {exc!r}") from exc
            yield n, spans

    def release(self) -> None:
        self._f.close()  # closing the descriptor drops the flock

    def delete(self) -> None:
        try:
            self.path.unlink()
            _fsync_dir(self.path.parent)
        except FileNotFoundError:
            pass
        self.release()

    def set_aside(self) -> Path:
        """Rename a segment that cannot be parsed to ``*.spool.bad``: kept for an operator, not replayed."""
        target = self.path.with_name(self.path.name[: -len(SUFFIX)] + BAD_SUFFIX)
        os.replace(self.path, target)
        self.release()
        return target


class Spool:
    """Append-only segment files in ``directory`` (created on first use, mode 0700, files 0600)."""

    def __init__(self, directory: str | os.PathLike[str], *, segment_bytes: int = 16 * 1024 * 1024,
                 fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._n = 0

    # -- writing -----------------------------------------------------------------------------
    # A raw descriptor, no buffer: a fork can never copy half a line into a child that writes it again.
    def _open(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._n += 1
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}-{self._n}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _lock(fd, blocking=True)  # a new name: nobody else holds it
        _fsync_dir(self.directory)  # the file itself survives a crash, not only its contents
        self._fd, self._path, self._size = fd, path, 0
        return fd

    def append(self, spans: Sequence[ReadableSpan], decisions: int = 0) -> None:
        """Write ``spans`` as one OTLP JSON line; return once it is on disk (fsync). Raises OSError."""
        if not spans:
            return
        line = (spans_to_otlp_json(spans) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            fd = self._fd if self._fd is not None else self._open()
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                self._close_locked()  # the next append starts a fresh segment
                raise
            self._size += len(line)
            if self._size >= self.segment_bytes:
                self._close_locked()

    def _close_locked(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover
                pass
        self._fd = self._path = None

    def roll(self) -> bool:
        """Close the segment being written, so it can be replayed; False when none was open."""
        with self._lock:
            if self._fd is None:
                return False
            self._close_locked()
            return True

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def after_fork(self) -> None:
        """In a forked child: a new lock, and the inherited segment stays the parent's (closing our
        copy of the descriptor leaves the parent's flock in place)."""
        self._lock = threading.Lock()
        self._close_locked()
        self._n = 0

    # -- reading -----------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        """Every pending segment (of any process), oldest first."""
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []
        except OSError as exc:  # not a directory, no permission: append() will fail and say so
            _log.warning("decisiontrail: cannot list the spool %s: %r", self.directory, exc)
            return []

    def pending(self) -> bool:
        return bool(self.segments())

    def claim(self, order: Callable[[Path], Any] | None = None) -> Segment | None:
        """Lock and return the first segment (by ``order``, else oldest) that no live process is
        writing or replaying, or None."""
        with self._lock:
            own = self._path
        paths = self.segments()
        if order is not None:
            paths.sort(key=order)
        for path in paths:
            if path == own:
                continue
            try:
                f = open(path, "rb")
            except FileNotFoundError:  # replayed and deleted by another process meanwhile
                continue
            if not _lock(f.fileno(), blocking=False):
                f.close()
                continue
            try:  # another process may have deleted it between our open and our lock
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                f.close()
                continue
            return Segment(path, f)
        return None


class Replayer:
    """Sends spooled batches through ``export`` (True = delivered) until the spool is empty.

    Runs on its own daemon thread, started by the first :meth:`wake`. A failed batch leaves its
    segment in place and the thread waits ``min_backoff``, doubling up to ``max_backoff``, before the
    next try; segments that failed more often are tried after the others, so one batch the collector
    keeps refusing does not hold back the rest. Segments that other live processes hold are looked
    at again every ``poll_interval`` seconds.
    """

    def __init__(self, spool: Spool, export: Callable[[list[ReadableSpan]], bool], *,
                 min_backoff: float = 0.5, max_backoff: float = 5.0, poll_interval: float = 5.0) -> None:
        self.spool = spool
        self.export = export
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self._cond = threading.Condition()
        self._requested = 0   # bumped by every wake()
        self._idle_gen = -1   # the last wake() generation after which nothing was left to claim
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[Path, int] = {}
        self._progress: dict[Path, int] = {}  # lines of a segment already delivered by this process
        self.replayed_batches = 0

    def wake(self) -> None:
        """Ask for a pass over the spool (after something was written to it)."""
        with self._cond:
            if self._stop.is_set():
                return
            self._requested += 1
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="decisiontrail-replay", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutdown: what is spooled waits for the next process
                    return
                self._thread = thread
            self._cond.notify_all()

    def exporter_worked(self) -> None:
        """The exporter accepted a batch (sent directly, not from the spool)."""

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
        self._progress.clear()

    def _run(self) -> None:
        backoff = self.min_backoff
        while not self._stop.is_set():
            with self._cond:
                gen = self._requested
            seg = self.spool.claim(order=lambda p: (self._failures.get(p, 0), p.name))
            if seg is None and self.spool.roll():  # our own segment had data: replay it too
                continue
            if seg is None:
                pending = self.spool.pending()  # held by other live processes, or none at all
                with self._cond:
                    self._idle_gen = gen
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._requested != gen or self._stop.is_set(),
                                        self.poll_interval if pending else None)
                continue
            try:
                done = self._replay(seg)
            except Exception as exc:  # a file we cannot parse: keep it aside, never delete it
                target = seg.set_aside()
                _log.error("decisiontrail: spool file %s cannot be replayed (%r); kept as %s for inspection",
                           seg.path.name, exc, target.name)
                continue
            if done:
                self._failures.pop(seg.path, None)
                self._progress.pop(seg.path, None)
                seg.delete()
                backoff = self.min_backoff
                continue
            seg.release()
            self._failures[seg.path] = self._failures.get(seg.path, 0) + 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def _replay(self, seg: Segment) -> bool:
        for n, spans in seg.batches(self._progress.get(seg.path, 0)):
            if self._stop.is_set() or not self.export(spans):
                return False
            self.replayed_batches += 1
            self._progress[seg.path] = n + 1
        return True


def read_spool_file(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """The OTLP JSON messages of one spool file (for inspection and tests)."""
    out = []
    with open(path, "rb") as f:
        for raw in f:
            if raw.endswith(b"\n") and raw.strip():
                out.append(json.loads(raw))
    return out
