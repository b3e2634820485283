"""The anchor store: a copy of every checkpoint outside the audit store.

A writer of the audit files can delete a whole chain, or cut it back to an earlier checkpoint, and
what is left still verifies. The anchors are what shows it: ``verify --anchors DIR`` reports every
anchored checkpoint the store lacks. They are only as good as their separation from the audit store:
another volume, host or account, best object storage with write-once retention (docs/trust.md).

Layout: one small file per checkpoint, ``DIR/<chain id>/<seq>.note`` (``seq`` zero-padded: the last
event the checkpoint covers), holding the signed note. One object per checkpoint, never rewritten,
maps one to one onto an object store with write-once retention (S3 Object Lock, GCS retention
policies), where an object can be created but not changed or deleted.

A checkpoint is anchored once its export was acknowledged (:class:`AnchoringExporter`), not when it
was made: an anchor then always has its checkpoint in the audit store, unless someone removed it,
and a process killed with decisions in flight is an open chain, not a cut one.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .checkpoints import Checkpoint, NoteError, SignedNote
from .conventions import CHECKPOINT_EVENT
from .conventions import CheckpointAttributes as C
from .conventions import SpanAttributes as S
from .exporters.delivery import Delivery, deliver_with
from .threads import start_thread

__all__ = ["AnchorStore", "AnchoringExporter"]

_log = logging.getLogger(__name__)


class AnchorStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def append(self, note: str) -> Path:
        """Write one checkpoint note (created, fsynced, never overwritten); the same note again is a
        no-op (a replayed export)."""
        cp = Checkpoint.parse(SignedNote.parse(note).text)
        folder = self.directory / cp.chain_id.replace("/", "_")
        path = folder / f"{cp.seq:012d}.note"
        data = note.encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if path.read_bytes() != data:
                raise FileExistsError(f"{path} holds another checkpoint for this chain and seq") from None
            return path
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def notes(self) -> Iterator[tuple[Path, str]]:
        """Every anchored note (path, text); a directory that does not exist holds none."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.rglob("*.note")):
            yield path, path.read_text(encoding="utf-8", errors="replace")


class AnchoringExporter(SpanExporter):
    """Wraps the exporter: after the exporter acknowledged spans, the checkpoints among them are
    appended to the anchor store. The writes (a file and an fsync each, milliseconds) happen on a
    thread of their own, so the export thread, which sets the pace under backpressure, does not wait
    for them; ``force_flush`` and ``shutdown`` wait for them. An anchor lost with a killed process
    only means the anchors know less than the store, never more. A write that fails is logged; the
    export stands."""

    def __init__(self, exporter: SpanExporter, store: AnchorStore) -> None:
        self.exporter = exporter
        self.store = store
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._pending: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def _anchor(self, spans: Sequence[ReadableSpan]) -> None:
        notes = []
        for s in spans:
            if not s.attributes or not s.attributes.get(S.AUDIT_RECORDS):
                continue
            for e in s.events:
                note = e.attributes.get(C.NOTE) if e.name == CHECKPOINT_EVENT and e.attributes else None
                if isinstance(note, str):
                    notes.append(note)
        if not notes:
            return
        if self._pid != os.getpid():  # a forked child: the parent's writer stayed with the parent
            self._reset()
        with self._cond:
            self._pending.extend(notes)
            if self._thread is None:
                self._thread = start_thread(self._run, "decisiontrail-anchors")
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                notes, self._busy = list(self._pending), True
                self._pending.clear()
            for note in notes:
                try:
                    self.store.append(note)
                except (OSError, NoteError) as exc:
                    _log.error("decisiontrail: anchoring a checkpoint in %s failed: %r", self.store.directory, exc)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _wait_written(self, timeout: float) -> bool:
        if self._pid != os.getpid():
            self._reset()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(remaining)
        return True

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.exporter.export(spans)
        if result is SpanExportResult.SUCCESS:
            self._anchor(spans)
        return result

    def deliver(self, spans: Sequence[ReadableSpan]) -> Delivery:
        delivery = deliver_with(self.exporter, spans)
        self._anchor(delivery.delivered)
        return delivery

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = self.exporter.force_flush(timeout_millis) is not False
        return self._wait_written(timeout_millis / 1000) and flushed

    def shutdown(self) -> None:
        if not self._wait_written(10.0):
            _log.error("decisiontrail: %d checkpoint(s) not anchored in %s before shutdown", len(self._pending),
                       self.store.directory)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.exporter.shutdown()
