"""Zero-code set-up under ``opentelemetry-instrument``: the no-loss path without an import.

``opentelemetry-instrument`` builds the SDK through a *configurator* (entry-point group
``opentelemetry_configurator``). The stock one gives every exporter a BatchSpanProcessor, which
evicts spans when its queue is full and drops failed batches, and uses the sampler as is, which drops
decisions with unsampled traces. This one, selected with ``OTEL_PYTHON_CONFIGURATOR=decisiontrail``,
does what the stock one does (exporters, resource, id generator, metrics and logs from the standard
``OTEL_*`` variables) with two changes:

- the sampler (``OTEL_TRACES_SAMPLER``, default parent-based always-on) is wrapped in
  :class:`~decisiontrail.sampling.AuditSampler`, so spans that carry decisions are recorded and
  exported even when the trace is not sampled;
- the SDK's OTLP span exporters (gRPC, HTTP) are replaced by decisiontrail's (exporters/otlp.py: the
  same requests, encoded directly from the spans, capped in bytes), built from the same ``OTEL_*``
  variables; ``DECISIONTRAIL_EXPORTER=sdk`` keeps the SDK's;
- each span exporter gets a :class:`~decisiontrail.processing.DecisionSpanProcessor` with the hash
  chain and the local spool, set as in ``configure()`` (``DECISIONTRAIL_SPOOL_DIR``,
  ``DECISIONTRAIL_ON_FULL``, ``DECISIONTRAIL_BLOCK_TIMEOUT_MS``, ``DECISIONTRAIL_FAIL_CLOSED``). With
  several exporters, the second and later ones spool to a subdirectory named after the exporter
  class: a spool must be replayed into the exporter it was written for.

Without any traces exporter (``OTEL_TRACES_EXPORTER`` unset and no distro to default it to ``otlp``,
or ``none``) decisions would go nowhere: they go to the embedded store (``DECISIONTRAIL_PATH``,
default ``./decisiontrail-data``) instead, and a line is logged saying so.

The recording settings (``DECISIONTRAIL_MAX_CHARS``, ``DECISIONTRAIL_FAIL_CLOSED``, redaction
variables) are read by the default recorder from the environment in any case.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter

from .config import DEFAULT_PATH, _default_spool, _env_sampler, build_processor
from .exporters.factory import fast_equivalent, otlp_exporter
from .exporters.file import FileSpanExporter
from .processing import DecisionSpanProcessor
from .sampling import AuditSampler

__all__ = ["DecisionTrailConfigurator", "ProcessorFactory"]

_log = logging.getLogger(__name__)


class ProcessorFactory:
    """``export_span_processor`` for the SDK's set-up: one DecisionSpanProcessor per exporter."""

    def __init__(self, resource: Resource | None = None) -> None:
        self.resource = resource
        self.processors: list[DecisionSpanProcessor] = []

    def __call__(self, exporter: SpanExporter) -> DecisionSpanProcessor:
        name = type(exporter).__name__  # names the spool of a second exporter: stable across the swap
        fast = fast_equivalent(exporter)  # the SDK's OTLP exporter, as decisiontrail's fast one
        protocol = None
        if fast is not None:
            protocol = "grpc" if ".grpc." in type(exporter).__module__ else "http/protobuf"
            exporter.shutdown()
            exporter = fast
        # The SDK builds its resource from the same variables; it does not pass it here.
        resource = self.resource or Resource.create()
        base = Path(os.environ.get("DECISIONTRAIL_SPOOL_DIR") or _default_spool(exporter, resource))
        where = base if not self.processors else base / re.sub(r"\W+", "_", name)
        processor = build_processor(exporter, resource, spool_dir=where, exporter_factory=_remake(exporter, protocol))
        self.processors.append(processor)
        return processor


def _remake(exporter: SpanExporter, protocol: str | None) -> Callable[[], SpanExporter] | None:
    """How a forked child makes its own exporter: an OTLP exporter is built from the environment
    again (a new gRPC channel, never the parent's); None for others (the child keeps the object)."""
    if protocol is not None:
        return functools.partial(otlp_exporter, protocol)
    if type(exporter).__module__.startswith("opentelemetry.exporter.otlp."):
        return type(exporter)
    return None


def _traces_exporter_configured() -> bool:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return bool(names) and names != "none"


class DecisionTrailConfigurator(_OTelSDKConfigurator):
    """The SDK's own configurator with the audit sampler and the no-loss processor."""

    factory: ProcessorFactory | None = None

    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get("OTEL_CONFIG_FILE"):
            _log.warning("decisiontrail: OTEL_CONFIG_FILE is set, so the SDK follows that file: decisions "
                         "get the processors and sampler it names, not decisiontrail's no-loss path")
            super()._configure(**kwargs)  # type: ignore[no-untyped-call]
            return
        kwargs["sampler"] = AuditSampler(kwargs.get("sampler") or _env_sampler())
        factory = self.factory = ProcessorFactory()
        kwargs.setdefault("export_span_processor", factory)
        if not _traces_exporter_configured():
            directory = Path(os.environ.get("DECISIONTRAIL_PATH") or DEFAULT_PATH)
            _log.warning("decisiontrail: no traces exporter configured (OTEL_TRACES_EXPORTER); decisions "
                         "go to the embedded store in %s", directory)
            kwargs["span_processors"] = [*kwargs.get("span_processors", ()), factory(FileSpanExporter(directory))]
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
