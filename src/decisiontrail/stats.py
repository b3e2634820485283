"""Process-wide counters of what happened to decisions; nothing is lost without a count here.

They are also reported as OpenTelemetry metrics (``decisiontrail.*`` counters) on whatever
MeterProvider the application set; :func:`snapshot` reads them in-process (tests, health checks).
"""

from __future__ import annotations

import threading

from opentelemetry import metrics

__all__ = ["add", "snapshot", "reset", "COUNTERS"]

COUNTERS = {
    "recorded": "Decisions (and outcome/review records) added to a recording span.",
    "recording_errors": "Decisions that failed to build and were recorded with decision.error.",
    "unrecorded": "Decisions whose span was not recording (sampled out without AuditSampler).",
    "exported": "Decisions whose span the exporter acknowledged.",
    "spooled": "Decisions written to the local spool (queue full or export failed).",
    "lost": "Decisions dropped by an explicitly lossy policy or an unrecoverable failure.",
    "dead_lettered": "Decisions refused for good or too big to send: in the dead-letter file, never retried.",
    "spool_corrupt": "Spool records that failed their checksum or shape check: kept aside, not replayed.",
    "spool_errors": "Failed spool writes and spool directories found deleted or unwritable.",
    "spans_dropped": "Spans without decisions dropped because the queue was full.",
    "payload_errors": "Full payloads the payload store failed to write (each decision went out bounded, "
                      "with decision.error and no reference).",
}

_lock = threading.Lock()
_values = dict.fromkeys(COUNTERS, 0)
_meter = metrics.get_meter("decisiontrail")
_instruments = {k: _meter.create_counter(f"decisiontrail.{k}", description=d) for k, d in COUNTERS.items()}


def add(name: str, n: int = 1) -> None:
    with _lock:
        _values[name] += n
    _instruments[name].add(n)


def add_local(name: str, n: int = 1) -> None:
    """Count in-process only: for the per-decision hot path (``recorded``), where an OTel counter
    update would cost more than the rest of the bookkeeping."""
    with _lock:
        _values[name] += n


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_values)


def reset() -> None:
    """Zero the in-process counters (tests); the OTel counters are monotonic and stay."""
    with _lock:
        for k in _values:
            _values[k] = 0
