"""The embedded default exporter: OTLP JSON lines in a local directory.

It writes what the Collector's file exporter writes (one ``ExportTraceServiceRequest`` per line, see
otlpjson.py) with the same rotation scheme (``<name>-<UTC time>.<ext>`` backups, as lumberjack names
them), so ``decisiontrail query`` reads both. Each batch is flushed and, by default, fsynced before
export reports success: an acknowledged decision is on disk. Files are created with mode 0600 and
the directory with 0700 (like the spool's): the store holds what the models saw.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .otlpjson import spans_to_otlp_json

__all__ = ["FileSpanExporter", "DEFAULT_FILE_NAME"]

DEFAULT_FILE_NAME = "decisions.jsonl"


def _open_private(path: Path) -> BinaryIO:
    """Append to ``path``, created with mode 0600 (the umask can only narrow it)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


class FileSpanExporter(SpanExporter):
    def __init__(self, directory: str | os.PathLike[str], *, file_name: str = DEFAULT_FILE_NAME,
                 max_bytes: int = 100 * 1024 * 1024, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = self.directory / file_name
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._file = _open_private(self.path)
        self._closed = False

    def _rotate(self) -> None:
        self._file.close()
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        stem, dot, ext = self.path.name.partition(".")
        target = self.path.with_name(f"{stem}-{stamp}{dot}{ext}")
        n = 1
        while target.exists():  # two rotations in one millisecond
            target = self.path.with_name(f"{stem}-{stamp}-{n}{dot}{ext}")
            n += 1
        os.replace(self.path, target)
        self._file = _open_private(self.path)

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """One line; encoded in chunks, giving the GIL up between them (pacing.py)."""
        return (spans_to_otlp_json(spans, paced=True) + "\n").encode("utf-8", "surrogatepass")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        line = self._encode(spans)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                if self._file.tell() and self._file.tell() + len(line) > self.max_bytes:
                    self._rotate()
                self._file.write(line)
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            except OSError:
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._file.close()
