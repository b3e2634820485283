"""What one export attempt came to, span by span: the contract between exporters and the no-loss
processor (processing/).

The SDK's ``SpanExporter.export`` answers SUCCESS or FAILURE for a whole batch, which cannot say
"this request was too big", "the receiver refused these spans for good" (an OTLP
``partial_success``, a 4xx other than 408/429) or "the receiver redirected us". An exporter that
knows more implements :class:`DeliveringExporter` (``deliver``); the processor calls it when present
and falls back to :func:`deliver_with` for plain exporters (SUCCESS: all delivered, anything else:
all to be retried).

The processor's rules: ``delivered`` are counted as exported; ``retry`` go to the spool and are
replayed; ``rejected`` go to the dead-letter file with their reason, are counted and logged, and are
never retried (the OTLP spec forbids retrying a permanent rejection; a span too big to send alone
would be retried forever).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["Delivery", "DeliveringExporter", "deliver_with"]


@dataclass
class Delivery:
    delivered: list[ReadableSpan] = field(default_factory=list)
    retry: list[ReadableSpan] = field(default_factory=list)
    rejected: list[tuple[ReadableSpan, str]] = field(default_factory=list)  # (span, why), for good

    @property
    def ok(self) -> bool:
        return not self.retry and not self.rejected


@runtime_checkable
class DeliveringExporter(Protocol):
    def deliver(self, spans: Sequence[ReadableSpan]) -> Delivery: ...


def deliver_with(exporter: SpanExporter, spans: Sequence[ReadableSpan]) -> Delivery:
    """One attempt through ``exporter``: its own ``deliver`` when it has one, else ``export``."""
    if isinstance(exporter, DeliveringExporter):
        return exporter.deliver(spans)
    if exporter.export(spans) is SpanExportResult.SUCCESS:
        return Delivery(delivered=list(spans))
    return Delivery(retry=list(spans))
