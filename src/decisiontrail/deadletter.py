"""The dead-letter file: decisions that will never be delivered, kept with their ids and the reason.

The processor (processing/) writes here what the receiver refused for good (an OTLP
``partial_success`` with rejected spans, a 4xx other than 408/429), what is too big to send even
alone, and a spooled batch that kept failing while the exporter accepted everything else. Such
spans are never retried (the OTLP spec forbids retrying a permanent rejection, and a span too big to
send would be retried forever) and never counted as exported: they are counted in ``stats``
``dead_lettered``, logged with the count, and reported by ``drain()`` and, in fail-closed mode, by
the next recording call.

Layout: ``<directory>/<UTC nanoseconds>-<pid>.deadletter`` (one file per process, mode 0600, the
directory 0700). Each line is one JSON object: ``rejectedAt`` (RFC 3339, UTC), ``reason``,
``decisions`` (how many), ``decisionIds`` and ``request``, an OTLP JSON ``ExportTraceServiceRequest``
holding the spans as they were to be sent (the same encoding as the spool and the audit files; to
send them again after fixing the cause, ``spans_from_otlp_json(json.dumps(line["request"]))``).
The suffix keeps ``decisiontrail query`` from taking them for stored decisions. Each line is written
and fsynced before its decisions count as dead-lettered.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .conventions import DecisionAttributes as D
from .exporters.otlpjson import spans_to_otlp_json

__all__ = ["DeadLetterFile", "read_dead_letters", "decision_ids", "SUFFIX"]

SUFFIX = ".deadletter"


def decision_ids(spans: Sequence[ReadableSpan]) -> list[str]:
    """The ``decision.id`` of every event on ``spans`` that has one (a packed batch event: its first row)."""
    out = []
    for s in spans:
        for e in s.events:
            did = (e.attributes or {}).get(D.ID)
            if isinstance(did, str):
                out.append(did)
    return out


class DeadLetterFile:
    """Appends rejected spans to this process's dead-letter file in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self.path: Path | None = None

    def write(self, spans: Sequence[ReadableSpan], reason: str, count: Callable[[ReadableSpan], int]) -> int:
        """Write ``spans`` with ``reason``; return the number of decisions written. Raises OSError."""
        decisions = sum(count(s) for s in spans)
        record: dict[str, Any] = {
            "rejectedAt": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "reason": reason,
            "decisions": decisions,
            "decisionIds": decision_ids(spans),
        }
        head = json.dumps(record, ensure_ascii=False)[:-1]
        line = f'{head},"request":{spans_to_otlp_json(spans)}}}\n'.encode("utf-8", "surrogatepass")
        with self._lock:
            fd = self._open_locked()
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                self._close_locked()
                raise
        return decisions

    def _open_locked(self) -> int:
        if self._fd is not None and self._pid == os.getpid() and self.path is not None and self.path.exists():
            return self._fd
        self._close_locked()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._pid, self.path = os.getpid(), path
        return self._fd

    def _close_locked(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:  # pragma: no cover
                pass
        self._fd = None

    def after_fork(self) -> None:
        """In a forked child: a new lock and, on the next write, a file of its own."""
        self._lock = threading.Lock()
        self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()


def read_dead_letters(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every dead-letter record under ``directory``, oldest file first (for operators and tests)."""
    out = []
    for path in sorted(Path(directory).glob(f"*{SUFFIX}")):
        with open(path, "rb") as f:
            for raw in f:
                if raw.endswith(b"\n") and raw.strip():
                    out.append(json.loads(raw))
    return out
